"""RL data: split CSV rows -> verl's parquet rows, and the reader both backends use.

One row per sequence of the split::

    data_source  "sidreasoner/<Category>"   (verl groups validation metrics by it; the reward checks it)
    prompt       the history -> next-SID chat turns of ``next_sid_turns(history, think, style)``
    ability      "sid_recommendation"
    reward_model {"style": "rule", "ground_truth": "<a_1><b_2><c_3>"}
    extra_info   {"split", "index", "user_id", "item_id", "line", "think", "history_len"}

The user message is the shared wording of ``sidreasoner.tasks.prompts`` (the one stage 1/2 train on and
the evaluator uses); verl and TRL apply the model's chat template to it, with ``enable_thinking`` set
from ``extra_info.think``. Only the train and valid splits are ever written: test stays unseen.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..data.formats import atomic_path
from ..data.records import DataError, SequenceRow
from ..sid.spelling import SIDFormatError, format_sid, parse_sid
from ..tasks.base import SkipLog
from ..tasks.prompts import next_sid_turns

DATA_SOURCE_PREFIX = "sidreasoner/"
#: the release's RL parquet (``scripts/create_reasoning_rl_data.py``) names every row ``rec/Amazon_mix3_IOV``,
#: whatever the category; its extra_info is {split, index, answer, question}
RELEASE_DATA_SOURCE_PREFIX = "rec/"
ABILITY = "sid_recommendation"
#: splits RL may read; the test split is for the final evaluation only
RL_SPLITS = ("train", "valid")
COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")
EMPTY_HISTORY = "empty history (nothing to prompt with)"


def data_source(category: str) -> str:
    if not category or "/" in category:
        raise ValueError(f"category must be a non-empty name without '/', got {category!r}")
    return DATA_SOURCE_PREFIX + category


def parse_info_files(text) -> Optional[dict[str, str]]:
    """``"A=/d/info/A.txt,B=/d/info/B.txt"`` -> ``{"A": ..., "B": ...}``: one catalogue per category, for RL
    data of several categories (the reward checks each row against its own category's catalogue: the same
    SID can be two items of two catalogues). None for a plain path (one catalogue for every row)."""
    if not isinstance(text, str) or "=" not in text or "/" in text.partition("=")[0]:
        return None  # a path (one with '=' in a folder name too)
    out = {}
    for part in text.split(","):
        category, sep, path = (x.strip() for x in part.partition("="))
        if not (sep and category and path):
            raise ValueError(f"catalogue list {text!r}: expected CATEGORY=INFO_FILE entries separated by commas, "
                             f"got {part!r}")
        if category in out:
            raise ValueError(f"catalogue list {text!r}: category {category!r} named twice")
        out[category] = path
    return out


def format_info_files(files: dict) -> str:
    """The inverse of :func:`parse_info_files` (what a shell variable or a hydra override carries)."""
    return ",".join(f"{category}={path}" for category, path in files.items())


def category_of(source) -> str:
    """``"sidreasoner/Office_Products"`` -> ``"Office_Products"``; ValueError for any other data_source."""
    if isinstance(source, str) and source.startswith(DATA_SOURCE_PREFIX) and len(source) > len(DATA_SOURCE_PREFIX):
        return source[len(DATA_SOURCE_PREFIX):]
    raise ValueError(f"unknown data_source {source!r}: the SID reward scores rows written by rl/prepare_data.py, "
                     f"whose data_source is '{DATA_SOURCE_PREFIX}<Category>'")


def source_kind(source) -> str:
    """``"ours"`` (``sidreasoner/<Category>``), ``"release"`` (``rec/<name>``) or ``"unknown"``."""
    if isinstance(source, str) and source.startswith(DATA_SOURCE_PREFIX) and len(source) > len(DATA_SOURCE_PREFIX):
        return "ours"
    if isinstance(source, str) and source.startswith(RELEASE_DATA_SOURCE_PREFIX) and \
            len(source) > len(RELEASE_DATA_SOURCE_PREFIX):
        return "release"
    return "unknown"


def rl_record(row: SequenceRow, category: str, split: str, index: int, think: bool,
              style: str = "native") -> dict:
    """One parquet row for a split-CSV row (history SIDs -> next SID) in a prompt style."""
    system, user = next_sid_turns(row.history_sids, think=think, style=style)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return {
        "data_source": data_source(category),
        "prompt": messages,
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": row.item_sid},
        "extra_info": {"split": split, "index": int(index), "user_id": str(row.user_id), "item_id": str(row.item_id),
                       "line": int(row.line) if row.line is not None else -1, "think": bool(think),
                       "history_len": len(row.history_sids)},
    }


@dataclass
class SplitReport:
    """What became of a split's rows: kept, sampled away (``max_rows``), skipped by reason."""

    split: str
    rows_read: int = 0
    written: int = 0
    sampled_out: int = 0
    targets_not_in_catalogue: int = 0
    skips: SkipLog = field(default_factory=SkipLog)

    def as_dict(self) -> dict:
        return {"split": self.split, "rows_read": self.rows_read, "written": self.written,
                "sampled_out": self.sampled_out, "targets_not_in_catalogue": self.targets_not_in_catalogue,
                "skipped": dict(self.skips.counts), "skipped_examples": dict(self.skips.examples)}


