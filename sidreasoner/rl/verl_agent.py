"""verl rollouts whose SID is decoded inside the catalogue (``SID_ROLLOUT=constrained`` with ``BACKEND=verl``).

verl 0.9.1 generates through agent loops; this module is one, loaded by verl from the YAML that
``sidreasoner.rl.verl_config`` writes (``actor_rollout_ref.rollout.agent.agent_loop_config_path``, agent
name ``sid_constrained``), never by patching verl. Each rollout is

    sampled reasoning (vLLM, the rollout's temperature, up to ``think_budget`` tokens, stopped at </think>)
    + the closer thinking-mode evaluation adds (``\\n</think>\\n\\n``; ``\\n\\n`` after the model's own </think>)
    + the SID sampled one token at a time among the catalogue trie's children (vLLM ``allowed_token_ids``)
    + the stop token

so every completion names a catalogue item, as the SIDReasoner fork's rollouts do. The policy loss
covers the sampled tokens (reasoning, SID, the stop token); the closer, added by us, is masked out.
The SID-match reward (levels matched + validity bonus) then grades each rollout.

``SID_ROLLOUT=beam`` (``sid_search: beam``) replaces the sampled SID by the best of a trie-constrained
beam search of ``RANK_K`` beams through the same server (``verl_beam``; the searched tokens are in the loss
only with ``BEAM_SID_LOSS=1``) and hands the reward the whole ranked list and, for ``REWARD=rank``, the
target's per-token probability after the reasoning (``extra_fields``, which verl passes to
``compute_score`` inside ``extra_info``): the TRL backend's beam rollouts and rank reward.

:func:`constrained_rollout` and :func:`beam_rollout` are the logic, over any ``generate(prompt_ids,
sampling_params) -> (ids, logprobs)`` (and a ``PromptLogprobs`` scorer); :class:`SIDConstrainedAgentLoop`
wires them to verl's server manager.
"""
from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Optional, Sequence
from uuid import uuid4

from ..eval.thinking import THINK_CLOSE
from ..sid.trie import SIDTrie
from .verl_beam import PromptLogprobs, beam_search, target_prob

AGENT_NAME = "sid_constrained"
Generate = Callable[[list, dict], Awaitable[tuple[list, Optional[list]]]]
_TRIES: dict = {}  # (info file, tokenizer) -> source_tries: verl builds an agent loop per trajectory


@dataclass
class Rollout:
    """One rollout's response: ids, loss mask (1 = sampled by the policy), logprobs (0 for added tokens)."""

    ids: list = field(default_factory=list)
    mask: list = field(default_factory=list)
    logprobs: list = field(default_factory=list)
    closed: bool = False
    sid_at: int = 0  # where the SID begins in ``ids`` (after the reasoning and the closer)

    def add(self, ids: Sequence[int], sampled: bool, logprobs: Optional[Sequence[float]] = None) -> None:
        self.ids += list(ids)
        self.mask += [int(sampled)] * len(ids)
        self.logprobs += list(logprobs) if logprobs else [0.0] * len(ids)


def _reasoning_part(ids: list, logprobs: Optional[list], close_id: Optional[int], stop_id: int):
    """(kept ids, their logprobs, closed by the model): up to and with a single-token </think>; a stop
    token inside the reasoning is dropped (the rollout goes on to the SID, as evaluation does)."""
    lps = list(logprobs) if logprobs else [0.0] * len(ids)
    for i, t in enumerate(ids):
        if close_id is not None and t == close_id:
            return ids[:i + 1], lps[:i + 1], True
        if t == stop_id:
            return ids[:i], lps[:i], False
    return list(ids), lps, False


async def reason(generate: Generate, prompt_ids: list, tokenizer, stop_id: int, think_budget: int,
                 sampling_params: dict) -> Rollout:
    """The sampled reasoning and the evaluator's closer (masked: added by us, not sampled)."""
    close = tokenizer.encode(THINK_CLOSE, add_special_tokens=False)
    close_id = close[0] if len(close) == 1 else None
    stops = [stop_id] + ([close_id] if close_id is not None else [])
    ids, lps = await generate(prompt_ids, {**sampling_params, "max_tokens": think_budget, "stop_token_ids": stops})
    kept, kept_lps, closed = _reasoning_part(list(ids), lps, close_id, stop_id)
    out = Rollout(closed=closed)
    out.add(kept, True, kept_lps if lps else None)
    out.add(tokenizer.encode("\n\n" if closed else f"\n{THINK_CLOSE}\n\n", add_special_tokens=False), False)
    out.sid_at = len(out.ids)
    return out


