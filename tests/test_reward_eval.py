"""sidreasoner.rl.reward_eval: scoring of free-generated completions (table-driven, hand-computed), greedy
and sampled generation from the tiny model on real RL parquet rows, and the CLI's report and errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)
from fixtures_sft import CATEGORY, write_tiny_release

from sidreasoner.rl.prepare import PrepareConfig, prepare_rl_data
from sidreasoner.rl.reward_eval import evaluate_reward, first_rows, score_completions

REPO = Path(__file__).resolve().parents[1]
TRUTH = "<a_1><b_2><c_3>"
CATALOGUE = frozenset({TRUTH, "<a_1><b_2><c_4>", "<a_9><b_9><c_9>"})


def _rec(truth=TRUTH):
    return {"reward_model": {"ground_truth": truth}}


# completion -> (score, think_closed, in-catalogue); default weights 0.25 / 0.5 / 1.0 by depth + 0.1 validity bonus
CASES = [
    ("<think>\nbuys pens\n</think>\n\n<a_1><b_2><c_3>", 1.1, True, True),     # exact, closed
    ("<think>\nbuys pens\n</think>\n\n<a_1><b_2><c_4>", 0.6, True, True),     # two levels, valid
    ("<think>\nbuys pens\n</think>\n\n<a_1><b_7><c_7>", 0.25, True, False),   # one level, not in catalogue
    ("<think>\nbuys pens and never stops", 0.0, False, False),                # unclosed, no SID
    ("<think>\nhmm\n</think>\n\n<a_9><b_9><c_9>", 0.1, True, True),           # wrong but valid: the bonus only
]


@pytest.mark.parametrize("text, score, closed, valid", CASES)
def test_one_completion(text, score, closed, valid):
    mean, comps = score_completions([_rec()], [[text]], CATALOGUE)
    assert mean == pytest.approx(score)
    assert comps["think_closed"] == float(closed)
    assert comps["closed_and_valid"] == float(closed and valid)


def test_means_over_rows_and_samples():
    texts = [c[0] for c in CASES]
    mean, comps = score_completions([_rec(), _rec()], [texts[:3], texts[3:] + [texts[0]]], CATALOGUE)
    assert mean == pytest.approx((1.1 + 0.6 + 0.25 + 0.0 + 0.1 + 1.1) / 6)
    assert comps["closed_and_valid"] == pytest.approx(4 / 6) and comps["parsed"] == pytest.approx(5 / 6)
    _, no_cat = score_completions([_rec()], [texts[:1]], None)
    assert "closed_and_valid" not in no_cat and no_cat["valid_bonus"] == 0.0
    with pytest.raises(ValueError, match="no completions"):
        score_completions([], [], CATALOGUE)


@pytest.fixture(scope="module")
def rl_rows(tmp_path_factory):
    root = tmp_path_factory.mktemp("reward_eval")
    release = write_tiny_release(root / "data", with_corpora=False)
    prepare_rl_data(PrepareConfig(data_dir=str(release.data_dir), category=CATEGORY, output_dir=str(root / "rl")),
                    say=lambda *_: None)
    return root / "rl" / "valid.parquet", release


def test_greedy_is_repeatable_and_sampling_needs_a_seed(tiny_model_dir, rl_rows):
    from sidreasoner.rl.data import read_rl_parquet
    from sidreasoner.model.model_factory import load_model_and_tokenizer
    model, tok = load_model_and_tokenizer(tiny_model_dir[0], dtype="float32", device="cpu")
    rows = first_rows(read_rl_parquet(rl_rows[0]), 3)
    run = lambda **kw: evaluate_reward(model, tok, rows, True, CATALOGUE, max_new_tokens=12, **kw)  # noqa: E731
    a, b = run(samples=1, temperature=0.0, seed=0), run(samples=1, temperature=0.0, seed=5)
    assert (a.prompts, a.samples_per_prompt) == (3, 1) and a.components == b.components  # greedy ignores the seed
    s1, s2 = run(samples=2, temperature=1.0, seed=3), run(samples=2, temperature=1.0, seed=3)
    assert s1.mean_reward == s2.mean_reward and s1.components == s2.components
    with pytest.raises(ValueError, match="greedy decoding"):
        run(samples=2, temperature=0.0)


def test_cli_report_and_errors(tiny_model_dir, rl_rows, tmp_path):
    parquet, release = rl_rows
    out = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "sidreasoner.rl.reward_eval", "--model_path", str(tiny_model_dir[0]),
           "--data_file", str(parquet), "--info_file", str(release.info), "--rows", "2", "--samples", "1",
           "--temperature", "0", "--max_new_tokens", "8", "--threads", "1", "--output", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["prompts"] == 2 and 0.0 <= report["components"]["closed_and_valid"] <= 1.0
    bad = subprocess.run(cmd[:6] + [str(tmp_path / "missing.parquet")], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "RL parquet not found" in bad.stderr
