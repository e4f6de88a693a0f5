"""Fusion of a model's thinking and non-thinking lists, with the weight chosen on valid.

    # pick the weight on valid (both modes evaluated on the valid split), apply it to test
    python -m sidreasoner.eval.fusion --valid results/valid_think results/valid_nothink \
        --test results/stage2_think results/stage2_nothink --output_dir results/stage2_fused

Per row, every SID in either list gets ``w * think_score + (1 - w) * nothink_score`` (the beam search's
log-probabilities; a SID missing from one list takes that list's lowest score, a bound it did not beat)
and the union is re-ranked. ``w = 0`` is the non-thinking list and ``w = 1`` the thinking one, so the
weight with the best valid NDCG@10 over ``--weights`` can only lose to non-thinking mode on valid by
noise between splits. Writes ``OUTPUT_DIR/predictions.jsonl``, ``metrics.json`` and ``fusion.json``
(the valid NDCG@10 of every weight and the one chosen).
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


def paired(think_dir, nothink_dir) -> list[tuple[dict, dict]]:
    """(thinking, non-thinking) records of the rows both runs scored, by row."""
    recs = []
    for d in (think_dir, nothink_dir):
        path = Path(d) / P.PREDICTIONS
        if not path.is_file():
            raise DataError(path, "predictions file not found (run evaluate.py into that folder first)")
        recs.append({r["row"]: r for r in P.read_records(path)})
    think, nothink = recs
    missing = sorted(set(think) - set(nothink))
    if missing:
        raise DataError(Path(think_dir) / P.PREDICTIONS, f"rows {missing[:5]} are not in {nothink_dir}")
    return [(think[i], nothink[i]) for i in sorted(think)]


def ndcg10(pairs: Sequence[tuple[dict, dict]], weight: float, k: int) -> float:
    return compute_metrics([fuse_row(t, n, weight, k) for t, n in pairs], ks=[10], num_beams=k)["NDCG@10"]


def choose_weight(pairs, weights: Sequence[float], k: int) -> tuple[float, dict]:
    """The weight with the best NDCG@10 on ``pairs`` (ties: the smaller weight, closer to non-thinking)."""
    scores = {w: ndcg10(pairs, w, k) for w in weights}
    best = max(weights, key=lambda w: (scores[w], -w))
    return best, scores


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--valid", nargs=2, metavar=("THINK_DIR", "NOTHINK_DIR"),
                   help="the model's valid-split evaluations in both modes: the weight is chosen on them")
    p.add_argument("--test", nargs=2, required=True, metavar=("THINK_DIR", "NOTHINK_DIR"),
                   help="the evaluations to fuse with the chosen weight")
    p.add_argument("--weight", type=float, default=None, help="use this weight instead of choosing on --valid")
    p.add_argument("--weights", default=",".join(map(str, DEFAULT_WEIGHTS)),
                   help="weights tried on valid (default: %(default)s)")
    p.add_argument("--num_beams", type=int, default=10, help="SIDs kept per fused list (default: %(default)s)")
    p.add_argument("--output_dir", required=True, help="folder for the fused predictions.jsonl, metrics.json")
    args = p.parse_args(argv)
    try:
        weights = [float(w) for w in args.weights.split(",")]
    except ValueError:
        p.error(f"--weights: expected comma-separated numbers, got {args.weights!r}")
    if args.weight is None and not args.valid:
        p.error("give --valid THINK_DIR NOTHINK_DIR to choose the weight, or --weight")
    if any(not 0 <= w <= 1 for w in weights + ([args.weight] if args.weight is not None else [])):
        p.error("weights must lie in [0, 1]")
    try:
        record = {"valid": args.valid, "test": args.test}
        weight = args.weight
        if weight is None:
            weight, scores = choose_weight(paired(*args.valid), weights, args.num_beams)
            record["valid_ndcg10"] = {str(w): round(v, 4) for w, v in scores.items()}
        fused = [fuse_row(t, n, weight, args.num_beams) for t, n in paired(*args.test)]
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / P.PREDICTIONS, "".join(json.dumps(r) + "\n" for r in fused))
    metrics = compute_metrics(fused, num_beams=args.num_beams)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    atomic_write_text(out / "fusion.json", json.dumps({**record, "weight": weight}, indent=1) + "\n")
    print(f"weight {weight}: NDCG@10 {metrics['NDCG@10']:.4f} on {metrics['n']} rows -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
