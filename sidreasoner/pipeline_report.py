"""The pipeline's report: ``RESULTS_DIR/results.md`` (every run's HR@K / NDCG@K, the same-rows table, what
thinking mode changed, a chart, step seconds), ``summary.json`` (the headline numbers, and per stage the
rows thinking helped / hurt / left unchanged: ``think_effect``) and
``pipeline_steps.json`` (the config and the steps of this run)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from .data.formats import atomic_write_text

if TYPE_CHECKING:
    from .pipeline import PipelineConfig

BASELINES = ("popularity", "sasrec", "transitions")  # python -m sidreasoner.baselines <name>
TIMES_FILE = "step_times.json"  # under RESULTS_DIR: seconds of every step that ran, kept across reruns
SUMMARY_FILE = "summary.json"  # under RESULTS_DIR: NDCG@10 / HR@10 per run, same-rows NDCG@10, step seconds


def load_times(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def record_time(path: Path, step: str, seconds: float) -> None:
    """Set one step's seconds in the JSON file of step times (the other steps keep theirs)."""
    times = {**load_times(path), step: seconds}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(times, indent=1) + "\n")


def _same_rows(runs: list) -> tuple[int, list]:
    """(n, runs) with every run re-scored on the test rows 0..n-1, n = the fewest rows any run scored (the
    ones the thinking evaluations scored), so that modes and baselines are compared on one set of rows.
    A run without predictions.jsonl keeps its metrics.json when it scored exactly n rows, else is left out."""
    from .eval.metrics import compute_metrics, read_predictions
    from .eval.report import Run
    counts = [r.metrics.get("n") for r in runs]
    n = min((c for c in counts if isinstance(c, int) and c > 0), default=0)
    same = []
    for r in runs:
        pred = r.path / "predictions.jsonl"
        if pred.is_file():
            rows = [rec for rec in read_predictions(pred)[0] if rec["row"] < n]
            if rows:
                same.append(Run(r.label, r.path, {**compute_metrics(rows), "n": len(rows)}))
        elif r.metrics.get("n") == n:
            same.append(Run(r.label, r.path, dict(r.metrics)))
    return n, same


def _same_rows_table(runs: list, same: list, n: int, scores: list[str]) -> str:
    """The same-rows runs as a markdown section; empty when every run scored the same n rows."""
    from .eval.report import markdown_table
    if not n or all(r.metrics.get("n", 0) <= n for r in runs):
        return ""
    return (f"## The same {n} rows for every run\n\nThe first {n} test rows, the fewest any run scored (the ones "
            f"thinking mode scored; they need not be as hard as the whole split):\n\n"
            f"{markdown_table(same, scores + ['n'])}\n")


def _summary(runs: list, same: list, n: int, times: dict) -> dict:
    """summary.json: NDCG@10 / HR@10 per run over all its rows and on the same n rows, step seconds."""
    def r4(v):
        return None if v is None else round(v, 4)

    def per_run(rs: list, key: str) -> dict:
        return {r.label: r4(r.metrics.get(key)) for r in rs}

    return {"ndcg10": per_run(runs, "NDCG@10"), "hr10": per_run(runs, "HR@10"),
            "same_rows_ndcg10": per_run(same, "NDCG@10"), "same_rows_n": n,
            "seconds": {step: r4(s) for step, s in times.items()}}


def _think_effects(res: Path) -> dict:
    """``{stage: think_effect.json}`` of every thinking evaluation that compared itself (``--compare_nothink``)."""
    from .eval.effect import EFFECT_FILE
    out = {}
    for stage in ("stage1", "stage2", "stage3"):
        path = res / f"{stage}_think" / EFFECT_FILE
        if path.is_file():
            e = json.loads(path.read_text())
            out[stage] = {key: e[key] for key in ("n", "helped", "hurt", "unchanged")}
    return out


def _effects_table(effects: dict) -> str:
    if not effects:
        return ""
    rows = "\n".join(f"| {stage} | {e['n']} | {e['helped']} | {e['hurt']} | {e['unchanged']} |"
                     for stage, e in effects.items())
    return ("## What thinking changed\n\nRows where thinking mode raised (helped) or lowered (hurt) the target's "
            "NDCG@10 against the same model's non-thinking list (the rows: `<stage>_think/think_effect_rows.jsonl`)"
            f":\n\n| model | rows | helped | hurt | unchanged |\n|---|---:|---:|---:|---:|\n{rows}\n\n")


def _decodings(res: Path) -> dict:
    """``{stage: fusion.json}`` of each ``<stage>_fused`` run: the decoding chosen on valid."""
    out = {}
    for stage in ("stage2", "stage3"):
        path = res / f"{stage}_fused" / "fusion.json"
        if path.is_file():
            d = json.loads(path.read_text())
            out[stage] = {k: d.get(k) for k in ("method", "weight", "valid_by_method", "thought_share")
                          if d.get(k) is not None}
    return out


