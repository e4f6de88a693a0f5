"""SID_ROLLOUT=beam and REWARD=rank on verl: the beam search and target probability our agent loop computes
from vLLM's prompt log-probabilities, against a server that answers from a real (tiny) model in verl's layout,
compared with the evaluator's beam search and the TRL reward's probability; and the reward verl then calls."""
from __future__ import annotations

import asyncio
import json
import math

import pytest
import torch

from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)


@pytest.fixture(scope="module")
def setup(tiny_model_dir):
    from sidreasoner.eval.beam import catalogue_trie
    from sidreasoner.model.chat import stop_token_id
    from sidreasoner.model.model_factory import load_model_and_tokenizer
    model, tok = load_model_and_tokenizer(tiny_model_dir[0], dtype="float32")
    model.eval()
    stop = stop_token_id(tok)
    sids = set(tiny_model_dir[1].unique_sids())
    return model, tok, catalogue_trie(tok, sids, stop, source="test"), stop, sids


class ModelServer:
    """``PromptLogprobs`` from the model, in verl's layout (``extract_prompt_logprobs``): entry ``j`` = the
    top-k (k = 0: the prompt's own token) at position ``j + 1``, then a dummy entry. Counts requests."""

    def __init__(self, model):
        self.model, self.requests = model, []

    async def __call__(self, ids, k):
        self.requests.append((len(ids), k))
        with torch.no_grad():
            logp = torch.log_softmax(self.model(torch.tensor([ids])).logits[0].float(), -1)
        out_ids, out_lps = [], []
        for pos in range(1, len(ids)):
            if k == 0:
                out_ids.append([ids[pos]])
                out_lps.append([logp[pos - 1, ids[pos]].item()])
            else:
                top = logp[pos - 1].topk(k)
                out_ids.append(top.indices.tolist())
                out_lps.append(top.values.tolist())
        return out_ids + [[0] * max(k, 1)], out_lps + [[0.0] * max(k, 1)]


def _context(tok):
    return tok.encode("history <a_1><b_2><c_3>, next?<think>\nok\n</think>\n\n", add_special_tokens=False)


@pytest.mark.parametrize("num_beams, probe_k", [(5, None), (3, None), (5, 2), (8, 1), (5, "vocab")])
def test_beam_search_matches_the_evaluators(setup, num_beams, probe_k):
    """Same SIDs in the same order, same scores, as constrained_beam_search on the model, whether the probe's
    top-k held the children (a probe of the whole vocabulary: one request per beam and level) or not (this
    untrained model rarely puts SID tokens in its top 2 x beams: one request per missing child)."""
    from sidreasoner.eval.beam import constrained_beam_search
    from sidreasoner.rl.verl_beam import beam_search
    model, tok, trie, _, sids = setup
    ctx = _context(tok)
    ids = torch.tensor([ctx])
    [want] = constrained_beam_search(model, ids, torch.ones_like(ids), trie, num_beams)
    server = ModelServer(model)
    vocab = model.get_output_embeddings().weight.shape[0]
    got = asyncio.run(beam_search(server, ctx, trie, num_beams, probe_k=vocab if probe_k == "vocab" else probe_k))
    assert [s for s, _ in got] == want.sids and set(want.sids) <= sids
    assert [s for _, s in got] == pytest.approx(want.scores, abs=1e-4)
    singles = sum(k == 0 for _, k in server.requests)
    assert (singles == 0) == (probe_k == "vocab")


def test_target_prob_is_the_trl_rewards(setup):
    from sidreasoner.rl.rollout import answer_ids
    from sidreasoner.rl.verl_beam import target_prob
    model, tok, _, stop, sids = setup
    ctx, target = _context(tok), sorted(sids)[1]
    tgt = answer_ids(tok, target, stop)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ctx + tgt])).logits[0].float(), -1)
    direct = math.exp(sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(tgt)) / len(tgt))
    assert asyncio.run(target_prob(ModelServer(model), ctx, tgt)) == pytest.approx(direct, rel=1e-5)
    assert asyncio.run(target_prob(ModelServer(model), ctx, [])) == 0.0


