"""Stage-3 beam rollouts and the rank reward (sidreasoner.rl.rollout): the hand-computed gain table, the
zero-variance share, the rollout's completions (sampled reasoning, the evaluator's closer, the best beam, the
stop token), the dense term against a direct computation, dynamic sampling, and a TRL run with all of them."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)
from fixtures_sft import CATEGORY, write_tiny_release

from sidreasoner.rl.knobs import RLKnobs
from sidreasoner.rl.prepare import PrepareConfig, prepare_rl_data
from sidreasoner.rewards import rank_gain
from sidreasoner.rl.rollout import zero_variance_share


@pytest.mark.parametrize("target, ranked, gain", [
    ("<a_1><b_2>", ["<a_1><b_2>", "<a_3><b_1>"], 1.0),
    ("<a_3><b_1>", ["<a_1><b_2>", "<a_3><b_1>"], 1 / math.log2(3)),
    ("<a_3><b_1>", ["<a_0><b_0>", "<a_1><b_2>", "<a_3><b_1>"], 0.5),
    ("<a_9><b_9>", ["<a_1><b_2>", "<a_3><b_1>"], 0.0),
    ("<a_1><b_2>", [], 0.0),
])
def test_rank_gain(target, ranked, gain):
    assert rank_gain(target, ranked) == pytest.approx(gain)


@pytest.mark.parametrize("values, group, share", [
    ([0, 0, 1, 1], 2, 1.0), ([0, 1, 1, 1], 2, 0.5), ([0, 0.5, 0.2, 0.1], 2, 0.0), ([0, 0, 0], 2, 1.0), ([], 2, 0.0),
])
def test_zero_variance_share(values, group, share):
    assert zero_variance_share(values, group) == share


@pytest.fixture(scope="module")
def setup(tiny_model_dir):
    from sidreasoner.eval.beam import catalogue_trie
    from sidreasoner.rl.rollout import BeamRollout, RankReward
    from sidreasoner.model.chat import render_prompt, stop_token_id
    from sidreasoner.model.model_factory import load_model_and_tokenizer
    model, tok = load_model_and_tokenizer(tiny_model_dir[0], dtype="float32")
    stop = stop_token_id(tok)
    sids = set(tiny_model_dir[1].unique_sids())
    trie = catalogue_trie(tok, sids, stop, source="test")
    trainer = SimpleNamespace(model=model, accelerator=SimpleNamespace(unwrap_model=lambda m: m))
    rollout = BeamRollout(tok, trie, stop, "native", num_beams=3, max_think_tokens=12, temperature=1.0, batch_size=4)
    reward = RankReward(tok, stop, prob_weight=0.5, group_size=2).bind(trainer)
    prompt = render_prompt(tok, "history <a_1><b_2>, next?", think=True)
    return SimpleNamespace(model=model, tok=tok, stop=stop, sids=sids, trainer=trainer, rollout=rollout,
                           reward=reward, prompt=prompt)


def test_beam_rollout_completions(setup):
    from sidreasoner.eval.thinking import THINK_CLOSE
    torch.manual_seed(0)
    setup.model.train()  # TRL's policy is in training mode; the rollout samples in eval mode and restores it
    out = setup.rollout([setup.prompt] * 4, setup.trainer)
    assert out["logprobs"] is None and len(out["completion_ids"]) == 4
    for p_ids, c_ids, ranked, ctx in zip(out["prompt_ids"], out["completion_ids"], out["ranked_sids"],
                                         out["search_ids"]):
        assert setup.tok.decode(p_ids) == setup.prompt + "<think>\n"
        assert 1 <= len(ranked) <= 3 and set(ranked) <= setup.sids  # catalogue SIDs only, best first
        text = setup.tok.decode(c_ids)
        assert text.endswith(f"\n{THINK_CLOSE}\n\n{ranked[0]}<|im_end|>")  # closer, best beam, stop token
        assert ctx == p_ids + c_ids[:len(ctx) - len(p_ids)]  # the search context is the completion's head
    assert out["env_mask"] == [[1] * len(c) for c in out["completion_ids"]]  # every token trained by default
    assert setup.model.training


def test_beam_rollout_can_keep_the_searched_sid_out_of_the_policy_loss(setup):
    from sidreasoner.rl.rollout import BeamRollout
    roll = BeamRollout(setup.tok, setup.rollout.trie, setup.stop, "native", num_beams=3, max_think_tokens=12,
                       temperature=1.0, batch_size=4, sid_loss=False)
    torch.manual_seed(0)
    out = roll([setup.prompt] * 2, setup.trainer)
    assert roll.last is out
    for c_ids, ctx, p_ids, mask in zip(out["completion_ids"], out["search_ids"], out["prompt_ids"], out["env_mask"]):
        head = len(ctx) - len(p_ids)  # reasoning + closer: sampled or added, trained
        sid = len(setup.tok.encode(out["ranked_sids"][0][0], add_special_tokens=False))
        assert mask == [1] * head + [0] * (len(c_ids) - head) and len(c_ids) - head >= sid + 1


def test_beam_rollout_searches_each_rows_own_catalogue(setup):
    from sidreasoner.eval.beam import catalogue_trie
    from sidreasoner.rl.rollout import BeamRollout
    sids = sorted(setup.sids)
    cat = {"sidreasoner/A": set(sids[:2]), "sidreasoner/B": set(sids[2:4])}  # two catalogues, no SID shared
    tries = {src: catalogue_trie(setup.tok, s, setup.stop, source=src) for src, s in cat.items()}
    roll = BeamRollout(setup.tok, setup.rollout.trie, setup.stop, "native", num_beams=3, max_think_tokens=8,
                       temperature=1.0, batch_size=4, trie_for=tries.__getitem__)
    roll.sources = ["sidreasoner/A", "sidreasoner/B", "sidreasoner/B", "sidreasoner/A"]
    torch.manual_seed(0)
    out = roll([setup.prompt] * 4, setup.trainer)
    for src, ranked in zip(roll.sources, out["ranked_sids"]):
        assert ranked and set(ranked) <= cat[src]


def test_constrained_sample_stays_in_the_catalogue_and_is_greedy_when_cold(setup):
    from sidreasoner.eval.beam import constrained_beam_search
    from sidreasoner.eval.runner import left_pad
    from sidreasoner.rl.rollout import BeamRollout, constrained_sample
    ctx = [setup.tok.encode(setup.prompt + "<think>\nhm\n</think>\n\n", add_special_tokens=False),
           setup.tok.encode(setup.prompt + "<think>\nsomething else\n</think>\n\n", add_special_tokens=False)]
    setup.model.eval()
    trie = setup.rollout.trie
    torch.manual_seed(0)
    hot = constrained_sample(setup.model, ctx * 8, trie, setup.stop, temperature=5.0)
    assert all(s in setup.sids for s in hot) and len(set(hot)) > 1  # sampled, yet always a catalogue SID
    cold = constrained_sample(setup.model, ctx, trie, setup.stop, temperature=1e-4)
    ids, mask = left_pad(ctx, setup.stop, setup.model.device)
    assert cold == [r.sids[0] for r in constrained_beam_search(setup.model, ids, mask, trie, 1)]
    roll = BeamRollout(setup.tok, trie, setup.stop, "native", num_beams=3, max_think_tokens=8, temperature=1.0,
                       batch_size=4, sid_search="sample")
    out = roll([setup.prompt] * 3, setup.trainer)
    assert all(len(r) == 1 and r[0] in setup.sids for r in out["ranked_sids"])  # one SID, no beam list


def test_answer_batch_and_nll_match_a_direct_computation(setup):
    from sidreasoner.rl.rollout import answer_batch, answer_ids, answer_nll
    tok, target = setup.tok, sorted(setup.sids)[0]
    ctx = [tok.encode(setup.prompt + "<think>\nok\n</think>\n\n", add_special_tokens=False),
           tok.encode(setup.prompt + "<think>\nlonger reasoning\n</think>\n\n", add_special_tokens=False)]
    tgt = answer_ids(tok, target, setup.stop)
    assert tgt[-1] == setup.stop and tok.decode(tgt[:-1]) == target and answer_ids(tok, "no sid", 0) is None
    ids, mask, labels = answer_batch(ctx, [tgt, None], pad_id=setup.stop)
    assert ids.shape == mask.shape == labels.shape == (2, max(len(ctx[0]) + len(tgt), len(ctx[1])))
    assert (labels[1] == -100).all() and labels[0, len(ctx[0]):len(ctx[0]) + len(tgt)].tolist() == tgt
    with torch.no_grad():
        logp = torch.log_softmax(setup.model(torch.tensor([ctx[0] + tgt])).logits[0].float(), -1)
        direct = -sum(logp[len(ctx[0]) - 1 + i, t].item() for i, t in enumerate(tgt)) / len(tgt)
        setup.model.eval()
        assert answer_nll(setup.model, ids, mask, labels).item() == pytest.approx(direct, rel=1e-4)
        assert answer_nll(setup.model, ids[1:], mask[1:], labels[1:]).item() == 0.0


def test_rank_reward_matches_a_direct_computation(setup):
    tok, target = setup.tok, sorted(setup.sids)[0]
    ctx = tok.encode(setup.prompt + "<think>\nok\n</think>\n\n", add_special_tokens=False)
    tgt = tok.encode(target, add_special_tokens=False) + [setup.stop]
    with torch.no_grad():
        logp = torch.log_softmax(setup.model(torch.tensor([ctx + tgt])).logits[0].float(), -1)
    direct = math.exp(sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(tgt)) / len(tgt))
    logged = {}
    scores = setup.reward(prompts=["p"] * 2, completions=["", ""], ground_truth=[target, target],
                          ranked_sids=[[target], ["<a_0><b_0><c_0>"]], search_ids=[ctx, ctx],
                          think_closed=[True, False], log_metric=lambda k, v: logged.__setitem__(k, v))
    assert scores == pytest.approx([1.0 + 0.5 * direct, 0.5 * direct], rel=1e-5)
    assert logged["sid/rank_ndcg"] == 0.5 and logged["sid/rank_zero_std"] == 0.0
    assert logged["sid/target_prob"] == pytest.approx(direct, rel=1e-5) and logged["sid/think_closed"] == 0.5


def test_knob_checks():
    with pytest.raises(ValueError, match="REWARD=rank scores the ranked list of a beam rollout"):
        RLKnobs(reward="rank").resolved("trl")
    with pytest.raises(ValueError, match="SID_ROLLOUT=beam samples the reasoning before the SID: it needs THINK=1"):
        RLKnobs(sid_rollout="beam", think=False).resolved("trl")
    with pytest.raises(ValueError, match="ANSWER_NLL_WEIGHT runs on BACKEND=trl only"):
        RLKnobs(sid_rollout="beam", answer_nll_weight=0.5).resolved("verl")
    assert RLKnobs(sid_rollout="beam", reward="rank").resolved("verl").reward == "rank"  # both backends
    with pytest.raises(ValueError, match="SID_ROLLOUT must be free, constrained or beam, got 'x'"):
        RLKnobs(sid_rollout="x").resolved("trl")
    assert RLKnobs(sid_rollout="beam", max_response_length=100).resolved("trl").think_budget == 84
    with pytest.raises(ValueError, match=r"RANK_EVAL_ROWS \(50\) exceeds VALID_HOLDOUT \(10\)"):
        RLKnobs(prompts_from="valid", valid_holdout=10, rank_eval_rows=50).resolved("trl")
    with pytest.raises(ValueError, match="ANSWER_NLL_WEIGHT trains the target after a beam rollout's reasoning"):
        RLKnobs(answer_nll_weight=1.0).resolved("trl")
    two = RLKnobs(category="A,B", data_dir="d").resolved("trl")  # several categories: one catalogue each
    assert two.info_file == "A=d/info/A_5_2016-10-2018-11.txt,B=d/info/B_5_2016-10-2018-11.txt"
    assert RLKnobs(category="A", data_dir="d").resolved("trl").info_file == "d/info/A_5_2016-10-2018-11.txt"
    with pytest.raises(ValueError, match=r"RANK_EVAL_ROWS must be 0 with several categories \(A,B\)"):
        RLKnobs(category="A,B", rank_eval_rows=5).resolved("trl")
    with pytest.raises(ValueError, match="ANSWER_NLL_WEIGHT must be >= 0"):
        RLKnobs(sid_rollout="beam", answer_nll_weight=-1.0).resolved("trl")


def test_prompts_from_valid(tmp_path):
    release = write_tiny_release(tmp_path / "data", with_corpora=False)
    out = tmp_path / "rl"
    report = prepare_rl_data(PrepareConfig(data_dir=str(release.data_dir), category=CATEGORY, output_dir=str(out),
                                           train_from="valid", valid_holdout=2), say=lambda *_: None)
    from sidreasoner.data.formats import read_split_csv
    valid = read_split_csv(release.split("valid"))
    assert report["splits"]["valid"]["written"] == 2
    assert report["splits"]["train"]["rows_read"] == len(valid) - 2
    with pytest.raises(Exception, match=r"--valid_holdout 99 must be between 1 and"):
        prepare_rl_data(PrepareConfig(data_dir=str(release.data_dir), category=CATEGORY,
                                      output_dir=str(tmp_path / "rl2"), train_from="valid", valid_holdout=99),
                        say=lambda *_: None)


def _tiny_grpo_knobs(tmp_path, model_dir, **kw) -> RLKnobs:
    """Knobs of a GRPO run of a few steps on the tiny model and a tiny release (its RL data prepared)."""
    release = write_tiny_release(tmp_path / "data", with_corpora=False)
    prepare_rl_data(PrepareConfig(data_dir=str(release.data_dir), category=CATEGORY, output_dir=str(tmp_path / "rl")),
                    say=lambda *_: None)
    return RLKnobs(category=CATEGORY, data_dir=str(release.data_dir), model_path=str(model_dir),
                   rl_data_dir=str(tmp_path / "rl"), output_dir=str(tmp_path / "out"), rollout_n=4,
                   train_batch_size=2, micro_batch_size=8, max_response_length=40, lr=1e-2, kl_coef=0.0,
                   device="cpu", seed=0, **kw)


def test_grpo_with_beam_rollouts_rank_reward_and_dynamic_sampling(tmp_path, tiny_model_dir):
    from sidreasoner.rl.trl_grpo import run_trl_grpo
    knobs = _tiny_grpo_knobs(tmp_path, tiny_model_dir[0], max_steps=2, save_freq=2, test_freq=2, val_max_rows=2,
                             sid_rollout="beam", reward="rank", rank_k=3, drop_zero_variance=True, rank_eval_rows=4,
                             answer_nll_weight=1.0, beam_sid_loss=False)
    summary = run_trl_grpo(knobs, say=lambda *_: None)
    assert summary["steps"] == 2
    lines = [json.loads(x) for x in (Path(knobs.output_dir) / "grpo_log.jsonl").read_text().splitlines()]
    train = [x for x in lines if "reward" in x]
    assert all("sid/rank_ndcg" in x and "sid/target_prob" in x and "sid/dropped_groups" in x for x in train)
    assert all(x["sid/target_prob"] > 0 for x in train)
    assert all(x["sid/answer_nll"] > 0 for x in train)  # the answer loss ran beside GRPO
    diag = json.loads((Path(knobs.output_dir) / "diagnostics.json").read_text())
    assert diag["target_prob"]["points"] == 2 and "rank_zero_variance_groups" in diag
    probe = [x for x in lines if "val/think_ndcg10" in x]  # before training and at step 2, both modes
    assert [x["step"] for x in probe] == [0, 2] and all(0 <= x["val/ndcg10"] <= 1 for x in probe)
    assert diag["valid_think_ndcg10"]["points"] == 2
    assert dataclasses.asdict(knobs)["reward"] == "rank"


def test_grpo_with_constrained_rollouts(tmp_path, tiny_model_dir):
    from sidreasoner.rl.trl_grpo import run_trl_grpo
    knobs = _tiny_grpo_knobs(tmp_path, tiny_model_dir[0], max_steps=1, save_freq=1, test_freq=0,
                             sid_rollout="constrained")
    assert run_trl_grpo(knobs, say=lambda *_: None)["steps"] == 1
    [train] = [json.loads(x) for x in (Path(knobs.output_dir) / "grpo_log.jsonl").read_text().splitlines()
               if "reward" in json.loads(x)]
    assert train["sid/valid_bonus"] > 0  # every constrained SID is a catalogue SID: the validity bonus always paid


def test_stage3_script_gives_each_category_its_catalogue():
    import os
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "DRY_RUN": "1", "BACKEND": "trl", "CATEGORY": "A,B", "DATA_DIR": "d", "PYTHON": sys.executable}
    out = subprocess.run(["bash", "RL_training_script.sh"], cwd=repo, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert r"--info_file A=d/info/A_5_2016-10-2018-11.txt\,B=d/info/B_5_2016-10-2018-11.txt" in out.stdout
