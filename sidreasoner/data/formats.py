"""Readers and writers for the release layout.

Readers check structure (the file parses, columns exist, list cells are Python literals of the
right shape) and raise :class:`DataError` naming file, line and field. Cross-file consistency
(SIDs in the index, item ids known, ...) is checked by ``sidreasoner.data.validate``.
"""
from __future__ import annotations

import ast
import csv
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

from ..sid.index import SIDIndex
from ..sid.spelling import SIDFormatError, join_tokens, parse_sid
from .records import DataError, InfoRow, Item, SequenceRow

SPLIT_COLUMNS = ("user_id", "history_item_title", "item_title", "history_item_id", "item_id",
                 "history_item_sid", "item_sid")

csv.field_size_limit(1 << 28)  # descriptions and narratives can be long


def _check_exists(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found" + (" (it is a directory)" if path.is_dir() else ""))
    return path


@contextmanager
def atomic_path(path):
    """Yield a temp path beside ``path``; on success it is renamed onto ``path`` (a killed job never
    leaves a half-written file), on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 minus the umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_jsonl(path) -> list[dict]:
    """The objects of a JSON-lines log, one per line; a line that does not parse (the torn last line of a
    killed writer) is skipped."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def atomic_write_text(path: Path, text: str) -> None:
    """Write text atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def parse_list_cell(cell: str, path, row: int, field: str) -> list:
    """A list column: a Python-literal list string (``ast.literal_eval``, never ``eval``)."""
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
        raise DataError(path, f"not a Python-literal list: {cell[:80]!r} ({type(e).__name__})", row, field) from None
    if not isinstance(value, (list, tuple)):
        raise DataError(path, f"expected a list, got {type(value).__name__}: {cell[:80]!r}", row, field)
    return list(value)


def _sid_cell(value, path, row: int, field: str) -> str:
    if not isinstance(value, str):
        raise DataError(path, f"SID must be a string, got {value!r}", row, field)
    try:
        parse_sid(value)
    except SIDFormatError as e:
        raise DataError(path, str(e), row, field) from None
    return value.strip()


def _parse_split_row(rec: dict, path, line: int) -> SequenceRow:
    titles = parse_list_cell(rec["history_item_title"], path, line, "history_item_title")
    ids = parse_list_cell(rec["history_item_id"], path, line, "history_item_id")
    sids_raw = parse_list_cell(rec["history_item_sid"], path, line, "history_item_sid")
    if not (len(titles) == len(ids) == len(sids_raw)):
        raise DataError(path, f"history lengths differ: {len(titles)} titles, {len(ids)} ids, {len(sids_raw)} SIDs",
                        line, "history_item_sid")
    sids = [_sid_cell(s, path, line, "history_item_sid") for s in sids_raw]
    item_id = rec["item_id"].strip()
    if not item_id:
        raise DataError(path, "empty item id", line, "item_id")
    return SequenceRow(
        user_id=rec["user_id"], history_item_ids=tuple(str(i) for i in ids),
        history_titles=tuple(str(t) for t in titles), history_sids=tuple(sids),
        item_id=item_id, item_title=rec["item_title"],
        item_sid=_sid_cell(rec["item_sid"], path, line, "item_sid"), line=line)


def _field_count(rec: dict) -> int:
    """Fields a DictReader row really had: short rows are padded with None values, long rows keep
    the surplus in a list under the key None."""
    return sum(v is not None for k, v in rec.items() if k is not None) + len(rec.get(None) or [])


def read_split_csv(path, on_error: Optional[Callable[[DataError], None]] = None) -> list[SequenceRow]:
    """Read a split CSV. Line numbers in errors are file lines (the header is line 1).

    By default the first malformed row raises. With ``on_error``, each malformed row's DataError is
    passed to it and the row is left out (the caller counts and reports them); file-level problems
    (missing file, missing columns, not UTF-8, broken CSV quoting) still raise.
    """
    path = _check_exists(path)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        try:
            return _read_split_rows(reader, path, on_error)
        except UnicodeDecodeError as e:
            raise DataError(path, f"not UTF-8 text ({e.reason})") from None
        except csv.Error as e:
            raise DataError(path, f"CSV syntax error: {e}", reader.line_num) from None


def _read_split_rows(reader: csv.DictReader, path, on_error) -> list[SequenceRow]:
    missing = [c for c in SPLIT_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(path, f"missing columns {missing}; found {reader.fieldnames}", 1)
    rows = []
    for rec in reader:
        line = reader.line_num
        try:
            if None in rec.values() or None in rec:
                raise DataError(path, f"row has {_field_count(rec)} fields, header has {len(reader.fieldnames)}", line)
            rows.append(_parse_split_row(rec, path, line))
        except DataError as e:
            if on_error is None:
                raise
            on_error(e)
    return rows


def _id_literal(item_id: str):
    # an int only when it reads back as the same string ("007" or non-ASCII digits stay strings)
    if item_id.isascii() and item_id.isdigit() and str(int(item_id)) == item_id:
        return int(item_id)
    return item_id


def write_split_csv(path, rows: Iterable[SequenceRow]) -> None:
    """Write rows in the release spelling (numeric ids as ints, list cells as Python literals)."""
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SPLIT_COLUMNS)
    for r in rows:
        w.writerow([r.user_id, repr(list(r.history_titles)), r.item_title,
                    repr([_id_literal(i) for i in r.history_item_ids]), r.item_id,
                    repr(list(r.history_sids)), r.item_sid])
    atomic_write_text(path, buf.getvalue())


def _load_json_object(path) -> dict:
    path = _check_exists(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON: {e.msg}", e.lineno) from None
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text ({e.reason})") from None
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object at top level, got {type(data).__name__}")
    return data


def read_index_json(path) -> dict[str, str]:
    """``index.json`` -> ``{item_id: SID string}`` (tokens joined and validated)."""
    data = _load_json_object(path)
    out = {}
    for item_id, tokens in data.items():
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
            raise DataError(path, f"item {item_id!r}: expected a non-empty list of SID tokens, got {tokens!r}",
                            field=item_id)
        try:
            out[str(item_id)] = join_tokens(tokens)
        except SIDFormatError as e:
            raise DataError(path, f"item {item_id!r}: {e}", field=item_id) from None
    return out


def write_index_json(path, index: Mapping[str, str]) -> None:
    from ..sid.spelling import split_sid
    atomic_write_text(path, json.dumps({k: split_sid(v) for k, v in index.items()}, indent=1) + "\n")


_ITEM_FIELDS = ("title", "description", "brand", "categories")


def read_item_json(path) -> dict[str, Item]:
    """``item.json`` -> ``{item_id: Item}``. Every item needs a string title."""
    data = _load_json_object(path)
    out = {}
    for item_id, meta in data.items():
        if not isinstance(meta, dict):
            raise DataError(path, f"item {item_id!r}: expected an object, got {type(meta).__name__}", field=item_id)
        title = meta.get("title")
        if not isinstance(title, str):
            raise DataError(path, f"item {item_id!r}: missing or non-string 'title'", field=f"{item_id}.title")
        vals = {k: meta.get(k) or "" for k in _ITEM_FIELDS[1:]}
        vals = {k: v if isinstance(v, str) else json.dumps(v) for k, v in vals.items()}
        out[str(item_id)] = Item(item_id=str(item_id), title=title, **vals)
    return out


def write_item_json(path, items: Mapping[str, Item]) -> None:
    data = {k: {f: getattr(it, f) for f in _ITEM_FIELDS} for k, it in items.items()}
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def _parse_info_line(line: str, path, line_no: int) -> InfoRow:
    line = line.rstrip("\n").rstrip("\r")
    if not line.strip():
        raise DataError(path, "empty line", line_no)
    parts = line.split("\t")
    if len(parts) != 3:
        raise DataError(path, f"expected 3 tab-separated fields (SID, title, item_id), got {len(parts)}", line_no)
    sid, title, item_id = parts
    try:
        parse_sid(sid)
    except SIDFormatError as e:
        raise DataError(path, str(e), line_no, "sid") from None
    return InfoRow(sid=sid.strip(), title=title, item_id=item_id.strip(), line=line_no)


def read_info(path, on_error: Optional[Callable[[DataError], None]] = None) -> list[InfoRow]:
    """Info file: ``SID<TAB>title<TAB>item_id`` per line. Titles may not contain tabs.

    ``on_error`` as in :func:`read_split_csv`: malformed lines are reported to it and left out.
    """
    path = _check_exists(path)
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                try:
                    rows.append(_parse_info_line(line, path, line_no))
                except DataError as e:
                    if on_error is None:
                        raise
                    on_error(e)
    except UnicodeDecodeError as e:
        # no line number: the text layer decodes ahead in blocks, so the current line is not the bad one
        raise DataError(path, f"not UTF-8 text ({e.reason})") from None
    return rows


def write_info(path, rows: Sequence[InfoRow]) -> None:
    lines = []
    for r in rows:
        # tabs/newlines in titles would break the format; other whitespace is kept so titles still
        # equal item.json's (the release has titles with double spaces)
        title = r.title.replace("\t", " ").replace("\r", " ").replace("\n", " ")
        lines.append(f"{r.sid}\t{title}\t{r.item_id}\n")
    atomic_write_text(path, "".join(lines))


# -- the catalogue as a SIDIndex (sid/ reads no files: the readers above own the formats) ------------------------
def read_sid_index(index_json, item_json=None) -> SIDIndex:
    """``index.json`` (+ the titles of ``item.json`` when given) -> :class:`SIDIndex`."""
    titles = {k: v.title for k, v in read_item_json(item_json).items()} if item_json else None
    return SIDIndex(read_index_json(index_json), titles)


def read_info_index(path) -> SIDIndex:
    """The info file (``SID<TAB>title<TAB>item_id``) -> :class:`SIDIndex` with its titles."""
    rows = read_info(path)
    return SIDIndex({r.item_id: r.sid for r in rows}, {r.item_id: r.title for r in rows})


def info_rows(index: SIDIndex) -> list[InfoRow]:
    """The rows of the info file that :func:`read_info_index` reads back as ``index``."""
    return [InfoRow(sid, index.titles.get(i, ""), i) for i, sid in index.item_to_sid.items()]