@pytest.mark.parametrize("sid_loss", [True, False])
def test_beam_rollout(setup, sid_loss):
    """Sampled reasoning (scripted), the closer (masked), the best beam's SID + stop (masked unless sid_loss),
    the ranked list and the target's probability."""
    from sidreasoner.eval.thinking import THINK_CLOSE
    from sidreasoner.rl.rollout import answer_ids
    from sidreasoner.rl.verl_agent import beam_rollout
    model, tok, trie, stop, sids = setup
    words = tok.encode("think about it", add_special_tokens=False)

    async def generate(ids, params):
        assert params["max_tokens"] == 6 and "allowed_token_ids" not in params
        return list(words), [-0.5] * len(words)
    prompt = tok.encode("history <a_1><b_2><c_3>, next?<think>\n", add_special_tokens=False)
    target = sorted(sids)[0]
    roll, ranked, prob = asyncio.run(beam_rollout(generate, ModelServer(model), prompt, tok, trie, stop, 6, {},
                                                  num_beams=4, sid_loss=sid_loss,
                                                  target=answer_ids(tok, target, stop)))
    closer = tok.encode(f"\n{THINK_CLOSE}\n\n", add_special_tokens=False)
    assert roll.ids[:len(words) + len(closer)] == words + closer and roll.sid_at == len(words) + len(closer)
    assert trie.sid_of_ids(roll.ids[roll.sid_at:]) == ranked[0] and len(ranked) == 4 and set(ranked) <= sids
    assert roll.mask == [1] * len(words) + [0] * len(closer) + [int(sid_loss)] * (len(roll.ids) - roll.sid_at)
    assert 0 < prob < 1 and not roll.closed


@pytest.mark.parametrize("ranked, prob, closed, require, score", [
    (["<a_1><b_0><c_0>", "<a_0><b_0><c_0>"], 0.2, True, False, 1 / math.log2(3) + 0.5 * 0.2),
    (["<a_0><b_0><c_0>"], 0.2, True, False, 1.0 + 0.1),
    (["<a_1><b_0><c_0>"], 0.0, True, False, 0.0),
    (["<a_0><b_0><c_0>"], 0.2, False, True, 0.0),   # REQUIRE_THINK_CLOSED and an unclosed reasoning
    (["<a_0><b_0><c_0>"], 0.2, False, False, 1.1),
])
def test_verl_rank_reward(ranked, prob, closed, require, score):
    """What verl's compute_score returns for REWARD=rank from the agent loop's fields (hand-computed)."""
    from sidreasoner.rl.verl_reward import compute_score
    extra = {"ranked_sids": json.dumps(ranked), "target_prob": prob, "think_closed": closed}
    out = compute_score("sidreasoner/Office", "ignored", "<a_0><b_0><c_0>", extra_info=extra, reward="rank",
                        target_prob_weight=0.5, require_think_closed=require)
    assert out["score"] == pytest.approx(score)
    assert out["in_list"] == int("<a_0><b_0><c_0>" in ranked) and out["target_prob"] == prob


def test_verl_rank_reward_needs_the_agent_loops_fields():
    from sidreasoner.rl.verl_reward import compute_score
    with pytest.raises(ValueError, match="REWARD=rank needs the ranked list of our agent loop"):
        compute_score("sidreasoner/Office", "<a_0><b_0><c_0>", "<a_0><b_0><c_0>", extra_info={}, reward="rank")
    with pytest.raises(ValueError, match="reward must be match or rank, got 'x'"):
        compute_score("sidreasoner/Office", "<a_0><b_0><c_0>", "<a_0><b_0><c_0>", reward="x")
    bad = compute_score("sidreasoner/Office", "", "not a sid", reward="rank",
                        extra_info={"ranked_sids": "[]", "target_prob": 0.3})
    assert bad["score"] == 0.0 and bad["gt_error"] == 1


