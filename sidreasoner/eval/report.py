"""Reports over evaluation runs: a run x metric markdown table, a grouped bar chart, example pages.

A run folder holds ``metrics.json`` (from ``sidreasoner.eval.metrics.compute_metrics``) and optionally
a config JSON (``eval_config.json``, ``config.json`` or any ``*config*.json``) whose ``run_name`` /
``name`` / ``label`` key labels the run; otherwise the folder name does. CLI: ``scripts/compare_results.py``.
"""
from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

from ..data.formats import atomic_write_text
from ..data.records import DataError, SequenceRow
from .metrics import check_record

METRICS_FILE = "metrics.json"
CONFIG_NAMES = ("eval_config.json", "config.json")
_LABEL_KEYS = ("run_name", "name", "label")
_HIGHER_IS_BETTER = ("HR@", "NDCG@")


@dataclass
class Run:
    label: str
    path: Path
    metrics: dict
    config: dict = field(default_factory=dict)


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON: {e.msg}", e.lineno) from None
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object at top level, got {type(data).__name__}")
    return data


def _find_config(run_dir: Path) -> Optional[Path]:
    for name in CONFIG_NAMES:
        if (run_dir / name).is_file():
            return run_dir / name
    others = sorted(p for p in run_dir.glob("*config*.json") if p.is_file())
    return others[0] if others else None


def load_run(path, label: Optional[str] = None) -> Run:
    """A run folder (or a metrics.json file directly) -> Run. Missing/bad metrics raise DataError."""
    path = Path(path)
    metrics_path = path if path.is_file() else path / METRICS_FILE
    if not metrics_path.is_file():
        raise DataError(metrics_path, "file not found (is this an evaluation run folder?)")
    metrics = _load_json(metrics_path)
    run_dir = metrics_path.parent
    config_path = _find_config(run_dir)
    config = _load_json(config_path) if config_path else {}
    if label is None:
        label = next((str(config[k]) for k in _LABEL_KEYS if isinstance(config.get(k), str) and config[k]),
                     run_dir.resolve().name)
    return Run(label=label, path=run_dir, metrics=metrics, config=config)


def load_runs(paths: Sequence, labels: Optional[Sequence[str]] = None) -> list[Run]:
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"{len(labels)} names given for {len(paths)} runs")
    runs = [load_run(p, labels[i] if labels else None) for i, p in enumerate(paths)]
    seen: dict[str, int] = {}
    for r in runs:  # two folders both called "eval": qualify by parent so rows stay distinguishable
        seen[r.label] = seen.get(r.label, 0) + 1
    for r in runs:
        if seen[r.label] > 1 and labels is None:
            r.label = f"{r.path.resolve().parent.name}/{r.label}"
    return runs


def _metric_sort_key(name: str):
    family, _, k = name.partition("@")
    return (family != "HR", family, int(k) if k.isdigit() else 0)


def default_metric_names(runs: Sequence[Run]) -> list[str]:
    """Every HR@K and NDCG@K any run has: HR first, then NDCG, each by K."""
    names = {k for r in runs for k in r.metrics if k.startswith(_HIGHER_IS_BETTER)}
    return sorted(names, key=_metric_sort_key)


def metric_value(run: Run, name: str) -> Optional[float]:
    """A metric of a run: a number, or None when absent/null. Anything else is a DataError."""
    value = run.metrics.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise DataError(run.path / METRICS_FILE, f"expected a number, got {value!r}", field=name)
    return value


def _fmt(value) -> str:
    return "—" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))


