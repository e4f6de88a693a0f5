"""python scripts/make_demo_data.py --output_dir data/demo --seed 0

Write a synthetic catalogue and user sequences with planted structure in the release
layout: ``{train,valid,test}/<Cat>_5_2016-10-2018-11.csv``, ``index/<Cat>.index.json``,
``index/<Cat>.item.json`` and ``info/<Cat>_5_2016-10-2018-11.txt``, with SIDs from the project's SID
builder (``sidreasoner.build_sids``). It reads its output back with the format readers, checks it,
prints statistics and count baselines that show the structure is learnable, and writes
``<Cat>.demo_config.json`` (resolved config) and ``<Cat>.demo_report.json`` next to the data.
The same flags give byte-identical files. Exit status: 0 written and read back, 1 the written data failed its
read-back check, 2 a bad flag or an existing output (``--overwrite``).
"""
# no "from __future__ import annotations": tests load this file by path, outside sys.modules, where a dataclass
# with string annotations (DemoFlags) cannot be made
import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sidreasoner.data.demo import DemoConfig, DemoData, generate_demo, planted_stats, structure_baselines, write_release
from sidreasoner.data.formats import atomic_write_text
from sidreasoner.data.records import ReleasePaths, parse_categories
from sidreasoner.data.stats import compute_stats, render_stats
from sidreasoner.data.validate import ReleaseData, ValidationReport, check_release, load_release
from sidreasoner.flags import add_dataclass_args
from sidreasoner.ranges import exit_usage
from sidreasoner.build_sids import METHODS, SIDBuildConfig, SIDBuildResult, assign_sids, format_report
from sidreasoner.sid.spelling import parse_sid


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class DemoFlags:
    """The flags of make_demo_data.py (defaults: DemoConfig's and SIDBuildConfig's, but a fast embedder and a
    codebook whose first two levels can follow category and item kind)."""
    output_dir: str = field(metadata={"help": "data folder to write (release layout under it)", "required": True})
    category: str = _f(DemoConfig.category, "category name used in file names (default: %(default)s); several, "
                                            "comma-separated (Demo,Demo2), write one catalogue each, the first with "
                                            "--seed and the others with seeds drawn from it")
    seed: int = _f(DemoConfig.seed, "random seed for data and SIDs (default: %(default)s)")
    n_items: int = _f(DemoConfig.n_items, "catalogue size (default: %(default)s; at least 2 per item kind)")
    n_users: int = _f(DemoConfig.n_users, "number of users (default: %(default)s)")
    min_len: int = _f(DemoConfig.min_len, "shortest user sequence, interactions (default: %(default)s)")
    max_len: int = _f(DemoConfig.max_len, "longest user sequence, interactions (default: %(default)s)")
    embedder: str = _f("tfidf", "SID text embedder passed to the SID builder (default: %(default)s; e.g. minilm)")
    levels: int = _f(SIDBuildConfig.levels, "SID levels before collision resolution (default: %(default)s)")
    codebook_size: int = _f(32, "codes per SID level requested from the SID builder, which may shrink it for small "
                                "catalogues (default: %(default)s: the first two levels follow category and item "
                                "kind)")
    method: str = _f(SIDBuildConfig.method, "quantiser of the SID builder (default: %(default)s)", choices=METHODS)
    overwrite: bool = _f(False, "replace existing files of this category")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_dataclass_args(p, DemoFlags).parse_args(argv)


def read_back(paths: ReleasePaths) -> ReleaseData:
    """Read every file back with the format readers and cross-check them (sidreasoner.data.validate).
    Warnings count as failures here: demo SIDs must be unique and titles must agree."""
    report = ValidationReport()
    data = load_release(paths, report)
    check_release(data, report)
    if report.problems:
        raise SystemExit("make_demo_data: the written data does not validate:\n" + report.format())
    return data


