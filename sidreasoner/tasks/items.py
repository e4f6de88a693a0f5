"""Item tasks of stage 1: translate between an item's SID and its title (index.json + item.json).

Validation uses held-out items (``TaskData.valid_items``): those items never appear in these tasks'
training examples, so the validation loss measures translation of unseen (SID, title) pairs.
"""
from __future__ import annotations

from . import prompts
from .base import SkipLog, Task, TaskData, TaskSplit, chat


def _catalogue(data: TaskData, skips: SkipLog):
    """(item id, SID, title) for every index item with a title; empty titles are counted."""
    for item_id, sid in data.index.item_to_sid.items():
        title = data.index.titles.get(item_id, "").strip()
        if not title:
            skips.skip("empty or missing title", f"{data.item_path} item {item_id}")
            continue
        yield item_id, sid, title


class SIDToTitle(Task):
    name = "sid_to_title"
    description = "SID -> title"

    def build(self, data: TaskData) -> TaskSplit:
        skips, train, valid, seen_sids = SkipLog(), [], [], set()
        for item_id, sid, title in _catalogue(data, skips):
            source = f"{data.item_path} item {item_id}"
            if sid in seen_sids:
                # colliding SIDs (shared by several items) would teach contradictory titles
                skips.skip("SID shared with an earlier item (kept the first item's title)", source)
                continue
            seen_sids.add(sid)
            ex = chat(self.name, prompts.sid_to_title_prompt(sid), title, source=source)
            (valid if item_id in data.valid_items else train).append(ex)
        return TaskSplit(train, valid, skips)


class TitleToSID(Task):
    name = "title_to_sid"
    description = "title -> SID"

    def build(self, data: TaskData) -> TaskSplit:
        skips, train, valid = SkipLog(), [], []
        for item_id, sid, title in _catalogue(data, skips):
            source = f"{data.item_path} item {item_id}"
            ex = chat(self.name, prompts.title_to_sid_prompt(title), sid, source=source)
            (valid if item_id in data.valid_items else train).append(ex)
        return TaskSplit(train, valid, skips)
