"""python rl/prepare_data.py --data_dir data/Amazon --category Office_Products --output_dir data/rl/Office_Products

The stage-3 RL data in verl's parquet format (``--help`` lists every flag). The code is ``sidreasoner.rl.prepare_cli`` (installed as a console script; see pyproject.toml).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without `pip install -e .`

from sidreasoner.rl.prepare_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
