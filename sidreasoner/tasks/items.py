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

    def __init__(self, style: str = "native"):
        self.style = prompts.check_style(style)

    def build(self, data: TaskData) -> TaskSplit:
        skips, train, valid, seen_sids = SkipLog(), [], [], set()
        for item_id, sid, title in _catalogue(data, skips):
            source = f"{data.item_path} item {item_id}"
            if sid in seen_sids:
                # colliding SIDs (shared by several items) would teach contradictory titles
                skips.skip("SID shared with an earlier item (kept the first item's title)", source)
                continue
            seen_sids.add(sid)
            system, user = prompts.sid_to_title_turns(sid, self.style)
            ex = chat(self.name, user, title, source=source, system=system)
            (valid if item_id in data.valid_items else train).append(ex)
        return TaskSplit(train, valid, skips)


class TitleToSID(Task):
    name = "title_to_sid"
    description = "title -> SID"

    def __init__(self, style: str = "native"):
        self.style = prompts.check_style(style)

    def build(self, data: TaskData) -> TaskSplit:
        skips, train, valid = SkipLog(), [], []
        for item_id, sid, title in _catalogue(data, skips):
            source = f"{data.item_path} item {item_id}"
            system, user = prompts.title_to_sid_turns(title, self.style)
            ex = chat(self.name, user, sid, source=source, system=system)
            (valid if item_id in data.valid_items else train).append(ex)
        return TaskSplit(train, valid, skips)
