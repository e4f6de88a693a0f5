"""Stage-3 rollouts whose SID is searched, not sampled, and the rank reward they make possible (TRL).

``SID_ROLLOUT=beam``: each completion is a sampled reasoning, closed the way thinking-mode evaluation
closes it (``\\n</think>\\n\\n``, added when the model did not close it), then the best SID of a
trie-constrained beam search of ``RANK_K`` beams from there and the stop token. The whole ranked list
goes to the reward. ``REWARD=rank`` scores a completion by what thinking-mode evaluation measures:

    reward = 1 / log2(rank + 2) of the target in that list (0 when absent; 1 for a top-1 hit)
             + TARGET_PROB_WEIGHT x p(target | reasoning) ** (1 / its tokens)

The second term (the target's per-token probability after the reasoning, full-vocabulary softmax as
the beam scores use) is dense: when every list of a group misses the target, the reasonings that make
it likelier still rank above the others, so few groups teach nothing.

Why: with free sampling a tiny model writes a catalogue SID 5-34% of the time and hits the target
0.2-2%, so most of a group's reward spread came from the validity bonus, and about 70% of groups had
none at all. Constrained SIDs are always valid, and the reward follows the evaluated ranking.

TRL's ``rollout_func`` (experimental in the pinned TRL 1.16) runs this; ``GroupFilter`` adds dynamic
sampling (``DROP_ZERO_VARIANCE``: groups whose rewards are all equal are left out of the loss and
its token normaliser, DAPO's filter without the resampling).
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Optional, Sequence

import torch

from ..eval.beam import BeamResult, catalogue_trie, constrained_beam_search, prompt_positions
from ..eval.runner import left_pad
from ..rewards import rank_gain, rank_reward  # noqa: F401  (rank_gain: re-exported for callers)
from ..eval.thinking import hf_reasoning, reasoning_prompt, search_prompt
from ..sid.spelling import format_sid, parse_sid
from ..sid.trie import SIDTrie
from .verl_reward import catalogue_for


def source_tries(tokenizer, info_file: str, stop_id: int) -> Callable[[Optional[str]], SIDTrie]:
    """``data_source -> trie`` of the catalogue a row is checked against (``catalogue_for``: its own
    category's with ``A=path,B=path``), each built once; both backends' constrained rollouts use it."""
    @functools.lru_cache(maxsize=None)
    def trie_for(data_source: Optional[str]) -> SIDTrie:
        return catalogue_trie(tokenizer, catalogue_for(info_file, data_source), stop_id,
                              source=f"info file {info_file} ({data_source})")
    return trie_for


def answer_ids(tokenizer, truth: str, stop_id: int) -> Optional[list[int]]:
    """Token ids of the target SID and the stop token (None when ``truth`` is no SID)."""
    try:
        ids = tokenizer.encode(format_sid(parse_sid(truth)), add_special_tokens=False)
    except ValueError:
        return None
    return ids + [stop_id]


def answer_batch(contexts: Sequence[list[int]], targets: Sequence[Optional[list[int]]], pad_id: int):
    """(input ids, attention mask, labels), each (rows, longest context + target), right-padded: each
    context followed by its target; labels -100 everywhere but the target's tokens (a row without a
    target has none, and adds nothing to the loss)."""
    seqs = [list(c) + list(t or []) for c, t in zip(contexts, targets)]
    L = max(map(len, seqs))
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), L), -100, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, (c, t, q) in enumerate(zip(contexts, targets, seqs)):
        ids[i, :len(q)], mask[i, :len(q)] = torch.tensor(q), 1
        if t:
            labels[i, len(c):len(q)] = torch.tensor(t)
    return ids, mask, labels


def answer_nll(model, ids, mask, labels) -> torch.Tensor:
    """Mean negative log-likelihood of the labelled tokens (0 when none is labelled)."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    tgt = labels[:, 1:]
    if not (tgt != -100).any():
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1), ignore_index=-100)


