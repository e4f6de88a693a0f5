"""python evaluate.py --base_model checkpoints/grpo_verl_Office_Products --data_dir data/Amazon --category Office_Products --output_dir results/office_nothink

Evaluate a SID recommender with trie-constrained beam search: non-thinking
mode (prompt + empty think block, then the search) or ``--think`` (generate the reasoning, close
``</think>``, then the search). Writes ``predictions.jsonl``, ``metrics.json`` (HR@K / NDCG@K),
``config.json``, ``run.json`` and ``examples.md`` (a page of example rows) into ``--output_dir``.

Flags of the reference ``evaluate.py`` work as there (``--base_model --info_file --category
--test_data_path --result_json_data --batch_size --num_beams --max_new_tokens --length_penalty``).
Scale out with ``--shard i/n`` (one process per GPU; the last shard to finish merges, or run
``--merge_shards DIR``); ``--resume`` continues a killed run.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from sidreasoner.flags import add_dataclass_args, from_namespace
from sidreasoner.paths import eval_output_dir, final_model
from sidreasoner.ranges import SEED, above, at_least, check_list, check_ranges, either, finite, optional


@dataclass
class EvalFlags:
    """The flags of evaluate.py beyond EvalConfig's (where the split and catalogue come from, the process)."""

    data_dir: Optional[str] = field(default=None, metadata={
        "help": "release data folder; with --category gives the split CSV and info file"})
    merge_shards: Optional[str] = field(default=None, metadata={
        "help": "merge DIR's shard predictions and write metrics.json, then exit", "metavar": "DIR"})
    threads: Optional[int] = field(default=None, metadata={
        "help": "torch CPU threads (0 or unset: torch's choice; 1 on a busy shared CPU)"})
    compare_nothink: Optional[str] = field(default=None, metadata={
        "help": "with --think: the same model's non-thinking evaluation folder; writes think_effect.json (rows "
                "thinking helped / hurt / left unchanged, by NDCG@10) and think_effect_rows.jsonl beside the "
                "results", "metavar": "DIR"})
    log_level: str = field(default="INFO", metadata={"help": "logging level"})


#: EvalConfig's fields without a default are flags that may be left out (filled from --data_dir, or refused)
_FLAG_DEFAULTS = {"base_model": None, "output_dir": None, "test_data_path": None, "info_file": None}


def build_parser() -> argparse.ArgumentParser:
    from sidreasoner.eval.config import EvalConfig
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(p, EvalConfig, defaults=_FLAG_DEFAULTS)
    return add_dataclass_args(p, EvalFlags)


def _config(args):
    from sidreasoner.eval.predictions import parse_shard
    from sidreasoner.eval.config import EvalConfig
    from sidreasoner.data.records import ReleasePaths
    if not args.base_model:
        raise ValueError("--base_model is required (a model folder)")
    if args.compare_nothink and not args.think:
        raise ValueError("--compare_nothink compares a thinking run with a non-thinking one: add --think")
    test, info = args.test_data_path, args.info_file
    if (test is None or info is None) and not (args.data_dir and args.category):
        raise ValueError("give --data_dir and --category, or both --test_data_path and --info_file")
    if args.data_dir:
        paths = ReleasePaths(Path(args.data_dir), args.category)
        test, info = test or str(paths.split(args.split)), info or str(paths.info)
        if paths.index_json.is_file() and Path(info).is_file():
            from sidreasoner.eval.runner import check_info_matches_index
            check_info_matches_index(info, paths.index_json)
    out = args.output_dir or str(eval_output_dir(args.category or Path(test).stem, args.think, args.num_beams))
    if args.calibrate and args.search == "reference":
        raise ValueError(f"--calibrate must be >= 0 and needs --search ours, got {args.calibrate} "
                         f"with --search {args.search}")
    return from_namespace(EvalConfig, args, base_model=final_model(args.base_model), output_dir=out,
                          test_data_path=test, info_file=info, shard=parse_shard(args.shard) or _torchrun_shard(),
                          ks=_ks(args.ks))


#: numeric flags and the values they accept (sidreasoner.ranges); --max_new_tokens: the runner checks it against
#: the catalogue's SID length
_RANGES = {
    "batch_size": at_least(1), "num_beams": at_least(1), "max_think_tokens": at_least(1),
    "num_reasoning_paths": at_least(1), "limit": optional(at_least(1, "rows to evaluate")),
    "length_penalty": finite(), "temperature": above(0),
    "repetition_penalty": above(0, "1: off"), "calibrate": at_least(0, "0: plain scores"), "seed": SEED,
    "threads": optional(either(0, at_least(1), "torch's choice")),
}


def _ks(text):
    try:
        return [int(k) for k in text.split(",") if k.strip()] if text else None
    except ValueError:
        raise ValueError(f"--ks expects comma-separated integers like 1,5,10, got {text!r}") from None


def _check_numbers(args) -> None:
    """ValueError naming the first numeric flag outside the values it accepts."""
    check_ranges(args, _RANGES)
    check_list("ks", _ks(args.ks), at_least(1))


def _torchrun_shard():
    """Under torchrun (``NPROC>1`` in the shell scripts) each process evaluates shard RANK/WORLD_SIZE."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else None


def _merge(directory: str) -> dict:
    from sidreasoner.eval.predictions import merge_shards, shard_files
    from sidreasoner.eval.runner import finalize
    found = shard_files(directory)
    if len(found) != 1:
        raise ValueError(f"expected shard files of one run in {directory}, found counts {sorted(found)}")
    n = next(iter(found))
    cfg = json.loads((Path(directory) / f"config.shard0of{n}.json").read_text(encoding="utf-8"))
    merge_shards(directory, n)
    return finalize(Path(directory), cfg["info_file"], cfg["num_beams"], cfg.get("ks"), cfg.get("result_json_data"),
                    cfg.get("test_data_path"))


def main(argv=None) -> int:
    """Exit status 0 done; 2 a bad flag or combination (checked before the model loads), bad or missing data or
    model (the message names the flag, or the file, row and field)."""
    args = build_parser().parse_args(argv)
    try:
        _check_numbers(args)
    except ValueError as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    from sidreasoner.data.records import DataError
    from sidreasoner.eval.metrics import format_metrics
    from sidreasoner.model.model_factory import ModelLoadError
    from sidreasoner.sid.trie import TrieError
    try:
        if args.merge_shards:
            out, metrics = args.merge_shards, _merge(args.merge_shards)
        else:
            from sidreasoner.eval.runner import run_evaluation
            cfg = _config(args)
            out = cfg.output_dir
            Path(out).mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(Path(out) / "evaluate.log")
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger().addHandler(fh)
            metrics = run_evaluation(cfg)
        effect = _effect(out, args.compare_nothink, metrics)
    except (DataError, TrieError, FileExistsError, ValueError, ModelLoadError) as e:
        print(f"evaluate.py: error: {e}", file=sys.stderr)
        return 2
    if metrics:
        print(format_metrics(metrics))
    if effect:
        from sidreasoner.eval.effect import describe
        print(describe(effect))
    return 0


def _effect(out: str, compare_nothink: Optional[str], metrics) -> Optional[dict]:
    """``--compare_nothink``: helped / hurt / unchanged rows once the run's metrics exist (the last shard)."""
    if not (compare_nothink and metrics):
        return None
    from sidreasoner.eval.effect import write_effect
    return write_effect(out, compare_nothink)


if __name__ == "__main__":
    sys.exit(main())
