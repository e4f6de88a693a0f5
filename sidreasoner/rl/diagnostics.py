"""What a stage-3 run did, from its JSON-lines log: is there a learning signal, and what moved.

    python -m sidreasoner.rl.diagnostics checkpoints/demo/stage3     # writes diagnostics.json + .png there

GRPO learns only from groups whose rewards differ: ``zero_variance_groups`` (TRL's
``frac_reward_zero_std``) is the share of prompts whose completions all scored the same, so they
taught nothing. The reward is split into its parts (exact hit, matched SID levels, validity bonus,
parsed answer, closed think block), beside the KL to the stage-2 model, the policy entropy, the
completion length and the held-out reward of the ``TEST_FREQ`` evaluations. For each: the first and
last logged value and the mean over the run. ``run_trl_grpo`` writes them at the end of every run;
``RL_training_script.sh`` runs this module after every verl run, on verl's logs read as the TRL log
(``sidreasoner.rl.verl_log``).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..data.formats import atomic_write_text, read_jsonl
from ..flags import add_dataclass_args, from_namespace
from .verl_log import ROLLOUT_DIR_NAME, VERL_LOG_NAME, has_verl_logs, verl_entries

LOG_NAME = "grpo_log.jsonl"
DIAGNOSTICS_NAME = "diagnostics.json"
#: our name -> the key TRL (or our reward / evaluation callback) logs it under
SERIES = {
    "zero_variance_groups": "frac_reward_zero_std",
    "reward": "reward",
    "reward_exact": "sid/exact",
    "reward_levels": "sid/prefix_levels",
    "reward_valid_bonus": "sid/valid_bonus",
    "reward_rank_ndcg": "sid/rank_ndcg",
    "target_in_list": "sid/in_list",
    "target_prob": "sid/target_prob",
    "rank_zero_variance_groups": "sid/rank_zero_std",
    "dropped_groups": "sid/dropped_groups",
    "parsed": "sid/parsed",
    "think_closed": "sid/think_closed",
    "kl": "kl",
    "entropy": "entropy",
    "completion_length": "completions/mean_length",
    "clipped_completions": "completions/clipped_ratio",
    "valid_reward": "val/reward_mean",
    "valid_ndcg10": "val/ndcg10",
    "valid_think_ndcg10": "val/think_ndcg10",
}


def series(entries: Sequence[dict]) -> dict[str, list[tuple[int, float]]]:
    """``{name: [(step, value), ...]}`` for every :data:`SERIES` name the log has."""
    out: dict[str, list[tuple[int, float]]] = {}
    for name, key in SERIES.items():
        points = [(int(e["step"]), float(e[key])) for e in entries
                  if key in e and "step" in e and isinstance(e[key], (int, float))]
        if points:
            out[name] = points
    return out


def summarise(curves: dict[str, list[tuple[int, float]]]) -> dict:
    return {name: {"first": pts[0][1], "last": pts[-1][1], "mean": sum(v for _, v in pts) / len(pts),
                   "points": len(pts)} for name, pts in curves.items()}


def plot(curves: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(curves)
    cols = 3
    rows = max(1, -(-len(names) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        steps, values = zip(*curves[name])
        ax.plot(steps, values, marker="." if len(steps) < 30 else None)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_entries(run_dir) -> tuple[str, list[dict]]:
    """(the log read, its entries): TRL's ``grpo_log.jsonl``, or verl's logs in the same shape (``verl_log``)."""
    run = Path(run_dir)
    if (run / LOG_NAME).is_file():
        return str(run / LOG_NAME), read_jsonl(run / LOG_NAME)
    if has_verl_logs(run):
        return f"{run / VERL_LOG_NAME} + {run / ROLLOUT_DIR_NAME}/", verl_entries(run)
    raise FileNotFoundError(f"{run}: no stage-3 log ({LOG_NAME} of BACKEND=trl, or {VERL_LOG_NAME} / "
                            f"{ROLLOUT_DIR_NAME}/ of BACKEND=verl); run RL_training_script.sh first")


def write_diagnostics(run_dir) -> dict:
    """``RUN_DIR/diagnostics.json`` (and ``.png``) from the run's log; returns the summary."""
    run = Path(run_dir)
    log, entries = run_entries(run)
    curves = series(entries)
    summary = {"log": log, "steps": max((p[-1][0] for p in curves.values()), default=0), **summarise(curves)}
    atomic_write_text(run / DIAGNOSTICS_NAME, json.dumps(summary, indent=1) + "\n")
    if curves:
        plot(curves, run / "diagnostics.png")
    return summary


def describe(summary: dict) -> str:
    lines = [f"{'':22} {'first':>9} {'last':>9} {'mean':>9}"]
    for name in SERIES:
        if name in summary:
            s = summary[name]
            lines.append(f"{name:22} {s['first']:9.4f} {s['last']:9.4f} {s['mean']:9.4f}")
    return "\n".join(lines)


@dataclass
class DiagnosticsFlags:
    """The command line of ``python -m sidreasoner.rl.diagnostics``."""
    run_dir: str = field(default=None, metadata={"help": f"a stage-3 output folder holding {LOG_NAME} (TRL) or "
                                                         f"{VERL_LOG_NAME} and {ROLLOUT_DIR_NAME}/ (verl)",
                                                 "positional": True})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_dataclass_args(p, DiagnosticsFlags)


def main(argv=None) -> int:
    args = from_namespace(DiagnosticsFlags, build_parser().parse_args(argv))
    try:
        summary = write_diagnostics(args.run_dir)
    except FileNotFoundError as e:
        print(f"diagnostics: error: {e}", file=sys.stderr)
        return 2
    print(describe(summary))
    print(f"-> {Path(args.run_dir) / DIAGNOSTICS_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