@torch.no_grad()
def constrained_sample(model, contexts: Sequence[list[int]], trie: SIDTrie, stop_id: int,
                       temperature: float) -> list[Optional[str]]:
    """One catalogue SID per context, sampled token by token among the trie's children at
    ``temperature`` (``SID_ROLLOUT=constrained``: the SIDReasoner fork's constrained decoding; the
    full-context forward per level is cheap for 3-4 SID tokens)."""
    done: list = [None] * len(contexts)
    prefix: list = [[] for _ in contexts]
    live = list(range(len(contexts)))
    while live:
        ids, mask = left_pad([list(contexts[i]) + prefix[i] for i in live], stop_id, model.device)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=prompt_positions(mask)).logits[:, -1].float()
        still = []
        for j, i in enumerate(live):
            allowed = trie.allowed(prefix[i])
            probs = torch.softmax(logits[j, allowed] / temperature, -1)
            tok = allowed[int(torch.multinomial(probs, 1))] if len(allowed) > 1 else allowed[0]
            prefix[i].append(tok)
            if tok == stop_id:
                done[i] = trie.sid_of_ids(prefix[i])
            else:
                still.append(i)
        live = still
    return done


def _policy(trainer):
    return trainer.accelerator.unwrap_model(trainer.model)


class BeamRollout:
    """``rollout_func(prompts, trainer)``: sampled reasoning + constrained SID search per prompt entry
    (TRL repeats each prompt ``num_generations`` times in ``prompts``). ``trie_for(data_source)``, when
    given, is the trie of a row's own catalogue (RL data of several categories); ``GroupFilter`` sets
    ``sources`` to the rows' data_source before each call, since TRL passes the prompts alone."""

    def __init__(self, tokenizer, trie: SIDTrie, stop_id: int, style: str, num_beams: int, max_think_tokens: int,
                 temperature: float, repetition_penalty: float = 1.0, batch_size: int = 16, sid_loss: bool = True,
                 trie_for: Optional[Callable[[Optional[str]], SIDTrie]] = None, sid_search: str = "beam"):
        self.tok, self.trie, self.stop_id, self.style = tokenizer, trie, stop_id, style
        self.trie_for, self.sources = trie_for, None
        if sid_search not in ("beam", "sample"):
            raise ValueError(f"sid_search must be beam or sample, got {sid_search!r}")
        self.sid_search = sid_search  # sample: one SID sampled inside the catalogue (SID_ROLLOUT=constrained)
        self.num_beams, self.max_think, self.batch_size = num_beams, max_think_tokens, batch_size
        self.temperature, self.repetition_penalty = temperature, repetition_penalty
        self.sid_loss = sid_loss  # False: env_mask keeps the searched SID + stop token out of the policy loss
        self.last: dict = {}  # the latest call's output (GroupFilter reads its search_ids for the answer loss)

    def _reason(self, model, prompts: list[str]) -> list:
        paths = hf_reasoning(model, self.tok, prompts, self.stop_id, self.max_think, temperature=self.temperature,
                             repetition_penalty=self.repetition_penalty, sample=True)
        return [p[0] for p in paths]

    def _pieces(self, prompt: str, reasoning: str) -> tuple[list[int], list[int]]:
        """(prompt ids TRL trains on, completion ids up to the SID): the evaluator's search prompt split
        where the reasoning prompt ends (re-encoded apart when BPE merged across that point)."""
        rp = reasoning_prompt(prompt, self.style)
        full = search_prompt(prompt, reasoning)
        p_ids, f_ids = (self.tok.encode(t, add_special_tokens=False) for t in (rp, full))
        if f_ids[:len(p_ids)] == p_ids:
            return p_ids, f_ids[len(p_ids):]
        return p_ids, self.tok.encode(full[len(rp):], add_special_tokens=False)

    def _search(self, model, contexts: list[list[int]], sources: Sequence[Optional[str]]) -> list:
        """One constrained search per catalogue among the rows (one, unless ``trie_for`` splits them)."""
        tries = [self.trie_for(src) if self.trie_for else self.trie for src in sources]
        results: list = [None] * len(contexts)
        for trie in {id(t): t for t in tries}.values():
            rows = [i for i, t in enumerate(tries) if t is trie]
            if self.sid_search == "sample":
                sids = constrained_sample(model, [contexts[i] for i in rows], trie, self.stop_id, self.temperature)
                found = [BeamResult(sids=[s] if s else [], scores=[0.0] if s else []) for s in sids]
            else:
                ids, mask = left_pad([contexts[i] for i in rows], self.stop_id, model.device)
                found = constrained_beam_search(model, ids, mask, trie, self.num_beams)
            for i, res in zip(rows, found):
                results[i] = res
        return results

    def __call__(self, prompts: list[str], trainer) -> dict:
        model = _policy(trainer)
        was_training = model.training
        model.eval()
        out = {"prompt_ids": [], "completion_ids": [], "logprobs": None, "ranked_sids": [], "search_ids": [],
               "think_closed": [], "env_mask": []}
        sources = self.sources if self.sources is not None else [None] * len(prompts)
        try:
            for s in range(0, len(prompts), self.batch_size):
                batch = prompts[s:s + self.batch_size]
                paths = self._reason(model, [reasoning_prompt(p, self.style) for p in batch])
                pieces = [self._pieces(p, r.text) for p, r in zip(batch, paths)]
                results = self._search(model, [p + c for p, c in pieces], sources[s:s + self.batch_size])
                for (p_ids, c_ids), res, path in zip(pieces, results, paths):
                    best = self.tok.encode(res.sids[0], add_special_tokens=False) if res.sids else []
                    out["prompt_ids"].append(p_ids)
                    out["completion_ids"].append(c_ids + best + [self.stop_id])
                    out["ranked_sids"].append(list(res.sids))
                    out["search_ids"].append(p_ids + c_ids)
                    out["think_closed"].append(path.closed)
                    out["env_mask"].append([1] * len(c_ids) + [int(self.sid_loss)] * (len(best) + 1))
        finally:
            model.train(was_training)
        self.last = out
        return out


