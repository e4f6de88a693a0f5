"""A tiny release for the SFT tests, on the catalogue of ``fixtures_model`` (so the shared tiny model's
tokenizer already holds every SID token): split CSVs and both teacher corpora.

``write_tiny_release(root)`` writes the release layout under ``root`` (category ``Tiny``) and returns
its ``ReleasePaths``; ``foreign_index()`` is an index whose SIDs the tiny model does not know.
"""
from __future__ import annotations

from pathlib import Path

from fixtures_model import tiny_catalogue, write_catalogue

from sidreasoner.data.corpora import NarrativeRow, write_item_enhanced, write_narratives
from sidreasoner.data.formats import write_split_csv
from sidreasoner.data.records import ReleasePaths, SequenceRow
from sidreasoner.sid.spelling import format_sid

CATEGORY = "Tiny"
N_ITEMS = 40


def _row(user: str, hist: list[int], target: int, items, index) -> SequenceRow:
    ids = [f"I{h:03d}" for h in hist]
    tid = f"I{target:03d}"
    return SequenceRow(user, tuple(ids), tuple(items[i].title for i in ids), tuple(index.sid(i) for i in ids),
                       tid, items[tid].title, index.sid(tid))


def rows(items, index) -> dict[str, list[SequenceRow]]:
    """16 users: train rows are the prefixes of a 5-item walk through the catalogue, valid/test the next items."""
    out = {"train": [], "valid": [], "test": []}
    for u in range(16):
        walk = [(u * 3 + 2 * k) % N_ITEMS for k in range(7)]
        out["train"] += [_row(f"U{u}", walk[:k], walk[k], items, index) for k in range(1, 5)]
        out["valid"].append(_row(f"U{u}", walk[:5], walk[5], items, index))
        out["test"].append(_row(f"U{u}", walk[:6], walk[6], items, index))
    return out


def narratives(index) -> list[NarrativeRow]:
    s = [index.sid(f"I{i:03d}") for i in range(N_ITEMS)]
    return [NarrativeRow((s[i], s[(i + 1) % N_ITEMS]), s[(i + 2) % N_ITEMS],
                         f"The user bought {s[i]} and then {s[(i + 1) % N_ITEMS]}: a matching office set.",
                         f"The user keeps buying office supplies; {s[(i + 1) % N_ITEMS]} needs a refill next.")
            for i in range(N_ITEMS)]


def write_tiny_release(root, with_corpora: bool = True) -> ReleasePaths:
    items, index = tiny_catalogue(N_ITEMS)
    rp = write_catalogue(Path(root), CATEGORY, items, index)
    for split, split_rows in rows(items, index).items():
        write_split_csv(rp.split(split), split_rows)
    if with_corpora:
        write_narratives(rp.narrative, narratives(index))
        write_item_enhanced(rp.item_enhanced, {i: f"{it.title} is {index.sid(i)}: a reliable office item."
                                               for i, it in items.items()})
    return rp


def foreign_index() -> dict[str, str]:
    """Item id -> a SID outside the tiny codebooks (codes >= 4), so the tiny model lacks its tokens."""
    return {f"I{i:03d}": format_sid((4 + i % 3, 4 + i % 5, 4 + i)) for i in range(N_ITEMS)}
