"""python sft.py --stage alignment --base_model checkpoints/tiny_qwen3 --data_dir data/Amazon --category Office_Products

Stage 1 / stage 2 SFT (``--help`` lists every flag). The code is ``sidreasoner.train.sft_cli`` (installed as a console script; see pyproject.toml).
"""
import sys

from sidreasoner.train.sft_cli import main

if __name__ == "__main__":
    sys.exit(main())
