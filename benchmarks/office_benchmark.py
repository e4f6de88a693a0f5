"""python benchmarks/office_benchmark.py [--data_dir data/Amazon] [--category Office_Products]
                                     [--stages 1|2|3] [--threads 2]   (or: make bench-office)

The Office_Products benchmark (or any category in the release layout, ``--category``): most-popular,
SASRec and last-item transitions, and the tiny Qwen3 pipeline after each stage (up to ``--stages``) in
both modes, on the test split of the real Amazon 2018 data, all on CPU. It is ``run_pipeline.sh`` with
the settings below (every finished step is skipped on a rerun, so a killed run continues), then one table
of HR@{1,3,5,10} and NDCG@{1,3,5,10} with the seconds each row took, in ``results/<name>/results.md``
(+ chart), where <name> is the category's first word in lower case (``results/office`` for
Office_Products; models in ``checkpoints/<name>``). The LAST line printed is ``results/<name>/summary.json``
as one JSON object: NDCG@10 and HR@10 of every run over all the rows it scored (``ndcg10``, ``hr10``),
NDCG@10 of every run on the first ``same_rows_n`` test rows, the ones thinking mode scored
(``same_rows_ndcg10``), and the seconds of every step (``seconds``).

CPU budget for Office_Products, measured on a shared 2-core machine with two torch threads:
``--stages 1`` took 24 minutes (SASRec 199 s beside another job, stage 1 1,184 s for 16 epochs with a
valid-ranking evaluation after each, the test evaluations 52 s). With the earlier one-epoch mixture stage 1, stage 2 (two epochs of
the template reasoning corpus) took 23 min and stage 3 (20 GRPO steps) 9 min. Thinking-mode rows are
scored on the first ``--think_eval_limit`` test rows (default 2000) because each generates up to 384
reasoning tokens; non-thinking rows and the baselines use the whole split.
"""
import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from sidreasoner import pipeline  # noqa: E402
from sidreasoner.data.records import ReleasePaths  # noqa: E402
from sidreasoner.flags import add_dataclass_args  # noqa: E402
from sidreasoner.paths import DEFAULT_DATA_DIR  # noqa: E402
from sidreasoner.pipeline_ranges import RANGES  # noqa: E402
from sidreasoner.ranges import UsageError, exit_usage, parse_checked  # noqa: E402

OFFICE = REPO / DEFAULT_DATA_DIR  # python scripts/download_data.py fills it
BENCH_BASELINES = "popularity,sasrec,transitions"  # overrides OFFICE_SETTINGS["baselines"]

# Settings of the measured run. Stage 1 is the small-model recipe of the pipeline's defaults (compact
# prompt, next-SID only with the history loss, the last-item crops, dropout 0.1, untied output
# embeddings, the checkpoint with the best valid NDCG@10 on 1,000 valid rows; README "Stage 1 at small
# scale"), with a larger batch and longer run for the larger data set: Office has 9,484 train rows,
# 16,555 stage-1 examples with the crops (259 steps an epoch at batch 64; one valid-ranking evaluation
# an epoch), and early stopping ends the run after four evaluations without a better valid NDCG@10.
# 16 epochs were chosen over 10 on valid (best NDCG@10 0.1207 vs 0.1175, before the history loss weight).
OFFICE_SETTINGS = dict(
    category="Office_Products", run_dir="checkpoints/office", results_dir="results/office",
    baselines="popularity,sasrec", batch_size=64, micro_batch_size=64,
    stage1_steps=-1, stage1_epochs=16.0, stage1_lr=2e-3, stage1_eval_steps=259,
    # stage 2: the pipeline's lr and replay; 400 steps see ~5,900 reasoning paths beside ~19,700 replayed rows
    stage2_steps=400, stage2_epochs=1.0, sft_eval_steps=100, warmup_steps=30,
    # stage 3: the pipeline's recipe as chosen on the demo's valid rows (6 steps of 8 prompts x 16 beam rollouts,
    # rank reward, valid prompts, the searched SID out of the loss, lr 5e-5, KL 0.01), with room for Office's
    # longer reasoning and valid curves on 200 rows. The earlier Office recipe (20 steps of 8 x 8, the SID in the
    # loss, lr 1e-4, KL 0.001) blew up on this stage-2 model: KL 24,059, valid thinking NDCG@10 0.047 -> 0.013
    rl_max_response_length=416, rl_valid_rows=200,
    # the corpus's reasoning paths are 162 tokens on average (p99 269); the tiny model's own run longer
    eval_limit=0, think_eval_limit=2000, max_think_tokens=384)


def short_name(category: str) -> str:
    """Folder name of a category's runs: its first word in lower case (Office_Products -> office)."""
    return category.split("_")[0].lower()


def build_config(args) -> pipeline.PipelineConfig:
    """OFFICE_SETTINGS for ``args.category``: its data, its run and results folders, the flags' values."""
    info = ReleasePaths(Path(args.data_dir), args.category).info
    if not info.is_file():
        raise UsageError(f"{info} not found; point --data_dir at the release folder holding "
                         f"{args.category} (python scripts/download_data.py --category {args.category} fetches it)")
    name = short_name(args.category)
    return pipeline.PipelineConfig(data_dir=str(args.data_dir), threads=args.threads, **{
        **OFFICE_SETTINGS, "category": args.category, "run_dir": f"checkpoints/{name}",
        "results_dir": f"results/{name}", "baselines": BENCH_BASELINES, "stages": args.stages,
        "think_eval_limit": args.think_eval_limit, "rl_steps": args.rl_steps})


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class OfficeBenchFlags:
    """The flags of office_benchmark.py (the rest of the run: OFFICE_SETTINGS)."""
    data_dir: str = _f(str(OFFICE), "release folder holding the category (default: %(default)s)")
    category: str = _f("Office_Products", "category in the release file names, e.g. Office_Products "
                                          "(default: %(default)s)")
    stages: int = _f(3, "stop after this stage and its evaluations (default: %(default)s)", choices=(1, 2, 3))
    threads: int = _f(2, "torch threads per process; the steps run one at a time, so 2 uses both cores of a 2-core "
                         "machine (stage 1: 1.55x the steps per second of 1 thread when nothing else runs; use 1 on "
                         "a busy CPU) (default: %(default)s)")
    think_eval_limit: int = _f(OFFICE_SETTINGS["think_eval_limit"], "test rows per thinking evaluation (0: all; "
                                                                    "default %(default)s)")
    rl_steps: int = _f(pipeline.PipelineConfig.rl_steps, "stage-3 GRPO steps (0: skip stage 3; default: the "
                                                         "pipeline's)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(p, OfficeBenchFlags)
    args = parse_checked(p, argv, {k: RANGES[k] for k in ("threads", "think_eval_limit", "rl_steps")})
    try:  # missing data: exit 2 as a bad flag; a failing pipeline step: exit 1
        cfg = build_config(args)
    except UsageError as e:
        exit_usage("office_benchmark", e)
    print(pipeline.run(cfg).read_text())
    summary = json.loads((Path(cfg.results_dir) / pipeline.SUMMARY_FILE).read_text())
    print(json.dumps(summary), flush=True)  # the last line: the summary for scripts


if __name__ == "__main__":
    main()
