"""python rl/trl_grpo.py --model_path checkpoints/sft_reasoning_Qwen3_Office_Products/final_checkpoint --category Office_Products

Stage 3 on TRL's GRPOTrainer (``--help`` lists every flag). The code is ``sidreasoner.rl.grpo_cli`` (installed as a console script; see pyproject.toml).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without `pip install -e .`

from sidreasoner.rl.grpo_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
