"""Sequence tasks of stage 1: a user's history -> the next item, in SIDs and/or titles.

Training examples come from the train split, validation examples from the valid split (later
interactions, never training rows). Rows that cannot make an example are counted by reason.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from ..data.records import DataError, SequenceRow
from . import prompts
from .base import ChatExample, SkipLog, Task, TaskData, TaskSplit, chat, row_source

UNKNOWN_SID = "SID not in the index"
#: above this share of rows naming unknown SIDs, the file was made for another index: fail loudly
UNKNOWN_SID_LIMIT = 0.5


def check_unknown_sids(skips: SkipLog, n_rows: int, path: str, what: str = "rows") -> None:
    """Raise when most rows of a file name SIDs that the index lacks (a corpus built for another
    SID index trains the model on tokens it will never be asked for)."""
    reasons = [r for r in skips.counts if r.startswith(UNKNOWN_SID)]
    n_bad = sum(skips.counts[r] for r in reasons)
    if n_rows and n_bad > UNKNOWN_SID_LIMIT * n_rows:
        first = "; ".join(e for r in reasons for e in skips.examples.get(r, []))
        raise DataError(path, f"{n_bad} of {n_rows} {what} name SIDs that are not in the SID index "
                              f"(first: {first}); was this file made for another index.json?")


class SequenceTask(Task):
    """Shared plumbing: validate a row, then ``make`` the example."""

    uses_history_titles = False
    uses_target_title = False

    def make(self, row: SequenceRow, source: str) -> ChatExample:
        raise NotImplementedError

    def _reason(self, row: SequenceRow, data: TaskData) -> Optional[str]:
        if not row.history_sids:
            return "empty history"
        if not data.index.is_valid_sid(row.item_sid) or not all(data.index.is_valid_sid(s) for s in row.history_sids):
            return UNKNOWN_SID
        if self.uses_target_title and not row.item_title.strip():
            return "empty target title"
        if self.uses_history_titles and not all(t.strip() for t in row.history_titles):
            return "empty title in history"
        return None

    def _convert(self, rows: Sequence[SequenceRow], path: str, data: TaskData, skips: SkipLog, tag: str):
        out = []
        for n, row in enumerate(rows, 1):
            source = row_source(path, row, n)
            reason = self._reason(row, data)
            if reason:
                skips.skip(f"{tag}{reason}", source)
            else:
                out.append(self.make(row, source))
        return out

    def build(self, data: TaskData) -> TaskSplit:
        skips = SkipLog()
        train = self._convert(data.train_rows, data.train_path, data, skips, "")
        check_unknown_sids(skips, len(data.train_rows), data.train_path)
        valid_skips = SkipLog()
        valid = self._convert(data.valid_rows, data.valid_path, data, valid_skips, "")
        check_unknown_sids(valid_skips, len(data.valid_rows), data.valid_path)
        _merge_tagged(skips, valid_skips, "validation: ")
        return TaskSplit(train, valid, skips)


def _merge_tagged(into: SkipLog, other: SkipLog, tag: str) -> None:
    for reason, n in other.counts.items():
        into.counts[tag + reason] = into.counts.get(tag + reason, 0) + n
        into.examples[tag + reason] = list(other.examples.get(reason, []))


COVERED = "prefix of a longer row of the same user (supervised there by the history loss)"


def covered_rows(rows: Sequence[SequenceRow]) -> set[int]:
    """Positions of rows whose item sequence (history + target) is a prefix of another row's of the
    same user: under the history loss the longer row already supervises every one of their items."""
    by_user: dict[str, list[tuple[int, tuple]]] = {}
    for i, r in enumerate(rows):
        by_user.setdefault(r.user_id, []).append((i, tuple(r.history_item_ids) + (r.item_id,)))
    covered = set()
    for seqs in by_user.values():
        seqs.sort(key=lambda s: len(s[1]))
        for j, (i, seq) in enumerate(seqs):
            if any(longer[:len(seq)] == seq for _, longer in seqs[j + 1:] if len(longer) > len(seq)):
                covered.add(i)
    return covered


class NextSID(SequenceTask):
    """History SIDs -> next SID. ``history_loss``: the training prompts' history SIDs are supervised
    too (each item predicted from the ones before it, as SASRec trains), and rows that are prefixes
    of a longer row of the same user are dropped (counted): the longer row covers them, except at the
    answer position, which ``keep_covered`` keeps supervising for every row (four times the compute)."""

    name = "next_sid"
    description = "history SIDs -> next SID"

    def __init__(self, style: str = "native", history_loss: bool = False, keep_covered: bool = False,
                 recent_crops: int = 0):
        self.style, self.history_loss, self.keep_covered = prompts.check_style(style), history_loss, keep_covered
        self.recent_crops = recent_crops

    def make(self, row, source):
        system, user = prompts.next_sid_turns(row.history_sids, think=False, style=self.style, train=True)
        return chat(self.name, user, row.item_sid, source=source, system=system)

    def build(self, data: TaskData) -> TaskSplit:
        rows = data.train_rows
        drop = covered_rows(rows) if self.history_loss and not self.keep_covered else set()
        drop = {i for i in drop if not self._reason(rows[i], data)}  # an unusable row keeps its own skip reason
        split = super().build(dataclasses.replace(data, train_rows=[r for i, r in enumerate(rows) if i not in drop]))
        for i in sorted(drop):
            split.skips.skip(COVERED, row_source(data.train_path, rows[i], i + 1))
        train = split.train + self._crops(data)
        if self.history_loss:
            train = [dataclasses.replace(ex, prompt_sid_loss=True) for ex in train]
        return TaskSplit(train, split.valid, split.skips)

    def _crops(self, data: TaskData) -> list[ChatExample]:
        """Each usable train row again with its history cut to the last 1..recent_crops items (only
        cuts shorter than the history): what follows an item, whatever came before it. At test time
        the last item's usual successors are the strongest signal (a large share of the hits of the
        transitions baseline), and a full-history row alone ties them to one user's earlier items."""
        out = []
        for n, row in enumerate(data.train_rows, 1):
            if self.recent_crops < 1 or self._reason(row, data):
                continue
            for k in range(1, min(self.recent_crops, len(row.history_sids) - 1) + 1):
                cut = dataclasses.replace(row, history_item_ids=row.history_item_ids[-k:],
                                          history_titles=row.history_titles[-k:], history_sids=row.history_sids[-k:])
                out.append(self.make(cut, f"{row_source(data.train_path, row, n)} (last {k})"))
        return out


