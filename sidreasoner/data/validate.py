"""Cross-file validation of a release folder.

The readers in ``formats`` check each file's structure; this module checks that the files agree:
every item id in the splits and the info file is in ``index.json``, every SID written next to an
item id is that item's SID in ``index.json``, histories are non-empty and not over-long, item.json
covers the index, the info file lists each item once with its index SID. Every problem is collected
(file, line, field, message) instead of stopping at the first, so ``scripts/check_data.py`` can show
all of them grouped by kind.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from ..sid.index import SIDIndex
from .corpora import Corpus, check_sid_mentions, corpus_texts, read_item_enhanced, read_narratives
from .formats import read_index_json, read_info, read_item_json, read_split_csv
from .records import SPLITS, DataError, InfoRow, Item, ReleasePaths, SequenceRow

#: kind -> (severity, what it means). The report groups problems by kind, in this order.
KINDS: dict[str, tuple[str, str]] = {
    "unreadable_file": ("error", "file missing or not readable in its format"),
    "malformed_row": ("error", "row does not parse (field count, empty id, ...)"),
    "unparsable_list": ("error", "list cell is not a Python-literal list"),
    "bad_sid": ("error", "SID is not spelled <a_N><b_N>..."),
    "history_length_mismatch": ("error", "history titles, ids and SIDs differ in length"),
    "empty_history": ("error", "row has no history items"),
    "unknown_item": ("error", "item id not in index.json"),
    "sid_not_in_index": ("error", "SID is no catalogue item's SID"),
    "sid_mismatch": ("error", "SID differs from index.json's SID for that item id"),
    "duplicate_info_item": ("error", "item id listed more than once in the info file"),
    "info_sid_mismatch": ("error", "info file SID differs from index.json"),
    "missing_from_info": ("error", "index item absent from the info file (cannot be decoded)"),
    "missing_metadata": ("error", "index item without item.json metadata"),
    "corpus_unknown_sid": ("error", "teacher-corpus SID field is no catalogue SID"),
    "long_history": ("warning", "history longer than the maximum"),
    "title_mismatch": ("warning", "title differs from item.json"),
    "metadata_without_sid": ("warning", "item.json item not in index.json"),
    "sid_collision": ("warning", "several items share one SID (metrics match by SID string)"),
    "corpus_unknown_mention": ("warning", "teacher text mentions a SID that is no catalogue SID or prefix"),
    "corpus_skipped": ("warning", "teacher-corpus entries left out"),
}


@dataclass(frozen=True)
class Problem:
    severity: str  # 'error' | 'warning'
    kind: str
    path: str
    row: Optional[int]  # 1-based file line, None where the format has none (JSON entries)
    field: Optional[str]
    message: str

    def __str__(self) -> str:
        where = self.path
        if self.row is not None:
            where += f", line {self.row}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


@dataclass
class ValidationReport:
    problems: list[Problem] = field(default_factory=list)
    #: what was read: path -> number of rows / entries
    files: dict[str, int] = field(default_factory=dict)
    #: reported facts that are not problems (e.g. corpus counts)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, path, message: str, row: Optional[int] = None, field: Optional[str] = None) -> None:
        self.problems.append(Problem(KINDS[kind][0], kind, str(path), row, field, message))

    def add_data_error(self, err: DataError, kind: str) -> None:
        self.add(kind, err.path, err.reason, err.row, err.field)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self) -> dict[str, int]:
        """kind -> number of problems, in KINDS order (kinds with none left out)."""
        c = Counter(p.kind for p in self.problems)
        return {k: c[k] for k in KINDS if c[k]}

    def format(self, max_examples: int = 5) -> str:
        """All problem kinds with their total and the first ``max_examples`` of each."""
        n_err, n_warn = len(self.errors), len(self.warnings)
        lines = [f"validation: {n_err} error(s), {n_warn} warning(s) in {len(self.files)} file(s) read"]
        for kind, n in self.counts().items():
            severity, meaning = KINDS[kind]
            lines.append(f"{severity.upper()} {kind} ({n}): {meaning}")
            shown = [p for p in self.problems if p.kind == kind][:max_examples]
            lines += [f"  {p}" for p in shown]
            if n > len(shown):
                lines.append(f"  ... and {n - len(shown)} more")
        lines += [f"note: {n}" for n in self.notes]
        lines.append("RESULT: " + ("OK" if self.ok else "INVALID") + (" (with warnings)" if self.ok and n_warn else ""))
        return "\n".join(lines)

    def to_dict(self, max_examples: Optional[int] = None) -> dict:
        by_kind = {}
        for kind, n in self.counts().items():
            shown = [asdict(p) for p in self.problems if p.kind == kind][:max_examples]
            by_kind[kind] = {"severity": KINDS[kind][0], "count": n, "examples": shown}
        return {"ok": self.ok, "errors": len(self.errors), "warnings": len(self.warnings),
                "files": dict(self.files), "problems": by_kind, "notes": list(self.notes)}


@dataclass
class ReleaseData:
    """Whatever of a release folder could be read (None / missing key: the file was unreadable)."""

    paths: ReleasePaths
    splits: dict[str, list[SequenceRow]] = field(default_factory=dict)
    index: Optional[dict[str, str]] = None
    items: Optional[dict[str, Item]] = None
    info: Optional[list[InfoRow]] = None
    corpora: dict[str, Corpus] = field(default_factory=dict)


_SID_FIELDS = {"history_item_sid", "item_sid", "sid"}


def _row_error_kind(err: DataError) -> str:
    """Kind of a row-level reader error, from the reader's field and wording (formats.py)."""
    if err.reason.startswith("history lengths differ"):
        return "history_length_mismatch"
    if err.reason.startswith(("not a Python-literal list", "expected a list")):
        return "unparsable_list"
    if err.field in _SID_FIELDS:
        return "bad_sid"
    return "malformed_row"


