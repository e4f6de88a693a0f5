"""python scripts/build_sids.py --data_dir data/Amazon --category Office_Products --output_dir data/Amazon_sids

Build semantic IDs for a catalogue: item title + cleaned description ->
embeddings -> residual quantisation -> collision resolution -> one distinct SID per item. Reads the
release layout under --data_dir and writes the same layout under --output_dir with the new SIDs:
``index/<Cat>.index.json``, ``index/<Cat>.item.json``, ``info/<Cat>_5_2016-10-2018-11.txt`` and the
train/valid/test CSVs with ``history_item_sid`` / ``item_sid`` rewritten. Also writes the quality report
(``index/<Cat>.sid_report.json``, printed too), the resolved config (``build_sids_config.json``) and
an embeddings cache (``cache/``) that makes reruns with the same embedder and texts skip embedding.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sidreasoner.data.formats import atomic_write_text
from sidreasoner.data.records import SPLIT_SUFFIX, DataError, ReleasePaths
from sidreasoner.build_sids import SIDBuildConfig, assign_sids, format_report
from sidreasoner.data.release_io import check_split_items, read_release, write_release
from sidreasoner.flags import add_dataclass_args, from_namespace


@dataclass
class BuildFlags:
    """The builder's flags beyond SIDBuildConfig's: the release folders, and the negated switches of its booleans."""
    data_dir: str = field(default=None, metadata={"help": "release folder to read (index/, info/, train/, valid/, "
                                                          "test/)", "required": True})
    category: str = field(default=None, metadata={"help": "category name, e.g. Office_Products", "required": True})
    output_dir: str = field(default=None, metadata={"help": "folder to write the release layout with the new SIDs "
                                                            "into", "required": True})
    split_suffix: str = field(default=SPLIT_SUFFIX, metadata={"help": "file-name suffix of split CSVs and info file"})
    no_auto_size: bool = field(default=False, metadata={"help": "use --codebook_size exactly, even if it is too large"})
    no_balanced: bool = field(default=False, metadata={"help": "plain residual k-means (no cap on items per code)"})
    no_cache: bool = field(default=False, metadata={"help": "do not read or write the embeddings cache"})
    no_progress: bool = field(default=False, metadata={"help": "hide progress bars"})


#: SIDBuildConfig's fields set through BuildFlags (--no_<name>, --output_dir) rather than a flag of their own
_NEGATED = ("balanced", "auto_size", "cache_dir", "progress")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(p, BuildFlags)
    return add_dataclass_args(p, SIDBuildConfig, exclude=_NEGATED)


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def config_from_args(a: argparse.Namespace) -> SIDBuildConfig:
    return from_namespace(SIDBuildConfig, a, balanced=not a.no_balanced, auto_size=not a.no_auto_size,
                          cache_dir=None if a.no_cache else str(Path(a.output_dir) / "cache"),
                          progress=not a.no_progress)


def run(a: argparse.Namespace) -> dict:
    cfg = config_from_args(a)
    cfg.validate()
    src = ReleasePaths(Path(a.data_dir), a.category, a.split_suffix)
    dst = ReleasePaths(Path(a.output_dir), a.category, a.split_suffix)
    items, splits = read_release(src)
    check_split_items(src, splits, items)  # fail before the expensive part
    print(f"read {len(items):,} items and " + ", ".join(f"{len(r):,} {n}" for n, r in splits.items())
          + f" rows from {a.data_dir}", flush=True)
    result = assign_sids(items, cfg)
    print(format_report(result.report), flush=True)
    summary = write_release(dst, items, splits, result.item_to_sid, src=src)
    report_path = dst.index_json.with_name(f"{a.category}.sid_report.json")
    atomic_write_text(report_path, json.dumps(result.report, indent=1) + "\n")
    r = result.report
    resolved = {"args": vars(a), "config": asdict(cfg), "resolved": {
        "levels": r["levels"], "codebook_size": r["codebook_size"], "sid_length": r["sid_length"],
        "sizing": r["sizing"], "embedder_kind": r["embedder"]["kind"], "embedder_path": r["embedder"]["path"]},
        "outputs": summary}
    atomic_write_text(Path(a.output_dir) / "build_sids_config.json", json.dumps(resolved, indent=1) + "\n")
    print(f"wrote {summary['items_written']:,} SIDs to {dst.index_json}"
          + (f" ({summary['items_without_sid']} items had no SID)" if summary["items_without_sid"] else "")
          + f", info, item.json and the splits under {a.output_dir}; report {report_path}", flush=True)
    return r


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (DataError, ValueError, OSError) as e:  # bad data, flags, or an embedder that cannot be loaded
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
