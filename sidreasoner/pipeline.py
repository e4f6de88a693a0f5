"""The end-to-end pipeline behind ``make demo`` and ``run_pipeline.sh``.

    bash run_pipeline.sh                                   # the embedded demo: synthetic data, tiny model, CPU
    DATA_DIR=../shared/data/Amazon CATEGORY=Office_Products bash run_pipeline.sh   # real data
    python -m sidreasoner.pipeline --help                  # every knob

Each step runs one of the user-facing entry points (the stage shell scripts, ``evaluate.py``, ...) as a
subprocess, logs to ``logs/pipeline/<step>.log`` and is skipped when its output already exists, so a
rerun after a kill continues where it stopped. Knobs are environment variables with the same names as
the stage scripts' (``DATA_DIR CATEGORY BASE_MODEL ...``). The last step tables every evaluation
(stage x mode: HR@K, NDCG@K, invalid rate) under ``RESULTS_DIR`` with a chart.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]


@dataclass
class PipelineConfig:
    """Knobs; each can be set by the environment variable of the same name in upper case."""

    data_dir: str = field(default="", metadata={"help": "release data folder; empty: generate the demo data"})
    category: str = field(default="Demo", metadata={"help": "category name in the release layout"})
    base_model: str = field(default="", metadata={"help": "HF model folder/id; empty: build a tiny Qwen3"})
    run_dir: str = field(default="checkpoints/demo", metadata={"help": "where models of every stage go"})
    results_dir: str = field(default="results/demo", metadata={"help": "evaluations, table and chart"})
    seed: int = field(default=0, metadata={"help": "seed of the demo data and the training runs"})
    stage1_steps: int = field(default=300, metadata={"help": "stage-1 optimiser steps (-1: full epochs)"})
    stage2_steps: int = field(default=150, metadata={"help": "stage-2 optimiser steps (-1: full epochs)"})
    rl_steps: int = field(default=20, metadata={"help": "stage-3 GRPO steps (TRL backend)"})
    batch_size: int = field(default=64, metadata={"help": "SFT examples per optimiser step"})
    micro_batch_size: int = field(default=32, metadata={"help": "SFT examples per forward pass"})
    stage1_lr: float = field(default=2e-3, metadata={"help": "stage-1 learning rate (tiny models like it high)"})
    stage2_lr: float = field(default=5e-4, metadata={"help": "stage-2 learning rate"})
    eval_limit: int = field(default=500, metadata={"help": "test rows per evaluation (0: the whole split)"})
    num_beams: int = field(default=10, metadata={"help": "beams = SIDs returned per row"})
    max_think_tokens: int = field(default=160, metadata={"help": "reasoning budget in thinking mode"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads per process (0: torch's choice)"})

    @classmethod
    def from_env(cls) -> "PipelineConfig":
        kw = {}
        for f in fields(cls):
            val = os.environ.get(f.name.upper())
            if val not in (None, ""):
                kw[f.name] = type(f.default)(val)
        return cls(**kw)


@dataclass
class Step:
    name: str
    done: Path                     # the step is skipped when this exists
    cmd: list
    env: dict = field(default_factory=dict)


def _eval_steps(cfg: PipelineConfig, stage: str, model: Path, data: Path) -> list[Step]:
    """Non-thinking and thinking evaluation of one stage's model on the same test rows."""
    steps = []
    for mode, script in (("nothink", "evaluate_Qwen3.sh"), ("think", "evaluate_Qwen3_think.sh")):
        out = Path(cfg.results_dir) / f"{stage}_{mode}"
        extra = ["--limit", str(cfg.eval_limit)] if cfg.eval_limit else []
        extra += ["--threads", str(cfg.threads)] if cfg.threads else []
        env = {"BASE_MODEL": str(model), "DATA_DIR": str(data), "CATEGORY": cfg.category, "SPLIT": "test", "PYTHON": sys.executable,
               "OUTPUT_DIR": str(out), "NUM_BEAMS": str(cfg.num_beams), "MAX_THINK_TOKENS": str(cfg.max_think_tokens)}
        steps.append(Step(f"eval_{stage}_{mode}", out / "metrics.json", ["bash", script] + extra, env))
    return steps


