"""Dataset statistics of a release: sizes, history lengths, SID structure, coverage, cold targets.

``compute_stats`` returns a JSON-serialisable dict (keys are strings); ``render_stats`` prints it as
aligned text tables. Splits are keyed by name (``train``, ``valid``, ``test``); cold targets are
measured against ``train`` (items never seen there, as target or in a history).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from ..sid.index import SIDIndex
from .records import SequenceRow


def _history_stats(lengths: Sequence[int], max_history: int) -> dict:
    """min/mean/median/max and a histogram of rows per length 0..max_history (longer: ``over_max``)."""
    a = np.asarray(lengths, dtype=np.int64)
    # bin max_history + 1 collects every longer history
    hist = np.bincount(np.minimum(a, max_history + 1), minlength=max_history + 2)
    out = {"rows": int(a.size), "histogram": [int(x) for x in hist[:max_history + 1]],
           "over_max": int(hist[max_history + 1])}
    if a.size:
        out.update(min=int(a.min()), mean=round(float(a.mean()), 3), median=float(np.median(a)), max=int(a.max()))
    else:
        out.update(min=None, mean=None, median=None, max=None)
    return out


def _catalogue_stats(index: SIDIndex) -> dict:
    shared = index.collisions()
    return {
        "items": len(index),
        "unique_sids": len(index.unique_sids()),
        "sid_levels": {str(k): v for k, v in sorted(index.level_counts().items())},
        "codes_per_level": index.codes_per_level(),
        "collisions": {"shared_sids": len(shared), "items_on_shared_sids": sum(len(v) for v in shared.values()),
                       "colliding_pairs": index.colliding_pairs()},
    }


def _cold_targets(rows: Sequence[SequenceRow], seen: set) -> dict:
    cold_rows = [r for r in rows if r.item_id not in seen]
    return {"rows": len(cold_rows), "row_share": round(len(cold_rows) / len(rows), 4) if rows else None,
            "items": len({r.item_id for r in cold_rows})}


def compute_stats(splits: Mapping[str, Sequence[SequenceRow]], index: Mapping[str, str] | SIDIndex,
                  max_history: int = 10, category: Optional[str] = None) -> dict:
    """Statistics of a release. ``index``: item id -> SID (index.json) or a SIDIndex."""
    index = index if isinstance(index, SIDIndex) else SIDIndex(index)
    stats: dict = {"category": category, **_catalogue_stats(index), "max_history": max_history}
    names = list(splits)
    all_rows = [r for n in names for r in splits[n]]
    stats["rows"] = {**{n: len(splits[n]) for n in names}, "total": len(all_rows)}
    stats["users"] = {**{n: len({r.user_id for r in splits[n]}) for n in names},
                      "total": len({r.user_id for r in all_rows})}
    stats["history_length"] = {n: _history_stats([len(r.history_item_ids) for r in rows], max_history)
                               for n, rows in {**splits, "all": all_rows}.items()}
    n_items = max(len(index), 1)
    targets = {n: {r.item_id for r in splits[n]} for n in names}
    targets["total"] = set().union(*targets.values()) if targets else set()
    stats["target_items"] = {n: {"items": len(t), "catalogue_share": round(len(t) / n_items, 4)}
                             for n, t in targets.items()}
    used = targets["total"] | {i for r in all_rows for i in r.history_item_ids}
    stats["items_never_used"] = sum(1 for i in index.item_to_sid if i not in used)
    if "train" in splits:
        seen = {r.item_id for r in splits["train"]} | {i for r in splits["train"] for i in r.history_item_ids}
        stats["cold_targets"] = {n: _cold_targets(splits[n], seen) for n in names if n != "train"}
    return stats


def _table(header: Sequence[str], rows: Sequence[Sequence], indent: str = "  ") -> list[str]:
    """Left-aligned first column, right-aligned others."""
    cells = [[str(c) for c in header]] + [["-" if c is None else (f"{c:,}" if isinstance(c, int) else str(c))
                                            for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return [indent + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in cells]


def render_stats(stats: dict) -> str:
    """Aligned text tables of :func:`compute_stats`' dict."""
    names = [n for n in stats["rows"] if n != "total"]
    col = names + ["total"]
    hist = stats["history_length"]
    hcol = names + ["all"]
    col_stats = stats["collisions"]
    lines = [f"dataset {stats['category'] or ''}".rstrip(),
             f"  items {stats['items']:,}; distinct SIDs {stats['unique_sids']:,}; "
             f"items in no split {stats['items_never_used']:,}"]
    lines += _table(["", *col], [
        ["rows", *(stats["rows"][n] for n in col)],
        ["users", *(stats["users"][n] for n in col)],
        ["distinct target items", *(stats["target_items"][n]["items"] for n in col)],
        ["target share of catalogue", *(f"{stats['target_items'][n]['catalogue_share']:.3f}" for n in col)],
        ["cold target rows", *(stats.get("cold_targets", {}).get(n, {}).get("rows") for n in col)],
        ["cold target items", *(stats.get("cold_targets", {}).get(n, {}).get("items") for n in col)],
    ])
    lines.append("history length")
    lines += _table(["", *hcol], [[k, *(_fmt(hist[n][k]) for n in hcol)] for k in ("min", "mean", "median", "max")]
                    + [[f"rows with length {length}", *(hist[n]["histogram"][length] for n in hcol)]
                       for length in range(stats["max_history"] + 1)]
                    + [[f"rows longer than {stats['max_history']}", *(hist[n]["over_max"] for n in hcol)]])
    lines.append("semantic IDs")
    lines += _table(["", "value"], [
        *[[f"SIDs with {k} levels", v] for k, v in stats["sid_levels"].items()],
        ["codes used per level", " / ".join(str(c) for c in stats["codes_per_level"])],
        ["SIDs shared by >1 item", col_stats["shared_sids"]],
        ["items on shared SIDs", col_stats["items_on_shared_sids"]],
        ["colliding item pairs", col_stats["colliding_pairs"]],
    ])
    return "\n".join(lines)


def _fmt(x) -> Optional[str]:
    if x is None:
        return None
    return f"{x:g}" if isinstance(x, float) else str(x)
