"""The end-to-end driver (sidreasoner.pipeline): plan, knobs, skip-if-done, failure reporting.

The full pipeline itself runs in `make demo`; here its plumbing is tested without training anything.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidreasoner import pipeline as P

REPO = Path(__file__).resolve().parents[1]


def test_env_knobs_override_defaults(monkeypatch):
    monkeypatch.setenv("DATA_DIR", "/data/Amazon")
    monkeypatch.setenv("CATEGORY", "Office_Products")
    monkeypatch.setenv("STAGE1_STEPS", "7")
    cfg = P.PipelineConfig.from_env()
    assert (cfg.data_dir, cfg.category, cfg.stage1_steps) == ("/data/Amazon", "Office_Products", 7)
    assert cfg.stage2_steps == P.PipelineConfig().stage2_steps


def test_plan_on_real_data_skips_generation_and_uses_the_stage_scripts():
    cfg = P.PipelineConfig(data_dir="/data/Amazon", category="Office_Products", base_model="/models/qwen")
    names = [s.name for s in P.plan(cfg)]
    assert "demo_data" not in names and "tiny_model" not in names
    stage1 = next(s for s in P.plan(cfg) if s.name == "stage1_sft")
    assert stage1.cmd[:2] == ["bash", "sft_Qwen3_enrich.sh"]
    assert stage1.env["BASE_MODEL"] == "/models/qwen" and stage1.env["DATA_DIR"] == "/data/Amazon"
    evals = [s for s in P.plan(cfg) if s.name.startswith("eval_")]
    assert {s.cmd[1] for s in evals} == {"evaluate_Qwen3.sh", "evaluate_Qwen3_think.sh"}
    assert all(s.env["PYTHON"] == sys.executable for s in evals)


def test_demo_plan_order():
    names = [s.name for s in P.plan(P.PipelineConfig())]
    assert names.index("demo_data") < names.index("tiny_model") < names.index("stage1_sft")
    assert names.index("stage1_sft") < names.index("teacher_corpus") < names.index("stage2_sft")
    assert names.index("eval_stage1_nothink") < names.index("stage2_sft")


def test_run_steps_skips_done_and_reports_failures(tmp_path):
    done = tmp_path / "done.txt"
    done.write_text("x")
    made = tmp_path / "made.txt"
    steps = [P.Step("already", done, ["false"]),  # would fail if it ran
             P.Step("make", made, [sys.executable, "-c", f"open({str(made)!r}, 'w').write('ok')"])]
    timings = P.run_steps(steps, tmp_path / "logs")
    assert [t["status"] for t in timings] == ["skipped", "ran"] and made.read_text() == "ok"
    bad = [P.Step("broken", tmp_path / "never", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"])]
    with pytest.raises(SystemExit, match=r"(?s)\[1/1\] broken failed \(exit 3\).*boom"):
        P.run_steps(bad, tmp_path / "logs")


def test_step_that_exits_0_without_its_output_is_a_failure(tmp_path):
    steps = [P.Step("silent", tmp_path / "missing", [sys.executable, "-c", "pass"])]
    with pytest.raises(SystemExit, match=r"silent failed \(exit 0\)"):
        P.run_steps(steps, tmp_path / "logs")


def test_cli_help_and_dry_run():
    out = subprocess.run([sys.executable, "-m", "sidreasoner.pipeline", "--help"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    for knob in ("--data_dir", "--stage1_steps", "--eval_limit", "--rl_steps"):
        assert knob in out
    env = {**os.environ, "PYTHON": sys.executable}
    dry = subprocess.run(["bash", "run_pipeline.sh", "--dry_run"], cwd=REPO, capture_output=True, text=True,
                         check=True, env=env).stdout
    assert "stage1_sft:" in dry and "sft_Qwen3_enrich.sh" in dry
