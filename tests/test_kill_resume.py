"""Real SIGKILL of a running process group, then a rerun with the same arguments:

* the pipeline's step runner (``run_steps``) driving one ``evaluate.py --resume`` step, killed (driver and step
  together) once the first prediction is on disk: the rerun ends with the metrics of an uninterrupted run and one
  prediction per row;
* ``rl/trl_grpo.py`` killed once ``checkpoint-1`` is complete: the rerun resumes, ends at ``max_steps`` with a
  final checkpoint, and ``grpo_log.jsonl`` holds each training step once;
* ``sft.py`` killed once ``checkpoint-2`` is complete: the rerun resumes and ends as an uninterrupted run (the
  same training log with each step once, the same train loss in ``sft_summary.json``, the same final weights);
* ``scripts/synthesize_corpus.py --teacher openai`` against a local chat server (tests/fixtures_teacher.py) that
  answers slowly, killed once the answer cache holds two complete answers: no corpus is at its final path yet, the
  rerun sends only the requests the cache lacks (each once) and writes corpora byte-identical to an
  uninterrupted run's with a fresh cache.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fixtures_model import REPO_ROOT, tiny_model_dir  # noqa: F401  (pytest fixture)
from fixtures_sft import CATEGORY, write_tiny_release

from sidreasoner.eval.predictions import read_records

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
       "TOKENIZERS_PARALLELISM": "false"}
N_TEST_ROWS = 16  # fixtures_sft: one test row per user


def _wait_for(cond, proc: subprocess.Popen, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            pytest.fail(f"the process ended (exit {proc.returncode}) before {what}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    pytest.fail(f"timed out waiting for {what}")


def _kill_group(proc: subprocess.Popen):
    os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


# -- 1. the pipeline's step runner through an evaluation step ----------------------------------------------------

DRIVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from sidreasoner.pipeline_steps import Step, run_steps
    model, data, cat, out, logs = sys.argv[1:6]
    cmd = [sys.executable, "evaluate.py", "--base_model", model, "--data_dir", data, "--category", cat,
           "--output_dir", out, "--num_beams", "4", "--batch_size", "1", "--resume"]
    run_steps([Step("evaluate", Path(out) / "metrics.json", cmd)], Path(logs), heartbeat_s=1.0)
""")


def _driver(model, data, out: Path, logs: Path) -> list:
    return [sys.executable, "-c", DRIVER, str(model), str(data), CATEGORY, str(out), str(logs)]


