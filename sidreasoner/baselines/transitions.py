"""Last-item transitions baseline: rank the items that followed the row's last item in train, most often first.

What is counted: item-to-item transitions ``a -> b`` (``b`` directly follows ``a``) in the train
split's user sequences, once per occurrence in a user's sequence. The train rows are a user's
successive prefixes (row j's history is row j-1's history plus row j-1's target), so counting every
pair of every row's ``history + [target]`` would count an early transition again in each later row
(up to 10 times). Instead each row contributes only its OWN step, ``history[-1] -> target``, and the
first row of a user (in file order) also contributes the pairs inside its history, which no earlier
row has counted (in the release the first row has one history item, so there are none). A sequence
``A B A B`` thus gives ``A->B = 2, B->A = 1``. This assumes a user's rows come as successive prefixes
in file order, as the release writes them; repeated items are kept (``A -> A`` counts like any pair).

Scoring a row: ``score(b) = T(b) * (P_max + 1) + P(b)``, with ``T(b)`` the transition weight to ``b``
and ``P`` the popularity counts (:func:`~sidreasoner.baselines.popularity.item_counts`, ``"rows"``).
``T`` is an integer and ``P < P_max + 1``, so the order is exactly: transition weight first, then
popularity (ties and every item never seen after the last item fall back to the popularity
ranking), then catalogue order (stable sort). A row whose last item has no successors in train, or
with an empty history, gets the plain popularity ranking.

``window`` w (default 1: the last item only): the successors of the last w history items add up,
the p-th last item's counts weighted 1/p. To keep ``T`` an integer (exact float arithmetic) the
weights are scaled by L = lcm(1..w): the p-th last item's counts count L/p times.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np

from ..data.records import SequenceRow
from .common import ItemVocab, check_items, prediction_record, top_sids
from .popularity import popularity_ranking

MAX_WINDOW = 10  # histories hold at most 10 items

# successors[a] = Counter {b: count}: 0-based item positions (like ``vocab.item_ids``), sparse because
# an item has few distinct successors (a dense [n, n] matrix would be 3459^2 for Office_Products)
Successors = dict[int, Counter]


def transition_counts(train: Sequence[SequenceRow], vocab: ItemVocab, path="<train>") -> Successors:
    """Transition counts of the train rows, each transition of a user's sequence counted once (module doc)."""
    check_items(train, vocab, path)
    succ: Successors = {}
    seen_users: set[str] = set()
    for r in train:
        seq = [vocab.index_of[i] - 1 for i in (*r.history_item_ids, r.item_id)]
        pairs = list(zip(seq[:-1], seq[1:]))
        if r.user_id in seen_users:  # a later row: only its own last step (the rest was counted before)
            pairs = pairs[-1:]
        seen_users.add(r.user_id)
        for a, b in pairs:
            succ.setdefault(a, Counter())[b] += 1
    return succ


def check_window(window: int) -> None:
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"window must be 1..{MAX_WINDOW} (history items used), got {window}")


def transition_weights(history: Sequence[int], succ: Successors, n: int, window: int = 1) -> np.ndarray:
    """Integer transition weight per item (shape ``[n]``, float64): the successors of the last ``window``
    history items (0-based positions), the p-th last one's counts times lcm(1..window) / p."""
    scale = math.lcm(*range(1, window + 1))
    t = np.zeros(n, dtype=np.float64)
    for p, a in enumerate(reversed(history[-window:]), 1):
        for b, c in succ.get(a, {}).items():
            t[b] += c * (scale // p)
    return t


def predict(rows: Sequence[SequenceRow], succ: Successors, pop: np.ndarray, vocab: ItemVocab, k: int,
            window: int = 1) -> list[dict]:
    """Top-``k`` distinct SIDs per row by transition weight, backed off to popularity ``pop`` (shape ``[n]``)."""
    check_window(window)
    base = pop.max(initial=0.0) + 1  # > every popularity count: one unit of T outranks any popularity gap
    pop_ranked, pop_top = top_sids(popularity_ranking(pop), pop, vocab, k)  # shared by rows without successors
    records = []
    for i, r in enumerate(rows):
        hist = [vocab.index_of[h] - 1 for h in r.history_item_ids]
        if not any(a in succ for a in hist[-window:]):
            records.append(prediction_record(i, r, list(pop_ranked), list(pop_top)))
            continue
        score = transition_weights(hist, succ, len(vocab), window) * base + pop
        ranked, scores = top_sids(np.argsort(-score, kind="stable"), score, vocab, k)
        records.append(prediction_record(i, r, ranked, scores))
    return records


def coverage(rows: Sequence[SequenceRow], succ: Successors, vocab: ItemVocab) -> float:
    """Share of rows whose last history item has successors in train (the rest get plain popularity)."""
    known = sum(1 for r in rows if r.history_item_ids and vocab.index_of[r.history_item_ids[-1]] - 1 in succ)
    return known / len(rows) if rows else 0.0
