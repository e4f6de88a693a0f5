"""A whole release folder read, and written back with new SIDs (the SID builder's and the demo data's output).

``rewrite_release(src, dst, item_to_sid)`` copies the release at ``src`` to ``dst`` with the given SIDs: index.json,
item.json, the info file and the three splits with their SID columns rewritten (``scripts/build_sids.py``).
"""
from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Mapping, Optional

from .formats import read_item_json, read_split_csv, write_index_json, write_info, write_item_json, write_split_csv
from .records import DataError, InfoRow, Item, ReleasePaths, SPLITS


def read_release(src: ReleasePaths) -> tuple[dict, dict]:
    """Read ``item.json`` and the three split CSVs of ``src`` -> ``(items, {split: rows})``."""
    items = read_item_json(src.item_json)
    return items, {name: read_split_csv(src.split(name)) for name in SPLITS}


def _csv_line_of_row(path: Path, row_index: int) -> int:
    """File line (1-based, header = 1) on which data row ``row_index`` (0-based) ends, as csv counts it."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader, None)
        for n, _ in enumerate(reader):
            if n == row_index:
                return reader.line_num
    return row_index + 2


def check_split_items(src: ReleasePaths, splits: Mapping[str, list], known) -> None:
    """Raise DataError (file, line, field) for the first split row naming an item id not in ``known``."""
    known = set(known)
    for name, rows in splits.items():
        for n, row in enumerate(rows):
            bad = [("history_item_id", i) for i in row.history_item_ids if i not in known]
            bad += [("item_id", row.item_id)] if row.item_id not in known else []
            if bad:
                fld, item_id = bad[0]
                path = src.split(name)
                raise DataError(path, f"item id {item_id!r} is not in the catalogue ({len(known)} items in "
                                f"{src.item_json.name})", _csv_line_of_row(path, n), fld)


def write_release(dst: ReleasePaths, items: Mapping[str, Item], splits: Mapping[str, list],
                  item_to_sid: Mapping[str, str], titles: Optional[Mapping[str, str]] = None,
                  src: Optional[ReleasePaths] = None) -> dict:
    """Write index.json, item.json (items with a SID), info and the splits with their SID columns rewritten.

    Every split item must have a SID (DataError otherwise); items without a SID are left out of the
    written catalogue and counted in the returned summary.
    """
    src = src or dst
    missing = [i for i in item_to_sid if i not in items]
    if missing:
        raise DataError(src.item_json, f"item id {missing[0]!r} has a SID but no metadata "
                        f"({len(missing)} such items)", field=missing[0])
    check_split_items(src, splits, item_to_sid)
    titles = titles or {}
    write_index_json(dst.index_json, item_to_sid)
    write_item_json(dst.item_json, {i: items[i] for i in item_to_sid})
    write_info(dst.info, [InfoRow(sid, titles.get(i, items[i].title), i) for i, sid in item_to_sid.items()])
    for name, rows in splits.items():
        write_split_csv(dst.split(name), [replace(
            r, history_sids=tuple(item_to_sid[i] for i in r.history_item_ids), item_sid=item_to_sid[r.item_id])
            for r in rows])
    return {"items_written": len(item_to_sid), "items_without_sid": len(items) - len(item_to_sid),
            "rows": {name: len(rows) for name, rows in splits.items()}}


def rewrite_release(src: ReleasePaths, dst: ReleasePaths, item_to_sid: Mapping[str, str],
                    titles: Optional[Mapping[str, str]] = None) -> dict:
    """Copy the release at ``src`` to ``dst`` with new SIDs (any folder in the release layout; ``dst`` may
    equal ``src``: everything is read before anything is written, and each file is replaced atomically).
    Teacher corpora (item_enhanced, narratives) are not copied: their text embeds the old SIDs."""
    items, splits = read_release(src)
    return write_release(dst, items, splits, item_to_sid, titles, src=src)
