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

``--method best`` (what the pipeline runs): each method's weight chosen on valid, then the method
with the best valid NDCG@10; ``fusion.json`` records every method's choice.

``--method calibrated --prior PRIOR.json``: the thinking list re-ranked by ``score - alpha * prior``
(``sidreasoner.eval.calibration``: the SID's log-probability under the empty-history prompt), alpha
chosen on valid among 0 (the plain list), 0.1, 0.2, 0.3, 0.5 (``--weights`` changes the grid). Pass the
same folder twice to calibrate a non-thinking run.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..data.formats import atomic_write_text
from ..data.records import DataError
from ..flags import add_dataclass_args
from ..paths import NUM_BEAMS
from ..ranges import at_least, between, check_list, finite, optional, parse_checked
from . import predictions as P
from .calibration import DEFAULT_ALPHAS, calibrate_row, load_prior
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
    rec = {**nothink, "ranked": best, "scores": [round(fused[sid], 6) for sid in best], "fusion_weight": weight}
    return P.carry_items(rec, think, nothink)


def margin(rec: dict) -> float:
    """How sure a list is: its first score minus its second (infinite for a one-SID list)."""
    scores = rec.get("scores") or []
    return scores[0] - scores[1] if len(scores) > 1 else float("inf")


def adaptive_row(think: dict, nothink: dict, threshold: float, k: int) -> dict:
    """The thinking list where the non-thinking margin is at most ``threshold``, else the non-thinking one."""
    chosen = think if margin(nothink) <= threshold else nothink
    rec = {**nothink, "ranked": chosen["ranked"][:k], "scores": (chosen.get("scores") or [])[:k],
           "thought": chosen is think}
    return P.carry_items(rec, chosen)


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


def calibrated_rows(prior: dict):
    """The ``calibrated`` method over ``prior`` (SID -> log p0): re-ranks the thinking list."""
    def row(think: dict, nothink: dict, alpha: float, k: int) -> dict:
        try:
            return calibrate_row(think, prior, alpha, k)
        except ValueError as e:
            raise DataError("calibration", str(e)) from None
    return row


METHODS = {"fusion": fuse_row, "adaptive": adaptive_row}


def method_row(method: str, prior: Optional[dict] = None):
    if method == "calibrated":
        if prior is None:
            raise ValueError("--method calibrated needs --prior (python -m sidreasoner.eval.calibration writes it)")
        return calibrated_rows(prior)
    return METHODS[method]


def ndcg10(pairs: Sequence[tuple[dict, dict]], value: float, k: int, method: str = "fusion",
           prior: Optional[dict] = None) -> float:
    row = method_row(method, prior)
    return compute_metrics([row(t, n, value, k) for t, n in pairs], ks=[10], num_beams=k)["NDCG@10"]


def choose_weight(pairs, weights: Sequence[float], k: int, method: str = "fusion",
                  prior: Optional[dict] = None) -> tuple[float, dict]:
    """The weight (threshold, alpha) with the best NDCG@10 on ``pairs``; ties: the smaller one, which is
    closer to the plain non-thinking (fusion, adaptive) or uncalibrated (calibrated) list."""
    scores = {w: ndcg10(pairs, w, k, method, prior) for w in weights}
    best = max(weights, key=lambda w: (scores[w], -w))
    return best, scores


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class FusionConfig:
    """The flags of ``python -m sidreasoner.eval.fusion``."""
    method: str = _f("fusion", "fusion: weighted scores of both lists; adaptive: the thinking list only where the "
                               "non-thinking margin is at most a threshold; calibrated: the thinking list re-ranked "
                               "by score - alpha x its empty-history prior (--prior); best: each of them (calibrated "
                               "with --prior) chosen on valid, then the one that scores best there "
                               "(default: %(default)s)", choices=sorted([*METHODS, "calibrated", "best"]))
    prior: Optional[str] = _f(None, "with --method calibrated: the SID prior JSON of the evaluated model "
                                    "(python -m sidreasoner.eval.calibration)")
    valid: Optional[list] = _f(None, "the model's valid-split evaluations in both modes: the weight is chosen on them",
                               nargs=2, metavar=("THINK_DIR", "NOTHINK_DIR"), type=str)
    test: Optional[list] = _f(None, "the evaluations to fuse with the chosen weight", nargs=2, required=True,
                              metavar=("THINK_DIR", "NOTHINK_DIR"), type=str)
    weight: Optional[float] = _f(None, "use this weight (adaptive: margin threshold) instead of choosing on --valid")
    weights: Optional[str] = _f(None, "fusion weights (calibrated: alphas) tried on valid, comma-separated (default: "
                                      f"{','.join(map(str, DEFAULT_WEIGHTS))}; calibrated "
                                      f"{','.join(map(str, DEFAULT_ALPHAS))})")
    num_beams: int = _f(NUM_BEAMS, "SIDs kept per fused list (default: %(default)s)")
    output_dir: Optional[str] = _f(None, "folder for the fused predictions.jsonl, metrics.json", required=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_dataclass_args(p, FusionConfig)


def _candidates(p, args, valid_pairs, method: str) -> list[float]:
    if method == "adaptive":
        return thresholds_of(valid_pairs)
    grid = DEFAULT_ALPHAS if method == "calibrated" else DEFAULT_WEIGHTS
    return list(args.weights or grid)


def _check_weights(p, args) -> None:
    """--weight and --weights inside the values of --method (parse time; --weights becomes a list)."""
    if args.weight is not None and not _weight_range(args.method).ok(args.weight):
        p.error(f"--weight must be {_weight_range(args.method).text} with --method {args.method}, got {args.weight}")
    try:
        args.weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    except ValueError:
        p.error(f"--weights: expected comma-separated numbers, got {args.weights!r}")
    try:
        check_list("weights", args.weights, _weight_range(args.method))
    except ValueError as e:
        p.error(str(e))


def _weight_range(method: str):
    """Fusion weights lie in [0, 1], calibration alphas >= 0, adaptive margin thresholds anywhere finite."""
    return {"fusion": between(0, 1), "calibrated": at_least(0, "a calibration alpha")}.get(method, finite())


def choose_method(p, args, valid, prior) -> tuple[str, float, dict]:
    """``(method, weight, record)``: ``--method``'s weight chosen on ``valid``, or with ``best`` the
    method (fusion, adaptive, then calibrated when a prior is given; ties: the earlier one) whose own
    choice scores best there."""
    methods = [args.method] if args.method != "best" else ["fusion", "adaptive"] + (["calibrated"] if prior else [])
    grids = {}
    for m in methods:
        weight, scores = choose_weight(valid, _candidates(p, args, valid, m), args.num_beams, m, prior)
        grids[m] = (weight, {str(w): round(v, 4) for w, v in scores.items()})
    method = max(methods, key=lambda m: (grids[m][1][str(grids[m][0])], -methods.index(m)))
    record = {"valid_ndcg10": grids[method][1]}
    if args.method == "best":
        record["valid_by_method"] = {m: {"weight": w, "valid_ndcg10": g[str(w)]} for m, (w, g) in grids.items()}
    return method, grids[method][0], record


def main(argv=None) -> int:
    p = build_parser()
    args = parse_checked(p, argv, {"num_beams": at_least(1), "weight": optional(finite())})
    if args.weight is None and not args.valid:
        p.error("give --valid THINK_DIR NOTHINK_DIR to choose the weight, or --weight")
    if args.method == "best" and (args.weight is not None or args.weights):
        p.error("--method best chooses every method's weight on --valid: leave out --weight and --weights")
    if (args.method == "calibrated" and not args.prior) or (args.prior and args.method not in ("calibrated", "best")):
        p.error("--prior goes with --method calibrated or best, and --method calibrated needs --prior")
    _check_weights(p, args)
    try:
        prior = load_prior(args.prior) if args.prior else None
        method, weight, record = args.method, args.weight, {}
        if weight is None:
            method, weight, record = choose_method(p, args, paired(*args.valid), prior)
        row = method_row(method, prior)
        fused = [row(t, n, weight, args.num_beams) for t, n in paired(*args.test)]
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    record = {"method": method, "weight": weight, "asked": args.method, "valid": args.valid, "test": args.test,
              "prior": args.prior, **record}
    if method == "adaptive":
        record["thought_share"] = round(sum(r["thought"] for r in fused) / max(len(fused), 1), 4)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / P.PREDICTIONS, "".join(json.dumps(r) + "\n" for r in fused))
    metrics = compute_metrics(fused, num_beams=args.num_beams)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    atomic_write_text(out / "fusion.json", json.dumps(record, indent=1) + "\n")
    print(f"{method} {weight}: NDCG@10 {metrics['NDCG@10']:.4f} on {metrics['n']} rows -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