async def constrained_rollout(generate: Generate, prompt_ids: list, tokenizer, trie: SIDTrie, stop_id: int,
                              think_budget: int, sampling_params: dict, sid_loss: bool = True) -> Rollout:
    """Sampled reasoning, the evaluator's closer, then a catalogue SID sampled level by level (its tokens in
    the policy loss unless ``sid_loss`` is False: ``BEAM_SID_LOSS=0``, as on TRL)."""
    out = await reason(generate, prompt_ids, tokenizer, stop_id, think_budget, sampling_params)
    sid: list = []
    while True:
        allowed = trie.allowed(sid)
        if not allowed:
            raise ValueError(f"SID prefix {sid} has no continuation in the catalogue trie")
        if allowed == [stop_id]:
            out.add([stop_id], sid_loss)  # forced: the SID is complete
            return out
        params = {**sampling_params, "max_tokens": 1, "allowed_token_ids": allowed, "stop_token_ids": []}
        tok, tok_lp = await generate(prompt_ids + out.ids, params)
        if not tok or tok[0] not in allowed:
            raise ValueError(f"the rollout server returned {tok} where only catalogue tokens {allowed} were allowed")
        sid.append(tok[0])
        out.add(tok[:1], sid_loss, tok_lp[:1] if tok_lp else None)
        if tok[0] == stop_id:
            return out


async def beam_rollout(generate: Generate, score: PromptLogprobs, prompt_ids: list, tokenizer, trie: SIDTrie,
                       stop_id: int, think_budget: int, sampling_params: dict, num_beams: int, sid_loss: bool,
                       target: Optional[list] = None) -> tuple[Rollout, list, float]:
    """(rollout, ranked SIDs, target probability): sampled reasoning, the closer, then the best SID of a
    trie-constrained beam search (``verl_beam``) and the stop token, in the loss only with ``sid_loss``.
    ``target`` (its ids and the stop token): its per-token probability after the reasoning, else 0."""
    out = await reason(generate, prompt_ids, tokenizer, stop_id, think_budget, sampling_params)
    context = prompt_ids + out.ids
    ranked, prob = await asyncio.gather(beam_search(score, context, trie, num_beams),
                                        target_prob(score, context, target or []))
    if not ranked:
        raise ValueError("the constrained beam search found no catalogue SID")
    best = tokenizer.encode(ranked[0][0], add_special_tokens=False)
    out.add(best + [stop_id], sid_loss)
    return out, [sid for sid, _ in ranked], prob


