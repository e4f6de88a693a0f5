"""Fusion of a model's thinking and non-thinking lists, with the weight chosen on valid; or adaptive
thinking, which takes the thinking list only where the non-thinking list is unsure.

    # pick the weight on valid (both modes evaluated on the valid split), apply it to test
    python -m sidreasoner.eval.fusion --valid results/valid_think results/valid_nothink \
        --test results/stage2_think results/stage2_nothink --output_dir results/stage2_fused

Per row, every SID in either list gets ``w * think_score + (1 - w) * nothink_score`` (the beam search's
log-probabilities; a SID missing from one list takes that list's lowest score, a bound it did not beat)
and the union is re-ranked. ``w = 0`` is the non-thinking list and ``w = 1`` the thinking one, so the
weight with the best valid NDCG@10 over ``--weights`` can only lose to non-thinking mode on valid by
noise between splits. Writes ``OUTPUT_DIR/predictions.jsonl``, ``metrics.json`` and ``fusion.json``
(the valid NDCG@10 of every weight and the one chosen).

``--method adaptive``: a row takes the thinking list when the non-thinking list's margin (score of its
first SID minus its second's, in log-probability) is at most a threshold, else the non-thinking list.
The threshold is chosen on valid among -1 (never think: margins are >= 0) and the 10th..50th
percentiles of the valid margins;
``fusion.json`` records it and the share of test rows that thought.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from ..data.formats import atomic_write_text
from ..data.records import DataError
from . import predictions as P
from .metrics import compute_metrics

DEFAULT_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
NEVER = -1.0  # adaptive threshold below every margin: never think


def fuse_row(think: dict, nothink: dict, weight: float, k: int) -> dict:
    """One row's fused top-``k`` (the non-thinking record's fields, ``ranked``/``scores`` replaced)."""
    t = dict(zip(think["ranked"], think.get("scores") or []))
    n = dict(zip(nothink["ranked"], nothink.get("scores") or []))
    if len(t) != len(think["ranked"]) or len(n) != len(nothink["ranked"]):
        raise DataError(f"row {think['row']}", "fusion needs a score for every ranked SID (evaluate.py writes them)")
    floor_t, floor_n = min(t.values(), default=0.0), min(n.values(), default=0.0)
    fused = {sid: weight * t.get(sid, floor_t) + (1 - weight) * n.get(sid, floor_n) for sid in {*t, *n}}
    # ties: a SID scored by both lists, then by the weighted-up one, before one that only has a floor,
    # so that w = 0 and w = 1 give back the non-thinking and the thinking list exactly
    weighted_up = n if weight <= 0.5 else t
    best = sorted(fused, key=lambda sid: (-fused[sid], (sid not in t) + (sid not in n), sid not in weighted_up,
                                          sid))[:k]
    return {**nothink, "ranked": best, "scores": [round(fused[sid], 6) for sid in best], "fusion_weight": weight}


def margin(rec: dict) -> float:
    """How sure a list is: its first score minus its second (infinite for a one-SID list)."""
    scores = rec.get("scores") or []
    return scores[0] - scores[1] if len(scores) > 1 else float("inf")


def adaptive_row(think: dict, nothink: dict, threshold: float, k: int) -> dict:
    """The thinking list where the non-thinking margin is at most ``threshold``, else the non-thinking one."""
    chosen = think if margin(nothink) <= threshold else nothink
    return {**nothink, "ranked": chosen["ranked"][:k], "scores": (chosen.get("scores") or [])[:k],
            "thought": chosen is think}


def thresholds_of(pairs) -> list[float]:
    """-1 (never think) and the 10th..50th percentiles of the non-thinking margins of ``pairs``."""
    margins = sorted(m for m in (margin(n) for _, n in pairs) if m != float("inf"))
    if not margins:
        return [NEVER]
    return [NEVER] + sorted({margins[int(q * (len(margins) - 1))] for q in (0.1, 0.2, 0.3, 0.4, 0.5)})


def paired(think_dir, nothink_dir) -> list[tuple[dict, dict]]:
    """(thinking, non-thinking) records of the rows both runs scored, by row."""
    think, nothink = ({r["row"]: r for r in P.read_run(d)} for d in (think_dir, nothink_dir))
    missing = sorted(set(think) - set(nothink))
    if missing:
        raise DataError(Path(think_dir) / P.PREDICTIONS, f"rows {missing[:5]} are not in {nothink_dir}")
    return [(think[i], nothink[i]) for i in sorted(think)]


METHODS = {"fusion": fuse_row, "adaptive": adaptive_row}


def ndcg10(pairs: Sequence[tuple[dict, dict]], value: float, k: int, method: str = "fusion") -> float:
    rows = [METHODS[method](t, n, value, k) for t, n in pairs]
    return compute_metrics(rows, ks=[10], num_beams=k)["NDCG@10"]


def choose_weight(pairs, weights: Sequence[float], k: int, method: str = "fusion") -> tuple[float, dict]:
    """The weight (or threshold) with the best NDCG@10 on ``pairs``; ties: the smaller one, which is
    closer to non-thinking mode."""
    scores = {w: ndcg10(pairs, w, k, method) for w in weights}
    best = max(weights, key=lambda w: (scores[w], -w))
    return best, scores


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="fusion", choices=sorted(METHODS),
                   help="fusion: weighted scores of both lists; adaptive: the thinking list only where the "
                        "non-thinking margin is at most a threshold (default: %(default)s)")
    p.add_argument("--valid", nargs=2, metavar=("THINK_DIR", "NOTHINK_DIR"),
                   help="the model's valid-split evaluations in both modes: the weight is chosen on them")
    p.add_argument("--test", nargs=2, required=True, metavar=("THINK_DIR", "NOTHINK_DIR"),
                   help="the evaluations to fuse with the chosen weight")
    p.add_argument("--weight", type=float, default=None,
                   help="use this weight (adaptive: margin threshold) instead of choosing on --valid")
    p.add_argument("--weights", default=",".join(map(str, DEFAULT_WEIGHTS)),
                   help="fusion weights tried on valid (default: %(default)s)")
    p.add_argument("--num_beams", type=int, default=10, help="SIDs kept per fused list (default: %(default)s)")
    p.add_argument("--output_dir", required=True, help="folder for the fused predictions.jsonl, metrics.json")
    return p


def _candidates(p, args, valid_pairs) -> list[float]:
    if args.method == "adaptive":
        return thresholds_of(valid_pairs)
    try:
        weights = [float(w) for w in args.weights.split(",")]
    except ValueError:
        p.error(f"--weights: expected comma-separated numbers, got {args.weights!r}")
    if any(not 0 <= w <= 1 for w in weights):
        p.error("weights must lie in [0, 1]")
    return weights


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.weight is None and not args.valid:
        p.error("give --valid THINK_DIR NOTHINK_DIR to choose the weight, or --weight")
    if args.method == "fusion" and args.weight is not None and not 0 <= args.weight <= 1:
        p.error("weights must lie in [0, 1]")
    try:
        record = {"method": args.method, "valid": args.valid, "test": args.test}
        weight = args.weight
        if weight is None:
            valid = paired(*args.valid)
            weight, scores = choose_weight(valid, _candidates(p, args, valid), args.num_beams, args.method)
            record["valid_ndcg10"] = {str(w): round(v, 4) for w, v in scores.items()}
        fused = [METHODS[args.method](t, n, weight, args.num_beams) for t, n in paired(*args.test)]
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.method == "adaptive":
        record["thought_share"] = round(sum(r["thought"] for r in fused) / max(len(fused), 1), 4)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / P.PREDICTIONS, "".join(json.dumps(r) + "\n" for r in fused))
    metrics = compute_metrics(fused, num_beams=args.num_beams)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    atomic_write_text(out / "fusion.json", json.dumps({**record, "weight": weight}, indent=1) + "\n")
    print(f"{args.method} {weight}: NDCG@10 {metrics['NDCG@10']:.4f} on {metrics['n']} rows -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
