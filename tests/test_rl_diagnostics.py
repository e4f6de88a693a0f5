"""Stage-3 diagnostics (sidreasoner.rl.diagnostics): series picked from a GRPO log by hand, the summary
file, a torn last line, and the CLI's message for a folder without a log."""
from __future__ import annotations

import json

import pytest

from sidreasoner.rl import diagnostics as D

LOG = [
    {"step": 1, "reward": 0.1, "frac_reward_zero_std": 0.5, "sid/exact": 0.0, "kl": 0.0, "entropy": 5.0},
    {"step": 1, "val/reward_mean": 0.2},  # the TEST_FREQ evaluation logs its own line
    {"step": 2, "reward": 0.3, "frac_reward_zero_std": 0.25, "sid/exact": 0.5, "kl": 0.01, "entropy": 4.0},
    {"step": 3, "reward": 0.2, "frac_reward_zero_std": 0.0, "sid/exact": 0.25, "kl": 0.02, "entropy": 3.0,
     "train_runtime": 9.0},
]


def test_series_and_summary_by_hand():
    summary = D.summarise(D.series(LOG))
    assert summary["zero_variance_groups"] == {"first": 0.5, "last": 0.0, "mean": 0.25, "points": 3}
    assert summary["reward"]["mean"] == pytest.approx(0.2) and summary["reward_exact"]["last"] == 0.25
    assert summary["valid_reward"] == {"first": 0.2, "last": 0.2, "mean": 0.2, "points": 1}
    assert "completion_length" not in summary  # not logged: not made up


def test_write_diagnostics_skips_a_torn_last_line(tmp_path):
    (tmp_path / D.LOG_NAME).write_text("".join(json.dumps(e) + "\n" for e in LOG) + '{"step": 4, "rew')
    summary = D.write_diagnostics(tmp_path)
    assert summary["steps"] == 3 and json.loads((tmp_path / D.DIAGNOSTICS_NAME).read_text()) == summary
    assert (tmp_path / "diagnostics.png").stat().st_size > 0
    assert "zero_variance_groups" in D.describe(summary)


def test_cli_without_a_log(tmp_path, capsys):
    assert D.main([str(tmp_path)]) == 2
    assert "no stage-3 log" in capsys.readouterr().err


def _rows(step, groups):
    """verl's V1 rollout dump: one row per rollout (prompt, response, target, score)."""
    return "".join(json.dumps({"input": prompt, "output": out, "gts": "<a_1><b_2><c_3>", "score": score,
                               "step": step, "uid": f"{prompt}_{i}_0"}) + "\n"
                   for prompt, rollouts in groups.items() for i, (out, score) in enumerate(rollouts))


def test_verl_logs_read_as_the_trl_log(tmp_path):
    """BACKEND=verl: verl_log.jsonl (metrics) + rollouts/<step>.jsonl (groups) -> the same series, by hand."""
    from sidreasoner.rl import verl_log as V
    hit, near, none = ("<think>x</think><a_1><b_2><c_3>", "<think>x</think><a_1><b_2><c_0>", "<think>x")
    metrics = [{"step": 1, "data": {"critic/score/mean": 0.4, "actor/kl_loss": 0.0, "actor/entropy": 2.0,
                                    "response_length/mean": 30.0, "timing_s/step": 9.0}},
               {"step": 1, "data": {"val-core/sidreasoner/Demo/reward/mean@1": 0.15,
                                    "val-aux/sidreasoner/Demo/exact/mean@1": 0.1}},
               {"step": 2, "data": {"critic/score/mean": 0.6, "actor/kl_loss": 0.02, "actor/entropy": 1.5}}]
    (tmp_path / V.VERL_LOG_NAME).write_text("".join(json.dumps(m) + "\n" for m in metrics) + '{"step": 3, "da')
    dumps = tmp_path / V.ROLLOUT_DIR_NAME
    dumps.mkdir()
    # step 1: prompt p all equal (zero variance), q spread; step 2: both spread
    (dumps / "1.jsonl").write_text(_rows(1, {"p": [(none, 0.0), (none, 0.0)], "q": [(hit, 1.1), (near, 0.6)]}))
    (dumps / "2.jsonl").write_text(_rows(2, {"p": [(hit, 1.1), (none, 0.0)], "q": [(near, 0.6), (hit, 1.1)]}))
    summary = D.write_diagnostics(tmp_path)
    assert summary["steps"] == 2 and "verl_log.jsonl" in summary["log"]
    assert summary["zero_variance_groups"] == {"first": 0.5, "last": 0.0, "mean": 0.25, "points": 2}
    assert summary["reward"] == {"first": 0.4, "last": 0.6, "mean": 0.5, "points": 2}
    assert summary["kl"]["last"] == 0.02 and summary["completion_length"]["points"] == 1
    assert summary["valid_reward"] == {"first": 0.15, "last": 0.15, "mean": 0.15, "points": 1}
    # re-read from the responses: step 1 exact 1/4, closed 2/4, parsed 2/4; step 2 exact 2/4
    assert summary["reward_exact"]["first"] == 0.25 and summary["reward_exact"]["last"] == 0.5
    assert summary["think_closed"]["first"] == 0.5 and summary["parsed"]["first"] == 0.5
    assert summary["reward_levels"]["first"] == pytest.approx((3 + 2) / 4)
    assert (tmp_path / "diagnostics.png").is_file()


def test_verl_dump_with_the_rewards_parts_and_the_rank_reward(tmp_path):
    """verl's legacy trainer dumps compute_score's keys: they are used as they are (the rank part's own
    zero-variance share too)."""
    from sidreasoner.rl import verl_log as V
    rows = [{"input": "p", "score": 0.5, "rank_ndcg": 0.5, "in_list": 1, "target_prob": 0.2, "think_closed": 1},
            {"input": "p", "score": 0.6, "rank_ndcg": 0.5, "in_list": 1, "target_prob": 0.4, "think_closed": 0}]
    entry = V.rollout_entry(rows)
    assert entry["frac_reward_zero_std"] == 0.0 and entry["sid/rank_zero_std"] == 1.0
    assert entry["sid/target_prob"] == pytest.approx(0.3) and entry["sid/think_closed"] == 0.5
    assert "sid/exact" not in entry


def test_no_log_of_either_backend_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="grpo_log.jsonl of BACKEND=trl, or verl_log.jsonl"):
        D.write_diagnostics(tmp_path)
