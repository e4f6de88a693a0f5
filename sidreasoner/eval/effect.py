"""What thinking mode did, row by row: helped, hurt or left unchanged, against the same model's
non-thinking list on the same rows.

    python -m sidreasoner.eval.effect results/stage2_think results/stage2_nothink [--k 10]
    python evaluate.py --think ... --compare_nothink results/stage2_nothink    # the same, after the run

A row is *helped* when the target's NDCG@K contribution (``1 / log2(rank + 1)`` inside the top K, else 0)
is higher in the thinking list than in the non-thinking one, *hurt* when lower, *unchanged* otherwise
(same rank, or missed by both). Rows are matched by their ``row`` field (the split's row number), so the
thinking run may score a subset (``--limit``) of the non-thinking run's rows; thinking rows the other run
did not score are left out and counted. Writes
``THINK_DIR/think_effect.json`` (the counts and both NDCG@K on the shared rows) and
``THINK_DIR/think_effect_rows.jsonl`` (every helped or hurt row with both ranks, best gain first).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..data.formats import atomic_write_text
from ..data.records import DataError
from ..flags import add_dataclass_args
from ..ranges import at_least, parse_checked
from . import predictions as P
from .metrics import target_rank

EFFECT_FILE = "think_effect.json"
ROWS_FILE = "think_effect_rows.jsonl"


def gain(rank: Optional[int], k: int) -> float:
    """NDCG@K contribution of a 1-based rank (None: the target is not in the list)."""
    return 1.0 / math.log2(rank + 1) if rank is not None and rank <= k else 0.0


def think_effect(think: Sequence[dict], nothink: Sequence[dict], k: int = 10, source: str = "") -> dict:
    """Counts of helped / hurt / unchanged rows and the changed rows (see module doc).

    Thinking rows the non-thinking run did not score are left out and counted (``not_in_nothink``).
    Raises DataError when no row is shared or twins disagree on the target (different splits)."""
    base = {r["row"]: r for r in nothink}
    shared = [r for r in sorted(think, key=lambda r: r["row"]) if r["row"] in base]
    if think and not shared:
        raise DataError(source, "no row of the thinking run is in the non-thinking run: score the same split")
    changed, unchanged, sums = [], 0, [0.0, 0.0]
    for r in shared:
        twin = base[r["row"]]
        if twin["target"] != r["target"]:
            raise DataError(source, f"row {r['row']}: targets differ ({twin['target']} vs {r['target']}); "
                                    "the two runs scored different splits")
        ranks = (target_rank(twin["ranked"], twin["target"]), target_rank(r["ranked"], r["target"]))
        g0, g1 = gain(ranks[0], k), gain(ranks[1], k)
        sums[0], sums[1] = sums[0] + g0, sums[1] + g1
        if g1 == g0:
            unchanged += 1
            continue
        changed.append({"row": r["row"], "user_id": r.get("user_id"), "target": r["target"],
                        "rank_nothink": ranks[0], "rank_think": ranks[1], "gain": round(g1 - g0, 6)})
    n = len(shared)
    changed.sort(key=lambda c: (-c["gain"], c["row"]))
    return {"k": k, "n": n, "helped": sum(c["gain"] > 0 for c in changed),
            "hurt": sum(c["gain"] < 0 for c in changed), "unchanged": unchanged,
            f"NDCG@{k}_nothink": sums[0] / n if n else None, f"NDCG@{k}_think": sums[1] / n if n else None,
            "not_in_nothink": len(think) - n, "rows": changed}


def write_effect(think_dir, nothink_dir, k: int = 10) -> dict:
    """``think_effect`` of two evaluation folders, written into ``think_dir``; returns the counts."""
    effect = think_effect(P.read_run(think_dir), P.read_run(nothink_dir), k, str(Path(think_dir) / P.PREDICTIONS))
    rows = effect.pop("rows")
    effect.update(think_dir=str(think_dir), nothink_dir=str(nothink_dir))
    atomic_write_text(Path(think_dir) / EFFECT_FILE, json.dumps(effect, indent=1) + "\n")
    atomic_write_text(Path(think_dir) / ROWS_FILE, "".join(json.dumps(r) + "\n" for r in rows))
    return effect


def describe(effect: dict) -> str:
    k = effect["k"]
    left = effect.get("not_in_nothink", 0)
    return (f"thinking vs non-thinking on {effect['n']} rows (NDCG@{k}): helped {effect['helped']}, "
            f"hurt {effect['hurt']}, unchanged {effect['unchanged']}; NDCG@{k} "
            f"{effect[f'NDCG@{k}_nothink']:.4f} -> {effect[f'NDCG@{k}_think']:.4f}"
            + (f"; {left} thinking rows left out: not in the non-thinking run" if left else ""))


@dataclass
class EffectFlags:
    """The command line of ``python -m sidreasoner.eval.effect``."""
    think_dir: str = field(default=None, metadata={
        "help": "evaluation folder of the thinking run (its predictions.jsonl)", "positional": True})
    nothink_dir: str = field(default=None, metadata={
        "help": "evaluation folder of the same model's non-thinking run", "positional": True})
    k: int = field(default=10, metadata={"help": "cut-off of the NDCG gain that decides helped/hurt "
                                                 "(default: %(default)s)"})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(p, EffectFlags)
    args = parse_checked(p, argv, {"k": at_least(1)})
    try:
        effect = write_effect(args.think_dir, args.nothink_dir, args.k)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(describe(effect))
    print(f"wrote {Path(args.think_dir) / EFFECT_FILE} and {Path(args.think_dir) / ROWS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
