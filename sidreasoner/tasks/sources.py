"""Read the files the chosen tasks need into one :class:`TaskData`.

Required inputs raise :class:`DataError` when absent (the SID index; item.json for item tasks; the
split CSVs for sequence tasks; the narrative CSV for stage 2). Optional teacher corpora that are
absent turn their task off with a message. Malformed rows are left out, counted and returned in
``SourceReport.skips`` so the caller shows them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..data.corpora import read_item_enhanced, read_narratives
from ..data.formats import read_sid_index, read_split_csv
from ..data.records import DataError
from ..paths import DEFAULT_SEED
from .base import SkipLog, TaskData, held_out

SEQUENCE_TASKS = {"next_sid", "sid_history_to_title", "title_history_to_title", "title_history_to_sid"}
ITEM_TASKS = {"sid_to_title", "title_to_sid", "item_text"}


@dataclass
class DataPaths:
    sid_index_path: str
    item_meta_path: Optional[str] = None
    train_file: Optional[str] = None
    eval_file: Optional[str] = None
    item_enhanced_path: Optional[str] = None   # --llm_generated_data_path
    narrative_path: Optional[str] = None       # --llm_generated_sequence_path / --reasoning_train_file
    general_path: Optional[str] = None         # --general_reasoning_path


@dataclass
class SourceReport:
    skips: dict[str, SkipLog] = field(default_factory=dict)  # file -> malformed rows left out
    notes: list[str] = field(default_factory=list)


def _require(path: Optional[str], flag: str, why: str) -> str:
    if not path:
        raise DataError(flag, f"no file given; {why}")
    if not Path(path).is_file():
        raise DataError(path, f"file not found ({flag}); {why}")
    return path


def _collector(report: SourceReport, path: str):
    log = report.skips.setdefault(str(path), SkipLog())
    return lambda e: log.skip(f"malformed row: {e.reason}" + (f" (field {e.field})" if e.field else ""),
                              f"line {e.row}" if e.row else "")


def _optional_corpus(path: Optional[str], flag: str, tasks: Sequence[str], report: SourceReport, reader):
    if not path:
        report.notes.append(f"{', '.join(tasks)}: off (no {flag} given)")
        return None
    if not Path(path).is_file():
        report.notes.append(f"{', '.join(tasks)}: off ({flag} {path} not found)")
        return None
    return reader(path)


def load_task_data(paths: DataPaths, task_names: Sequence[str], valid_item_fraction: float = 0.05,
                   seed: int = DEFAULT_SEED) -> tuple[TaskData, SourceReport]:
    """Read what ``task_names`` need. Item ids held out for validation are drawn by hashing (seeded)."""
    report, names = SourceReport(), set(task_names)
    needs_items = bool(names & (ITEM_TASKS | SEQUENCE_TASKS))
    index_path = _require(paths.sid_index_path, "--sid_index_path", "every stage needs the SID index")
    item_json = _require(paths.item_meta_path, "--item_meta_path", "the title tasks need item titles") \
        if needs_items else None
    index = read_sid_index(index_path, item_json)
    data = TaskData(index=index, item_path=Path(item_json).name if item_json else "item.json", seed=seed,
                    general_path=paths.general_path if "general" in names else None)
    data.valid_items = frozenset(i for i in index.item_to_sid if held_out(i, valid_item_fraction, seed))
    if names & SEQUENCE_TASKS:
        train = _require(paths.train_file, "--train_file", "the sequence tasks need the train split")
        valid = _require(paths.eval_file, "--eval_file", "the sequence tasks validate on the valid split")
        data.train_rows = read_split_csv(train, on_error=_collector(report, train))
        data.valid_rows = read_split_csv(valid, on_error=_collector(report, valid))
        if not data.train_rows:  # a header-only file would silently train the sequence tasks on nothing
            raise DataError(train, f"no train rows (header only?): the sequence tasks "
                                   f"({', '.join(sorted(names & SEQUENCE_TASKS))}) need them")
        data.train_path, data.valid_path = train, valid
    if "item_text" in names:
        data.item_corpus = _optional_corpus(paths.item_enhanced_path, "--llm_generated_data_path", ["item_text"],
                                            report, read_item_enhanced)
    if "reasoning" in names:
        _require(paths.narrative_path, "--llm_generated_sequence_path",
                 "stage 2 trains on its reasoning_path column (integrated_narrative.csv)")
    if names & {"narrative", "reasoning"}:
        users = [n for n in ("narrative", "reasoning") if n in names]
        data.narratives = _optional_corpus(
            paths.narrative_path, "--llm_generated_sequence_path", users, report,
            lambda p: read_narratives(p, on_error=_collector(report, p)))
    return data, report