def _decoding_table(decodings: dict) -> str:
    rows = [f"| {stage} | {m} | {v['weight']} | {v['valid_ndcg10']:.4f} | {'**yes**' if m == d['method'] else ''} |"
            for stage, d in decodings.items() for m, v in (d.get("valid_by_method") or {}).items()]
    if not rows:
        return ""
    return ("## Thinking-mode decoding chosen on valid\n\n`<stage>_fused` is the test split decoded with the "
            "method that scored best on the valid rows (`python -m sidreasoner.eval.fusion --method best`; "
            "fusion weight 0 and adaptive threshold -1 are the non-thinking list, calibration alpha 0 the "
            "thinking one):\n\n| model | method | weight | valid NDCG@10 | chosen |\n|---|---|---:|---:|---|\n"
            + "\n".join(rows) + "\n\n")


def _rl_diagnostics(cfg: PipelineConfig) -> dict:
    """Stage 3's ``diagnostics.json`` (``sidreasoner.rl.diagnostics``): first / last / mean of each series."""
    path = Path(cfg.run_dir) / "stage3" / "diagnostics.json"
    return {k: v for k, v in json.loads(path.read_text()).items() if k != "log"} if path.is_file() else {}


def _rl_table(diag: dict) -> str:
    rows = [f"| {name} | {v['first']:.4f} | {v['last']:.4f} | {v['mean']:.4f} |"
            for name, v in diag.items() if isinstance(v, dict)]
    if not rows:
        return ""
    return ("## Stage 3 diagnostics\n\n`zero_variance_groups`: share of GRPO groups whose completions all "
            "scored the same (no learning signal); curves in `RUN_DIR/stage3/diagnostics.png`.\n\n"
            "| series | first | last | mean |\n|---|---:|---:|---:|\n" + "\n".join(rows) + "\n\n")


def _run_names(cfg: PipelineConfig, res: Path) -> list[str]:
    """Folders under RESULTS_DIR with a metrics.json: the configured baselines, the other baselines, the
    stages in order, then any other run folder (by name)."""
    stages = [f"{s}_{m}" for s in ("stage1", "stage2", "stage3") for m in ("nothink", "think", "fused")]
    order = [b.strip() for b in cfg.baselines.split(",") if b.strip()] + list(BASELINES) + stages
    found = sorted(d.name for d in res.iterdir() if (d / "metrics.json").is_file()) if res.is_dir() else []
    return [name for name in dict.fromkeys(order + found) if name in found]


def summarise(cfg: PipelineConfig, timings: list[dict]) -> Path:
    """RESULTS_DIR/results.md: stage x mode table (HR@K, NDCG@K, invalid rate, rows, eval seconds),
    the same-rows table, the chart, and the seconds of every step; summary.json holds the headline
    numbers (:func:`_summary`); pipeline_steps.json holds the config and this run's steps."""
    from .eval.report import bar_chart, load_runs, markdown_table
    res = Path(cfg.results_dir)
    times = load_times(res / TIMES_FILE)
    names = _run_names(cfg, res)
    runs = load_runs([res / n for n in names], names)
    for r in runs:  # the evaluation's wall time as a column (the baseline's step is its whole run)
        step = f"{r.label}_baseline" if r.label in BASELINES else f"eval_{r.label}"
        r.metrics = {**r.metrics, "eval_s": None if times.get(step) is None else round(times[step])}
    n, same = _same_rows(runs)  # computed once: the table and summary.json
    effects, decodings, diag = _think_effects(res), _decodings(res), _rl_diagnostics(cfg)
    scores = [f"{m}@{k}" for m in ("HR", "NDCG") for k in (1, 3, 5, 10) if k <= cfg.num_beams]
    png = bar_chart(runs, scores, res / "results.png", title=f"{cfg.category}: stage x mode")
    step_rows = "\n".join(f"| {name} | {'—' if s is None else f'{s:.0f}'} |" for name, s in times.items())
    total = sum(s for s in times.values() if s)
    text = (f"# Results: {cfg.category}\n\n{markdown_table(runs, scores + ['invalid_rate', 'n', 'eval_s'])}\n"
            f"n: test rows evaluated; eval_s: seconds of that evaluation.\n\n![chart]({png.name})\n\n"
            f"{_same_rows_table(runs, same, n, scores)}\n{_effects_table(effects)}{_decoding_table(decodings)}"
            f"{_rl_table(diag)}"
            f"## Seconds per step\n\n| step | seconds |\n|---|---:|\n{step_rows}\n| total | {total:.0f} |\n")
    atomic_write_text(res / "results.md", text)
    summary = {**_summary(runs, same, n, times), "think_effect": effects, "decoding": decodings,
               "stage3_diagnostics": diag}
    atomic_write_text(res / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    run_record = {"config": asdict(cfg), "steps": timings}
    atomic_write_text(res / "pipeline_steps.json", json.dumps(run_record, indent=1) + "\n")
    return res / "results.md"
