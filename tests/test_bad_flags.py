"""Numeric flags and environment knobs outside the values they accept, one table across the entry points (the
rest of the bad inputs: tests/test_bad_inputs.py, whose helpers and fixtures this module shares).

Each case asserts the exit status (or exception type) and that the message names the flag or knob AND the
values it accepts: every entry point checks its numeric flags where it parses them (``sidreasoner.ranges``),
NaN and infinities included, before any data is read or a model loaded.
"""
from __future__ import annotations

import os
import re
from typing import Optional
import subprocess
import sys

import pytest

from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)
from test_bad_inputs import (CATEGORY, REPO, Ctx, baseline, call, ev_release, fusion, knobs_env, library, pipeline, prep,
                             release, scr, script, sft, trl)  # noqa: F401  (release: pytest fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def shell(name, **env):
    """``bash NAME`` with ``env``: the stage scripts check their own knobs before starting Python."""
    def run(c):
        full = {**os.environ, "PYTHON": sys.executable, "LOG_FILE": str(c.tmp / "log.txt"), **env}
        p = subprocess.run(["bash", name], cwd=REPO, env=full, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr
    return run


def module(name, *argv):
    """``python -m NAME`` in-process: its ``main(argv)``."""
    def run(c):
        import importlib
        return call(importlib.import_module(name).main, [a(c) if callable(a) else a for a in argv])
    return run


def _prior(c):
    path = c.tmp / "prior.json"
    path.write_text('{"prior": {}}', encoding="utf-8")
    return path


def _recommender(c, **kw):
    from sidreasoner.recommend import Recommender
    return Recommender(str(c.model), str(c.rel), CATEGORY, **kw)


# (id, case, expected status or exception type, regex the message must match: the flag AND its range)
CASES = [
    # ---- evaluate.py ----------------------------------------------------------------------------
    ("evaluate-max-new-tokens-negative", ev_release("--max_new_tokens", "-1"), 2,
     r"--max_new_tokens -1 cannot hold a 3-token SID plus the stop token; use at least 4"),
    ("evaluate-length-penalty-nan", ev_release("--length_penalty", "nan"), 2,
     r"--length_penalty must be a finite number, got nan"),
    ("evaluate-temperature-zero", ev_release("--temperature", "0"), 2, r"--temperature must be > 0, got 0\.0"),
    ("evaluate-repetition-penalty-inf", ev_release("--repetition_penalty", "inf"), 2,
     r"--repetition_penalty must be > 0 \(1: off\), got inf"),
    ("evaluate-calibrate-nan", ev_release("--calibrate", "nan"), 2,
     r"--calibrate must be >= 0 \(0: plain scores\), got nan"),
    ("evaluate-seed-negative", ev_release("--seed", "-1"), 2, r"--seed must be in \[0, 4294967295\], got -1"),
    ("evaluate-ks-zero", ev_release("--ks", "0,5"), 2, r"--ks values must be >= 1, got 0"),
    ("evaluate-limit-negative-merge", ev_release("--limit", "-2", "--merge_shards", "x"), 2,
     r"--limit must be >= 1 \(rows to evaluate\), got -2"),
    # ---- sft.py -----------------------------------------------------------------------------------
    ("sft-learning-rate-inf", sft("--learning_rate", "inf"), 2, r"--learning_rate must be > 0, got inf"),
    ("sft-num-epochs-nan", sft("--num_epochs", "nan"), 2, r"--num_epochs must be > 0 .*got nan"),
    ("sft-weight-decay-nan", sft("--weight_decay", "nan"), 2, r"--weight_decay must be >= 0, got nan"),
    ("sft-history-loss-weight-inf", sft("--history_loss_weight", "inf"), 2,
     r"--history_loss_weight must be >= 0, got inf"),
    ("sft-workers-negative", sft("--dataloader_num_workers", "-1"), 2,
     r"--dataloader_num_workers must be >= 0, got -1"),
    ("sft-seed-negative", sft("--seed", "-5"), 2, r"--seed must be in \[0, 4294967295\], got -5"),
    ("sft-warmup-negative", sft("--warmup_steps", "-1"), 2, r"--warmup_steps must be >= 0, got -1"),
    ("sft-logging-steps-zero", sft("--logging_steps", "0"), 2, r"--logging_steps must be >= 1, got 0"),
    # ---- rl/prepare_data.py, RL knobs (environment: RL_training_script.sh, verl_config), rl/trl_grpo.py ------
    ("prepare-seed-negative", prep("--seed", "-1"), 2, r"--seed must be in \[0, 4294967295\], got -1"),
    ("knobs-kl-nan", knobs_env(KL_COEF="nan"), "ValueError", r"KL_COEF must be >= 0, got nan"),
    ("knobs-target-prob-weight-nan", knobs_env(TARGET_PROB_WEIGHT="nan"), "ValueError",
     r"TARGET_PROB_WEIGHT must be >= 0, got nan"),
    ("knobs-temperature-inf", knobs_env(TEMPERATURE="inf"), "ValueError", r"TEMPERATURE must be > 0, got inf"),
    ("knobs-lr-inf", knobs_env(LR="inf"), "ValueError", r"LR must be > 0, got inf"),
    ("knobs-repetition-penalty-nan", knobs_env(ROLLOUT_REPETITION_PENALTY="nan"), "ValueError",
     r"ROLLOUT_REPETITION_PENALTY must be > 0 \(1: off\), got nan"),
    ("knobs-seed-negative", knobs_env(SEED="-1"), "ValueError", r"SEED must be in \[0, 4294967295\], got -1"),
    ("trl-flag-kl-nan", trl("--kl_coef", "nan"), 2, r"error: KL_COEF must be >= 0, got nan"),
    ("trl-flag-temperature-zero", trl("--temperature", "0"), 2, r"TEMPERATURE must be > 0, got 0\.0"),
    ("trl-save-freq-zero", trl("--save_freq", "0"), 2, r"SAVE_FREQ must be >= 1, got 0"),
    # ---- scripts/ --------------------------------------------------------------------------------
    ("check-data-max-examples-negative", scr("scripts/check_data.py", "--data_dir", "d", "--category", "c",
                                             "--max_examples", "-1"), 2, r"--max_examples must be >= 0, got -1"),
    ("compare-n-zero", scr("scripts/compare_results.py", "--examples", "r", "--n", "0"), 2,
     r"--n must be >= 1, got 0"),
    ("build-sids-balance-slack-nan", scr("scripts/build_sids.py", "--data_dir", lambda c: c.rel, "--category",
                                         CATEGORY, "--output_dir", lambda c: c.tmp / "o", "--balance_slack", "nan"),
     2, r"--balance_slack must be >= 0, got nan"),
    ("build-sids-codebook-one", scr("scripts/build_sids.py", "--data_dir", lambda c: c.rel, "--category", CATEGORY,
                                    "--output_dir", lambda c: c.tmp / "o", "--codebook_size", "1"), 2,
     r"--codebook_size must be >= 2, got 1"),
    ("build-sids-headroom-zero", scr("scripts/build_sids.py", "--data_dir", lambda c: c.rel, "--category", CATEGORY,
                                     "--output_dir", lambda c: c.tmp / "o", "--headroom", "0"), 2,
     r"--headroom must be >= 1, got 0"),
    ("build-sids-levels-extra-level", scr("scripts/build_sids.py", "--data_dir", "d", "--category", "c",
                                          "--output_dir", "o", "--levels", "8", "--collision", "extra_level"), 2,
     r"--levels must be in \[1, 7\] \(SID spelling has 8 letters, one taken by --collision extra_level\), got 8"),
    ("demo-data-seed-negative", scr("scripts/make_demo_data.py", "--output_dir", lambda c: c.tmp / "demo",
                                    "--seed", "-1"), 2, r"make_demo_data: error: --seed must be in \[0, 4294967295\]"),
    ("demo-data-codebook-one", scr("scripts/make_demo_data.py", "--output_dir", lambda c: c.tmp / "demo",
                                   "--codebook_size", "1"), 2, r"--codebook_size must be >= 2, got 1"),
    ("tiny-model-heads-zero", scr("scripts/make_tiny_model.py", "--data_dir", "d", "--category", "c",
                                  "--output_dir", "o", "--num_heads", "0"), 2, r"--num_heads must be >= 1, got 0"),
    ("tiny-model-heads-indivisible", scr("scripts/make_tiny_model.py", "--data_dir", "d", "--category", "c",
                                         "--output_dir", "o", "--hidden_size", "30", "--num_heads", "4"), 2,
     r"--hidden_size \(30\) must divide by --num_heads \(4\)"),
    ("tiny-model-vocab-small", scr("scripts/make_tiny_model.py", "--data_dir", "d", "--category", "c",
                                   "--output_dir", "o", "--vocab_size", "100"), 2,
     r"--vocab_size must be >= 259 \(256 bytes \+ 3 special tokens\), got 100"),
    ("tiny-model-layers-zero", scr("scripts/make_tiny_model.py", "--data_dir", "d", "--category", "c",
                                   "--output_dir", "o", "--num_layers", "0"), 2, r"--num_layers must be >= 1, got 0"),
    ("tiny-model-intermediate-zero", scr("scripts/make_tiny_model.py", "--data_dir", "d", "--category", "c",
                                         "--output_dir", "o", "--intermediate_size", "0"), 2,
     r"--intermediate_size must be >= 1, got 0"),
    ("synthesize-temperature-negative", scr("scripts/synthesize_corpus.py", "--data_dir", "d", "--category", "c",
                                            "--temperature", "-0.5"), 2, r"--temperature must be >= 0, got -0\.5"),
    ("synthesize-max-tokens-zero", scr("scripts/synthesize_corpus.py", "--data_dir", "d", "--category", "c",
                                       "--max_tokens", "0"), 2, r"--max_tokens must be >= 1, got 0"),
    ("synthesize-timeout-inf", scr("scripts/synthesize_corpus.py", "--data_dir", "d", "--category", "c",
                                   "--timeout", "inf"), 2, r"--timeout must be > 0 seconds, got inf"),
    ("synthesize-backoff-nan", scr("scripts/synthesize_corpus.py", "--data_dir", "d", "--category", "c",
                                   "--backoff_max", "nan"), 2, r"--backoff_max must be >= 0, got nan"),
    # ---- python -m sidreasoner.baselines ---------------------------------------------------------
    ("baselines-sasrec-heads-zero", baseline("sasrec", "--heads", "0"), 2, r"--heads must be >= 1, got 0"),
    ("baselines-sasrec-lr-zero", baseline("sasrec", "--lr", "0"), 2, r"--lr must be > 0, got 0\.0"),
    ("baselines-sasrec-weight-decay-nan", baseline("sasrec", "--weight_decay", "nan"), 2,
     r"--weight_decay must be >= 0, got nan"),
    ("baselines-sasrec-seed-negative", baseline("sasrec", "--seed", "-3"), 2,
     r"--seed must be in \[0, 4294967295\], got -3"),
    ("baselines-ks-zero", baseline("popularity", "--ks", "0,10"), 2, r"--ks values must be >= 1, got 0"),
    # ---- python -m sidreasoner.eval.fusion / .calibration / .effect / .metrics -------------------
    ("fusion-num-beams-zero", fusion("--test", "a", "b", "--output_dir", "o", "--weight", "0.5", "--num_beams", "0"),
     2, r"--num_beams must be >= 1, got 0"),
    ("fusion-weight-nan-adaptive", fusion("--test", "a", "b", "--output_dir", "o", "--method", "adaptive",
                                          "--weight", "nan"), 2, r"--weight must be a finite number, got nan"),
    ("fusion-weight-negative-calibrated", fusion("--test", "a", "b", "--output_dir", "o", "--method", "calibrated",
                                                 "--prior", "p", "--weight", "-1"), 2,
     r"--weight must be >= 0 \(a calibration alpha\) with --method calibrated, got -1\.0"),
    ("fusion-weights-nan-calibrated", fusion("--test", "a", "b", "--valid", "c", "d", "--output_dir", "o", "--method",
                                             "calibrated", "--prior", lambda c: _prior(c), "--weights", "0,nan"), 2,
     r"--weights values must be >= 0 \(a calibration alpha\), got nan"),
    ("calibration-batch-size-zero", module("sidreasoner.eval.calibration", "--model_path", "m", "--info_file", "i",
                                           "--output", "o", "--batch_size", "0"), 2,
     r"--batch_size must be >= 1, got 0"),
    ("effect-k-zero", module("sidreasoner.eval.effect", "a", "b", "--k", "0"), 2, r"--k must be >= 1, got 0"),
    ("metrics-num-beams-zero", module("sidreasoner.eval.metrics", "p.jsonl", "--num_beams", "0"), 2,
     r"--num_beams must be >= 1 \(unset: the longest ranked list\), got 0"),
    ("metrics-ks-zero", module("sidreasoner.eval.metrics", "p.jsonl", "--ks", "0,5"), 2,
     r"--ks values must be >= 1, got 0"),
    # ---- python -m sidreasoner.recommend, python -m sidreasoner.rl.reward_eval -------------------
    ("recommend-num-beams-zero", module("sidreasoner.recommend", "--model", lambda c: c.model, "--data_dir",
                                        lambda c: c.rel, "--category", CATEGORY, "--history", "I001",
                                        "--num_beams", "0"), 2, r"--num_beams must be >= 1, got 0"),
    ("recommend-repetition-penalty-nan", module("sidreasoner.recommend", "--model", "m", "--data_dir", "d",
                                                "--category", "c", "--history", "I001", "--repetition_penalty", "nan"),
     2, r"--repetition_penalty must be > 0 \(1: off\), got nan"),
    ("recommend-library-think-tokens-zero", library(lambda c: _recommender(c, max_think_tokens=0)), "ValueError",
     r"--max_think_tokens must be >= 1, got 0"),
    ("reward-eval-rows-negative", module("sidreasoner.rl.reward_eval", "--model_path", "m", "--data_file", "d",
                                         "--rows", "-1"), 2, r"--rows must be >= 0 \(0: all\), got -1"),
    ("reward-eval-samples-zero", module("sidreasoner.rl.reward_eval", "--model_path", "m", "--data_file", "d",
                                        "--samples", "0"), 2, r"--samples must be >= 1, got 0"),
    ("reward-eval-temperature-negative", module("sidreasoner.rl.reward_eval", "--model_path", "m", "--data_file",
                                                "d", "--temperature", "-1"), 2,
     r"--temperature must be >= 0 \(0: greedy\), got -1\.0"),
    ("reward-eval-threads-negative", module("sidreasoner.rl.reward_eval", "--model_path", "m", "--data_file", "d",
                                            "--threads", "-2"), 2,
     r"--threads must be 0 \(torch's choice\) or >= 1, got -2"),
    # ---- python -m sidreasoner.pipeline (run_pipeline.sh, make demo; benchmarks/office_benchmark.py) ---------
    ("pipeline-env-stage1-lr-negative", pipeline("--dry_run", env={"STAGE1_LR": "-1e-3"}), 2,
     r"pipeline: error: STAGE1_LR \(--stage1_lr\) must be > 0, got -0\.001"),
    ("pipeline-dropout-one", pipeline("--dropout", "1", "--dry_run"), 2,
     r"DROPOUT \(--dropout\) must be in \[0, 1\), got 1\.0"),
    ("pipeline-think-eval-limit-negative", pipeline("--think_eval_limit", "-1", "--dry_run"), 2,
     r"THINK_EVAL_LIMIT \(--think_eval_limit\) must be >= 0 \(0: the whole split\), got -1"),
    ("pipeline-stage1-steps-zero", pipeline("--stage1_steps", "0", "--dry_run"), 2,
     r"STAGE1_STEPS \(--stage1_steps\) must be -1 \(STAGE1_EPOCHS epochs\) or > 0, got 0"),
    ("pipeline-env-threads-negative", pipeline("--dry_run", env={"THREADS": "-2"}), 2,
     r"THREADS \(--threads\) must be >= 0 \(0: torch's choice\), got -2"),
    ("pipeline-rl-rollout-n-one", pipeline("--rl_rollout_n", "1", "--dry_run"), 2,
     r"RL_ROLLOUT_N \(--rl_rollout_n\) must be >= 2"),
    ("pipeline-rl-kl-nan", pipeline("--rl_kl_coef", "nan", "--dry_run"), 2,
     r"RL_KL_COEF \(--rl_kl_coef\) must be >= 0, got nan"),
    ("pipeline-stage3-think-budget", pipeline("--rl_max_response_length", "10", "--dry_run"), 2,
     r"pipeline: error: stage 3 \(rl/trl_grpo\.py\): MAX_THINK_TOKENS must be >= 0, got -6"),
    ("office-benchmark-threads-negative", scr("benchmarks/office_benchmark.py", "--threads", "-1"), 2,
     r"--threads must be >= 0 \(0: torch's choice\), got -1"),
    ("office-benchmark-rl-steps-negative", scr("benchmarks/office_benchmark.py", "--data_dir", "nowhere",
                                               "--rl_steps", "-5"), 2, r"--rl_steps must be >= 0 \(0: skip stage 3\)"),
    # ---- benchmarks/ -----------------------------------------------------------------------------
    ("bench-beam-rows-zero", scr("benchmarks/bench_beam_search.py", "--rows", "0"), 2, r"--rows must be >= 1, got 0"),
    ("bench-beam-beams-zero", scr("benchmarks/bench_beam_search.py", "--beams", "10,0"), 2,
     r"--beams values must be >= 1, got 0"),
    ("bench-sft-rounds-zero", scr("benchmarks/bench_sft_throughput.py", "--rounds", "0"), 2,
     r"--rounds must be >= 1, got 0"),
    ("bench-sparse-micro-batch-zero", scr("benchmarks/bench_sparse_logits.py", "--micro_batch_size", "0"), 2,
     r"--micro_batch_size must be >= 1, got 0"),
    # ---- the stage shell scripts' own knobs (the rest go to sft.py / evaluate.py / the RL knobs) -------------
    ("sft-enrich-sh-nproc-text", shell("sft_Qwen3_enrich.sh", NPROC="two"), 2,
     r"sft_Qwen3_enrich\.sh: NPROC must be an integer >= 1, got 'two'"),
    ("sft-enrich-sh-master-port", shell("sft_Qwen3_enrich.sh", MASTER_PORT="70000"), 2,
     r"MASTER_PORT must be an integer >= 1 and <= 65535, got '70000'"),
    ("sft-reasoning-sh-nproc-zero", shell("sft_reasoning_activation.sh", NPROC="0"), 2,
     r"sft_reasoning_activation\.sh: NPROC must be an integer >= 1, got '0'"),
    ("evaluate-sh-nproc-negative", shell("evaluate_Qwen3.sh", NPROC="-1"), 2,
     r"evaluate_Qwen3\.sh: NPROC must be an integer >= 1, got '-1'"),
    ("evaluate-think-sh-nproc-text", shell("evaluate_Qwen3_think.sh", NPROC="4x"), 2,
     r"evaluate_Qwen3_think\.sh: NPROC must be an integer >= 1, got '4x'"),
]


@pytest.mark.parametrize("case, expected, pattern", [pytest.param(c, e, p, id=i) for i, c, e, p in CASES])
def test_bad_flag(case, expected, pattern, release, tiny_model_dir, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    status, message = case(Ctx(release, tiny_model_dir[0], tmp_path, monkeypatch))
    assert status == expected, f"status {status!r}, expected {expected!r}; message:\n{message}"
    assert re.search(pattern, message, re.S), f"message does not match {pattern!r}:\n{message}"
    assert "Traceback" not in message


def _numeric_fields(cls) -> set:
    import dataclasses
    from typing import get_type_hints
    hints = get_type_hints(cls)
    return {f.name for f in dataclasses.fields(cls) if hints[f.name] in (int, float, Optional[int], Optional[float])}


def test_every_numeric_knob_has_a_range():
    """A numeric field added to a config without a range fails here, not silently at run time."""
    from sidreasoner import pipeline_ranges
    from sidreasoner.pipeline import PipelineConfig
    from sidreasoner.rl import knobs
    from sidreasoner.train import sft_config
    assert _numeric_fields(PipelineConfig) - set(pipeline_ranges.RANGES) == {"stages"}  # plan() checks STAGES
    assert _numeric_fields(knobs.RLKnobs) - set(knobs.RANGES) == set()
    # sft_config.resolve checks these four together (they depend on each other)
    assert _numeric_fields(sft_config.SFTConfig) - set(sft_config._RANGES) == {
        "batch_size", "micro_batch_size", "rank_eval_rows", "rank_eval_beams", "rank_eval_think_rows",
        "rank_eval_think_tokens"}


def test_kinds_per_entry_point():
    """Both tables together cover every entry point (the id's prefix names it)."""
    import test_bad_inputs
    ids = [c[0] for c in test_bad_inputs.CASES + CASES]
    assert len(ids) == len(set(ids))
    prefixes = {i.split("-")[0] for i in ids}
    assert {"evaluate", "sft", "prepare", "knobs", "trl", "rl", "pipeline", "baselines", "fusion", "calibration",
            "effect", "metrics", "recommend", "reward", "diagnostics", "check", "compare", "build", "demo", "tiny",
            "synthesize", "merge", "office", "bench"} <= prefixes
