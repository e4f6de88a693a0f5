"""Teacher corpora: readers, writers, think-stripping and SID-mention checks.

Two files, released by the paper or written by ``scripts/synthesize_corpus.py``:

- ``<Cat>.item_enhanced_v2.json``: ``{item_id: {..., "llm_stage2": text}}``: per item, a teacher's
  text with the item's SID interleaved. Other fields per item are ignored; ``llm_stage2`` must be a
  string where present; items without it are skipped and listed (the reference skips them silently).
- ``<Cat>.integrated_narrative.csv``: per sequence, columns ``history_item_sid`` (a Python-literal
  list string), ``item_sid``, ``integrated_narrative``, ``reasoning_path``; extra columns are kept.

A teacher's own ``<think>...</think>`` is removed on reading: records hold only the visible answer.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, Mapping, Optional, Union

from ..sid.index import SIDIndex
from ..sid.spelling import SIDFormatError, find_sids, format_sid, parse_sid
from .formats import _check_exists, _load_json_object, atomic_write_text, parse_list_cell
from .records import DataError

ENHANCED_FIELD = "llm_stage2"
NARRATIVE_COLUMNS = ("history_item_sid", "item_sid", "integrated_narrative", "reasoning_path")

_CLOSED_THINK_RE = re.compile(r"<think>.*?</think>", re.S)


def strip_think(text: str) -> str:
    """The visible answer of a teacher's output: its ``<think>`` reasoning removed, ends stripped.

    Removes closed ``<think>...</think>`` blocks; a ``</think>`` without an opener (the reasoning
    began in the prompt, as in Qwen3's template) drops everything before it; an unclosed
    ``<think>`` (a truncated generation) drops everything after it.
    """
    if not isinstance(text, str):
        raise TypeError(f"strip_think needs a string, got {type(text).__name__}")
    s = _CLOSED_THINK_RE.sub("", text)
    if "</think>" in s:
        s = s.rsplit("</think>", 1)[1]
    if "<think>" in s:
        s = s.split("<think>", 1)[0]
    return s.strip()


def has_think(text: str) -> bool:
    return "<think>" in text or "</think>" in text


@dataclass(frozen=True)
class EnhancedItem:
    """One item's enriched text (``llm_stage2``), teacher reasoning removed."""

    item_id: str
    text: str


@dataclass(frozen=True)
class NarrativeRow:
    """One sequence's teacher narrative and reasoning path (visible text only)."""

    history_sids: tuple[str, ...]
    item_sid: str
    integrated_narrative: str
    reasoning_path: str
    extra: Mapping[str, str] = field(default_factory=dict, compare=False)
    line: Optional[int] = field(default=None, compare=False, repr=False)


@dataclass
class Corpus:
    """What a corpus reader returns: the records plus everything it left out or changed (counted)."""

    path: str
    records: list
    #: reason -> keys (item ids, or "line N") of entries left out; nothing is dropped silently
    skipped: dict[str, list[str]] = field(default_factory=dict)
    #: e.g. ``think_removed`` (texts that had a teacher <think> block), ``empty_<field>``
    counts: Counter = field(default_factory=Counter)

    def n_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())


# -- item_enhanced_v2.json ----------------------------------------------------------------------
def read_item_enhanced(path) -> Corpus:
    """``{item_id: {"llm_stage2": text, ...}}`` -> Corpus of :class:`EnhancedItem` (file order)."""
    data = _load_json_object(path)
    out = Corpus(str(path), [])
    for item_id, meta in data.items():
        if not isinstance(meta, dict):
            raise DataError(path, f"item {item_id!r}: expected an object, got {type(meta).__name__}", field=item_id)
        if ENHANCED_FIELD not in meta:
            out.skipped.setdefault(f"no '{ENHANCED_FIELD}' field", []).append(str(item_id))
            continue
        raw = meta[ENHANCED_FIELD]
        if not isinstance(raw, str):
            raise DataError(path, f"item {item_id!r}: '{ENHANCED_FIELD}' must be a string, got {type(raw).__name__}",
                            field=f"{item_id}.{ENHANCED_FIELD}")
        text = strip_think(raw)
        out.counts["think_removed"] += has_think(raw)
        if not text:
            out.skipped.setdefault(f"empty '{ENHANCED_FIELD}' after removing <think>", []).append(str(item_id))
            continue
        out.records.append(EnhancedItem(str(item_id), text))
    return out


def write_item_enhanced(path, texts: Mapping[str, str], extra: Optional[Mapping[str, Mapping]] = None) -> None:
    """Write ``{item_id: {**extra[item_id], "llm_stage2": text}}`` (extra: e.g. the title, for readers)."""
    data = {}
    for item_id, text in texts.items():
        if not isinstance(text, str):
            raise TypeError(f"item {item_id!r}: text must be a string, got {type(text).__name__}")
        data[str(item_id)] = {**dict((extra or {}).get(item_id, {})), ENHANCED_FIELD: text}
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


