"""Predictions JSONL: append per batch, resume after a kill, merge the shards of a sharded run.

One line per evaluated test row: ``{row, user_id, target, ranked, scores, items, titles, ...}``;
``row`` is the row's 0-based position in the split file, the stable key that resume and merge use.
``items[k]`` / ``titles[k]`` are the catalogue items the k-th ranked SID stands for (a SID shared by two
items names both); metrics are computed on SIDs.
A job killed while writing leaves at most one partial last line: :func:`load_for_resume` cuts it
off (and says so) instead of failing; a malformed line anywhere else is an error naming the line.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Iterable, Optional

from ..data.formats import atomic_write_text
from ..data.records import DataError

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"
_SHARD_RE = re.compile(r"predictions\.shard(\d+)of(\d+)\.jsonl")


def parse_shard(spec: Optional[str]) -> Optional[tuple[int, int]]:
    """``"1/4"`` -> ``(1, 4)`` (shard 1 of 4, 0-based); ``None``/``""`` -> ``None``."""
    if not spec:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if m is None or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"--shard must look like i/n with 0 <= i < n (e.g. 0/4), got {spec!r}")
    return int(m.group(1)), int(m.group(2))


ITEM_FIELDS = ("items", "titles")


def item_fields(sids, sid_to_items, titles) -> dict:
    """``{"items": [[id, ...] per SID], "titles": [[title, ...] per SID]}`` for ranked ``sids``."""
    items = [list(sid_to_items.get(s, [])) for s in sids]
    return {"items": items, "titles": [[titles.get(i, "") for i in ids] for ids in items]}


def carry_items(rec: dict, *sources: dict) -> dict:
    """``rec`` with ``items``/``titles`` matching its ``ranked`` list, taken from the records it was built
    from (fusion, re-ranking): a SID keeps the items its source listed. Without them in a source, none."""
    known = {}
    for src in sources:
        if all(f in src for f in ITEM_FIELDS):
            known.update({sid: (ids, t) for sid, ids, t in zip(src["ranked"], src["items"], src["titles"])})
    out = {k: v for k, v in rec.items() if k not in ITEM_FIELDS}
    if known and all(s in known for s in rec["ranked"]):
        out["items"] = [known[s][0] for s in rec["ranked"]]
        out["titles"] = [known[s][1] for s in rec["ranked"]]
    return out


def predictions_path(output_dir, shard: Optional[tuple[int, int]] = None) -> Path:
    if shard is None:
        return Path(output_dir) / PREDICTIONS
    return Path(output_dir) / f"predictions.shard{shard[0]}of{shard[1]}.jsonl"


def append_records(path, records: Iterable[dict]) -> None:
    """Append rows with one write, flushed to disk, so a kill loses at most the batch being written."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if not text:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def read_records(path) -> list[dict]:
    """Every row of a complete predictions file; any malformed line is a DataError naming it."""
    records, partial = _scan(Path(path))
    if partial is not None:
        raise DataError(path, "last line is incomplete (a killed run?); rerun with --resume to finish it",
                        partial[0])
    return records


def read_run(folder) -> list[dict]:
    """The rows of an evaluation folder's predictions file; a missing file is a DataError naming it."""
    path = Path(folder) / PREDICTIONS
    if not path.is_file():
        raise DataError(path, "predictions file not found (run evaluate.py into that folder first)")
    return read_records(path)


def load_for_resume(path) -> dict[int, dict]:
    """Rows already in ``path`` keyed by ``row``; a partial last line is truncated away (logged)."""
    path = Path(path)
    if not path.exists():
        return {}
    records, partial = _scan(path)
    if partial is not None:
        line_no, offset = partial
        log.warning("%s: line %d is an incomplete record from an interrupted run; removing it and "
                    "re-evaluating that row", path, line_no)
        with open(path, "r+b") as f:
            f.truncate(offset)
    done: dict[int, dict] = {}
    for rec in records:
        done[rec["row"]] = rec
    return done


def _scan(path: Path) -> tuple[list[dict], Optional[tuple[int, int]]]:
    """Parse lines; returns (records, (line, byte offset) of an unfinished last line or None).

    Every write ends with a newline, so text after the last newline is a cut-short write, whether or
    not it happens to parse; a malformed line that does end with a newline is corruption.
    """
    if not path.is_file():
        raise DataError(path, "file not found")
    data = path.read_bytes()
    *complete, tail = data.split(b"\n")
    records, seen = [], set()
    for i, raw in enumerate(complete, 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError as e:
            raise DataError(path, f"malformed prediction line ({e})", i) from None
        if not isinstance(rec, dict) or not isinstance(rec.get("row"), int):
            raise DataError(path, "expected a JSON object with an integer row index", i, "row")
        if rec["row"] in seen:
            raise DataError(path, f"row {rec['row']} appears twice", i, "row")
        seen.add(rec["row"])
        records.append(rec)
    partial = (len(complete) + 1, len(data) - len(tail)) if tail else None
    return records, partial


def shard_files(output_dir) -> dict[int, list[Path]]:
    """``{n: [paths]}`` of the shard prediction files in ``output_dir`` (by shard count)."""
    out: dict[int, list[Path]] = {}
    for p in sorted(Path(output_dir).glob("predictions.shard*of*.jsonl")):
        m = _SHARD_RE.fullmatch(p.name)
        if m:
            out.setdefault(int(m.group(2)), []).append(p)
    return out


def merge_shards(output_dir, n_shards: Optional[int] = None) -> list[dict]:
    """Combine ``predictions.shard{i}of{n}.jsonl`` into ``predictions.jsonl`` (sorted by row).

    Every shard must be present and complete; rows must not repeat across shards.
    """
    found = shard_files(output_dir)
    if not found:
        raise DataError(output_dir, "no predictions.shard*of*.jsonl files to merge")
    if n_shards is None:
        if len(found) > 1:
            raise DataError(output_dir, f"shard files of several runs ({sorted(found)} shards); pass the count")
        n_shards = next(iter(found))
    missing = [i for i in range(n_shards) if not predictions_path(output_dir, (i, n_shards)).is_file()]
    if missing:
        raise DataError(output_dir, f"shards {missing} of {n_shards} have no predictions file yet")
    merged: dict[int, dict] = {}
    for i in range(n_shards):
        path = predictions_path(output_dir, (i, n_shards))
        for line, rec in enumerate(read_records(path), 1):
            if rec["row"] in merged:
                raise DataError(path, f"row {rec['row']} is also in another shard", line, "row")
            merged[rec["row"]] = rec
    records = [merged[k] for k in sorted(merged)]
    atomic_write_text(Path(output_dir) / PREDICTIONS,
                      "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return records
