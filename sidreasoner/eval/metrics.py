"""HR@K / NDCG@K over prediction rows.

Run: ``python -m sidreasoner.eval.metrics PREDICTIONS.jsonl [--info_file INFO] [--ks 1,5,10] [--output metrics.json]``

One target per row; a prediction matches when its SID STRING equals the target string (the release has
colliding SIDs — items sharing a SID — and the paper matches by string, so either item of a colliding
pair counts as a hit). With one relevant item, NDCG@K = 1 / log2(rank + 1) when the 1-based rank is <= K
(IDCG = 1), else 0; both metrics are averaged over all rows, rows without a hit counting 0.

Duplicates within a ranked list count once: the target's rank is its FIRST occurrence in the list as
returned, and repeats are not removed before cutting at K. Keeping the returned positions is the
conservative choice — a generator that repeats a SID cannot pull a later target into the top K —
and the number of rows with repeats is reported (``rows_with_duplicates``).

Also reported: ``n`` rows, ``num_beams`` (given, or the longest ranked list), ``rows_short`` (rows with
fewer than ``num_beams`` predictions), and with a catalogue ``invalid_rate`` = share of all returned
predictions that are not catalogue SIDs (``None`` without a catalogue).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Iterable, Optional, Sequence

from ..data.records import DataError
from ..flags import add_dataclass_args
from ..ranges import at_least, check_list, optional, parse_checked
from ..sid.spelling import SIDFormatError, parse_sid

DEFAULT_KS = (1, 3, 5, 10, 20, 50)
_RECORDS = "<records>"  # the "file" named in errors about in-memory records


def resolve_ks(ks: Optional[Iterable[int]], num_beams: int) -> tuple[int, ...]:
    """Explicit ``ks`` (each 1..num_beams), else the defaults up to ``num_beams`` (at least K=1)."""
    if ks is None:
        return tuple(k for k in DEFAULT_KS if k <= num_beams) or (1,)
    out = tuple(sorted({int(k) for k in ks}))
    if not out or out[0] < 1:
        raise ValueError(f"ks must be positive integers, got {list(ks)}")
    return out


def check_record(rec, path=_RECORDS, line: Optional[int] = None) -> None:
    """Raise DataError naming file, line and field when a prediction row is malformed."""
    if not isinstance(rec, dict):
        raise DataError(path, f"expected a JSON object, got {type(rec).__name__}", line)
    for name in ("user_id", "target", "ranked"):
        if name not in rec:
            raise DataError(path, f"missing field (have {sorted(rec)})", line, name)
    if not isinstance(rec["user_id"], (str, int)) or isinstance(rec["user_id"], bool):
        raise DataError(path, f"expected a string or integer, got {rec['user_id']!r}", line, "user_id")
    try:
        parse_sid(rec["target"])
    except SIDFormatError as e:
        raise DataError(path, str(e), line, "target") from None
    ranked = rec["ranked"]
    if not isinstance(ranked, list):
        raise DataError(path, f"expected a list of SID strings, got {type(ranked).__name__}", line, "ranked")
    for i, sid in enumerate(ranked):
        if not isinstance(sid, str):
            raise DataError(path, f"ranked[{i}] is {sid!r}, expected a SID string", line, "ranked")
    scores = rec.get("scores")
    if scores is not None:
        if not isinstance(scores, list) or len(scores) != len(ranked):
            raise DataError(path, f"expected a list of {len(ranked)} numbers (one per ranked SID), got "
                                  f"{str(scores)[:80]}", line, "scores")
        if any(isinstance(s, bool) or not isinstance(s, (int, float)) for s in scores):
            raise DataError(path, f"non-numeric score in {str(scores)[:80]}", line, "scores")


def target_rank(ranked: Sequence[str], target: str) -> Optional[int]:
    """1-based position of the target's first occurrence; None when absent."""
    try:
        return ranked.index(target) + 1
    except ValueError:
        return None


def _has_duplicates(ranked: Sequence[str]) -> bool:
    return len(set(ranked)) != len(ranked)


