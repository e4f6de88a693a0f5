"""A verl stage-3 run's logs as the entries of the TRL log, so ``diagnostics`` summarises both backends alike.

verl writes two things our recipe turns on (``verl_config``: the ``file`` logger, ``trainer.rollout_data_dir``):

* ``OUTPUT_DIR/verl_log.jsonl`` (verl's ``FileLogger``, path from ``VERL_FILE_LOGGER_PATH``): one line per step,
  ``{"step": N, "data": {metric: value}}``: reward (``critic/score/mean``), KL (``actor/kl_loss``), entropy,
  response length, and the ``TEST_FREQ`` validation (``val-core/<data_source>/reward/mean@1``);
* ``OUTPUT_DIR/rollouts/<step>.jsonl``: every rollout of the step with its prompt (``input``), response
  (``output``), target (``gts``) and ``score``. A group is the step's rollouts of one prompt, so the share of
  groups whose scores are all equal (no learning signal) is counted here (verl logs no such metric), and the
  SID-match parts (exact hit, levels, parsed, closed think) are re-read from the responses.

Cost: the rollout files hold every prompt and response (about 16 x 2 KB per prompt and step); pass
``trainer.rollout_data_dir=null`` to ``RL_training_script.sh`` to go without them (and without the
zero-variance share and the reward's parts).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import mean
from typing import Sequence

from ..data.formats import read_jsonl
from ..rewards import compute_reward

VERL_LOG_NAME = "verl_log.jsonl"
ROLLOUT_DIR_NAME = "rollouts"
#: verl metric -> the TRL log key ``diagnostics.SERIES`` reads
METRICS = {
    "critic/score/mean": "reward",
    "actor/kl_loss": "kl",
    "actor/entropy": "entropy",
    "response_length/mean": "completions/mean_length",
    "response_length/clip_ratio": "completions/clipped_ratio",
}
#: a rollout's reward part (``compute_score``'s keys, both rewards) -> the TRL log key
PARTS = {
    "exact": "sid/exact",
    "prefix_levels": "sid/prefix_levels",
    "valid_bonus": "sid/valid_bonus",
    "parsed": "sid/parsed",
    "think_closed": "sid/think_closed",
    "rank_ndcg": "sid/rank_ndcg",
    "in_list": "sid/in_list",
    "target_prob": "sid/target_prob",
}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_entries(path: Path) -> dict[int, dict]:
    """``{step: {TRL key: value}}`` from verl's file logger."""
    out: dict[int, dict] = defaultdict(dict)
    for line in read_jsonl(path):
        step, data = line.get("step"), line.get("data") or {}
        if not isinstance(step, int):
            continue
        for key, value in data.items():
            if key in METRICS and _number(value):
                out[step][METRICS[key]] = float(value)
            elif key.startswith("val-core/") and "/reward/mean@" in key and _number(value):
                out[step]["val/reward_mean"] = float(value)  # one data source: its reward; several: the last
    return out


def zero_variance_share(rows: Sequence[dict], key: str) -> float:
    """Share of prompts (rows grouped by ``input``) whose rollouts all have the same ``key``."""
    groups: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if _number(r.get(key)):
            groups[str(r.get("input"))].append(float(r[key]))
    if not groups:
        return 0.0
    return sum(max(v) - min(v) < 1e-12 for v in groups.values()) / len(groups)


def _parts(row: dict) -> dict:
    """A rollout's reward parts: as dumped (verl's legacy trainer dumps ``compute_score``'s keys), else the
    SID-match parts recomputed from the dumped response and target by the reward's own parser (verl's V1
    trainer dumps the score alone; the validity bonus needs the catalogue and is left out)."""
    if any(part in row for part in PARTS):
        return {part: row[part] for part in PARTS if _number(row.get(part))}
    if not isinstance(row.get("output"), str) or row.get("gts") is None:
        return {}
    r = compute_reward(row["output"], row["gts"])
    return {"exact": int(r.exact), "prefix_levels": r.prefix_levels, "parsed": int(r.parsed),
            "think_closed": int(r.think_closed)}


def rollout_entry(rows: Sequence[dict]) -> dict:
    """One step's dump -> zero-variance share (of the score; of the rank part too) and each reward part's mean."""
    out = {"frac_reward_zero_std": zero_variance_share(rows, "score")}
    if any("rank_ndcg" in r for r in rows):
        out["sid/rank_zero_std"] = zero_variance_share(rows, "rank_ndcg")
    parts = [_parts(r) for r in rows]
    for part, key in PARTS.items():
        values = [float(p[part]) for p in parts if part in p]
        if values:
            out[key] = mean(values)
    return out


def verl_entries(run_dir) -> list[dict]:
    """The run's entries in the TRL log's shape (``{"step": N, key: value}``), from whichever of verl's two
    logs exist; empty when neither does."""
    run = Path(run_dir)
    steps: dict[int, dict] = defaultdict(dict)
    if (run / VERL_LOG_NAME).is_file():
        for step, values in metric_entries(run / VERL_LOG_NAME).items():
            steps[step].update(values)
    dumps = run / ROLLOUT_DIR_NAME
    for path in sorted(dumps.glob("*.jsonl")) if dumps.is_dir() else []:
        if path.stem.isdigit():
            steps[int(path.stem)].update(rollout_entry(read_jsonl(path)))
    return [{"step": step, **values} for step, values in sorted(steps.items())]


def has_verl_logs(run_dir) -> bool:
    run = Path(run_dir)
    return (run / VERL_LOG_NAME).is_file() or (run / ROLLOUT_DIR_NAME).is_dir()
