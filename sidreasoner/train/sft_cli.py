"""python sft.py --stage alignment --base_model checkpoints/tiny_qwen3 --data_dir data/Amazon --category Office_Products

Supervised fine-tuning for SIDReasoner:

- ``--stage alignment`` (stage 1): SID tokens are added to the vocabulary and the model learns a
  mixture of SID-language tasks (history -> next SID / title, SID <-> title, teacher corpora, optional
  general chat data), loss on answers only, stop token supervised;
- ``--stage reasoning`` (stage 2): from a stage-1 checkpoint, learn ``<think>reasoning</think>`` + SID
  from the narrative CSV's ``reasoning_path``.

The best model (lowest mean validation loss over the tasks) lands in ``OUTPUT_DIR/final_checkpoint``
with its tokenizer and the resolved config; a killed run resumes from its last checkpoint when run
again. Multi-GPU: ``torchrun --nproc_per_node N sft.py ...`` (add ``--deepspeed``/``--fsdp`` as needed).
The reference scripts' flags work unchanged; ``--dry_run`` prints the task table and stops.
"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    from sidreasoner.data.records import DataError
    from sidreasoner.train.sft_config import SFTConfig, build_parser
    args = build_parser(__doc__.split("\n\n")[1]).parse_args(argv)
    from sidreasoner.train.sft_trainer import run_sft  # after parsing: --help needs no torch
    try:
        run_sft(SFTConfig(**vars(args)))
    except (DataError, ValueError, OSError) as e:
        print(f"sft.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
