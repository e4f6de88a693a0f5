"""The pipeline on several categories (``CATEGORY=A,B``): one catalogue each, SID tokens shared.

The model is trained once on every category (the stage scripts take the list: ``sft.py``, the RL data and
reward, the tiny model's tokenizer); everything that reads one catalogue runs once per category with
``CATEGORY=<Cat>`` and ``RESULTS_DIR/<Cat>``: the baselines, the teacher corpus, every evaluation and the
fusion steps, each step named ``<step>[<Cat>]``. Each category gets its own report under
``RESULTS_DIR/<Cat>`` (``results.md``, ``summary.json``); ``RESULTS_DIR/results.md`` tables every run of
every category (rows ``stage1_nothink[A]`` ...) and ``RESULTS_DIR/summary.json`` holds their headline numbers.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Callable, Optional

from .data.formats import atomic_write_text
from .data.records import ReleasePaths, parse_categories
from .ranges import UsageError


def several(cfg) -> Optional[list[str]]:
    """The categories of ``cfg.category`` when it names more than one, else None (the one-category pipeline)."""
    try:
        names = parse_categories(cfg.category)
    except ValueError as e:
        raise UsageError(f"CATEGORY: {e}") from None
    return names if len(names) > 1 else None


def check(cfg) -> None:
    """Knobs that read one category's files where stage 3 runs on several (UsageError naming the knob)."""
    if several(cfg) and cfg.stages >= 3 and cfg.rl_steps > 0 and cfg.rl_valid_rows > 0:
        raise UsageError("RL_VALID_ROWS must be 0 with several categories: the TRL runner's valid "
                         "ranking curve reads one category's valid split (the evaluations after stage 3 "
                         "score each category)")


def of_category(cfg, category: str):
    """``cfg`` for one category's steps: that category, its results under ``RESULTS_DIR/<Cat>``."""
    return dataclasses.replace(cfg, category=category, results_dir=str(Path(cfg.results_dir) / category))


def for_each(cfg, make: Callable) -> list:
    """``make(cfg)``'s steps; with several categories, ``make`` of each category's cfg, steps named ``name[Cat]``."""
    cats = several(cfg)
    if not cats:
        return make(cfg)
    steps = []
    for category in cats:
        for step in make(of_category(cfg, category)):
            step.name = f"{step.name}[{category}]"
            steps.append(step)
    return steps


def each_category(builder: Callable) -> Callable:
    """A step builder ``builder(cfg, ...) -> list[Step]`` that reads one catalogue, run per category."""
    @functools.wraps(builder)
    def run(cfg, *args, **kwargs):
        return for_each(cfg, lambda c: builder(c, *args, **kwargs))
    return run


def demo_done(cfg, data: Path) -> Path:
    """The demo data step's output: the last category's info file (the generator writes them in order)."""
    return ReleasePaths(data, (several(cfg) or [cfg.category])[-1]).info


def reasoning_source(cfg, corpus: Path) -> Path:
    """Stage 2's REASONING_FILE: the category's narrative corpus, or the corpus folder (``sft.py`` reads
    ``<Cat>.integrated_narrative.csv`` of each category there)."""
    return corpus if several(cfg) else corpus / f"{cfg.category}.integrated_narrative.csv"


# -- the report -------------------------------------------------------------------------------------------------
def _category_times(times: dict, category: str) -> dict:
    """The seconds of one category's steps (suffix dropped, as its report names them) and the shared steps."""
    suffix = f"[{category}]"
    return {name[:-len(suffix)] if name.endswith(suffix) else name: s for name, s in times.items()
            if name.endswith(suffix) or not name.endswith("]")}


def summarise(cfg, timings: list[dict]) -> Path:
    """Each category's report under ``RESULTS_DIR/<Cat>`` (``pipeline_report.summarise``), then
    ``RESULTS_DIR/results.md`` and ``summary.json`` over every category's runs (rows ``run[Cat]``)."""
    from .eval.report import load_runs, markdown_table
    from .pipeline_report import TIMES_FILE, SUMMARY_FILE, load_times, summarise as summarise_one, _run_names
    res = Path(cfg.results_dir)
    times = load_times(res / TIMES_FILE)
    runs, per_category = [], {}
    for category in several(cfg):
        sub = of_category(cfg, category)
        atomic_write_text(Path(sub.results_dir) / TIMES_FILE, json.dumps(_category_times(times, category), indent=1))
        summarise_one(sub, [t for t in timings if t["step"].endswith(f"[{category}]")])
        names = _run_names(sub, Path(sub.results_dir))
        runs += load_runs([Path(sub.results_dir) / n for n in names], [f"{n}[{category}]" for n in names])
        per_category[category] = json.loads((Path(sub.results_dir) / SUMMARY_FILE).read_text())
    scores = [f"{m}@{k}" for m in ("HR", "NDCG") for k in (1, 3, 5, 10) if k <= cfg.num_beams]
    links = "\n".join(f"- [{c}]({c}/results.md)" for c in per_category)
    step_rows = "\n".join(f"| {name} | {'—' if s is None else f'{s:.0f}'} |" for name, s in times.items())
    text = (f"# Results: {', '.join(per_category)}\n\nOne model trained on every category; each category evaluated "
            f"on its own test split in its own catalogue.\n\n{markdown_table(runs, scores + ['invalid_rate', 'n'])}\n"
            f"Each category's report (same-rows table, thinking effect, chart):\n\n{links}\n\n"
            f"## Seconds per step\n\n| step | seconds |\n|---|---:|\n{step_rows}\n")
    atomic_write_text(res / "results.md", text)
    r4 = (lambda v: None if v is None else round(v, 4))
    summary = {"ndcg10": {r.label: r4(r.metrics.get("NDCG@10")) for r in runs},
               "hr10": {r.label: r4(r.metrics.get("HR@10")) for r in runs},
               "seconds": times, "categories": per_category}
    atomic_write_text(res / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    atomic_write_text(res / "pipeline_steps.json",
                      json.dumps({"config": dataclasses.asdict(cfg), "steps": timings}, indent=1) + "\n")
    return res / "results.md"
