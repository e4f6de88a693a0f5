"""Ranking metrics on valid rows during SFT: the model is chosen for what it will be used for.

The validation loss of a mixture of tasks is a poor proxy for recommendation quality (a model can
get better at writing titles while its next-SID ranking gets worse). :class:`RankingProbe` scores a
fixed set of valid rows the way ``evaluate.py`` scores the test split (non-thinking prompt in the
run's prompt style, trie-constrained beam search over the catalogue, HR@K / NDCG@K), so
``--rank_eval_rows N`` can select the checkpoint and stop early on valid NDCG@10.
"""
from __future__ import annotations

import random
from typing import Sequence

import torch

from ..data.records import SequenceRow
from ..eval.beam import constrained_beam_search
from ..eval.metrics import compute_metrics
from ..eval.runner import encode_left_padded
from ..sid.trie import SIDTrie
from .chat import next_sid_prompt_text, stop_token_id

#: metric names added to the Trainer's eval metrics (``eval_`` + name)
RANK_METRICS = {"ndcg10": "NDCG@10", "hr10": "HR@10"}


def pick_rows(rows: Sequence[SequenceRow], n: int, seed: int) -> list[SequenceRow]:
    """A seeded sample of ``n`` rows that have a history (all of them when ``n >= len``)."""
    usable = [r for r in rows if r.history_sids]
    if n >= len(usable):
        return usable
    return random.Random(seed).sample(usable, n)


class RankingProbe:
    """Non-thinking constrained beam search over ``rows``; returns ``{"ndcg10": .., "hr10": ..}``."""

    def __init__(self, rows: Sequence[SequenceRow], tokenizer, index, style: str, num_beams: int = 10,
                 batch_size: int = 64):
        if num_beams < 10:
            raise ValueError(f"--rank_eval_beams must be >= 10 to compute NDCG@10, got {num_beams}")
        self.rows, self.num_beams, self.batch_size = list(rows), num_beams, batch_size
        self.stop_id = stop_token_id(tokenizer)
        self.tokenizer = tokenizer
        self.trie = SIDTrie.from_index(index, tokenizer, self.stop_id, source="SID index of the run")
        # prompts sorted by length: batches barely pad; the order does not change any row's result
        texts = [next_sid_prompt_text(tokenizer, r.history_sids, think=False, style=style) for r in self.rows]
        self.order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        self.texts = texts

    @torch.no_grad()
    def __call__(self, model) -> dict:
        was_training = model.training
        model.eval()
        records = []
        try:
            for start in range(0, len(self.order), self.batch_size):
                idx = self.order[start:start + self.batch_size]
                ids, mask = encode_left_padded(self.tokenizer, [self.texts[i] for i in idx], self.stop_id,
                                               model.device)
                for i, res in zip(idx, constrained_beam_search(model, ids, mask, self.trie, self.num_beams)):
                    records.append({"user_id": self.rows[i].user_id, "target": self.rows[i].item_sid,
                                    "ranked": res.sids})
        finally:
            model.train(was_training)
        m = compute_metrics(records, [10], num_beams=self.num_beams)
        return {key: m[name] for key, name in RANK_METRICS.items()}
