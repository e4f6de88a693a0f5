"""Ranking metrics on valid rows during SFT: the model is chosen for what it will be used for.

The validation loss of a mixture of tasks is a poor proxy for recommendation quality (a model can
get better at writing titles while its next-SID ranking gets worse). :class:`RankingProbe` scores a
fixed set of valid rows the way ``evaluate.py`` scores the test split (non-thinking prompt in the
run's prompt style, trie-constrained beam search over the catalogue, HR@K / NDCG@K), so
``--rank_eval_rows N`` can select the checkpoint and stop early on valid NDCG@10. With ``think_rows``
the first of those rows are also scored in thinking mode (greedy reasoning with a repetition penalty,
closed, then the same search), so stage 2 can be chosen for both modes (``--select_on``).
"""
from __future__ import annotations

import random
from typing import Sequence

import torch

from ..data.records import SequenceRow
from ..eval.beam import constrained_beam_search
from ..eval.metrics import compute_metrics
from ..eval.padding import encode_left_padded
from ..sid.trie import SIDTrie
from ..model.chat import next_sid_prompt_text, stop_token_id

#: metric names added to the Trainer's eval metrics (``eval_`` + name; ``think_`` + name for thinking mode)
RANK_METRICS = {"ndcg10": "NDCG@10", "hr10": "HR@10"}
#: --select_on -> the metric that picks the checkpoint
SELECT_METRICS = {"nothink": "ndcg10", "think": "think_ndcg10", "both": "both_ndcg10"}


def pick_rows(rows: Sequence[SequenceRow], n: int, seed: int) -> list[SequenceRow]:
    """A seeded sample of ``n`` rows that have a history (all of them when ``n >= len``)."""
    usable = [r for r in rows if r.history_sids]
    if n >= len(usable):
        return usable
    return random.Random(seed).sample(usable, n)


class RankingProbe:
    """Non-thinking constrained beam search over ``rows``; returns ``{"ndcg10": .., "hr10": ..}``."""

    def __init__(self, rows: Sequence[SequenceRow], tokenizer, index, style: str, num_beams: int = 10,
                 batch_size: int = 64, think_rows: int = 0, think_tokens: int = 192,
                 repetition_penalty: float = 1.3):
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
        self.think_rows = min(think_rows, len(self.rows))
        self.think_tokens, self.penalty = think_tokens, repetition_penalty
        self.style = style

    def _search(self, model, texts: Sequence[str]) -> list:
        ids, mask = encode_left_padded(self.tokenizer, texts, self.stop_id, model.device)
        return constrained_beam_search(model, ids, mask, self.trie, self.num_beams)

    def _think_records(self, model) -> list[dict]:
        """The first ``think_rows`` rows in thinking mode: reasoning, ``</think>``, then the search."""
        from ..eval.thinking import hf_reasoning, reasoning_prompt, search_prompt
        out = []
        for start in range(0, self.think_rows, self.batch_size):
            rows = self.rows[start:min(start + self.batch_size, self.think_rows)]
            prompts = [reasoning_prompt(next_sid_prompt_text(self.tokenizer, r.history_sids, think=True,
                                                             style=self.style), self.style) for r in rows]
            paths = hf_reasoning(model, self.tokenizer, prompts, self.stop_id, self.think_tokens,
                                 repetition_penalty=self.penalty)
            results = self._search(model, [search_prompt(p, ps[0].text) for p, ps in zip(prompts, paths)])
            out += [{"user_id": r.user_id, "target": r.item_sid, "ranked": res.sids} for r, res in zip(rows, results)]
        return out

    @torch.no_grad()
    def __call__(self, model) -> dict:
        was_training = model.training
        model.eval()
        records, think = [], []
        try:
            for start in range(0, len(self.order), self.batch_size):
                idx = self.order[start:start + self.batch_size]
                for i, res in zip(idx, self._search(model, [self.texts[i] for i in idx])):
                    records.append({"user_id": self.rows[i].user_id, "target": self.rows[i].item_sid,
                                    "ranked": res.sids})
            think = self._think_records(model) if self.think_rows else []
        finally:
            model.train(was_training)
        m = compute_metrics(records, [10], num_beams=self.num_beams)
        out = {key: m[name] for key, name in RANK_METRICS.items()}
        if think:
            t = compute_metrics(think, [10], num_beams=self.num_beams)
            out.update({f"think_{key}": t[name] for key, name in RANK_METRICS.items()})
            out["both_ndcg10"] = (out["ndcg10"] + out["think_ndcg10"]) / 2
        return out
