"""python scripts/gpu_smoke.py [--cpu] [--work_dir DIR] [--verl auto|on|off] [--no_tests]

The smoke behind ``make gpu-check``: on a CUDA node, the GPU tests (``pytest -m gpu``), then every stage
of the pipeline for a few steps on a small copy of the demo data with the tiny Qwen3 built in code:
demo data -> tiny model -> stage 1 (sft.py, as sft_Qwen3_enrich.sh calls it) -> template teacher corpus ->
stage 2 (sft.py --stage reasoning) -> stage 3 with TRL (rl/prepare_data.py, rl/trl_grpo.py: what
RL_training_script.sh BACKEND=trl runs) -> evaluation of the stage-3 model in both modes (evaluate.py),
then stage 3 with verl (``BACKEND=verl bash RL_training_script.sh``, its knobs set on the command line: 2 GRPO
steps with vLLM rollouts and the FSDP merge) when verl, vLLM and Ray import.
The stages run as the pipeline runs them (sidreasoner.pipeline's plan, with tiny knobs): on CUDA the SFT
and TRL trainers use bf16 autocast over fp32 master weights and the evaluator loads the model in bf16.
It prints seconds and PASS/FAIL per step and exits 1 on any failure.

Without CUDA it stops at once (exit 2) unless ``--cpu`` (or ``GPU_CHECK_DEVICE=cpu``) asks for the same
smoke on the CPU (no GPU tests, no verl), which is how it is tested off a GPU node.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sidreasoner.flags import add_dataclass_args

EXIT_NO_CUDA = 2
NO_CUDA_MESSAGE = ("gpu_smoke: no CUDA device visible to torch ({why}); `make gpu-check` runs on a GPU node, "
                   "in the environment of environment-gpu.yml. For a dry run of the same smoke on the CPU: "
                   "`make gpu-check GPU_CHECK_DEVICE=cpu` (or scripts/gpu_smoke.py --cpu).")

#: the pipeline knobs of the smoke (sidreasoner.pipeline.PipelineConfig fields): a few optimiser steps a stage
SMOKE_KNOBS = dict(
    category="Demo", seed=0, baselines="", stages=3,
    stage1_steps=20, stage1_eval_steps=10, rank_eval_rows=50, early_stopping_patience=0, warmup_steps=2,
    stage2_steps=10, sft_eval_steps=5,
    rl_steps=2, rl_rollout_n=4, rl_batch_size=4, rl_max_response_length=64, rl_valid_rows=0,
    eval_limit=50, think_eval_limit=10, max_think_tokens=32, fusion_valid_rows=0,
)
#: size of the smoke's demo data (scripts/make_demo_data.py; the demo itself: 1200 items, 1500 users)
DEMO_SIZE = ["--n_items", "300", "--n_users", "300"]
#: verl: the knobs of tests/test_verl_config.py::test_two_verl_steps_end_to_end
VERL_ENV = {"NGPUS": "1", "ROLLOUT_N": "4", "TRAIN_BATCH_SIZE": "8", "MICRO_BATCH_SIZE": "4", "MAX_STEPS": "2",
            "SAVE_FREQ": "2", "TEST_FREQ": "0", "MAX_RESPONSE_LENGTH": "64", "MAX_PROMPT_LENGTH": "512",
            "LOG_PROB_MICRO_BATCH_SIZE": "8", "GPU_MEMORY_UTILIZATION": "0.3", "PROMPTS_FROM": "train"}
#: verl's FSDP model defaults to flash_attention_2 with padding removal; without flash-attn: sdpa, padded
NO_FLASH_ATTN_OVERRIDES = ["+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
                           "actor_rollout_ref.model.use_remove_padding=False"]


_CUDA_PROBE = """
import torch
if not torch.cuda.is_available():
    print(f"no|torch {torch.__version__}, torch.cuda.is_available() is False")
else:
    bf16 = "yes" if torch.cuda.is_bf16_supported() else "no"
    print(f"yes|{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, bf16 {bf16}")