def markdown_table(runs: Sequence[Run], metrics: Sequence[str]) -> str:
    """Run x metric table; the best value of each HR/NDCG column is bold, among the runs that scored the
    most rows (a run scored on a subset, e.g. thinking mode's first rows, is not compared with the rest)."""
    sizes = [r.metrics.get("n") for r in runs]
    full = max((n for n in sizes if isinstance(n, int)), default=None)
    ranked = [r for r, n in zip(runs, sizes) if full is None or n == full or not isinstance(n, int)]
    in_ranked = {id(r) for r in ranked}
    best = {}
    for m in metrics:
        vals = [v for v in (metric_value(r, m) for r in ranked) if v is not None]
        if m.startswith(_HIGHER_IS_BETTER) and vals and len(runs) > 1:
            best[m] = max(vals)
    lines = ["| run | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for r in runs:
        cells = []
        for m in metrics:
            v = metric_value(r, m)
            cells.append(f"**{_fmt(v)}**" if m in best and v == best[m] and id(r) in in_ranked else _fmt(v))
        lines.append(f"| {md_escape(r.label)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bar_chart(runs: Sequence[Run], metrics: Sequence[str], path, title: str = "Evaluation runs") -> Path:
    """Grouped bars: one group per metric, one bar (colour) per run, values written on the bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # Figure + Agg canvas: no global pyplot backend switch

    n_runs, n_metrics = len(runs), len(metrics)
    fig = Figure(figsize=(min(16.0, max(6.0, 1.1 * n_metrics * max(1, n_runs) ** 0.5 + 2)), 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, n_runs)
    top = 0.0
    for i, r in enumerate(runs):
        xs = [j + (i - (n_runs - 1) / 2) * width for j in range(n_metrics)]
        ys = [float(metric_value(r, m) or 0.0) for m in metrics]
        top = max([top] + ys)
        bars = ax.bar(xs, ys, width=width * 0.95, label=r.label)
        ax.bar_label(bars, labels=[_fmt(metric_value(r, m)) for m in metrics], fontsize=7,
                     rotation=90 if n_runs * n_metrics > 12 else 0, padding=2)
    ax.set_xticks(range(n_metrics), list(metrics))
    ax.set_ylim(0, (top or 1.0) * 1.25)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def write_comparison(runs: Sequence[Run], metrics: Sequence[str], output_dir,
                     stem: str = "comparison") -> tuple[Path, Path]:
    """Write ``<stem>.md`` (table + run folders) and ``<stem>.png`` (bar chart) into ``output_dir``."""
    out = Path(output_dir)
    png = bar_chart(runs, metrics, out / f"{stem}.png")
    table = markdown_table(runs, metrics)
    sources = "\n".join(f"- {md_escape(r.label)}: `{r.path}`" for r in runs)
    md = out / f"{stem}.md"
    atomic_write_text(md, f"# Comparison of evaluation runs\n\n{table}\nRuns:\n{sources}\n\n![chart]({png.name})\n")
    return md, png


# -- example pages -------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def md_escape(text) -> str:
    """Plain text -> markdown that renders as that text (SIDs' angle brackets are not HTML tags)."""
    text = str(text).replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def _code(text) -> str:
    """Inline code span (escapes are literal inside one; GFM tables still need their pipe escaped)."""
    return "`" + str(text).replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def _title_lookup(titles):
    """-> function(sid) -> markdown title cell: the title, a 'not in catalogue' note, or '' without titles."""
    if titles is None:
        return lambda sid: ""
    if hasattr(titles, "title_of_sid"):
        known, title = titles.is_valid_sid, titles.title_of_sid
    else:
        known, title = titles.__contains__, titles.get
    return lambda sid: md_escape(title(sid) or "") if known(sid) else "*(not in catalogue)*"


def _row_lookup(rows):
    """-> function(record) -> SequenceRow | None. See write_examples_page for the matching rules."""
    if rows is None:
        return lambda rec: None
    if isinstance(rows, Mapping):
        return lambda rec: rows.get(str(rec.get("user_id")))
    rows = list(rows)
    by_pair: dict = {}
    for r in rows:
        by_pair.setdefault((r.user_id, r.item_sid), r)

    def find(rec):
        idx = rec.get("row")  # the evaluator's 0-based position in the split file
        if isinstance(idx, int) and 0 <= idx < len(rows) and rows[idx].user_id == str(rec.get("user_id")):
            return rows[idx]
        return by_pair.get((str(rec.get("user_id")), rec.get("target")))
    return find


def _reasoning_text(rec: dict, limit: int) -> str:
    """The record's reasoning, cut to ``limit`` characters, with notes on sampled paths / unclosed thinking."""
    text = str(rec.get("reasoning") or "").strip()
    if len(text) > limit:
        text = text[:limit] + f" … ({len(text) - limit} more characters)"
    notes = []
    paths = rec.get("reasoning_paths")
    if isinstance(paths, list) and len(paths) > 1:
        notes.append(f"first of {len(paths)} sampled reasoning paths")
    closed = rec.get("think_closed")
    if closed is False or (isinstance(closed, list) and closed and closed[0] is False):
        notes.append("the reasoning hit the length limit before </think>; it was closed for the answer")
    return text + ("".join(f"\n\n[{n}]" for n in notes) if text else "")


def _fenced(text: str, width: int = 100) -> str:
    """A fenced text block, wrapped to ``width`` columns: readable raw and rendered, no escaping needed."""
    body = "\n".join(textwrap.fill(p, width) if p.strip() else "" for p in text.splitlines())
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def _example_block(num: int, rec: dict, row: Optional[SequenceRow], title_of, top: int) -> list[str]:
    target, ranked, scores = rec["target"], rec["ranked"], rec.get("scores") or []
    rank = ranked.index(target) + 1 if target in ranked else None
    verdict = f"hit at rank {rank}" if rank else f"miss (target not in the {len(ranked)} predictions)"
    out = [f"## {num}. user {_code(rec['user_id'])} — {verdict}", ""]
    if row is not None:
        out.append("**History** (oldest first):")
        history = zip(row.history_sids, row.history_titles)
        out += [f"{i}. {_code(sid)} {md_escape(t)}" for i, (sid, t) in enumerate(history, 1)]
    else:
        out.append("*History not available (no split rows given for this user).*")
    target_title = md_escape(row.item_title) if row is not None else title_of(target)
    out += ["", f"**Target:** {_code(target)} {target_title}", ""]
    reasoning = _reasoning_text(rec, 1500)
    if reasoning:
        out += ["**Reasoning:**", "", _fenced(reasoning), ""]
    out += [f"**Top-{top}:**", "", "| rank | SID | title | score | |", "|---:|---|---|---:|---|"]
    for i, sid in enumerate(ranked[:top], 1):
        score = scores[i - 1] if i - 1 < len(scores) else None
        mark = "✅ target" if sid == target else ""
        out.append(f"| {i} | {_code(sid)} | {title_of(sid)} | "
                   f"{_fmt(float(score)) if score is not None else ''} | {mark} |")
    return out + [""]


def write_examples_page(run_dir, predictions: Sequence[dict], rows=None, titles=None, n: int = 10,
                        top: int = 5, filename: str = "examples.md") -> Path:
    """Write ``run_dir/examples.md``: n prediction rows spread evenly over the file, for people to read.

    ``rows``: the split's SequenceRows (list: matched by the record's ``row`` field when present,
    else by (user_id, target); users repeat in the splits) or a ``{user_id: SequenceRow}`` mapping.
    ``titles``: a SIDIndex (``title_of_sid``) or a ``{sid: title}`` mapping. Each example shows the
    history with titles, the reasoning when present, the top-``top`` predictions with titles and the
    hit marked.
    """
    preds = list(predictions)
    for i, rec in enumerate(preds, 1):
        check_record(rec, "<predictions>", i)
    title_of, row_of = _title_lookup(titles), _row_lookup(rows)
    shown = min(n, len(preds))
    picks = [i * len(preds) // shown for i in range(shown)]  # evenly spaced, distinct since shown <= len
    hits = sum(1 for p in preds if p["target"] in p["ranked"][:top])
    lines = [f"# Example predictions: {md_escape(Path(run_dir).resolve().name)}", "",
             f"{len(picks)} of {len(preds)} rows, evenly spaced; the target is in the top {top} for "
             f"{hits} of {len(preds)} rows overall.", ""]
    for num, i in enumerate(picks, 1):
        lines += _example_block(num, preds[i], row_of(preds[i]), title_of, top)
    path = Path(run_dir) / filename
    atomic_write_text(path, "\n".join(lines))
    return path
