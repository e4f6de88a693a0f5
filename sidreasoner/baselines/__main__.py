"""python -m sidreasoner.baselines {popularity,sasrec,transitions} --data_dir DIR --category CAT --output_dir OUT
       [--split test]

Classic baselines on the same splits, catalogue and metrics as the SID models: writes
OUT/predictions.jsonl (the evaluator's record format, ranked SIDs), OUT/metrics.json (HR@K / NDCG@K via
the evaluator's finalize), OUT/config.json, OUT/run.json (timing) and OUT/examples.md, so

    python scripts/compare_results.py results/popularity results/sasrec results/tiny_nothink

tables them side by side. ``popularity``: most-popular items of the train split. ``sasrec``: SASRec
trained on the train split with early stopping on valid (also writes OUT/sasrec.pt and
OUT/train_log.jsonl). ``transitions``: the items that followed the row's last item in train, most
often first, backed off to most-popular. Exit status: 0 done, 2 bad flags or bad/missing data (message
names file, line, field).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..data.records import SPLIT_SUFFIX, SPLITS, DataError, ReleasePaths
from ..flags import add_dataclass_args, from_namespace
from ..paths import NUM_BEAMS
from ..ranges import at_least, check_list, check_ranges
from .common import write_run
from .popularity import COUNTS
from .transitions import MAX_WINDOW

log = logging.getLogger("sidreasoner.baselines")


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class BaselineFlags:
    """The flags every baseline sub-command takes."""
    data_dir: Path = _f(None, "release folder with train/ valid/ test/ index/ info/", required=True)
    category: str = _f(None, "category name in the file names, e.g. Office_Products", required=True)
    output_dir: Path = _f(None, "run folder for predictions.jsonl, metrics.json, config.json", required=True)
    split: str = _f("test", "split to predict and score (default: %(default)s)", choices=SPLITS)
    num_beams: int = _f(NUM_BEAMS, "distinct SIDs returned per row, as the evaluator's beams (default: %(default)s)")
    ks: Optional[str] = _f(None, "comma-separated K for HR@K/NDCG@K (default 1,3,5,10,20,50 up to --num_beams)")
    run_name: Optional[str] = _f(None, "label for compare_results.py (default: the baseline's name)")
    split_suffix: str = _f(SPLIT_SUFFIX, "file-name suffix after the category (default: %(default)s)")


@dataclass
class PopularityFlags:
    """The flags of ``popularity`` besides BaselineFlags."""
    counts: str = _f("rows", "rows: every item occurrence in train rows (targets and histories); targets: train "
                             "targets only (default: %(default)s)", choices=COUNTS)


@dataclass
class TransitionsFlags:
    """The flags of ``transitions`` besides BaselineFlags."""
    window: int = _f(1, f"last history items whose successors count, the p-th last weighted 1/p (1..{MAX_WINDOW}; "
                        "default: %(default)s)")


@dataclass
class SASRecRunFlags:
    """The flags of ``sasrec`` besides BaselineFlags and SASRecConfig: how it runs, not what it learns."""
    threads: int = _f(1, "torch CPU threads, >= 1 (default: %(default)s)")
    no_progress: bool = _f(False, "hide the tqdm progress bar", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    from .sasrec import SASRecConfig
    p = argparse.ArgumentParser(prog="python -m sidreasoner.baselines",
                                description="\n\n".join(__doc__.split("\n\n")[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="baseline", required=True, metavar="{popularity,sasrec,transitions}")
    pop = sub.add_parser("popularity", help="most-popular items of the train split, same list for every row")
    add_dataclass_args(pop, BaselineFlags)
    add_dataclass_args(pop, PopularityFlags)
    sas = sub.add_parser("sasrec", help="SASRec trained on train, early stopping on valid")
    add_dataclass_args(sas, BaselineFlags)
    add_dataclass_args(sas, SASRecConfig, flag_help_suffix=" (default: %(default)s)")
    add_dataclass_args(sas, SASRecRunFlags)
    tra = sub.add_parser("transitions", help="successors of the row's last item in train, backed off to "
                                             "most-popular")
    add_dataclass_args(tra, BaselineFlags)
    add_dataclass_args(tra, TransitionsFlags)
    return p


def _ks(text):
    if not text:
        return None
    try:
        return [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise ValueError(f"--ks expects comma-separated integers like 1,5,10, got {text!r}") from None


def _check_numbers(args, ks) -> None:
    """ValueError naming the first numeric flag outside the values it accepts (before any data is read)."""
    table = {"num_beams": at_least(1)}
    if args.baseline == "sasrec":
        from .sasrec import RANGES
        table.update(RANGES, threads=at_least(1))
    check_ranges(args, table)
    check_list("ks", ks, at_least(1))


def run_popularity(args, paths: ReleasePaths) -> tuple[list[dict], dict]:
    from .common import check_items, load_splits, load_vocab
    from .popularity import item_counts, predict
    t0 = time.perf_counter()
    vocab = load_vocab(paths)
    splits = load_splits(paths, dict.fromkeys(["train", args.split]))
    counts = item_counts(splits["train"], vocab, args.counts, paths.split("train"))
    check_items(splits[args.split], vocab, paths.split(args.split))  # same checks as SASRec's inputs
    records = predict(splits[args.split], counts, vocab, args.num_beams)
    return records, {"seconds": round(time.perf_counter() - t0, 3), "items_counted": int((counts > 0).sum())}


def run_transitions(args, paths: ReleasePaths) -> tuple[list[dict], dict]:
    from .common import check_items, load_splits, load_vocab
    from .popularity import item_counts
    from .transitions import check_window, coverage, predict, transition_counts
    check_window(args.window)  # a bad flag fails before any data is read
    t0 = time.perf_counter()
    vocab = load_vocab(paths)
    splits = load_splits(paths, dict.fromkeys(["train", args.split]))
    counts = item_counts(splits["train"], vocab, "rows", paths.split("train"))  # the back-off
    succ = transition_counts(splits["train"], vocab, paths.split("train"))
    check_items(splits[args.split], vocab, paths.split(args.split))
    records = predict(splits[args.split], succ, counts, vocab, args.num_beams, args.window)
    return records, {"seconds": round(time.perf_counter() - t0, 3), "items_with_successors": len(succ),
                     "transitions": sum(sum(c.values()) for c in succ.values()),
                     "distinct_transitions": sum(len(c) for c in succ.values()),
                     "rows_with_known_last_item": round(coverage(splits[args.split], succ, vocab), 4)}


def run_sasrec(args, paths: ReleasePaths) -> tuple[list[dict], dict]:
    import torch
    from .common import load_splits, load_vocab
    from .sasrec import SASRecConfig, predict, save_sasrec, train_sasrec
    torch.set_num_threads(args.threads)
    cfg = from_namespace(SASRecConfig, args)
    cfg.check()  # bad flags fail before any data is read
    vocab = load_vocab(paths)
    splits = load_splits(paths, dict.fromkeys(["train", "valid", args.split]))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    log_path = args.output_dir / "train_log.jsonl"
    log_path.write_text("", encoding="utf-8")

    def on_epoch(entry):
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    t0 = time.perf_counter()
    model, history = train_sasrec(splits["train"], splits["valid"], vocab, cfg,
                                  (paths.split("train"), paths.split("valid")), on_epoch, not args.no_progress)
    train_s = time.perf_counter() - t0
    save_sasrec(model, args.output_dir / "sasrec.pt")
    t1 = time.perf_counter()
    records = predict(model, splits[args.split], vocab, args.num_beams, paths.split(args.split))
    best = max(history, key=lambda e: e["valid"][cfg.select_metric])
    run = {"train_seconds": round(train_s, 3), "predict_seconds": round(time.perf_counter() - t1, 3),
           "epochs": len(history), "best_epoch": best["epoch"], "best_valid": best["valid"],
           "parameters": sum(p.numel() for p in model.parameters()), "threads": args.threads}
    log.info("trained %d epochs in %.1f s; best epoch %d valid %s=%.4f", len(history), train_s, best["epoch"],
             cfg.select_metric, best["valid"][cfg.select_metric])
    return records, run


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = ReleasePaths(args.data_dir, args.category, split_suffix=args.split_suffix)
    try:
        ks = _ks(args.ks)
        _check_numbers(args, ks)
        runner = {"popularity": run_popularity, "sasrec": run_sasrec, "transitions": run_transitions}[args.baseline]
        records, run = runner(args, paths)
        config = {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                  "run_name": args.run_name or args.baseline, "test_data_path": str(paths.split(args.split)),
                  "info_file": str(paths.info), "index_json": str(paths.index_json)}
        metrics = write_run(args.output_dir, records, config, run, paths, args.split, args.num_beams, ks)
    except (DataError, ValueError) as e:
        print(f"python -m sidreasoner.baselines: error: {e}", file=sys.stderr)
        return 2
    shown = {k: round(v, 4) for k, v in metrics.items() if "@" in k}
    print(json.dumps({"baseline": args.baseline, "split": args.split, "n": metrics["n"], **shown}))
    return 0



if __name__ == "__main__":
    sys.exit(main())
