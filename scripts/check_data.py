"""python scripts/check_data.py --data_dir data/Amazon --category Office_Products [--json out.json]

Prints the statistics of a release folder and every problem found in it (grouped by kind: the
first --max_examples of each with the total), after reading all files and checking them against
each other. Exit status: 0 valid (warnings allowed), 1 errors found, 2 usage error (bad flags,
data folder or category not found).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from sidreasoner.data.formats import atomic_write_text
from sidreasoner.data.records import SPLIT_SUFFIX, SPLITS, ReleasePaths
from sidreasoner.data.stats import compute_stats, render_stats
from sidreasoner.data.validate import ValidationReport, check_release, load_release
from sidreasoner.flags import add_dataclass_args
from sidreasoner.ranges import at_least, parse_checked


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class CheckDataFlags:
    """The flags of check_data.py."""
    data_dir: Path = _f(None, "release folder holding train/ valid/ test/ index/ info/ (e.g. data/Amazon: "
                              "scripts/download_data.py)", required=True)
    category: str = _f(None, "category name as in the file names, e.g. Office_Products", required=True)
    split_suffix: str = _f(SPLIT_SUFFIX, "suffix of split/info file names after the category (default: %(default)s)")
    max_history: int = _f(10, "histories longer than this are reported as warnings (default: %(default)s)")
    max_examples: int = _f(5, "problems printed per kind; the total is always shown (default: %(default)s)")
    json: Optional[Path] = _f(None, "also write statistics, all problems and the resolved config to this JSON file")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(ap, CheckDataFlags)
    return parse_checked(ap, argv, {"max_history": at_least(1), "max_examples": at_least(0)})


def _usage_problem(paths: ReleasePaths) -> str | None:
    """A message when the folder or the category is plainly wrong (nothing of it to validate)."""
    data_dir = Path(paths.data_dir)
    if not data_dir.is_dir():
        return f"data folder not found: {data_dir} (expected a release folder with train/ valid/ test/ index/ info/)"
    expected = [paths.index_json, paths.item_json, paths.info, *(paths.split(s) for s in SPLITS)]
    if any(p.exists() for p in expected):
        return None
    found = sorted(p.name[:-len(".index.json")] for p in (data_dir / "index").glob("*.index.json"))
    return (f"no files of category {paths.category!r} under {data_dir}: expected e.g. {paths.index_json} and "
            f"{paths.split('train')}; categories found: {', '.join(found) or 'none'}")


def main(argv=None) -> int:
    args = parse_args(argv)
    paths = ReleasePaths(args.data_dir, args.category, split_suffix=args.split_suffix)
    problem = _usage_problem(paths)
    if problem:
        print(f"check_data.py: error: {problem}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    report = ValidationReport()
    data = load_release(paths, report)
    check_release(data, report, args.max_history)
    stats = compute_stats(data.splits, data.index, args.max_history, args.category) if data.index is not None else None
    print(render_stats(stats) if stats else "statistics: not available (index.json unreadable)")
    print()
    print(report.format(args.max_examples))
    print(f"checked in {time.perf_counter() - t0:.1f} s")
    if args.json:
        config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        atomic_write_text(args.json, json.dumps({"config": config, "stats": stats, "validation": report.to_dict()},
                                                indent=1) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