def _read(report: ValidationReport, reader: Callable, path, rows_reader: bool = False):
    """Run one reader; its DataErrors become problems. Returns None when the file is unreadable."""
    try:
        if rows_reader:
            out = reader(path, on_error=lambda e: report.add_data_error(e, _row_error_kind(e)))
        else:
            out = reader(path)
    except DataError as e:
        report.add_data_error(e, "unreadable_file")
        return None
    report.files[str(path)] = len(out.records) if isinstance(out, Corpus) else len(out)
    return out


def load_release(paths: ReleasePaths, report: ValidationReport, splits=SPLITS) -> ReleaseData:
    """Read every file of the release, recording reader errors in ``report``. Teacher corpora are
    read when present (they are optional)."""
    data = ReleaseData(paths)
    for name in splits:
        rows = _read(report, read_split_csv, paths.split(name), rows_reader=True)
        if rows is not None:
            data.splits[name] = rows
    data.index = _read(report, read_index_json, paths.index_json)
    data.items = _read(report, read_item_json, paths.item_json)
    data.info = _read(report, read_info, paths.info, rows_reader=True)
    if paths.item_enhanced.is_file():
        corpus = _read(report, read_item_enhanced, paths.item_enhanced)
        if corpus is not None:
            data.corpora["item_enhanced"] = corpus
    if paths.narrative.is_file():
        corpus = _read(report, read_narratives, paths.narrative, rows_reader=True)
        if corpus is not None:
            data.corpora["narrative"] = corpus
    return data


# -- checks ---------------------------------------------------------------------------------------
def _check_catalogue(data: ReleaseData, report: ValidationReport) -> None:
    """index.json vs item.json, and SID collisions (reported, not errors: the release has some)."""
    p = data.paths
    if data.index is None:
        return
    if data.items is not None:
        for item_id in data.index:
            if item_id not in data.items:
                report.add("missing_metadata", p.item_json, f"item {item_id!r} is in index.json but has no metadata",
                           field=item_id)
        for item_id in data.items:
            if item_id not in data.index:
                report.add("metadata_without_sid", p.item_json, f"item {item_id!r} has metadata but no SID in "
                           "index.json", field=item_id)
    for sid, ids in SIDIndex(data.index).collisions().items():
        report.add("sid_collision", p.index_json, f"SID {sid} is shared by items {', '.join(ids)}", field=ids[0])


def _check_info(data: ReleaseData, report: ValidationReport) -> None:
    """The info file (decoding catalogue) lists every index item once, with its index SID."""
    if data.info is None or data.index is None:
        return
    path = data.paths.info
    first_line: dict[str, Optional[int]] = {}
    for r in data.info:
        if r.item_id in first_line:
            report.add("duplicate_info_item", path,
                       f"item {r.item_id!r} already listed on line {first_line[r.item_id]}", r.line, "item_id")
            continue
        first_line[r.item_id] = r.line
        if r.item_id not in data.index:
            report.add("unknown_item", path, f"item {r.item_id!r} is not in index.json", r.line, "item_id")
        elif r.sid != data.index[r.item_id]:
            report.add("info_sid_mismatch", path, f"item {r.item_id!r} has SID {r.sid} here but "
                       f"{data.index[r.item_id]} in index.json", r.line, "sid")
        if data.items is not None and r.item_id in data.items and r.title != data.items[r.item_id].title:
            report.add("title_mismatch", path, f"item {r.item_id!r}: title {r.title[:60]!r} differs from item.json's "
                       f"{data.items[r.item_id].title[:60]!r}", r.line, "title")
    for item_id in data.index:
        if item_id not in first_line:
            report.add("missing_from_info", path, f"item {item_id!r} of index.json is not listed", field="item_id")


