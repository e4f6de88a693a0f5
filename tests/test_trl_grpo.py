"""TRL backend: a few GRPO steps on the tiny model with the verl recipe's data, reward and knobs (weights move,
rewards and their components logged, before/after reward measured, HF folder saved, resume after a stop),
the knob -> GRPOConfig mapping, and bad input (missing parquet, model without SID tokens) with exact messages."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)
from fixtures_sft import CATEGORY, foreign_index, write_tiny_release

from sidreasoner.data.formats import write_info
from sidreasoner.data.records import DataError, InfoRow
from sidreasoner.rl.knobs import RLKnobs
from sidreasoner.rl.prepare import PrepareConfig, prepare_rl_data

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def knobs(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("trl")
    release = write_tiny_release(root / "data", with_corpora=False)
    prepare_rl_data(PrepareConfig(data_dir=str(release.data_dir), category=CATEGORY, output_dir=str(root / "rl")),
                    say=lambda *_: None)
    # 4 prompts x 8 samples per step, 48-token completions: the random tiny model writes a level-a SID token in
    # a good share of them, so the groups' rewards differ and the policy gradient is not zero
    return RLKnobs(category=CATEGORY, data_dir=str(release.data_dir), model_path=str(tiny_model_dir[0]),
                   rl_data_dir=str(root / "rl"), output_dir=str(root / "out"), rollout_n=8, train_batch_size=4,
                   micro_batch_size=16, max_steps=2, max_response_length=48, lr=1e-2, kl_coef=0.001, save_freq=1,
                   test_freq=1, val_max_rows=2, eval_rows=4, eval_samples=2, device="cpu", seed=0)


def test_grpo_config_follows_the_knobs(knobs):
    from sidreasoner.rl.trl_grpo import grpo_args
    args = grpo_args(RLKnobs(micro_batch_size=16).resolved("trl"), cpu=True)
    assert (args.num_generations, args.per_device_train_batch_size, args.gradient_accumulation_steps) == (16, 16, 256)
    assert (args.learning_rate, args.beta, args.temperature, args.max_completion_length) == (5e-7, 0.001, 1.0, 1024)
    assert (args.num_train_epochs, args.save_steps, args.lr_scheduler_type, args.use_cpu) == (10, 100, "constant", True)
    assert args.generation_batch_size == 256 * 16  # one generation round per optimiser step, as in verl
    assert args.log_completions is False
    shown = grpo_args(RLKnobs(micro_batch_size=16, log_completions=True).resolved("trl"), cpu=True)
    assert shown.log_completions is True and shown.num_completions_to_print == 16
    with pytest.raises(ValueError, match=r"^TRAIN_BATCH_SIZE x ROLLOUT_N \(12 completions per step\) must be a "
                                         r"multiple of MICRO_BATCH_SIZE x processes \(8\)$"):
        grpo_args(RLKnobs(train_batch_size=3, rollout_n=4, micro_batch_size=8).resolved("trl"), cpu=True)


def test_sid_reward_for_trl_logs_components():
    from sidreasoner.rl.trl_grpo import SIDReward
    logged = {}
    reward = SIDReward(info_file="")
    scores = reward(prompts=["p", "p"], completions=["</think><a_1><b_2><c_3>", "</think><a_1><b_0>"],
                    ground_truth=["<a_1><b_2><c_3>"] * 2, data_source=["sidreasoner/T"] * 2,
                    log_metric=lambda k, v: logged.__setitem__(k, v), trainer_state=None)
    assert scores == [1.0, 0.25]
    assert logged == {"sid/exact": 0.5, "sid/prefix_levels": 2.0, "sid/valid_bonus": 0.0, "sid/parsed": 1.0,
                      "sid/think_closed": 1.0}


def _weights(path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(Path(path) / "model.safetensors"))


def test_a_few_grpo_steps_on_the_tiny_model(knobs, tiny_model_dir):
    from sidreasoner.rl.trl_grpo import run_trl_grpo
    from sidreasoner.model.chat import check_sid_tokens
    from sidreasoner.model.model_factory import load_model_and_tokenizer
    summary = run_trl_grpo(knobs, say=lambda *_: None)
    out = Path(knobs.output_dir)
    final = out / "final_checkpoint"
    assert summary["final_checkpoint"] == str(final) and summary["steps"] == 2
    lines = [json.loads(x) for x in (out / "grpo_log.jsonl").read_text().splitlines()]
    train = [x for x in lines if "reward" in x]
    assert len(train) == 2 and all("sid/exact" in x and "kl" in x for x in train)
    assert max(x["reward_std"] for x in train) > 0  # some group's completions were scored differently
    assert [x["step"] for x in lines if "val/reward_mean" in x] == [1, 2]
    before, after = _weights(tiny_model_dir[0]), _weights(final)
    assert [k for k in before if not torch.equal(before[k], after[k])]  # the policy moved
    model, tok = load_model_and_tokenizer(final)
    check_sid_tokens(tok, tiny_model_dir[1].unique_sids())
    for key in ("reward_before", "reward_after"):
        assert (summary[key]["prompts"], summary[key]["samples_per_prompt"]) == (4, 2)
        assert 0.0 <= summary[key]["mean_reward"] <= 1.1
    saved = json.loads((out / "grpo_config.json").read_text())
    assert (saved["rollout_n"], saved["train_batch_size"], saved["info_file"]) == (8, 4, knobs.resolved("trl").info_file)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["steps"] == 2 and (out / "diagnostics.png").is_file()
    assert diag["zero_variance_groups"]["points"] == 2 and 0.0 <= diag["zero_variance_groups"]["mean"] <= 1.0
    assert diag["reward"]["first"] == train[0]["reward"] and diag["valid_reward"]["points"] == 2

    resumed = run_trl_grpo(dataclasses.replace(knobs, max_steps=3, eval_rows=0, test_freq=0), say=lambda *_: None)
    assert resumed["steps"] == 3 and resumed["reward_before"] is None  # continued from checkpoint-2


def test_bad_input(knobs, tmp_path):
    from sidreasoner.rl.trl_grpo import run_trl_grpo
    with pytest.raises(DataError, match=r"nowhere/train\.parquet: RL parquet not found \(write it with: python "
                                        r"rl/prepare_data.py"):
        run_trl_grpo(dataclasses.replace(knobs, rl_data_dir=str(tmp_path / "nowhere")), say=lambda *_: None)
    foreign = tmp_path / "foreign.txt"
    write_info(foreign, [InfoRow(sid, "x", i) for i, sid in foreign_index().items()])
    with pytest.raises(ValueError, match=r"^MODEL_PATH .*: checkpoint has no SID tokens: \d+ missing from the "
                                         r"vocabulary"):
        run_trl_grpo(dataclasses.replace(knobs, info_file=str(foreign)), say=lambda *_: None)
    with pytest.raises(DataError, match=r"gone\.txt: catalogue \(info_file of the SID reward\) not found"):
        run_trl_grpo(dataclasses.replace(knobs, info_file=str(tmp_path / "gone.txt")), say=lambda *_: None)


def test_script_help_and_knobs_are_flags_only():
    """The knobs are flags; the environment is never read (an OUTPUT_DIR exported for stage 1 is not GRPO's)."""
    script = REPO / "rl" / "trl_grpo.py"
    env = {"ROLLOUT_N": "6", "OUTPUT_DIR": "checkpoints/stage1", "NGPUS": "x", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "--rollout_n ROLLOUT_N" in out.stdout
    assert "completions sampled per prompt (the GRPO group) (default: 16)" in " ".join(out.stdout.split())
    assert "checkpoints/stage1" not in out.stdout
    bad = subprocess.run([sys.executable, str(script), "--ngpus", "x"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().endswith("error: argument --ngpus: NGPUS must be an integer, "
                                                               "got 'x'")


@pytest.mark.gpu
def test_grpo_steps_on_gpu(knobs, tmp_path):
    from sidreasoner.rl.trl_grpo import run_trl_grpo
    k = dataclasses.replace(knobs, output_dir=str(tmp_path / "gpu"), device="cuda", eval_rows=0, test_freq=0)
    summary = run_trl_grpo(k, say=lambda *_: None)
    assert summary["steps"] == 2 and Path(summary["final_checkpoint"], "config.json").is_file()
