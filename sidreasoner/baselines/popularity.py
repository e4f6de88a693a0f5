"""Most-popular baseline: every row gets the same ranking, the catalogue by training-data counts.

What is counted (``counts``):

- ``"rows"`` (default): every item occurrence in the train split's rows, targets AND history items.
  The train rows are a user's successive prefixes, so an item early in a sequence is counted again
  in each later row's history (up to 10 times); this is the popularity a model trained on those
  rows sees. Nothing is excluded: repeat items and items already in the user's history stay ranked.
- ``"targets"``: only the train rows' targets (one count per interaction the rows predict).

Ties are broken by the item's position in ``index.json`` (stable, deterministic). Items are then
mapped to SIDs and deduplicated (:func:`~sidreasoner.baselines.common.top_sids`); the score of a SID
is its best item's count.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data.records import SequenceRow
from .common import ItemVocab, check_items, prediction_record, top_sids

COUNTS = ("rows", "targets")


def item_counts(train: Sequence[SequenceRow], vocab: ItemVocab, counts: str = "rows", path="<train>") -> np.ndarray:
    """Count per item (shape ``[n]``, float64, 0-based like ``vocab.item_ids``)."""
    if counts not in COUNTS:
        raise ValueError(f"counts must be one of {COUNTS}, got {counts!r}")
    check_items(train, vocab, path)
    c = np.zeros(len(vocab), dtype=np.float64)
    for r in train:
        c[vocab.index_of[r.item_id] - 1] += 1
        if counts == "rows":
            for item in r.history_item_ids:
                c[vocab.index_of[item] - 1] += 1
    return c


def popularity_ranking(c: np.ndarray) -> np.ndarray:
    """Item positions by count, highest first; ties keep catalogue order (stable sort)."""
    return np.argsort(-c, kind="stable")


def predict(rows: Sequence[SequenceRow], c: np.ndarray, vocab: ItemVocab, k: int) -> list[dict]:
    """The same top-``k`` distinct SIDs for every row, as prediction records."""
    ranked, scores = top_sids(popularity_ranking(c), c, vocab, k)
    return [prediction_record(i, r, list(ranked), list(scores)) for i, r in enumerate(rows)]
