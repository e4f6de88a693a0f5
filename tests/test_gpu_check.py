"""`make gpu-check` (scripts/gpu_smoke.py) and the GPU environment files (requirements-gpu.txt,
environment-gpu.yml): the smoke refuses at once without CUDA, its CPU variant runs every stage, and the GPU
pins agree with requirements.txt and with what the installed verl declares for its vLLM rollouts."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "scripts" / "gpu_smoke.py"
#: packages whose GPU pin differs from requirements.txt on purpose (requirements-gpu.txt says why)
GPU_ONLY_DIFFERENCES = {"torch", "numpy", "torchcodec", "torchvision", "torchaudio", "vllm", "ray"}


def _pins(path: Path) -> dict[str, str]:
    """name (lower case, extras dropped) -> the requirement's version ('' when unpinned)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?(==(\S+))?", line)
        assert m, f"{path.name}: unexpected line {line!r}"
        out[m.group(1).lower()] = m.group(4) or ""
    return out


def test_gpu_requirements_agree_with_requirements_txt():
    cpu, gpu = _pins(REPO / "requirements.txt"), _pins(REPO / "requirements-gpu.txt")
    assert set(cpu) <= set(gpu), f"missing on GPU: {sorted(set(cpu) - set(gpu))}"
    differ = {name for name in cpu if cpu[name] != gpu[name]}
    assert differ <= GPU_ONLY_DIFFERENCES, f"GPU pins differ from requirements.txt: {sorted(differ - GPU_ONLY_DIFFERENCES)}"
    assert set(gpu) - set(cpu) <= GPU_ONLY_DIFFERENCES
    env = (REPO / "environment-gpu.yml").read_text()
    assert "- -r requirements-gpu.txt" in env and "python=3.11" in env


def test_gpu_pins_are_what_the_installed_verl_declares_for_vllm():
    """verl's wheel pins the CUDA set of its vLLM rollouts in its `vllm` extra (torch, vllm, ...)."""
    declared = {}
    for req in requires("verl") or []:
        m = re.fullmatch(r'([A-Za-z0-9_.-]+)==(\S+); extra == "vllm"', req)
        if m:
            declared[m.group(1).lower()] = m.group(2)
    gpu = _pins(REPO / "requirements-gpu.txt")
    assert {"torch", "vllm"} <= set(declared)
    # transformers: verl's vllm extra says 5.9.0; we keep requirements.txt's 5.10.4 (verl-core allows <5.11)
    assert {k: gpu[k] for k in declared if k in gpu and k != "transformers"} == \
        {k: v for k, v in declared.items() if k in gpu and k != "transformers"}


def test_smoke_refuses_at_once_without_cuda():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "GPU_CHECK_DEVICE": "", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(SMOKE)], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == ""
    assert "gpu_smoke: no CUDA device visible to torch" in out.stderr
    assert "make gpu-check GPU_CHECK_DEVICE=cpu" in out.stderr
    make = subprocess.run(["make", "-s", "gpu-check", f"GPU_PY={sys.executable}"], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)
    assert make.returncode == 2 and "no CUDA device visible to torch" in make.stderr


def test_smoke_rejects_a_bad_device_and_a_used_work_dir(tmp_path):
    bad = subprocess.run(["make", "-s", "gpu-check", "GPU_CHECK_DEVICE=gpu", f"GPU_PY={sys.executable}"],
                         capture_output=True, text=True, cwd=REPO)  # make's variable, checked by make
    assert bad.returncode == 2 and "GPU_CHECK_DEVICE must be cpu or cuda, got 'gpu'" in bad.stderr
    (tmp_path / "leftover").write_text("x")
    used = subprocess.run([sys.executable, str(SMOKE), "--cpu", "--work_dir", str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO)
    assert used.returncode == 2 and "is not empty" in used.stderr


def test_verl_step_sets_the_scripts_knobs_on_its_command_line(tmp_path):
    """The verl smoke runs the cluster's script as a user calls it (``env NAME=value ... bash``), the pipeline's
    step runner passing no environment of its own."""
    spec = importlib.util.spec_from_file_location("_smoke_verl", SMOKE)
    smoke = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = smoke  # dataclasses look their module up
    spec.loader.exec_module(smoke)
    step = smoke.verl_step(tmp_path, flash_attn=True)
    assert step.cmd[0] == "env" and "BACKEND=verl" in step.cmd and "NGPUS=1" in step.cmd
    assert step.cmd[step.cmd.index("bash") + 1] == "RL_training_script.sh"
    assert smoke.describe(step) == "RL_training_script.sh BACKEND=verl"
    assert not hasattr(step, "env")


@pytest.mark.slow
def test_cpu_smoke_runs_every_stage(tmp_path):
    """The CPU variant of `make gpu-check`: every stage passes (about 70 s on 2 busy cores)."""
    work = tmp_path / "smoke"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(SMOKE), "--cpu", "--work_dir", str(work)], capture_output=True,
                         text=True, env=env, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.split()}
    for step, runs in [("demo_data", "make_demo_data.py"), ("tiny_model", "make_tiny_model.py"),
                       ("stage1_sft", "sft.py"), ("teacher_corpus", "synthesize_corpus.py"),
                       ("stage2_sft", "sft.py"), ("stage3_data", "prepare_data.py"), ("stage3_grpo", "trl_grpo.py"),
                       ("eval_stage3_nothink", "evaluate.py"), ("eval_stage3_think", "evaluate.py")]:
        assert runs in rows[step] and rows[step].rstrip().endswith("PASS"), rows.get(step)
    assert "SKIP: needs CUDA" in rows["stage3_verl"]
    assert "gpu_smoke: passed" in out.stdout and "gpu tests" not in rows
    assert (work / "run" / "stage3" / "final_checkpoint" / "config.json").is_file()
    assert (work / "results" / "stage3_think" / "metrics.json").is_file()