def plan(cfg: PipelineConfig) -> list[Step]:
    """The ordered steps: data -> tiny model -> stage 1 -> corpus -> stage 2 -> stage 3, evals after each."""
    py, run = sys.executable, Path(cfg.run_dir)
    data = Path(cfg.data_dir) if cfg.data_dir else Path("data/demo")
    steps: list[Step] = []
    # 1. demo data (its SIDs come from the SID builder, sidreasoner.sid.build); real data is used as is
    if not cfg.data_dir:
        steps.append(Step("demo_data", data / "info" / f"{cfg.category}_5_2016-10-2018-11.txt",
                          [py, "scripts/make_demo_data.py", "--output_dir", str(data), "--seed", str(cfg.seed),
                           "--category", cfg.category]))
    steps.append(Step("popularity_baseline", Path(cfg.results_dir) / "popularity" / "metrics.json",
                      [py, "-m", "sidreasoner.baselines", "popularity", "--data_dir", str(data), "--category",
                       cfg.category, "--output_dir", str(Path(cfg.results_dir) / "popularity"),
                       "--num_beams", str(cfg.num_beams)]))
    # 2. base model: a tiny Qwen3 with a tokenizer trained on the catalogue, unless one is given
    base = Path(cfg.base_model) if cfg.base_model else run / "tiny"
    if not cfg.base_model:
        steps.append(Step("tiny_model", base / "config.json",
                          [py, "scripts/make_tiny_model.py", "--data_dir", str(data), "--category", cfg.category,
                           "--output_dir", str(base), "--seed", str(cfg.seed)]))
    sft_common = ["--max_steps", str(cfg.stage1_steps), "--eval_steps", str(max(cfg.stage1_steps // 3, 1)),
                  "--seed", str(cfg.seed)]
    env_sft = {"DATA_DIR": str(data), "CATEGORY": cfg.category, "BATCH_SIZE": str(cfg.batch_size),
               "MICRO_BATCH_SIZE": str(cfg.micro_batch_size), "PYTHON": py}
    # 3. stage 1: SID-language alignment
    s1 = run / "stage1"
    steps.append(Step("stage1_sft", s1 / "final_checkpoint" / "config.json", ["bash", "sft_Qwen3_enrich.sh"] + sft_common,
                      dict(env_sft, BASE_MODEL=str(base), OUTPUT_DIR=str(s1), LEARNING_RATE=str(cfg.stage1_lr))))
    steps += _eval_steps(cfg, "stage1", s1 / "final_checkpoint", data)
    # 4. teacher corpus (offline template teacher) for stage 2
    corpus = run / "corpus"
    narrative = corpus / f"{cfg.category}.integrated_narrative.csv"
    steps.append(Step("teacher_corpus", narrative,
                      [py, "scripts/synthesize_corpus.py", "--data_dir", str(data), "--category", cfg.category,
                       "--output_dir", str(corpus), "--teacher", "template", "--seed", str(cfg.seed), "--no_progress"]))
    # 5. stage 2: reasoning activation
    s2 = run / "stage2"
    s2_flags = ["--max_steps", str(cfg.stage2_steps), "--eval_steps", str(max(cfg.stage2_steps // 3, 1)),
                "--seed", str(cfg.seed)]
    steps.append(Step("stage2_sft", s2 / "final_checkpoint" / "config.json", ["bash", "sft_reasoning_activation.sh"] + s2_flags,
                      dict(env_sft, BASE_MODEL=str(s1 / "final_checkpoint"), OUTPUT_DIR=str(s2),
                           REASONING_FILE=str(narrative), LEARNING_RATE=str(cfg.stage2_lr))))
    steps += _eval_steps(cfg, "stage2", s2 / "final_checkpoint", data)
    return steps


def run_steps(steps: list[Step], log_dir: Path) -> list[dict]:
    """Run the steps in order, skipping finished ones; stop at the first failure (its log is named)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    timings = []
    for i, st in enumerate(steps, 1):
        head = f"[{i}/{len(steps)}] {st.name}"
        if st.done.exists():
            print(f"{head}: done already ({st.done}), skipped", flush=True)
            timings.append({"step": st.name, "seconds": None, "status": "skipped"})
            continue
        log = log_dir / f"{st.name}.log"
        print(f"{head}: running (log {log})", flush=True)
        t0 = time.time()
        with open(log, "w") as f:
            proc = subprocess.run(st.cmd, cwd=REPO, env={**os.environ, **st.env}, stdout=f, stderr=subprocess.STDOUT)
        secs = round(time.time() - t0, 1)
        if proc.returncode != 0 or not st.done.exists():
            tail = "".join(open(log, errors="replace").readlines()[-15:])
            raise SystemExit(f"{head} failed (exit {proc.returncode}) after {secs} s; last lines of {log}:\n{tail}")
        print(f"{head}: {secs} s", flush=True)
        timings.append({"step": st.name, "seconds": secs, "status": "ran"})
    return timings


def summarise(cfg: PipelineConfig, timings: list[dict]) -> Path:
    """Table (stage x mode) + chart of every evaluation under results_dir; step times as JSON."""
    from .eval.report import load_runs, write_comparison
    res = Path(cfg.results_dir)
    order = ["popularity"] + [f"{s}_{m}" for s in ("stage1", "stage2", "stage3") for m in ("nothink", "think")]
    names = [name for name in order if (res / name / "metrics.json").is_file()]
    metrics = [f"{m}@{k}" for m in ("HR", "NDCG") for k in (1, 5, 10) if k <= cfg.num_beams] + ["invalid_rate"]
    md, _png = write_comparison(load_runs([res / n for n in names], names), metrics, res)
    (res / "pipeline_steps.json").write_text(json.dumps({"config": asdict(cfg), "steps": timings}, indent=1) + "\n")
    return md


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(PipelineConfig):
        parser.add_argument(f"--{f.name}", type=type(f.default), default=None,
                            help=f"{f.metadata['help']} (env {f.name.upper()}; default {f.default!r})")
    parser.add_argument("--dry_run", action="store_true", help="print the steps and their commands, run nothing")
    args = parser.parse_args(argv)
    cfg = PipelineConfig.from_env()
    for f in fields(PipelineConfig):
        if getattr(args, f.name) is not None:
            setattr(cfg, f.name, getattr(args, f.name))
    steps = plan(cfg)
    if args.dry_run:
        for st in steps:
            env = " ".join(f"{k}={v}" for k, v in st.env.items())
            print(f"{st.name}: {env} {' '.join(map(str, st.cmd))}  [done when {st.done} exists]")
        return
    t0 = time.time()
    timings = run_steps(steps, Path("logs") / "pipeline")
    table = summarise(cfg, timings)
    print(Path(table).read_text() if Path(table).is_file() else table)
    print(f"pipeline finished in {time.time() - t0:.0f} s; results in {cfg.results_dir}")


if __name__ == "__main__":
    main()
