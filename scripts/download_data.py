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
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sidreasoner.data.records import SPLIT_SUFFIX, DataError
from sidreasoner.paths import DEFAULT_DATA_DIR
from sidreasoner.release import data
from sidreasoner.release.common import FetchError, Unreachable


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    a = ap.add_argument
    a("--output_dir", type=Path, default=Path(DEFAULT_DATA_DIR), help="release folder to fill (default: %(default)s)")
    a("--category", nargs="+", default=["Office_Products"], help="categories to install (default: %(default)s)")
    a("--from_local", type=Path, default=None, help="an already downloaded folder or .zip/.tar(.gz) archive")
    a("--link", action="store_true", help="with --from_local: symlink the files instead of copying them")
    a("--repo_id", default=None, help="Hugging Face repository with the release layout (check the paper's README)")
    a("--repo_type", default="dataset", choices=["dataset", "model"], help="type of --repo_id (default: %(default)s)")
    a("--revision", default=None, help="branch, tag or commit of --repo_id (default: the main branch)")
    a("--allow_patterns", nargs="+", default=None,
      help="files to fetch from --repo_id (default: the categories' files, '*<Cat>.*' and '*<Cat>_*')")
    a("--url", default=data.DEFAULT_URL,
      help="archive URL of the release (default: the SIDReasoner README's Google Drive file)")
    a("--sha256", default=None, help="expected sha256 of the --url archive (checked when given)")
    a("--cache_dir", type=Path, default=None, help="where partial downloads live (default: OUTPUT_DIR/.download)")
    a("--split_suffix", default=SPLIT_SUFFIX, help="file-name suffix after the category (default: %(default)s)")
    a("--force", action="store_true", help="fetch and install again even when the category is already installed")
    return ap.parse_args(argv)


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
