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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without `pip install -e .`


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", help="a verl actor folder, e.g. <run>/global_step_100/actor")
    what.add_argument("--all", metavar="RUN_DIR", help="merge every global_step_*/actor under this run folder")
    p.add_argument("--output_dir", help="where the merged model goes (only with --checkpoint; default: the "
                                        "checkpoint's sibling actor_merged)")
    p.add_argument("--info_file", default="", help="catalogue: also check that the merged tokenizer has every SID token")
    p.add_argument("--overwrite", action="store_true", help="merge again over an existing merged folder")
    return p


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