class FakeServerManager:
    """verl's server manager as the agent loop calls it: ``generate(request_id, prompt_ids, sampling_params)``
    -> an object with token_ids, log_probs and extra_fields (prompt log-probabilities from the model)."""

    def __init__(self, model, reasoning):
        self.scorer, self.reasoning, self.params = ModelServer(model), reasoning, []

    async def generate(self, request_id, prompt_ids, sampling_params):
        from types import SimpleNamespace
        self.params.append(dict(sampling_params))
        if "prompt_logprobs" in sampling_params:
            ids, lps = await self.scorer(prompt_ids, sampling_params["prompt_logprobs"])
            return SimpleNamespace(token_ids=[0], log_probs=None,
                                   extra_fields={"prompt_ids": ids, "prompt_logprobs": lps})
        if "allowed_token_ids" in sampling_params:  # a constrained SID level: the last child
            return SimpleNamespace(token_ids=sampling_params["allowed_token_ids"][-1:], log_probs=[-1.0],
                                   extra_fields={})
        return SimpleNamespace(token_ids=list(self.reasoning), log_probs=[-0.5] * len(self.reasoning), extra_fields={})


@pytest.mark.parametrize("sid_search", ["beam", "sample"])
def test_agent_loop_hands_the_reward_its_fields(setup, sid_search):
    """The verl agent loop itself (built without verl's workers): the reasoning request carries the rollout
    penalty; the output carries the response, its mask and the fields REWARD=rank reads, which verl's
    compute_score then scores."""
    pytest.importorskip("verl")
    from sidreasoner.rl.rollout import answer_ids
    from sidreasoner.rl.verl_agent import SIDConstrainedAgentLoop
    from sidreasoner.rl.verl_reward import compute_score
    model, tok, trie, stop, sids = setup
    words = tok.encode("think about it", add_special_tokens=False)
    loop = SIDConstrainedAgentLoop.__new__(SIDConstrainedAgentLoop)
    loop.__dict__.update(tokenizer=tok, stop_id=stop, think_budget=6, sid_search=sid_search, num_beams=3,
                         sid_loss=False, want_target=True, repetition_penalty=1.3, answer_ids=answer_ids,
                         trie_for=lambda source: trie, response_length=64,
                         server_manager=FakeServerManager(model, words))
    prompt = tok.encode("history <a_1><b_2><c_3>, next?<think>\n", add_special_tokens=False)

    async def initial_tokens(messages):
        return list(prompt)
    loop.ct_build_initial_tokens = initial_tokens
    target = sorted(sids)[0]
    out = asyncio.run(loop.run({"temperature": 0.7, "logprobs": True}, raw_prompt=[{"role": "user", "content": "x"}],
                               data_source="sidreasoner/Office", reward_model={"ground_truth": target}))
    first = loop.server_manager.params[0]
    assert first["repetition_penalty"] == 1.3 and first["temperature"] == 0.7 and first["max_tokens"] == 6
    assert out.prompt_ids == prompt and out.response_ids[:len(words)] == words
    assert out.response_mask[-1] == 0 and len(out.response_logprobs) == len(out.response_ids)
    fields = out.extra_fields
    ranked = json.loads(fields["ranked_sids"])
    assert len(ranked) == (3 if sid_search == "beam" else 1) and set(ranked) <= sids
    assert 0 < fields["target_prob"] < 1 and fields["think_closed"] is False
    score = compute_score("sidreasoner/Office", "", target, extra_info=fields, reward="rank", target_prob_weight=0.5)
    gain = 1 / math.log2(ranked.index(target) + 2) if target in ranked else 0.0
    assert score["score"] == pytest.approx(gain + 0.5 * fields["target_prob"])