def _check_item_ref(report: ValidationReport, ctx: tuple, item_id: str, sid: str, title: str,
                    fields: tuple[str, str, str], data: ReleaseData, sid_set: set) -> None:
    """One (item id, SID, title) triple of a split row against the catalogue. ``ctx``: (path, line,
    position label) for messages; ``fields``: the CSV columns holding id, SID, title."""
    path, line, label = ctx
    id_field, sid_field, title_field = fields
    index = data.index
    if item_id not in index:
        report.add("unknown_item", path, f"{label}item id {item_id!r} is not in index.json", line, id_field)
        return
    want = index[item_id]
    if sid != want:
        kind = "sid_mismatch" if sid in sid_set else "sid_not_in_index"
        extra = "" if sid in sid_set else " (and no catalogue item has that SID)"
        report.add(kind, path, f"{label}SID {sid} for item {item_id!r}, but index.json has {want}{extra}",
                   line, sid_field)
    if data.items is not None and item_id in data.items and title != data.items[item_id].title:
        report.add("title_mismatch", path, f"{label}item {item_id!r}: title {title[:60]!r} differs from item.json's "
                   f"{data.items[item_id].title[:60]!r}", line, title_field)


def _check_split(name: str, data: ReleaseData, report: ValidationReport, max_history: int, sid_set: set) -> None:
    path = data.paths.split(name)
    for r in data.splits[name]:
        n = len(r.history_item_ids)
        if n == 0:
            report.add("empty_history", path, "history is empty", r.line, "history_item_id")
        elif n > max_history:
            report.add("long_history", path, f"history has {n} items (max {max_history})", r.line, "history_item_id")
        if data.index is None:
            continue
        hist_fields = ("history_item_id", "history_item_sid", "history_item_title")
        for pos, (i, s, t) in enumerate(zip(r.history_item_ids, r.history_sids, r.history_titles)):
            _check_item_ref(report, (path, r.line, f"history position {pos}: "), i, s, t, hist_fields, data, sid_set)
        _check_item_ref(report, (path, r.line, "target: "), r.item_id, r.item_sid, r.item_title,
                        ("item_id", "item_sid", "item_title"), data, sid_set)


def _check_corpora(data: ReleaseData, report: ValidationReport, sid_set: set) -> None:
    """Teacher corpora (when present): SID fields must be catalogue SIDs, SID mentions in the text
    should be catalogue SIDs or prefixes of one; skipped entries are shown."""
    for name, corpus in data.corpora.items():
        for reason, keys in corpus.skipped.items():
            if reason != "malformed row":  # those are already errors
                report.add("corpus_skipped", corpus.path,
                           f"{len(keys)} entries: {reason} (first: {', '.join(keys[:5])})")
        counts = ", ".join(f"{k}={v}" for k, v in sorted(corpus.counts.items()))
        report.notes.append(f"{name}: {len(corpus.records)} records ({counts or 'no think blocks'})")
        if data.index is None:
            continue
        if name == "narrative":
            for r in corpus.records:
                for fname, sids in (("history_item_sid", r.history_sids), ("item_sid", (r.item_sid,))):
                    for s in sids:
                        if s not in sid_set:
                            report.add("corpus_unknown_sid", corpus.path, f"SID {s} is no catalogue SID", r.line, fname)
        mentions = check_sid_mentions(corpus_texts(corpus), sid_set)
        report.notes.append(f"{name}: {mentions.mentions} SID mentions ({mentions.known} catalogue SIDs, "
                            f"{mentions.prefixes} prefixes, {len(mentions.unknown)} unknown)")
        for (line, fname), sid in mentions.unknown:
            report.add("corpus_unknown_mention", corpus.path, f"mentions {sid}", line, fname)


def check_release(data: ReleaseData, report: ValidationReport, max_history: int = 10) -> ValidationReport:
    """Cross-file checks on already-read data (see :func:`load_release`)."""
    sid_set = set(data.index.values()) if data.index is not None else set()
    _check_catalogue(data, report)
    _check_info(data, report)
    for name in data.splits:
        _check_split(name, data, report, max_history, sid_set)
    _check_corpora(data, report, sid_set)
    return report


def validate_release(paths: ReleasePaths, max_history: int = 10) -> ValidationReport:
    """Read and check a whole release folder; every problem found is in the returned report."""
    report = ValidationReport()
    return check_release(load_release(paths, report), report, max_history)