# -- integrated_narrative.csv -------------------------------------------------------------------
def _sid(value, path, line: int, name: str) -> str:
    if not isinstance(value, str):
        raise DataError(path, f"SID must be a string, got {value!r}", line, name)
    try:
        parse_sid(value)
    except SIDFormatError as e:
        raise DataError(path, str(e), line, name) from None
    return value.strip()


def _narrative_row(rec: dict, path, line: int, counts: Counter) -> NarrativeRow:
    history = parse_list_cell(rec["history_item_sid"], path, line, "history_item_sid")
    texts = {}
    for name in ("integrated_narrative", "reasoning_path"):
        raw = rec[name]
        counts["think_removed"] += has_think(raw)
        texts[name] = strip_think(raw)
        counts[f"empty_{name}"] += not texts[name]
    return NarrativeRow(
        history_sids=tuple(_sid(s, path, line, "history_item_sid") for s in history),
        item_sid=_sid(rec["item_sid"], path, line, "item_sid"), **texts,
        extra={k: v for k, v in rec.items() if k not in NARRATIVE_COLUMNS}, line=line)


def read_narratives(path, on_error: Optional[Callable[[DataError], None]] = None) -> Corpus:
    """Corpus of :class:`NarrativeRow`. Rows whose texts are empty after removing ``<think>`` are
    kept (stage 1 uses the narrative, stage 2 the reasoning path) and counted as ``empty_<field>``.
    ``on_error`` as in ``formats.read_split_csv``: malformed rows go to it and are left out."""
    path = _check_exists(path)
    out = Corpus(str(path), [])
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        try:
            missing = [c for c in NARRATIVE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(path, f"missing columns {missing}; found {reader.fieldnames}", 1)
            for rec in reader:
                line = reader.line_num
                try:
                    if None in rec.values() or None in rec:
                        raise DataError(path, f"row does not have the header's {len(reader.fieldnames)} fields", line)
                    out.records.append(_narrative_row(rec, path, line, out.counts))
                except DataError as e:
                    if on_error is None:
                        raise
                    on_error(e)
                    out.skipped.setdefault("malformed row", []).append(f"line {line}")
        except UnicodeDecodeError as e:
            raise DataError(path, f"not UTF-8 text ({e.reason})") from None
        except csv.Error as e:
            raise DataError(path, f"CSV syntax error: {e}", reader.line_num) from None
    return out


def write_narratives(path, rows: Iterable[NarrativeRow]) -> None:
    """Write the narrative CSV: the four columns, then any ``extra`` columns (union, first-seen order)."""
    rows = list(rows)
    extra_cols: list[str] = []
    for r in rows:
        extra_cols += [k for k in r.extra if k not in extra_cols]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*NARRATIVE_COLUMNS, *extra_cols])
    for r in rows:
        w.writerow([repr(list(r.history_sids)), r.item_sid, r.integrated_narrative, r.reasoning_path,
                    *(r.extra.get(c, "") for c in extra_cols)])
    atomic_write_text(path, buf.getvalue())


# -- SID mentions in teacher text -----------------------------------------------------------------
def sid_mentions(text: str) -> list[str]:
    """Every SID written in ``text``, in canonical spelling, in order (lenient, never raises)."""
    return [format_sid(m.codes) for m in find_sids(text)]


@dataclass
class MentionReport:
    """SIDs a corpus mentions, compared with the catalogue."""

    texts: int = 0
    mentions: int = 0
    known: int = 0      # a catalogue item's full SID
    prefixes: int = 0   # a proper prefix of some catalogue SID (e.g. a first-level group): not an error
    unknown: list[tuple[Hashable, str]] = field(default_factory=list)  # (where, SID) of every other mention


def check_sid_mentions(texts: Iterable[tuple[Hashable, str]], index: Union[SIDIndex, Iterable[str]]) -> MentionReport:
    """``texts``: ``(where, text)`` pairs (where: any label, e.g. an item id). Each SID mention is a
    known catalogue SID, a prefix of one, or unknown (listed with where it appears)."""
    sids = index.unique_sids() if isinstance(index, SIDIndex) else list(index)
    full = {parse_sid(s) for s in sids}
    prefixes = {c[:k] for c in full for k in range(1, len(c))}
    rep = MentionReport()
    for where, text in texts:
        rep.texts += 1
        for m in find_sids(text):
            rep.mentions += 1
            if m.codes in full:
                rep.known += 1
            elif m.codes in prefixes:
                rep.prefixes += 1
            else:
                rep.unknown.append((where, format_sid(m.codes)))
    return rep


def corpus_texts(corpus: Corpus) -> list[tuple[tuple[Optional[int], str], str]]:
    """``((line, field), text)`` for every text of a read corpus, for :func:`check_sid_mentions`
    (line is None for the JSON corpus; field names the item: ``"<item_id>.llm_stage2"``)."""
    out = []
    for r in corpus.records:
        if isinstance(r, EnhancedItem):
            out.append(((None, f"{r.item_id}.{ENHANCED_FIELD}"), r.text))
        else:
            out.append(((r.line, "integrated_narrative"), r.integrated_narrative))
            out.append(((r.line, "reasoning_path"), r.reasoning_path))
    return out
