"""python evaluate.py --base_model checkpoints/grpo_trl_Office_Products/final_checkpoint --data_dir data/Amazon --category Office_Products --output_dir results/office_nothink

Evaluation of a model on a split (``--help`` lists every flag). The code is ``sidreasoner.eval.cli`` (installed as
the console script ``sidreasoner-evaluate``; see pyproject.toml).
"""
import sys

from sidreasoner.eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