def build_split_records(rows: Sequence[SequenceRow], path, category: str, split: str, think: bool,
                        catalogue: Optional[set] = None, max_rows: int = 0, seed: int = 0,
                        style: str = "native") -> tuple[list[dict], SplitReport]:
    """Rows of one split -> parquet records. ``max_rows`` > 0 keeps a seeded random subset (in file order)."""
    if split not in RL_SPLITS:
        raise ValueError(f"RL data comes from the {' and '.join(RL_SPLITS)} splits only, not {split!r} "
                         f"(the test split is kept for the final evaluation)")
    report = SplitReport(split, rows_read=len(rows))
    usable = []
    for row in rows:
        if not row.history_sids:
            report.skips.skip(EMPTY_HISTORY, f"{path} line {row.line}")
            continue
        try:
            truth = format_sid(parse_sid(row.item_sid))
        except SIDFormatError as e:
            raise DataError(path, str(e), row.line, "item_sid") from None
        if catalogue is not None and truth not in catalogue:
            report.targets_not_in_catalogue += 1
        usable.append(row)
    if 0 < max_rows < len(usable):
        keep = set(random.Random(seed).sample(range(len(usable)), max_rows))
        report.sampled_out = len(usable) - max_rows
        usable = [r for i, r in enumerate(usable) if i in keep]
    records = [rl_record(r, category, split, i, think, style) for i, r in enumerate(usable)]
    report.written = len(records)
    return records, report


def write_rl_parquet(path, records: Sequence[dict]) -> None:
    """Write records atomically (temp file + rename): a killed job never leaves a half-written parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    if not records:
        raise ValueError(f"no RL rows to write to {path}")
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(list(records)), tmp)


# -- reading --------------------------------------------------------------------------------------
def _check_prompt(prompt, path, line: int) -> None:
    ok = isinstance(prompt, list) and prompt and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in prompt)
    if not ok:
        raise DataError(path, "expected a list of {role, content} chat messages", line, "prompt")
    if prompt[-1]["role"] != "user" or not prompt[-1]["content"].strip():
        raise DataError(path, "the last message must be a non-empty user message", line, "prompt")


def _check_row(rec: dict, path, line: int) -> None:
    if source_kind(rec.get("data_source")) == "unknown":
        raise DataError(path, f"unknown data_source {rec.get('data_source')!r}: expected "
                              f"'{DATA_SOURCE_PREFIX}<Category>' (rl/prepare_data.py) or the release's "
                              f"'{RELEASE_DATA_SOURCE_PREFIX}<name>'",
                        line, "data_source")
    _check_prompt(rec.get("prompt"), path, line)
    rm = rec.get("reward_model")
    truth = rm.get("ground_truth") if isinstance(rm, dict) else None
    try:
        parse_sid(truth)
    except (SIDFormatError, TypeError) as e:
        raise DataError(path, f"ground truth is not a SID: {e}", line, "reward_model.ground_truth") from None


def read_rl_parquet(path) -> list[dict]:
    """Read and check an RL parquet (rows numbered from 1 in errors). Missing file -> DataError saying how to make it."""
    import pyarrow.parquet as pq
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "RL parquet not found (write it with: python rl/prepare_data.py --data_dir DATA_DIR "
                              "--category CATEGORY --output_dir ...)")
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(path, f"not a readable parquet file ({type(e).__name__}: {e})") from None
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)} (expected {', '.join(COLUMNS)})")
    records = table.to_pylist()
    if not records:
        raise DataError(path, "no rows")
    for i, rec in enumerate(records, 1):
        _check_row(rec, path, i)
    return records


def think_mode(records: Sequence[dict], path) -> bool:
    """The prompt mode the rows were written for (``extra_info.think``); DataError when rows disagree."""
    modes = {bool((r.get("extra_info") or {}).get("think", False)) for r in records}
    if len(modes) != 1:
        raise DataError(path, "rows mix thinking and non-thinking prompts (extra_info.think); rebuild the file")
    return modes.pop()


def user_and_system(prompt: Sequence[dict]) -> tuple[str, Optional[str]]:
    """``(user text, system text or None)`` of a checked prompt (system = the first message if it is one)."""
    system = prompt[0]["content"] if len(prompt) > 1 and prompt[0]["role"] == "system" else None
    return prompt[-1]["content"], system