"""


def cuda_status() -> tuple[bool, str]:
    """(CUDA usable, a description: the device, or why not). Asked in a child, so that this process holds
    no CUDA context (and no GPU memory) while the stages and vLLM run."""
    out = subprocess.run([sys.executable, "-c", _CUDA_PROBE], capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0 or "|" not in out.stdout:
        lines = out.stderr.strip().splitlines()
        return False, "torch does not import: " + (lines[-1] if lines else f"exit {out.returncode}")
    ok, about = out.stdout.strip().split("|", 1)
    return ok == "yes", about


def verl_status() -> tuple[bool, str]:
    """(verl's GPU path can run, why not): verl, vLLM and Ray must import (in a child, they are heavy)."""
    out = subprocess.run([sys.executable, "-c", "import verl, vllm, ray; print(vllm.__version__)"],
                         capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        return False, "verl/vllm/ray do not import: " + (lines[-1] if lines else f"exit {out.returncode}")
    return True, f"vllm {out.stdout.strip()}"


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class SmokeFlags:
    """The flags of gpu_smoke.py."""
    cpu: bool = _f(False, "run the smoke on the CPU (no GPU tests, no verl): a dry run off a GPU node "
                          "(env GPU_CHECK_DEVICE=cpu)")
    work_dir: Optional[str] = _f(None, "folder for data, models, results and logs (default: a fresh temporary folder, "
                                       "removed after a pass and kept after a failure); must be empty or absent")
    verl: str = _f("auto", "stage 3 with verl: auto = when on CUDA and verl, vllm and ray import (otherwise a SKIP "
                           "row says why); on = a failure when it cannot run; off = never",
                    choices=["auto", "on", "off"])
    no_tests: bool = _f(False, "leave out `pytest -m gpu`")
    all_evals: bool = _f(False, "evaluate after every stage, as the pipeline does (default: the stage-3 model only)")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(p, SmokeFlags)  # `make gpu-check GPU_CHECK_DEVICE=cpu` passes --cpu
    return p.parse_args(argv)


def pipeline_steps(work: Path, all_evals: bool) -> list:
    """The pipeline's own steps for the smoke's knobs, after a step that writes the small demo data."""
    from sidreasoner.data.records import ReleasePaths
    from sidreasoner.pipeline import PipelineConfig, plan
    from sidreasoner.pipeline_steps import Step

    data = work / "data"
    cfg = PipelineConfig(**SMOKE_KNOBS, data_dir=str(data), run_dir=str(work / "run"),
                         results_dir=str(work / "results"))
    steps = [Step("demo_data", ReleasePaths(data, cfg.category).info,
                  [sys.executable, "scripts/make_demo_data.py", "--output_dir", str(data), "--seed", str(cfg.seed),
                   "--category", cfg.category, *DEMO_SIZE])]
    for st in plan(cfg):
        if all_evals or not st.name.startswith(("eval_stage1", "eval_stage2")):
            steps.append(st)
    return steps


def verl_step(work: Path, flash_attn: bool):
    """Stage 3 on verl from the smoke's stage-2 model: 2 steps, then the merge of global_step_2."""
    from sidreasoner.pipeline_steps import Step

    out = work / "run" / "stage3_verl"
    env = {**VERL_ENV, "BACKEND": "verl", "CATEGORY": SMOKE_KNOBS["category"], "DATA_DIR": str(work / "data"),
           "MODEL_PATH": str(work / "run" / "stage2" / "final_checkpoint"), "RL_DATA_DIR": str(work / "run" / "rl_data_verl"),
           "OUTPUT_DIR": str(out), "PYTHON": sys.executable, "LOG_FILE": str(out / "train.log")}
    extra = [] if flash_attn else NO_FLASH_ATTN_OVERRIDES
    # the cluster's entry point as a user calls it: its knobs are the script's variables, set on its command line
    return Step("stage3_verl", out / "global_step_2" / "actor_merged" / "config.json",
                ["env", *(f"{k}={v}" for k, v in env.items()), "bash", "RL_training_script.sh", *extra])


def describe(step) -> str:
    """What a step runs, for the table: the stage script or the Python entry point."""
    cmd = [str(c) for c in step.cmd]
    if cmd[0] == "env":  # env NAME=value ... bash <script>: the stage script and its backend
        names = dict(c.split("=", 1) for c in cmd[1:cmd.index("bash")])
        backend = names.get("BACKEND")
        return cmd[cmd.index("bash") + 1] + (f" BACKEND={backend}" if backend else "")
    if cmd[1] == "-m":
        return cmd[2]
    return Path(cmd[1]).name if len(cmd) > 1 else cmd[0]


def run_step(step, log_dir: Path) -> tuple[bool, float, str]:
    """(passed, seconds, failure text) of one pipeline step, run as the pipeline runs it."""
    from sidreasoner.pipeline_steps import run_steps

    t0 = time.time()
    try:
        run_steps([step], log_dir, heartbeat_s=30.0)
        return True, time.time() - t0, ""
    except SystemExit as e:
        return False, time.time() - t0, str(e)


def table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("step", "runs", "seconds", "result")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w) if i != 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([line(head), line(tuple("-" * w for w in widths)), *map(line, rows)])


def main(argv=None) -> int:
    args = parse_args(argv)
    ok, about = (False, "") if args.cpu else cuda_status()
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # every child (trainers, evaluator) sees no GPU
        about = "CPU dry run (GPU_CHECK_DEVICE=cpu / --cpu): no GPU tests, no verl"
    elif not ok:
        print(NO_CUDA_MESSAGE.format(why=about), file=sys.stderr)
        return EXIT_NO_CUDA
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="sidreasoner_gpu_smoke_"))
    if work.exists() and any(work.iterdir()):
        print(f"gpu_smoke: --work_dir {work} is not empty (the steps would be skipped as done)", file=sys.stderr)
        return 2
    print(f"gpu_smoke: {about}", flush=True)

    rows: list[tuple[str, str, str, str]] = []
    failed = False
    t_all = time.time()
    if not args.cpu and not args.no_tests:
        t0 = time.time()
        out = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"], cwd=REPO)
        rows.append(("gpu tests", "pytest -m gpu", f"{time.time() - t0:.1f}", "PASS" if out.returncode == 0 else
                     f"FAIL (exit {out.returncode})"))
        failed |= out.returncode != 0

    log_dir = work / "logs"
    steps = pipeline_steps(work, args.all_evals)
    run_verl, why_not = False, "off (--verl off)"
    if args.verl != "off":
        if args.cpu:
            why_not = "needs CUDA"
        else:
            run_verl, why_not = verl_status()
        if run_verl:
            flash = importlib.util.find_spec("flash_attn") is not None
            steps.append(verl_step(work, flash))
            if not flash:
                print("gpu_smoke: flash-attn not installed: verl runs with " + " ".join(NO_FLASH_ATTN_OVERRIDES),
                      flush=True)
        elif args.verl == "on":
            failed = True
    print(f"gpu_smoke: {len(steps)} steps in {work} (logs in {log_dir})", flush=True)
    stopped = False  # each step needs the ones before it: after a failure the rest do not run
    for st in steps:
        if stopped:
            rows.append((st.name, describe(st), "-", "not run"))
            continue
        passed, secs, why = run_step(st, log_dir)
        rows.append((st.name, describe(st), f"{secs:.1f}", "PASS" if passed else "FAIL"))
        if not passed:
            failed = stopped = True
            print(why, file=sys.stderr, flush=True)
    if not run_verl:
        rows.append(("stage3_verl", "RL_training_script.sh BACKEND=verl", "-",
                     ("FAIL: " if args.verl == "on" else "SKIP: ") + why_not))
    total = time.time() - t_all
    print("\n" + table(rows))
    print(f"\ngpu_smoke: {'FAILED' if failed else 'passed'} in {total:.0f} s ({about})", flush=True)
    if failed:
        print(f"gpu_smoke: logs kept in {log_dir}", flush=True)
    elif not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