def compute_metrics(records: Iterable[dict], ks: Optional[Iterable[int]] = None,
                    catalogue: Optional[AbstractSet[str]] = None, num_beams: Optional[int] = None,
                    source=_RECORDS) -> dict:
    """Metrics dict (keys ``n``, ``num_beams``, ``HR@K``, ``NDCG@K``, ``invalid_rate``, ...; see module doc).

    ``records`` are prediction rows ``{user_id, target, ranked, scores?, reasoning?}``; malformed ones
    raise DataError naming ``source`` and the record's 1-based position in ``records`` (the file line
    when the records are a file's lines in order; ``read_predictions`` always names the file line). ``ks`` larger than ``num_beams`` (when
    given) are refused: HR@20 of a 10-beam search would silently equal HR@10.
    """
    rows = list(records)
    for i, rec in enumerate(rows, 1):
        check_record(rec, source, i)
    if not rows:
        raise DataError(source, "no prediction rows to score")
    if num_beams is not None and num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    beams = num_beams if num_beams is not None else max(len(r["ranked"]) for r in rows)
    ks = resolve_ks(ks, beams)
    if num_beams is not None and ks[-1] > num_beams:
        raise ValueError(f"K={ks[-1]} exceeds num_beams={num_beams}: HR@{ks[-1]} would equal HR@{num_beams}")
    ranks = [target_rank(r["ranked"], r["target"]) for r in rows]
    n = len(rows)
    out: dict = {"n": n, "num_beams": beams}
    for k in ks:
        out[f"HR@{k}"] = sum(1 for rank in ranks if rank is not None and rank <= k) / n
    for k in ks:
        out[f"NDCG@{k}"] = sum(1.0 / math.log2(rank + 1) for rank in ranks if rank is not None and rank <= k) / n
    returned = sum(len(r["ranked"]) for r in rows)
    out["predictions"] = returned
    if catalogue is None:
        out["invalid_predictions"], out["invalid_rate"] = None, None
    else:
        bad = sum(1 for r in rows for sid in r["ranked"] if sid not in catalogue)
        out["invalid_predictions"] = bad
        out["invalid_rate"] = bad / returned if returned else None
    out["rows_short"] = sum(1 for r in rows if len(r["ranked"]) < beams)
    out["rows_with_duplicates"] = sum(1 for r in rows if _has_duplicates(r["ranked"]))
    return out


def read_predictions(path) -> tuple[list[dict], int]:
    """Predictions JSONL -> (rows, blank lines skipped). Every row is checked (file, line, field)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found" + (" (it is a directory)" if path.is_dir() else ""))
    rows, blank = [], 0
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                blank += 1
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(path, f"invalid JSON: {e.msg} (column {e.colno})", line_no) from None
            check_record(rec, path, line_no)
            rows.append(rec)
    return rows, blank


def catalogue_from_info(info_file) -> frozenset[str]:
    from ..data.formats import read_info
    return frozenset(r.sid for r in read_info(info_file))


def format_metrics(metrics: dict) -> str:
    """Aligned ``name  value`` lines for a terminal."""
    width = max(len(k) for k in metrics)
    lines = []
    for k, v in metrics.items():
        shown = f"{v:.4f}" if isinstance(v, float) else ("-" if v is None else str(v))
        lines.append(f"{k:<{width}}  {shown}")
    return "\n".join(lines)


def _parse_ks(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ks expects comma-separated integers like 1,5,10, got {text!r}")


@dataclass
class MetricsFlags:
    """The command line of ``python -m sidreasoner.eval.metrics``."""
    predictions: Path = field(default=None, metadata={
        "help": "predictions JSONL (one row per test row: user_id, target, ranked, scores, reasoning?)",
        "positional": True})
    info_file: Optional[Path] = field(default=None, metadata={
        "help": "catalogue info file (SID<TAB>title<TAB>item_id); enables invalid_rate"})
    ks: Optional[list] = field(default=None, metadata={
        "help": "comma-separated cut-offs, e.g. 1,5,10 (default: 1,3,5,10,20,50 up to num_beams)", "type": _parse_ks})
    num_beams: Optional[int] = field(default=None, metadata={
        "help": "beams the decoder was asked for (default: the longest ranked list)"})
    output: Optional[Path] = field(default=None, metadata={
        "help": "write the metrics JSON here (and the resolved config to <output stem>.config.json)"})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sidreasoner.eval.metrics",
                                description="Recompute HR@K / NDCG@K from a predictions JSONL file.")
    return add_dataclass_args(p, MetricsFlags)


def main(argv=None) -> int:
    parser = build_parser()
    args = parse_checked(parser, argv, {"num_beams": optional(at_least(1, "unset: the longest ranked list"))})
    try:
        check_list("ks", args.ks, at_least(1))
    except ValueError as e:
        parser.error(str(e))
    try:
        rows, blank = read_predictions(args.predictions)
        catalogue = catalogue_from_info(args.info_file) if args.info_file else None
        metrics = compute_metrics(rows, args.ks, catalogue, args.num_beams, source=args.predictions)
    except (DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if blank:
        print(f"note: skipped {blank} blank line(s) in {args.predictions}", file=sys.stderr)
    print(format_metrics(metrics))
    if args.output:
        from ..data.formats import atomic_write_text
        atomic_write_text(args.output, json.dumps(metrics, indent=1) + "\n")
        config = {"predictions": str(args.predictions), "info_file": str(args.info_file or ""),
                  "ks": args.ks, "num_beams": args.num_beams, "blank_lines_skipped": blank,
                  "output": str(args.output)}
        atomic_write_text(args.output.with_name(args.output.stem + ".config.json"),
                          json.dumps(config, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
