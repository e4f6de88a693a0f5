"""python scripts/download_data.py --output_dir data/Amazon [--category Office_Products] [--repo_id ID | --url URL | --from_local PATH]

Fetch the released SIDReasoner / MiniOneRec data into the release layout, then verify it
(every file read and cross-checked by sidreasoner.data.validate, statistics printed) and write
OUTPUT_DIR/download_<Cat>.json (resolved config + sha256 of every installed file).

Sources, in this order of precedence:
  --from_local PATH  a folder (or .zip / .tar.gz archive) you already downloaded: copied (--link: symlinked).
  --repo_id ID       a Hugging Face repository holding the release layout (huggingface_hub.snapshot_download,
                     only the category's files; resumable: rerun after an interruption).
  --url URL          an archive of the release (default: the dataset link of the SIDReasoner README, a Google
                     Drive file; resumable HTTP download into --cache_dir, optional --sha256 check).
The release's hosting is not verifiable offline: check the paper's README (github.com/HappyPointer/SIDReasoner)
for the current data link and pass it with --url or --repo_id.

Offline (no network, HF_HUB_OFFLINE=1, connection refused) the script exits 2 and says what to download
by hand and exactly where to put the files. Exit status: 0 installed and valid, 1 installed but the
validation found errors, 2 usage, download or offline error.
"""
# no `from __future__ import annotations`: tests load this script by path (outside sys.modules), where
# sidreasoner.flags could not resolve DownloadDataFlags' annotations written as text
import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from sidreasoner.data.records import SPLIT_SUFFIX, DataError
from sidreasoner.flags import add_dataclass_args, from_namespace
from sidreasoner.paths import DEFAULT_CATEGORY, DEFAULT_DATA_DIR
from sidreasoner.release import data
from sidreasoner.release.common import FetchError, Unreachable


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class DownloadDataFlags:
    """The flags of download_data.py."""
    output_dir: Path = _f(Path(DEFAULT_DATA_DIR), "release folder to fill (default: %(default)s)")
    category: list = field(default_factory=lambda: [DEFAULT_CATEGORY], metadata={
        "help": "categories to install (default: %(default)s)", "nargs": "+", "type": str})
    from_local: Optional[Path] = _f(None, "an already downloaded folder or .zip/.tar(.gz) archive")
    link: bool = _f(False, "with --from_local: symlink the files instead of copying them", action="store_true")
    repo_id: Optional[str] = _f(None, "Hugging Face repository with the release layout (check the paper's README)")
    repo_type: str = _f("dataset", "type of --repo_id (default: %(default)s)", choices=["dataset", "model"])
    revision: Optional[str] = _f(None, "branch, tag or commit of --repo_id (default: the main branch)")
    allow_patterns: Optional[list] = _f(None, "files to fetch from --repo_id (default: the categories' files, "
                                              "'*<Cat>.*' and '*<Cat>_*')", nargs="+", type=str)
    url: str = _f(data.DEFAULT_URL, "archive URL of the release (default: the SIDReasoner README's Google Drive file)")
    sha256: Optional[str] = _f(None, "expected sha256 of the --url archive (checked when given)")
    cache_dir: Optional[Path] = _f(None, "where partial downloads live (default: OUTPUT_DIR/.download)")
    split_suffix: str = _f(SPLIT_SUFFIX, "file-name suffix after the category (default: %(default)s)")
    force: bool = _f(False, "fetch and install again even when the category is already installed",
                     action="store_true")


def parse_args(argv=None) -> DownloadDataFlags:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    return from_namespace(DownloadDataFlags, add_dataclass_args(ap, DownloadDataFlags).parse_args(argv))


def main(argv=None) -> int:
    args = parse_args(argv)
    cache = args.cache_dir or args.output_dir / ".download"
    todo = [c for c in args.category if args.force or not data.installed(args.output_dir, c, args.split_suffix)]
    sources = {}
    try:
        for cat, files, source in data.fetch_and_install(args, cache, todo):
            sources[cat] = source
            print(f"installed {len(files)} file(s) of {cat} from {source} into {args.output_dir}")
    except (Unreachable, FetchError, DataError, OSError) as e:
        what = f"cannot reach the data source ({e})." if isinstance(e, Unreachable) else e
        print(f"download_data.py: error: {what}\n{data.manual_help(args)}", file=sys.stderr)
        return 2
    ok = True
    for cat in args.category:
        print(f"== {cat} ==" + ("" if cat in todo else " (already installed; --force to fetch again)"))
        valid, report = data.verify(args.output_dir, cat, args.split_suffix)
        print(report)
        ok = valid and ok
        if cat in sources:  # an installed-before category keeps the record of where its files came from
            data.record_category(args, cat, sources[cat])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
