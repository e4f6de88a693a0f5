"""python rl/prepare_data.py --data_dir data/Amazon --category Office_Products --output_dir data/rl/Office_Products

Write the stage-3 RL data of one category in verl's parquet format: ``train.parquet``
from the train split and ``valid.parquet`` from the valid split (the test split is never used), one
row per sequence: the history -> next-SID prompt in the shared wording (thinking mode by default),
``data_source`` = ``sidreasoner/<category>``, the target SID as the rule reward's ground truth.
``--category A,B`` writes the rows of both into the same files (the reward then needs each row's
catalogue: ``--info_file A=path,B=path``, or empty for the release layout's).
Both backends of ``RL_training_script.sh`` read these files. ``prepare_config.json`` and
``prepare_report.json`` (rows written, sampled out, skipped by reason) land beside them.
"""
from __future__ import annotations

import argparse
import sys

from sidreasoner.data.records import DataError
from sidreasoner.flags import add_dataclass_args, from_namespace
from sidreasoner.rl.prepare import PrepareConfig, prepare_rl_data


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    return add_dataclass_args(p, PrepareConfig)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        prepare_rl_data(from_namespace(PrepareConfig, args))
    except (DataError, ValueError, OSError) as e:
        print(f"prepare_data.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