@functools.cache
def _agent_loop_class():
    """The verl agent loop (verl imported only here: the module's logic needs no verl)."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput

    from ..model.chat import stop_token_id
    from .rollout import answer_ids, source_tries

    class SIDConstrainedAgentLoop(AgentLoopBase):
        """verl agent loop: :func:`constrained_rollout` (``sid_search: sample``) or :func:`beam_rollout`
        (``beam``) per prompt, its arguments from the agent loop YAML (:func:`agent_loop_yaml`)."""

        def __init__(self, *args, info_file: str, think_budget: int, sid_search: str = "sample",
                     num_beams: int = 10, sid_loss: bool = True, target_prob: bool = False,
                     repetition_penalty: float = 1.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.response_length = self.rollout_config.response_length
            self.think_budget = min(int(think_budget), max(self.response_length - 16, 1))
            self.sid_search, self.num_beams, self.sid_loss = sid_search, int(num_beams), bool(sid_loss)
            self.want_target = bool(target_prob)
            self.repetition_penalty = float(repetition_penalty)  # of the sampled reasoning (TRL's, the same knob)
            self.stop_id = stop_token_id(self.tokenizer)
            key = (info_file, id(self.tokenizer))  # each row's catalogue, its trie built once per worker
            if key not in _TRIES:
                _TRIES[key] = source_tries(self.tokenizer, info_file, self.stop_id)
            self.trie_for = _TRIES[key]

        async def _request(self, ids: list, params: dict):
            return await self.server_manager.generate(request_id=uuid4().hex, prompt_ids=ids,
                                                      sampling_params=dict(params))

        async def _generate(self, ids: list, params: dict):
            res = await self._request(ids, params)
            return res.token_ids, res.log_probs

        async def _score(self, ids: list, k: int):
            """vLLM's prompt log-probabilities (top ``k``; 0: each prompt token's own), verl's layout."""
            # temperature 1 and no penalty: the plain softmax, whatever verl's rollout defaults are
            res = await self._request(ids, {"max_tokens": 1, "temperature": 1.0, "repetition_penalty": 1.0,
                                            "prompt_logprobs": int(k)})
            return res.extra_fields["prompt_ids"], res.extra_fields["prompt_logprobs"]

        async def _rollout(self, prompt_ids: list, trie, sampling_params: dict, kwargs: dict):
            """(rollout, the fields ``REWARD=rank`` reads: think_closed, ranked_sids (one SID when sampled),
            target_prob (0 unless asked for))."""
            truth = (kwargs.get("reward_model") or {}).get("ground_truth")
            target = answer_ids(self.tokenizer, truth, self.stop_id) if self.want_target and truth else None
            if self.sid_search != "beam":
                roll = await constrained_rollout(self._generate, prompt_ids, self.tokenizer, trie, self.stop_id,
                                                 self.think_budget, sampling_params, self.sid_loss)
                sid = trie.sid_of_ids(roll.ids[roll.sid_at:])
                prob = await target_prob(self._score, prompt_ids + roll.ids[:roll.sid_at], target) if target else 0.0
                return roll, {"think_closed": roll.closed, "ranked_sids": json.dumps([sid]), "target_prob": prob}
            roll, ranked, prob = await beam_rollout(self._generate, self._score, prompt_ids, self.tokenizer, trie,
                                                    self.stop_id, self.think_budget, sampling_params,
                                                    self.num_beams, self.sid_loss, target)
            # one JSON string per rollout: verl stacks extra fields into a 1-D object array, and equal-length
            # lists would be broadcast into a 2-D one
            return roll, {"think_closed": roll.closed, "ranked_sids": json.dumps(ranked), "target_prob": prob}

        async def run(self, sampling_params: dict, **kwargs) -> AgentLoopOutput:
            prompt_ids = await self.ct_build_initial_tokens(list(kwargs["raw_prompt"]))
            trie = self.trie_for(kwargs.get("data_source"))
            want_lp = bool(sampling_params.get("logprobs"))
            params = {**sampling_params, "repetition_penalty": self.repetition_penalty}
            roll, fields = await self._rollout(prompt_ids, trie, params, kwargs)
            n = self.response_length
            return AgentLoopOutput(prompt_ids=prompt_ids, response_ids=roll.ids[:n], response_mask=roll.mask[:n],
                                   response_logprobs=roll.logprobs[:n] if want_lp else None, num_turns=2,
                                   metrics=AgentLoopMetrics(), extra_fields=fields)

    return SIDConstrainedAgentLoop


def __getattr__(name: str):
    if name == "SIDConstrainedAgentLoop":  # hydra instantiates this path; verl is imported on first use
        return _agent_loop_class()
    raise AttributeError(name)


def agent_loop_yaml(info_file: str, think_budget: int, sid_search: str = "sample", num_beams: int = 10,
                    sid_loss: bool = True, target_prob: bool = False, repetition_penalty: float = 1.0) -> str:
    """The agent loop config verl reads (``agent_loop_config_path``): this loop and its arguments."""
    if sid_search not in ("sample", "beam"):
        raise ValueError(f"sid_search must be sample or beam, got {sid_search!r}")
    return (f"- name: {AGENT_NAME}\n  _target_: {__name__}.SIDConstrainedAgentLoop\n"
            f"  info_file: {json.dumps(str(info_file))}\n  think_budget: {int(think_budget)}\n"
            f"  sid_search: {sid_search}\n  num_beams: {int(num_beams)}\n"
            f"  sid_loss: {json.dumps(bool(sid_loss))}\n  target_prob: {json.dumps(bool(target_prob))}\n"
            f"  repetition_penalty: {float(repetition_penalty)!r}\n")