class StyledSequenceTask(SequenceTask):
    """A sequence task worded by the prompt style (``tasks.prompts``); ``category`` names the items under
    ``release`` where its text does."""

    def __init__(self, style: str = "native", category: str = ""):
        self.style, self.category = prompts.check_style(style), category


class NextTitleFromSIDs(StyledSequenceTask):
    name = "sid_history_to_title"
    description = "history SIDs -> next title"
    uses_target_title = True

    def make(self, row, source):
        system, user = prompts.next_title_from_sids_turns(row.history_sids, self.style)
        return chat(self.name, user, row.item_title.strip(), source=source, system=system)


class NextTitleFromTitles(StyledSequenceTask):
    name = "title_history_to_title"
    description = "history titles -> next title"
    uses_history_titles = uses_target_title = True

    def make(self, row, source):
        # native wording under every style (see prompts.next_title_from_titles_turns)
        system, user = prompts.next_title_from_titles_turns([t.strip() for t in row.history_titles], self.style)
        return chat(self.name, user, row.item_title.strip(), source=source, system=system)


class NextSIDFromTitles(StyledSequenceTask):
    name = "title_history_to_sid"
    description = "history titles -> next SID"
    uses_history_titles = True

    def make(self, row, source):
        system, user = prompts.next_sid_from_titles_turns([t.strip() for t in row.history_titles], self.style,
                                                          self.category)
        return chat(self.name, user, row.item_sid, source=source, system=system)
