"""python benchmarks/office_benchmark.py [--data_dir ../shared/data/Amazon] [--threads 1]   (or: make bench-office)

The Office_Products benchmark: most-popular, SASRec, and the tiny Qwen3 pipeline after each stage in
both modes, on the test split of the real Amazon 2018 Office_Products data, all on CPU. It is
``run_pipeline.sh`` with the settings below (every finished step is skipped on a rerun, so a killed
run continues), then one table of HR@{1,3,5,10} and NDCG@{1,3,5,10} with the seconds each row took,
in ``results/office/results.md`` (+ chart), and a JSON line with each row's HR@10 relative to
most-popular (the same-run baseline).

CPU budget, measured on a shared 2-core machine with one torch thread: stage 1 (one epoch, 659
steps) 37 min, stage 2 (two epochs of the template reasoning corpus, 282 steps) 23 min, stage 3 (20 GRPO
steps) 9 min, SASRec 1 min, the evaluations 10 min: 81 minutes in all. Thinking-mode rows
are scored on the first ``--think_eval_limit`` test rows (default 1000) because each generates up to
384 reasoning tokens; non-thinking rows and the baselines use the whole split.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from sidreasoner import pipeline  # noqa: E402

OFFICE = REPO.parent / "shared" / "data" / "Amazon"

# Settings of the measured run. Stage 1 weights next-SID up and the title-generation tasks down: with
# 1.3M parameters the model cannot learn to write titles, and those tasks otherwise take half the steps.
OFFICE_SETTINGS = dict(
    category="Office_Products", run_dir="checkpoints/office", results_dir="results/office",
    baselines="popularity,sasrec", batch_size=64, micro_batch_size=32,
    stage1_steps=-1, stage1_epochs=1.0, stage1_lr=2e-3,
    stage1_task_weights="next_sid=2,sid_history_to_title=0.5,title_history_to_title=0.25",
    stage2_steps=-1, stage2_epochs=2.0, stage2_lr=2e-3, sft_eval_steps=150, warmup_steps=30,
    rl_steps=20, rl_lr=1e-4, rl_max_response_length=416,
    # the corpus's reasoning paths are 162 tokens on average (p99 269); the tiny model's own run longer
    eval_limit=0, think_eval_limit=1000, max_think_tokens=384)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=str(OFFICE), help="release folder holding Office_Products")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (1 is fastest on a busy CPU)")
    p.add_argument("--think_eval_limit", type=int, default=1000, help="test rows per thinking evaluation (0: all)")
    p.add_argument("--rl_steps", type=int, default=20, help="stage-3 GRPO steps (0: skip stage 3)")
    args = p.parse_args(argv)
    info = Path(args.data_dir) / "info" / "Office_Products_5_2016-10-2018-11.txt"
    if not info.is_file():
        raise SystemExit(f"office_benchmark: {info} not found; point --data_dir at the release folder "
                         "(python scripts/download_data.py fetches it)")
    cfg = pipeline.PipelineConfig(data_dir=args.data_dir, threads=args.threads, **{
        **OFFICE_SETTINGS, "think_eval_limit": args.think_eval_limit, "rl_steps": args.rl_steps})
    print(pipeline.run(cfg).read_text())
    res = Path(cfg.results_dir)
    metrics = {d.name: json.loads((d / "metrics.json").read_text()) for d in sorted(res.iterdir())
               if (d / "metrics.json").is_file()}
    pop = metrics["popularity"]["HR@10"]
    print(json.dumps({"hr10": {k: round(m["HR@10"], 4) for k, m in metrics.items()},
                      "hr10_vs_popularity": {k: round(m["HR@10"] / pop, 3) for k, m in metrics.items()}}))


if __name__ == "__main__":
    main()
