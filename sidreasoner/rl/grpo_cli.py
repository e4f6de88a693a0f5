"""python rl/trl_grpo.py --model_path checkpoints/sft_reasoning_Qwen3_Office_Products/final_checkpoint --category Office_Products

Stage 3 on one machine (CPU or one GPU): GRPO with the SID-match reward on TRL's GRPOTrainer, on the
same parquet files, reward and settings as the verl recipe (``BACKEND=trl bash RL_training_script.sh``
runs this, passing every knob of the script as its flag: ``ROLLOUT_N=4`` becomes ``--rollout_n 4``, and the
script's own arguments come last and win). Flags only: no knob is read from the environment. The model
lands in ``OUTPUT_DIR/final_checkpoint``; ``grpo_config.json``, ``grpo_log.jsonl`` and
``grpo_summary.json`` (with the sampled validation reward before/after when ``--eval_rows`` > 0)
beside it. A killed run resumes from its last checkpoint when run again.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from sidreasoner.flags import add_dataclass_args
from sidreasoner.ranges import at_least, check_ranges
from sidreasoner.rl import knobs as rl_knobs
from sidreasoner.rl.knobs import knobs_from_args


@dataclass
class ProcessFlags:
    """Flags of this process beside the stage-3 knobs (``RLKnobs``): how it runs, not what it trains."""
    threads: int = field(default=0, metadata={
        "help": "torch CPU threads (0: torch's choice; 1 on a busy shared CPU)"})


def build_parser() -> argparse.ArgumentParser:
    """Every stage-3 knob as its flag (``RLKnobs``), then the process flags."""
    return add_dataclass_args(rl_knobs.build_parser(__doc__.split("\n\n")[1]), ProcessFlags)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_ranges(args, {"threads": at_least(0, "0: torch's choice")})
        knobs = knobs_from_args(args)
        knobs.resolved("trl")  # bad values answered before torch is imported
    except ValueError as e:
        parser.error(str(e))
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    from sidreasoner.data.records import DataError
    from sidreasoner.rl.trl_grpo import run_trl_grpo  # after parsing: --help needs no torch
    from sidreasoner.model.model_factory import ModelLoadError
    try:
        run_trl_grpo(knobs)
    except (DataError, ModelLoadError, ValueError, OSError) as e:
        print(f"trl_grpo.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
