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
