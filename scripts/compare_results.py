"""python scripts/compare_results.py RUN_DIR [RUN_DIR ...] [--metrics HR@10,NDCG@10] [--output_dir OUT] [--names A B]

Compare evaluation runs: reads each run folder's metrics.json (and its config JSON for a label), prints
a run x metric markdown table and writes OUT/comparison.md, OUT/comparison.png (grouped bar chart) and
OUT/compare_config.json.

Example pages (a few rows with history titles, reasoning, top-5 with titles, hit marked) for people to read:

    python scripts/compare_results.py --examples RUN_DIR --info_file INFO [--split_csv TEST_CSV] [--n 10]

writes RUN_DIR/examples.md from RUN_DIR/predictions.jsonl (``--examples`` may repeat, and may be combined
with a comparison in one call).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from sidreasoner.data.formats import atomic_write_text, read_info_index, read_split_csv
from sidreasoner.data.records import DataError
from sidreasoner.eval.metrics import read_predictions
from sidreasoner.eval.report import default_metric_names, load_runs, markdown_table, write_comparison, write_examples_page
from sidreasoner.flags import add_dataclass_args
from sidreasoner.ranges import at_least, parse_checked


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class CompareFlags:
    """The command line of compare_results.py."""
    runs: list = field(default_factory=list, metadata={
        "help": "run folders (each with metrics.json) or metrics.json files", "positional": True, "nargs": "*",
        "type": Path})
    metrics: Optional[str] = _f(None, "comma-separated metric names, e.g. HR@10,NDCG@10 (default: every HR@K and "
                                      "NDCG@K found)")
    names: Optional[list] = _f(None, "labels for the runs, in order (default: config run_name/name, else folder "
                                     "name)", nargs="+", type=str)
    output_dir: Path = _f(Path("results/comparison"), "where comparison.md / comparison.png / compare_config.json "
                                                      "go (default: results/comparison)")
    examples: list = field(default_factory=list, metadata={
        "help": "write RUN_DIR/examples.md from RUN_DIR/<predictions_file>; may repeat", "action": "append",
        "type": Path, "metavar": "RUN_DIR"})
    predictions_file: str = _f("predictions.jsonl", "name of the predictions JSONL inside each --examples folder "
                                                    "(default: predictions.jsonl)")
    info_file: Optional[Path] = _f(None, "catalogue info file (SID<TAB>title<TAB>item_id) for titles; required with "
                                         "--examples")
    split_csv: Optional[Path] = _f(None, "the evaluated split CSV, to show each example's history (optional)")
    n: int = _f(10, "examples per page (default: 10)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Compare evaluation runs (table + bar chart) and/or write example pages.")
    return add_dataclass_args(p, CompareFlags)


def _compare(args) -> None:
    runs = load_runs(args.runs, args.names)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else default_metric_names(runs)
    if not metrics:
        raise ValueError("no metrics to compare: pass --metrics or give runs whose metrics.json has HR@K / NDCG@K")
    print(markdown_table(runs, metrics))
    md, png = write_comparison(runs, metrics, args.output_dir)
    config = {"runs": [str(r.path) for r in runs], "labels": [r.label for r in runs], "metrics": metrics,
              "output_dir": str(args.output_dir)}
    atomic_write_text(args.output_dir / "compare_config.json", json.dumps(config, indent=1) + "\n")
    print(f"wrote {md} and {png}")


def _examples(args) -> None:
    if args.info_file is None:
        raise ValueError("--examples needs --info_file (the catalogue, for titles)")
    index = read_info_index(args.info_file)
    rows = read_split_csv(args.split_csv) if args.split_csv else None
    for run_dir in args.examples:
        preds, _ = read_predictions(run_dir / args.predictions_file)
        page = write_examples_page(run_dir, preds, rows=rows, titles=index, n=args.n)
        print(f"wrote {page}")


def main(argv=None) -> int:
    parser = build_parser()
    args = parse_checked(parser, argv, {"n": at_least(1)})
    if not args.runs and not args.examples:
        parser.error("give run folders to compare and/or --examples RUN_DIR")
    try:
        if args.runs:
            _compare(args)
        if args.examples:
            _examples(args)
    except (DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