def test_pipeline_evaluate_step_killed_then_rerun(tiny_model_dir, tmp_path):
    model = tiny_model_dir[0]
    data = write_tiny_release(tmp_path / "data", with_corpora=False).data_dir
    out, pred = tmp_path / "killed", tmp_path / "killed" / "predictions.jsonl"
    proc = subprocess.Popen(_driver(model, data, out, tmp_path / "logs"), env=ENV, cwd=REPO_ROOT,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: _lines(pred) >= 1, proc, 300, "the first prediction line")
    _kill_group(proc)  # the driver and its evaluate.py step at once
    n_before = _lines(pred)
    assert not (out / "metrics.json").exists() and 0 < n_before < N_TEST_ROWS, n_before

    again = subprocess.run(_driver(model, data, out, tmp_path / "logs"), env=ENV, cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "[1/1] evaluate: running" in again.stdout  # the step was not finished, so it ran again (resuming)

    clean = tmp_path / "clean"
    ref = subprocess.run(_driver(model, data, clean, tmp_path / "clean_logs"), env=ENV, cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stdout[-2000:] + ref.stderr[-2000:]

    assert json.loads((out / "metrics.json").read_text()) == json.loads((clean / "metrics.json").read_text())
    rows = [r["row"] for r in read_records(pred)]
    assert len(rows) == len(set(rows)) == N_TEST_ROWS  # no row twice, none missing
    assert sorted(rows) == sorted(r["row"] for r in read_records(clean / "predictions.jsonl"))

    third = subprocess.run(_driver(model, data, out, tmp_path / "logs"), env=ENV, cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and "done already" in third.stdout  # a finished step is skipped


# -- 2. TRL GRPO ------------------------------------------------------------------------------------------------

def _grpo_cmd(model, data, rl, out) -> list:
    flags = {"category": CATEGORY, "data_dir": data, "model_path": model, "rl_data_dir": rl, "output_dir": out,
             "rollout_n": 8, "train_batch_size": 4, "micro_batch_size": 16, "max_steps": 3,
             "max_response_length": 48, "lr": 1e-2, "kl_coef": 0.001, "save_freq": 1, "test_freq": 0,
             "eval_rows": 0, "device": "cpu", "seed": 0}
    return [sys.executable, str(REPO_ROOT / "rl" / "trl_grpo.py")] + [x for k, v in flags.items()
                                                                    for x in (f"--{k}", str(v))]


def _logged_steps(log: Path) -> list:
    if not log.is_file():
        return []
    steps = []
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # a line being written
            continue
        if "reward" in entry:
            steps.append(entry["step"])
    return steps


@pytest.mark.parametrize("kill_at", ["checkpoint-1", "step-2-logged"])
def test_trl_grpo_killed_then_rerun(tiny_model_dir, tmp_path, kill_at):
    """checkpoint-1: killed once checkpoint-1/trainer_state.json exists (the brief's kill point); step-2-logged:
    killed as soon as step 2's line is in grpo_log.jsonl (the Trainer logs before it saves, so checkpoint-2 may
    be incomplete and step 2 is trained again: its old line must not stay beside the new one)."""
    from sidreasoner.rl.prepare import PrepareConfig, prepare_rl_data
    release = write_tiny_release(tmp_path / "data", with_corpora=False)
    rl = tmp_path / "rl"
    prepare_rl_data(PrepareConfig(data_dir=str(release.data_dir), category=CATEGORY, output_dir=str(rl)),
                    say=lambda *_: None)
    out = tmp_path / "out"
    cmd = _grpo_cmd(tiny_model_dir[0], release.data_dir, rl, out)
    proc = subprocess.Popen(cmd, env=ENV, cwd=REPO_ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kill_at == "checkpoint-1":
        _wait_for(lambda: (out / "checkpoint-1" / "trainer_state.json").is_file(), proc, 600, "checkpoint-1")
    else:
        _wait_for(lambda: 2 in _logged_steps(out / "grpo_log.jsonl"), proc, 600, "step 2's log line")
    _kill_group(proc)
    print(f"killed at {kill_at}: {sorted(p.name for p in out.iterdir())}, logged steps "
          f"{_logged_steps(out / 'grpo_log.jsonl')}")
    assert not (out / "grpo_summary.json").exists() and not (out / "final_checkpoint").exists()

    again = subprocess.run(cmd, env=ENV, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "resuming from" in again.stdout and "checkpoint-" in again.stdout
    summary = json.loads((out / "grpo_summary.json").read_text())
    assert summary["steps"] == 3
    assert Path(summary["final_checkpoint"]) == out / "final_checkpoint"
    assert (out / "final_checkpoint" / "model.safetensors").is_file()
    train_steps = _logged_steps(out / "grpo_log.jsonl")
    assert sorted(train_steps) == [1, 2, 3], train_steps  # each training step logged once, none lost
    assert len(summary["rewards_logged"]) == 3


# -- 3. SFT (sft.py) --------------------------------------------------------------------------------------------

def _sft_cmd(model, data, out: Path) -> list:
    flags = {"base_model": model, "data_dir": data, "category": CATEGORY, "output_dir": out,
             "tasks": "next_sid,title_to_sid", "batch_size": 8, "micro_batch_size": 4, "learning_rate": 5e-3,
             "warmup_steps": 0, "max_valid_per_task": 8, "logging_steps": 1, "seed": 0, "max_steps": 6,
             "eval_steps": 2, "log_file": out / "log.jsonl"}
    return [sys.executable, str(REPO_ROOT / "sft.py")] + [x for k, v in flags.items() for x in (f"--{k}", str(v))]


def _train_log(log: Path) -> list:
    return [(r["step"], round(r["loss"], 4)) for r in map(json.loads, log.read_text().splitlines()) if "loss" in r]


def test_sft_killed_then_rerun(tiny_model_dir, tmp_path):
    """Killed once checkpoint-2 is complete (trainer_state.json written), before the end; the same command again
    resumes and ends as an uninterrupted run: the same training log (each step once), the same whole-run train
    loss in sft_summary.json and the same final weights."""
    import torch
    from safetensors.torch import load_file
    data = write_tiny_release(tmp_path / "data", with_corpora=False).data_dir
    out = tmp_path / "killed"
    cmd = _sft_cmd(tiny_model_dir[0], data, out)
    proc = subprocess.Popen(cmd, env=ENV, cwd=REPO_ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: (out / "checkpoint-2" / "trainer_state.json").is_file(), proc, 600, "checkpoint-2")
    _kill_group(proc)
    print(f"killed: {sorted(p.name for p in out.iterdir())}")
    assert not (out / "final_checkpoint").exists()

    again = subprocess.run(cmd, env=ENV, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "resuming from" in again.stdout and "checkpoint-" in again.stdout

    clean = tmp_path / "clean"
    ref = subprocess.run(_sft_cmd(tiny_model_dir[0], data, clean), env=ENV, cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=600)
    assert ref.returncode == 0, ref.stdout[-2000:] + ref.stderr[-2000:]

    logged = [_train_log(d / "log.jsonl") for d in (out, clean)]
    assert [s for s, _ in logged[0]] == [1, 2, 3, 4, 5, 6], logged[0]  # each training step once, none lost
    assert logged[0] == logged[1]
    summaries = [json.loads((d / "final_checkpoint" / "sft_summary.json").read_text()) for d in (out, clean)]
    assert summaries[0]["train_metrics"]["train_loss"] == summaries[1]["train_metrics"]["train_loss"]
    a, b = (load_file(str(d / "final_checkpoint" / "model.safetensors")) for d in (out, clean))
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


# -- 4. teacher corpus synthesis (scripts/synthesize_corpus.py) ------------------------------------------------

N_TEACHER_REQUESTS = 8 + 10  # fixtures_teacher: 8 items, 10 train rows; canned answers all pass, no repairs
CORPORA = ("Tiny.item_enhanced_v2.json", "Tiny.integrated_narrative.csv")


def _synth_cmd(url: str, data: Path, out: Path) -> list:
    flags = {"data_dir": data, "category": "Tiny", "output_dir": out, "teacher": "openai", "teacher_url": url,
             "teacher_model": "teacher-x", "api_key_env": "SIDR_TEST_KEY", "concurrency": 2, "max_retries": 2,
             "timeout": 30, "backoff_base": 0.01, "backoff_max": 0.1, "cache_path": out / "cache.jsonl",
             "seed": 0}
    return [sys.executable, str(REPO_ROOT / "scripts" / "synthesize_corpus.py"), "--no_progress"] + \
        [x for k, v in flags.items() for x in (f"--{k}", str(v))]


def _cached_keys(cache: Path) -> list:
    """Keys of the cache's complete lines (a last line without its newline is a write the kill cut short)."""
    raw = cache.read_bytes() if cache.is_file() else b""
    return [json.loads(line)["key"] for line in raw.split(b"\n")[:-1] if line.strip()]


def test_synthesize_corpus_killed_then_rerun(tmp_path):
    """Killed (its whole process group) once the answer cache holds two complete answers, before the last request:
    no corpus is at its final path; the same command again exits 0 having sent only the requests missing from the
    cache, each once, and its corpora are byte-identical to an uninterrupted run's with a fresh cache."""
    from fixtures_teacher import ChatServer, Reply, canned, write_tiny_release as write_teacher_release

    from sidreasoner.teacher.cache import request_key

    def slow(body, headers):  # deterministic answers, slow enough for the kill to land mid-run
        return Reply(body=canned(body, headers).body, delay=0.2)

    def key(body) -> str:  # the client's cache key of a request the server saw
        return request_key(body["model"], body["messages"], {k: body[k] for k in ("temperature", "max_tokens")})

    data = write_teacher_release(tmp_path / "data").data_dir
    out, clean = tmp_path / "killed", tmp_path / "clean"
    env = {k: v for k, v in ENV.items() if k != "SIDR_TEST_KEY"}
    with ChatServer(slow) as srv:
        cmd = _synth_cmd(srv.url, data, out)
        proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(lambda: len(_cached_keys(out / "cache.jsonl")) >= 2, proc, 120, "two cached answers")
        _kill_group(proc)
        cached = _cached_keys(out / "cache.jsonl")
        first = [key(r["body"]) for r in srv.requests]
        print(f"killed: {len(cached)} answers cached, {len(first)} requests sent, "
              f"{sorted(p.name for p in out.iterdir())}")
        assert 0 < len(cached) < N_TEACHER_REQUESTS and len(set(cached)) == len(cached)
        assert set(cached) <= set(first)
        assert not any((out / name).exists() for name in CORPORA) and not (out / "Tiny.synthesis_stats.json").exists()

        again = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        rerun = [key(r["body"]) for r in srv.requests[len(first):]]
        ref = subprocess.run(_synth_cmd(srv.url, data, clean), env=env, cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=120)
        assert ref.returncode == 0, ref.stdout[-2000:] + ref.stderr[-2000:]
        full = [key(r["body"]) for r in srv.requests[len(first) + len(rerun):]]

    assert len(full) == len(set(full)) == N_TEACHER_REQUESTS
    # the rerun asked for exactly what the cache lacked, each once (requests in flight at the kill go again)
    assert len(rerun) == len(set(rerun)) and not set(rerun) & set(cached)
    assert set(rerun) | set(cached) == set(full)
    stats = json.loads((out / "Tiny.synthesis_stats.json").read_text())
    assert stats["requests"] == {"cached": len(cached), "sent": N_TEACHER_REQUESTS - len(cached)}
    assert stats["cache"]["loaded"] == len(cached) and stats["cache"]["appended"] == len(rerun)
    for name in CORPORA:
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name
    assert sorted(_cached_keys(out / "cache.jsonl")) == sorted(full)  # each answer cached once
