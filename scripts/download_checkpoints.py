"""python scripts/download_checkpoints.py --output_dir checkpoints/released [--repo_id Sober-Clever/SIDReasoner-Models] [--revision REV] [--from_local DIR]

Fetch released model checkpoints from the Hugging Face hub (huggingface_hub.snapshot_download into
--output_dir; resumable: rerun after an interruption) or install an already downloaded folder
(--from_local: copied, or symlinked with --link), then check every model folder found (a folder with
config.json): weights present (all shards of a sharded checkpoint), config + tokenizer load offline
(trust_remote_code off), the catalogue's SID tokens are single tokens (--info_file), and for small
checkpoints (--check auto: weights < 1 GiB; or --check full) that the model loads with
sidreasoner.model.model_factory.load_model_and_tokenizer. A folder that passes is ready for
``python evaluate.py --base_model FOLDER ...`` unchanged. Writes OUTPUT_DIR/download_checkpoints.json.

The default --repo_id is the checkpoint link of the SIDReasoner README (github.com/HappyPointer/SIDReasoner,
"Checkpoints"); it cannot be verified offline, so check the paper's README for the current one.
Exit status: 0 every model folder passed, 1 a check failed or no model folder was found, 2 usage,
download or offline error (the message says what to download by hand and where to put it).
"""
# no `from __future__ import annotations`: tests load this script by path (outside sys.modules), where
# sidreasoner.flags could not resolve DownloadCheckpointsFlags' annotations written as text
import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from sidreasoner.data.records import DataError
from sidreasoner.flags import add_dataclass_args, from_namespace
from sidreasoner.release import checkpoints
from sidreasoner.release.common import FetchError, Unreachable


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class DownloadCheckpointsFlags:
    """The flags of download_checkpoints.py."""
    output_dir: Path = _f(Path("checkpoints/released"), "where the checkpoints go (default: %(default)s)")
    repo_id: str = _f(checkpoints.DEFAULT_REPO, "Hugging Face model repository (default: %(default)s; check the "
                                                "paper's README)")
    revision: Optional[str] = _f(None, "branch, tag or commit (default: the main branch)")
    allow_patterns: Optional[list] = _f(None, "only these files, e.g. 'stage3/*' (default: everything)", nargs="+",
                                        type=str)
    from_local: Optional[Path] = _f(None, "an already downloaded checkpoint folder to install instead")
    link: bool = _f(False, "with --from_local: symlink the files instead of copying them", action="store_true")
    info_file: Optional[Path] = _f(None, "catalogue info file: check that its SID tokens are single tokens")
    check: str = _f("auto", "config: config + tokenizer + weight files; full: also load the model; auto: full below "
                            "1 GiB of weights", choices=["auto", "config", "full", "none"])


def parse_args(argv=None) -> DownloadCheckpointsFlags:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    return from_namespace(DownloadCheckpointsFlags, add_dataclass_args(ap, DownloadCheckpointsFlags).parse_args(argv))


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.from_local is not None:
            n = checkpoints.install_local(args.from_local, args.output_dir, args.link)
            print(f"installed {n} file(s) from {args.from_local} into {args.output_dir}")
        else:
            checkpoints.fetch_hub(args.repo_id, args.revision, args.output_dir, args.allow_patterns)
            print(f"downloaded {args.repo_id} into {args.output_dir}")
        sids = checkpoints.catalogue_sids(args.info_file)
        folders = checkpoints.model_folders(args.output_dir)
        if not folders:
            print(f"no model folder (with config.json) under {args.output_dir}", file=sys.stderr)
        results = []
        for res in checkpoints.check_all(folders, args.check, sids):
            print(checkpoints.status_line(res))
            results.append(res)
    except (Unreachable, FetchError, DataError) as e:
        what = f"cannot reach the Hugging Face hub ({e})." if isinstance(e, Unreachable) else e
        print(f"download_checkpoints.py: error: {what}\n"
              f"{checkpoints.manual_help(args.repo_id, args.revision, args.output_dir)}", file=sys.stderr)
        return 2
    checkpoints.record_checks(args, results)
    ok = bool(results) and all("error" not in res for res in results)
    if ok:
        print(f"evaluate with: python evaluate.py --base_model {results[0]['folder']} --data_dir data/Amazon "
              f"--category Office_Products --output_dir results/released")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
