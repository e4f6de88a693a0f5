"""python scripts/merge_fsdp_checkpoint.py --checkpoint checkpoints/grpo_verl_Office_Products/global_step_100/actor

Turn verl's FSDP actor checkpoint (one ``model_world_size_W_rank_R.pt`` per rank + ``huggingface/``)
into an ordinary Hugging Face folder with verl's own model merger, then check it: the shards load with
``weights_only=True``, the merged folder loads with its tokenizer, and every merged tensor equals the
one rebuilt from the shards (verl writes bfloat16). Default output: ``global_step_N/actor_merged``,
with ``merge_report.json`` inside. ``--all RUN_DIR`` merges every ``global_step_*`` of a run that is
not merged yet (what ``RL_training_script.sh`` does after training).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without `pip install -e .`


from sidreasoner.flags import add_dataclass_args


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class MergeFlags:
    """The command line of merge_fsdp_checkpoint.py (one of --checkpoint and --all is required)."""
    checkpoint: Optional[str] = _f(None, "a verl actor folder, e.g. <run>/global_step_100/actor")
    all: Optional[str] = _f(None, "merge every global_step_*/actor under this run folder", metavar="RUN_DIR")
    output_dir: Optional[str] = _f(None, "where the merged model goes (only with --checkpoint; default: the "
                                         "checkpoint's sibling actor_merged)")
    info_file: str = _f("", "catalogue: also check that the merged tokenizer has every SID token")
    overwrite: bool = _f(False, "merge again over an existing merged folder")


_TARGETS = ("checkpoint", "all")  # the mutually exclusive, required pair


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    others = [f.name for f in fields(MergeFlags) if f.name not in _TARGETS]
    add_dataclass_args(p.add_mutually_exclusive_group(required=True), MergeFlags, exclude=others)
    return add_dataclass_args(p, MergeFlags, exclude=_TARGETS)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.all and args.output_dir:
        print("merge_fsdp_checkpoint.py: error: --output_dir applies to --checkpoint only "
              "(--all writes each step's actor_merged)", file=sys.stderr)
        return 2
    from sidreasoner.data.records import DataError
    from sidreasoner.rl.merge import MergeError, merge_all, merge_checkpoint
    from sidreasoner.model.model_factory import ModelLoadError
    try:
        if args.all:
            merge_all(args.all, args.info_file or None, args.overwrite)
        else:
            merge_checkpoint(args.checkpoint, args.output_dir, args.info_file or None, args.overwrite)
    except (MergeError, DataError, ModelLoadError, FileExistsError, ValueError) as e:
        print(f"merge_fsdp_checkpoint.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
