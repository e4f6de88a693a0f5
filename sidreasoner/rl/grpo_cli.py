"""python rl/trl_grpo.py --model_path checkpoints/sft_reasoning_Qwen3_Office_Products/final_checkpoint --category Office_Products

Stage 3 on one machine (CPU or one GPU): GRPO with the SID-match reward on TRL's GRPOTrainer, on the
same parquet files, reward and settings as the verl recipe (``BACKEND=trl bash RL_training_script.sh``
runs this). Every flag is also read from the environment variable of the same name in upper case
(``ROLLOUT_N=4`` = ``--rollout_n 4``), so both backends share one set of knobs; flags win. The model
lands in ``OUTPUT_DIR/final_checkpoint``; ``grpo_config.json``, ``grpo_log.jsonl`` and
``grpo_summary.json`` (with the sampled validation reward before/after when ``--eval_rows`` > 0)
beside it. A killed run resumes from its last checkpoint when run again.
"""
from __future__ import annotations

import os
import sys

from sidreasoner.rl.knobs import RLKnobs, build_parser


def main(argv=None) -> int:
    try:
        parser = build_parser(__doc__.split("\n\n")[1], os.environ)
    except ValueError as e:  # a malformed environment knob
        print(f"trl_grpo.py: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        knobs = RLKnobs(**vars(args))
        knobs.resolved("trl")  # bad values answered before torch is imported
    except ValueError as e:
        parser.error(str(e))
    from sidreasoner.data.records import DataError
    from sidreasoner.rl.trl_grpo import run_trl_grpo  # after parsing: --help needs no torch
    from sidreasoner.train.model_factory import ModelLoadError
    try:
        run_trl_grpo(knobs)
    except (DataError, ModelLoadError, ValueError, OSError) as e:
        print(f"trl_grpo.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
