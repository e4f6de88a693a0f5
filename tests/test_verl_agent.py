"""The verl agent loop of SID_ROLLOUT=constrained: its rollout logic against a scripted rollout server
(vLLM is not installed here), and the YAML verl loads it from."""
from __future__ import annotations

import asyncio
import importlib

import pytest
import yaml

from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)


@pytest.fixture(scope="module")
def tok_trie(tiny_model_dir):
    from sidreasoner.eval.beam import catalogue_trie
    from sidreasoner.model.chat import stop_token_id
    from sidreasoner.model.model_factory import load_model_and_tokenizer
    _, tok = load_model_and_tokenizer(tiny_model_dir[0], dtype="float32")
    stop = stop_token_id(tok)
    sids = set(tiny_model_dir[1].unique_sids())
    return tok, catalogue_trie(tok, sids, stop, source="test"), stop, sids


class ScriptedServer:
    """generate(prompt_ids, params): the reasoning request returns ``reasoning`` (+ its logprobs), each SID
    request the last allowed token (a choice no unconstrained sampler would make by chance)."""

    def __init__(self, reasoning):
        self.reasoning, self.calls = reasoning, []

    async def __call__(self, prompt_ids, params):
        self.calls.append((list(prompt_ids), dict(params)))
        if "allowed_token_ids" not in params:
            return list(self.reasoning), [-0.5] * len(self.reasoning)
        return [params["allowed_token_ids"][-1]], [-1.25]


def _run(tok, trie, stop, reasoning):
    from sidreasoner.rl.verl_agent import constrained_rollout
    server = ScriptedServer(reasoning)
    prompt = tok.encode("history <a_1><b_2>, next?", add_special_tokens=False)
    roll = asyncio.run(constrained_rollout(server, prompt, tok, trie, stop, think_budget=7,
                                           sampling_params={"temperature": 0.7, "logprobs": True}))
    return server, prompt, roll


@pytest.mark.parametrize("closed_by_model", [True, False])
def test_constrained_rollout(tok_trie, closed_by_model):
    from sidreasoner.eval.thinking import THINK_CLOSE
    tok, trie, stop, sids = tok_trie
    words = tok.encode("think about it", add_special_tokens=False)
    close = tok.encode(THINK_CLOSE, add_special_tokens=False)
    # the model closes its reasoning itself (a single-token </think>), or runs into the stop token
    reasoning = words + (close if closed_by_model and len(close) == 1 else [stop] + words)
    server, prompt, roll = _run(tok, trie, stop, reasoning)
    first = server.calls[0][1]
    assert first["max_tokens"] == 7 and first["temperature"] == 0.7 and stop in first["stop_token_ids"]
    text = tok.decode(roll.ids)
    closed = closed_by_model and len(close) == 1
    assert roll.closed is closed
    head = words + (close if closed else [])
    assert roll.ids[:len(head)] == head and roll.mask[:len(head)] == [1] * len(head)
    closer = tok.encode("\n\n" if closed else f"\n{THINK_CLOSE}\n\n", add_special_tokens=False)
    assert roll.ids[len(head):len(head) + len(closer)] == closer
    assert roll.mask[len(head):len(head) + len(closer)] == [0] * len(closer)  # added, not sampled
    sid_ids = roll.ids[len(head) + len(closer):]
    assert sid_ids[-1] == stop and trie.sid_of_ids(sid_ids) in sids  # a catalogue SID, then the stop
    assert roll.mask[len(head) + len(closer):] == [1] * len(sid_ids)
    for (ids, params), level in zip(server.calls[1:], range(len(sid_ids))):
        assert params["max_tokens"] == 1 and params["allowed_token_ids"] == trie.allowed(sid_ids[:level])
        assert ids == prompt + roll.ids[:len(head) + len(closer) + level]  # each level continues the rollout
    assert len(roll.logprobs) == len(roll.ids) and roll.logprobs[0] == -0.5
    assert text.startswith("think about it")


def test_a_server_ignoring_the_constraint_is_an_error(tok_trie):
    from sidreasoner.rl.verl_agent import constrained_rollout
    tok, trie, stop, _ = tok_trie

    async def rogue(prompt_ids, params):
        return ([stop] if "allowed_token_ids" not in params else [10 ** 6]), None
    with pytest.raises(ValueError, match="only catalogue tokens"):
        asyncio.run(constrained_rollout(rogue, [1, 2], tok, trie, stop, 4, {}))


def test_agent_loop_yaml_names_an_importable_verl_loop(tmp_path):
    from sidreasoner.rl.verl_agent import AGENT_NAME, agent_loop_yaml
    entries = yaml.safe_load(agent_loop_yaml(str(tmp_path / "info: odd.txt"), 96, "beam", 7, False, True, 1.3))
    assert entries == [{"name": AGENT_NAME, "_target_": "sidreasoner.rl.verl_agent.SIDConstrainedAgentLoop",
                        "info_file": str(tmp_path / "info: odd.txt"), "think_budget": 96, "sid_search": "beam",
                        "num_beams": 7, "sid_loss": False, "target_prob": True, "repetition_penalty": 1.3}]
    with pytest.raises(ValueError, match="sid_search must be sample or beam"):
        agent_loop_yaml("x", 96, "greedy")
    pytest.importorskip("verl")
    from verl.experimental.agent_loop.agent_loop import AgentLoopBase
    module, name = entries[0]["_target_"].rsplit(".", 1)
    assert issubclass(getattr(importlib.import_module(module), name), AgentLoopBase)
