"""What every baseline shares: the item vocabulary, item scores -> distinct SIDs, and the run folder.

Baselines rank ITEMS; the evaluator and the metrics work on SIDs. An item ranking becomes a SID
ranking by replacing each item with its SID and keeping the first occurrence of each SID, so a row
always gets ``k`` DISTINCT SIDs even where items share a SID (15 pairs in Office_Products). A SID's
score is the score of its best item. Targets are the split's ``item_sid`` (exactly as the evaluator
takes them), so the metrics match by SID string like every other run.

A run folder holds what ``evaluate.py`` writes (``predictions.jsonl``, ``metrics.json`` through the
evaluator's own :func:`sidreasoner.eval.runner.finalize`, ``config.json``, ``run.json``,
``examples.md``), so ``scripts/compare_results.py`` tables baselines next to model runs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..data.formats import atomic_write_text, read_sid_index, read_split_csv
from ..data.records import DataError, ReleasePaths, SequenceRow
from ..eval import predictions as P
from ..sid.index import SIDIndex

PAD = 0  # item index 0 is padding; catalogue items are 1..n


@dataclass
class ItemVocab:
    """Catalogue items in ``index.json`` order, numbered 1..n (0 = padding), with their SIDs."""

    item_ids: list[str]          # position i-1 holds item index i
    index_of: dict[str, int]     # item id -> 1..n
    sids: list[str]              # position i-1 holds the SID of item index i
    source: str                  # the file the vocabulary came from (named in errors)

    @classmethod
    def from_index(cls, index: SIDIndex, source) -> "ItemVocab":
        ids = list(index.item_to_sid)
        if not ids:
            raise DataError(source, "the catalogue has no items")
        return cls(ids, {i: n for n, i in enumerate(ids, 1)}, [index.sid(i) for i in ids], str(source))

    def __len__(self) -> int:
        return len(self.item_ids)

    def encode(self, item_id: str, path, line: Optional[int], field: str) -> int:
        """1..n for a catalogue item; an unknown id is a DataError naming file, line and field."""
        try:
            return self.index_of[item_id]
        except KeyError:
            raise DataError(path, f"item id {item_id!r} is not in the catalogue {self.source}", line, field) from None

    def duplicate_sid_items(self) -> int:
        """How many items share their SID with an earlier item: the most a SID ranking can lose to dedup."""
        return len(self.sids) - len(set(self.sids))


def load_splits(paths: ReleasePaths, names: Sequence[str]) -> dict[str, list[SequenceRow]]:
    """The named split CSVs, read and checked by :func:`read_split_csv` (file, line, field on errors)."""
    return {name: read_split_csv(paths.split(name)) for name in names}


def load_vocab(paths: ReleasePaths) -> ItemVocab:
    return ItemVocab.from_index(read_sid_index(paths.index_json), paths.index_json)


def check_items(rows: Sequence[SequenceRow], vocab: ItemVocab, path) -> None:
    """Every history and target item of ``rows`` is a catalogue item (else DataError, first offender)."""
    for r in rows:
        for item in r.history_item_ids:
            vocab.encode(item, path, r.line, "history_item_id")
        vocab.encode(r.item_id, path, r.line, "item_id")


def top_sids(order: np.ndarray, scores: np.ndarray, vocab: ItemVocab, k: int) -> tuple[list[str], list[float]]:
    """Item indices (0-based into ``vocab``) best first -> the first ``k`` distinct SIDs and their scores.

    ``order`` must hold at least ``k + vocab.duplicate_sid_items()`` items (or all of them) so that
    ``k`` distinct SIDs are always found; ``scores`` is indexed like ``order``'s values.
    """
    ranked, out_scores, seen = [], [], set()
    for i in order:
        sid = vocab.sids[int(i)]
        if sid in seen:
            continue
        seen.add(sid)
        ranked.append(sid)
        out_scores.append(round(float(scores[int(i)]), 6))
        if len(ranked) == k:
            break
    return ranked, out_scores


def prediction_record(row_no: int, row: SequenceRow, ranked: list[str], scores: list[float]) -> dict:
    """One predictions.jsonl line, in the evaluator's format (``row`` = 0-based row of the split file)."""
    return {"row": row_no, "user_id": row.user_id, "target": row.item_sid, "ranked": ranked, "scores": scores}


def write_run(out_dir, records: Sequence[dict], config: dict, run: dict, paths: ReleasePaths, split: str,
              num_beams: int, ks: Optional[Sequence[int]] = None) -> dict:
    """Write predictions.jsonl, config.json, run.json, then metrics.json + examples.md as the evaluator does."""
    from ..eval.runner import finalize
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / P.PREDICTIONS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    atomic_write_text(out / "config.json", json.dumps(config, indent=1, default=str) + "\n")
    atomic_write_text(out / "run.json", json.dumps(run, indent=1) + "\n")
    if not paths.info.is_file():
        raise DataError(paths.info, "file not found (the catalogue info file is needed for metrics)")
    return finalize(out, str(paths.info), num_beams, list(ks) if ks else None, None, str(paths.split(split)))