class RankReward:
    """TRL reward over :class:`BeamRollout` completions: NDCG of the target in the ranked list plus
    ``prob_weight`` x the target's per-token probability after the reasoning. Call :meth:`bind` with
    the trainer before training (the dense term runs the policy)."""

    __name__ = "sid_rank_reward"

    def __init__(self, tokenizer, stop_id: int, prob_weight: float, group_size: int,
                 require_think_closed: bool = False, batch_size: int = 16):
        self.tok, self.stop_id, self.prob_weight, self.group = tokenizer, stop_id, prob_weight, group_size
        self.require_think_closed, self.batch_size = require_think_closed, batch_size
        self.trainer = None

    def bind(self, trainer) -> "RankReward":
        self.trainer = trainer
        return self

    def target_ids(self, truth: str) -> Optional[list[int]]:
        return answer_ids(self.tok, truth, self.stop_id)

    @torch.no_grad()
    def target_prob(self, contexts: Sequence[list[int]], targets: Sequence[Optional[list[int]]]) -> list[float]:
        """Per-token (geometric mean) probability of each target after its context; 0 for no target."""
        model = _policy(self.trainer)
        was_training = model.training
        model.eval()
        probs = [0.0] * len(contexts)
        try:
            todo = [i for i, t in enumerate(targets) if t]
            for s in range(0, len(todo), self.batch_size):
                rows = todo[s:s + self.batch_size]
                ids, mask, labels = answer_batch([contexts[i] for i in rows], [targets[i] for i in rows], self.stop_id)
                logp = torch.log_softmax(model(input_ids=ids.to(model.device),
                                               attention_mask=mask.to(model.device)).logits.float(), -1).cpu()
                tgt = labels[:, 1:]  # the token at position t + 1 is predicted at t
                picked = logp[:, :-1].gather(2, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                for j, i in enumerate(rows):
                    probs[i] = math.exp(picked[j][tgt[j] != -100].mean().item())
        finally:
            model.train(was_training)
        return probs

    def __call__(self, prompts, completions, ground_truth, ranked_sids, search_ids, think_closed,
                 log_metric=None, **unused) -> list[float]:
        # a malformed truth has no target ids (answer_ids: None), so probability 0; rank_reward flags it
        probs = (self.target_prob(search_ids, [self.target_ids(t) for t in ground_truth])
                 if self.prob_weight > 0 else [0.0] * len(ground_truth))
        rows = [rank_reward(g, r, p, self.prob_weight, closed, self.require_think_closed)
                for g, r, p, closed in zip(ground_truth, ranked_sids, probs, think_closed)]
        scores, gains = [r["score"] for r in rows], [r["rank_ndcg"] for r in rows]
        if log_metric is not None and scores:
            n = len(scores)
            log_metric("sid/rank_ndcg", sum(gains) / n)
            log_metric("sid/exact", sum(g == 1.0 for g in gains) / n)
            log_metric("sid/in_list", sum(g > 0 for g in gains) / n)
            log_metric("sid/target_prob", sum(probs) / n)
            log_metric("sid/think_closed", sum(map(bool, think_closed)) / n)
            log_metric("sid/rank_zero_std", zero_variance_share(gains, self.group))
        return scores


def zero_variance_share(values: Sequence[float], group: int) -> float:
    """Share of consecutive groups of ``group`` values that are all equal (0 for no whole group)."""
    groups = [values[i:i + group] for i in range(0, len(values) - group + 1, group)]
    if not groups:
        return 0.0
    return sum(max(g) - min(g) < 1e-12 for g in groups) / len(groups)


def filtering_trainer(base):
    """``base`` (TRL's ``GRPOTrainer``) with optional dynamic sampling (``trainer.drop_zero_variance``
    removes groups whose advantages are all 0, equal rewards, from the loss and its normaliser) and
    an optional answer loss (``trainer.answer_nll_weight`` x the target SID's NLL after each beam
    rollout's own reasoning, beside the GRPO loss and scaled like TRL's auxiliary losses)."""

    class GroupFilter(base):
        drop_zero_variance = False
        answer_nll_weight = 0.0

        def _generate_and_score_completions(self, inputs):
            if isinstance(self.rollout_func, BeamRollout):  # each row's catalogue (TRL passes prompts alone)
                self.rollout_func.sources = [x.get("data_source") for x in inputs]
            out = super()._generate_and_score_completions(inputs)
            if self.answer_nll_weight > 0 and self.model.training:
                roll = self.rollout_func
                targets = [answer_ids(self.processing_class, x["ground_truth"], roll.stop_id) for x in inputs]
                ids, mask, labels = answer_batch(roll.last["search_ids"], targets, roll.stop_id)
                dev = out["completion_ids"].device
                out.update(answer_ids=ids.to(dev), answer_mask=mask.to(dev), answer_labels=labels.to(dev))
            if not self.drop_zero_variance or not self.model.training:
                return out
            adv = out["advantages"]
            flat = (adv.view(-1, self.num_generations).abs() < 1e-8).all(1)
            keep = (~flat).repeat_interleave(self.num_generations).to(out["completion_mask"].dtype)
            base_mask = out.get("tool_mask", torch.ones_like(out["completion_mask"]))
            out["tool_mask"] = base_mask * keep.unsqueeze(1)
            out["num_items_in_batch"] = self.accelerator.gather(
                (out["completion_mask"] * out["tool_mask"]).sum()).sum()
            self._metrics["train"]["sid/dropped_groups"].append(flat.float().mean().item())
            return out

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if self.answer_nll_weight > 0 and "answer_ids" in inputs:
                nll = answer_nll(model, inputs["answer_ids"], inputs["answer_mask"], inputs["answer_labels"])
                self._metrics["train"]["sid/answer_nll"].append(nll.item())
                loss = loss + self.answer_nll_weight * nll / self.current_gradient_accumulation_steps
            return loss

    return GroupFilter