def summarise(demo: DemoData, release: ReleaseData, sid_report: dict) -> dict:
    """Dataset statistics (sidreasoner.data.stats) plus the demo's own facts and learnability baselines."""
    cat = demo.catalogue.items
    pairs = {n: [(r.history_item_ids, r.item_id) for r in rows] for n, rows in release.splits.items()}
    dept = demo.department_of()
    # The same checks with the SID's first-level code as the "category": structure visible from SIDs alone.
    first_code = {i: parse_sid(sid)[0] for i, sid in release.index.items()}
    baselines = structure_baselines(pairs["train"], pairs["test"], dept)
    baselines["same_sid_first_code"] = structure_baselines(pairs["train"], pairs["test"], first_code)["same_category"]
    return {
        "dataset": compute_stats(release.splits, release.index, category=demo.config.category),
        "catalogue": {"items": len(cat), "categories": len({it.department for it in cat}),
                      "item_kinds": len({it.kind.name for it in cat}), "brands": len({it.brand for it in cat}),
                      "users": len(demo.users)},
        "planted_train": {**{k: round(v, 4) for k, v in planted_stats(pairs["train"], dept).items()},
                          "same_sid_first_code_as_last":
                              round(planted_stats(pairs["train"], first_code)["same_category_as_last"], 4)},
        "baselines_test": {b: {m: round(v, 4) for m, v in r.items()} for b, r in baselines.items()},
        "sid_report": sid_report,
    }


def print_summary(stats: dict) -> None:
    print(render_stats(stats["dataset"]))
    print("catalogue: " + ", ".join(f"{k} {v:,}" for k, v in stats["catalogue"].items()))
    print("planted structure (train): " + ", ".join(f"{k} {v:.3f}" for k, v in stats["planted_train"].items()))
    print("count baselines fitted on train, scored on test:")
    for name, m in stats["baselines_test"].items():
        print(f"  {name:<20}" + "  ".join(f"{k} {v:.4f}" for k, v in m.items()))
    print(format_report(stats["sid_report"]))


def build_sids(data: DemoData, cfg: SIDBuildConfig) -> SIDBuildResult:
    result = assign_sids(data.items(), cfg)
    if len(set(result.item_to_sid.values())) != len(result.item_to_sid):
        raise SystemExit("make_demo_data: the SID builder returned colliding SIDs")
    return result


def _rounded(obj, digits: int = 6):
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, digits) for v in obj]
    return obj


def category_seed(seed: int, position: int) -> int:
    """Seed of the category at ``position`` of ``--category A,B``: the first keeps ``--seed`` (its files are
    those of a one-category run), the others get seeds drawn from (seed, position), so two categories have
    different catalogues and users while sharing the SID token vocabulary (same levels and codebook)."""
    if position == 0:
        return seed
    return int(np.random.SeedSequence([seed, position]).generate_state(1)[0] % 2**31)


def write_category(args: argparse.Namespace, category: str, seed: int) -> None:
    """Generate, write, read back and summarise one category's files under --output_dir."""
    t0 = time.perf_counter()
    cfg = DemoConfig(category=category, n_items=args.n_items, n_users=args.n_users,
                     min_len=args.min_len, max_len=args.max_len, seed=seed)
    sid_cfg = SIDBuildConfig(embedder=args.embedder, levels=args.levels, codebook_size=args.codebook_size,
                             method=args.method, seed=seed)
    try:
        cfg.check()
        sid_cfg.validate()
    except ValueError as e:
        exit_usage("make_demo_data", e)
    out = Path(args.output_dir)
    paths = ReleasePaths(out, category)
    if paths.index_json.exists() and not args.overwrite:
        exit_usage("make_demo_data", f"{paths.index_json} exists; pass --overwrite to replace it")
    data = generate_demo(cfg, progress=True)
    result = build_sids(data, sid_cfg)
    write_release(data, result.item_to_sid, paths)
    stats = summarise(data, read_back(paths), result.report)
    print_summary(stats)
    # Timings and cache paths vary between runs, and float sums vary in the last digits with the BLAS
    # thread count: the saved report keeps only what the seed decides, floats rounded.
    sid_report = {k: v for k, v in result.report.items() if k != "seconds"}
    sid_report["embedder"] = {k: v for k, v in result.report["embedder"].items() if k != "cache_file"}
    stats["sid_report"] = _rounded(sid_report)
    resolved = {"args": {**vars(args), "category": category, "seed": seed},
                "demo": dataclasses.asdict(cfg), "sid": dataclasses.asdict(sid_cfg)}
    atomic_write_text(out / f"{category}.demo_config.json", json.dumps(resolved, indent=1, default=str) + "\n")
    atomic_write_text(out / f"{category}.demo_report.json", json.dumps(stats, indent=1, default=str) + "\n")
    print(f"wrote {out} (category {category}) in {time.perf_counter() - t0:.1f} s")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        categories = parse_categories(args.category)
    except ValueError as e:
        exit_usage("make_demo_data", f"--category: {e}")
    if len(categories) == 1:  # one category: exactly the files (and config) of before
        categories = [args.category]
    for position, category in enumerate(categories):
        write_category(args, category, category_seed(args.seed, position))
    return 0


if __name__ == "__main__":
    sys.exit(main())
