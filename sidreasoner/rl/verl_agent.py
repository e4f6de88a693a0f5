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

:func:`constrained_rollout` is the logic, over any ``generate(prompt_ids, sampling_params) -> (ids,
logprobs)``; :class:`SIDConstrainedAgentLoop` wires it to verl's server manager.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Optional, Sequence
from uuid import uuid4

from ..eval.thinking import THINK_CLOSE
from ..sid.trie import SIDTrie

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


async def constrained_rollout(generate: Generate, prompt_ids: list, tokenizer, trie: SIDTrie, stop_id: int,
                              think_budget: int, sampling_params: dict) -> Rollout:
    """Sampled reasoning, the evaluator's closer, then a catalogue SID sampled level by level."""
    close = tokenizer.encode(THINK_CLOSE, add_special_tokens=False)
    close_id = close[0] if len(close) == 1 else None
    stops = [stop_id] + ([close_id] if close_id is not None else [])
    ids, lps = await generate(prompt_ids, {**sampling_params, "max_tokens": think_budget, "stop_token_ids": stops})
    kept, kept_lps, closed = _reasoning_part(list(ids), lps, close_id, stop_id)
    out = Rollout(closed=closed)
    out.add(kept, True, kept_lps if lps else None)
    out.add(tokenizer.encode("\n\n" if closed else f"\n{THINK_CLOSE}\n\n", add_special_tokens=False), False)
    sid: list = []
    while True:
        allowed = trie.allowed(sid)
        if not allowed:
            raise ValueError(f"SID prefix {sid} has no continuation in the catalogue trie")
        if allowed == [stop_id]:
            out.add([stop_id], True)  # forced: the SID is complete
            return out
        params = {**sampling_params, "max_tokens": 1, "allowed_token_ids": allowed, "stop_token_ids": []}
        tok, tok_lp = await generate(prompt_ids + out.ids, params)
        if not tok or tok[0] not in allowed:
            raise ValueError(f"the rollout server returned {tok} where only catalogue tokens {allowed} were allowed")
        sid.append(tok[0])
        out.add(tok[:1], True, tok_lp[:1] if tok_lp else None)
        if tok[0] == stop_id:
            return out


@functools.cache
def _agent_loop_class():
    """The verl agent loop (verl imported only here: the module's logic needs no verl)."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput

    from ..model.chat import stop_token_id
    from .rollout import source_tries

    class SIDConstrainedAgentLoop(AgentLoopBase):
        """verl agent loop: :func:`constrained_rollout` per prompt (kwargs from the agent loop YAML)."""

        def __init__(self, *args, info_file: str, think_budget: int, **kwargs):
            super().__init__(*args, **kwargs)
            self.response_length = self.rollout_config.response_length
            self.think_budget = min(int(think_budget), max(self.response_length - 16, 1))
            self.stop_id = stop_token_id(self.tokenizer)
            key = (info_file, id(self.tokenizer))  # each row's catalogue, its trie built once per worker
            if key not in _TRIES:
                _TRIES[key] = source_tries(self.tokenizer, info_file, self.stop_id)
            self.trie_for = _TRIES[key]

        async def run(self, sampling_params: dict, **kwargs) -> AgentLoopOutput:
            prompt_ids = await self.ct_build_initial_tokens(list(kwargs["raw_prompt"]))
            trie = self.trie_for(kwargs.get("data_source"))
            want_lp = bool(sampling_params.get("logprobs"))

            async def generate(ids: list, params: dict):
                res = await self.server_manager.generate(request_id=uuid4().hex, prompt_ids=ids,
                                                         sampling_params=dict(params))
                return res.token_ids, res.log_probs

            roll = await constrained_rollout(generate, prompt_ids, self.tokenizer, trie, self.stop_id,
                                             self.think_budget, dict(sampling_params))
            n = self.response_length
            return AgentLoopOutput(prompt_ids=prompt_ids, response_ids=roll.ids[:n], response_mask=roll.mask[:n],
                                   response_logprobs=roll.logprobs[:n] if want_lp else None, num_turns=2,
                                   metrics=AgentLoopMetrics(), extra_fields={"think_closed": roll.closed})

    return SIDConstrainedAgentLoop


def __getattr__(name: str):
    if name == "SIDConstrainedAgentLoop":  # hydra instantiates this path; verl is imported on first use
        return _agent_loop_class()
    raise AttributeError(name)


def agent_loop_yaml(info_file: str, think_budget: int) -> str:
    """The agent loop config verl reads (``agent_loop_config_path``): this loop and its arguments."""
    import json
    return (f"- name: {AGENT_NAME}\n  _target_: {__name__}.SIDConstrainedAgentLoop\n"
            f"  info_file: {json.dumps(str(info_file))}\n  think_budget: {int(think_budget)}\n")
