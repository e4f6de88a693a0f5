"""Typed records for the release data and the error every reader raises.

Item ids are strings everywhere in the library (index.json keys are strings; the CSVs write numeric
ids as ints, and the writers keep that spelling for compatibility).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


class DataError(ValueError):
    """Bad input data. Always names the file and, where it applies, the row (1-based line) and field."""

    def __init__(self, path, message: str, row: Optional[int] = None, field: Optional[str] = None):
        self.path, self.row, self.field, self.reason = str(path), row, field, message
        where = self.path
        if row is not None:
            where += f", line {row}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Item:
    """One catalogue item (``<Cat>.item.json`` value). ``description`` is kept as stored (the release
    stores a Python-literal list as a string); use ``sidreasoner.data.text.item_text`` for clean text."""

    item_id: str
    title: str
    description: str = ""
    brand: str = ""
    categories: str = ""


@dataclass(frozen=True)
class SequenceRow:
    """One split-CSV row: a user's history (chronological, <= 10 items) and the next item."""

    user_id: str
    history_item_ids: tuple[str, ...]
    history_titles: tuple[str, ...]
    history_sids: tuple[str, ...]
    item_id: str
    item_title: str
    item_sid: str
    #: file line the row was read from (None when built in code); not part of equality
    line: Optional[int] = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class InfoRow:
    """One line of the info file: ``SID<TAB>title<TAB>item_id`` (the decoding catalogue)."""

    sid: str
    title: str
    item_id: str
    #: file line the row was read from (None when built in code); not part of equality
    line: Optional[int] = field(default=None, compare=False, repr=False)


#: the release's file-name suffix after the category: <split>/<Cat>_5_2016-10-2018-11.csv, info/<Cat>_5_2016-10-2018-11.txt
SPLIT_SUFFIX = "_5_2016-10-2018-11"


@dataclass
class ReleasePaths:
    """Where the files of one category live in the release layout under ``data_dir``."""

    data_dir: Path
    category: str
    split_suffix: str = SPLIT_SUFFIX
    extra: dict = field(default_factory=dict)

    def split(self, name: str) -> Path:
        return Path(self.data_dir) / name / f"{self.category}{self.split_suffix}.csv"

    @property
    def index_json(self) -> Path:
        return Path(self.data_dir) / "index" / f"{self.category}.index.json"

    @property
    def item_json(self) -> Path:
        return Path(self.data_dir) / "index" / f"{self.category}.item.json"

    @property
    def info(self) -> Path:
        return Path(self.data_dir) / "info" / f"{self.category}{self.split_suffix}.txt"

    @property
    def item_enhanced(self) -> Path:
        return Path(self.data_dir) / "index" / f"{self.category}.item_enhanced_v2.json"

    @property
    def narrative(self) -> Path:
        return Path(self.data_dir) / "index" / f"{self.category}.integrated_narrative.csv"


SPLITS = ("train", "valid", "test")


def parse_categories(text: str) -> list[str]:
    """``"Office_Products,Toys"`` -> ``["Office_Products", "Toys"]``: the one parser of every ``--category`` /
    ``CATEGORY`` that takes several categories (one catalogue each, SID tokens shared). A single name gives a
    one-element list, so callers keep their one-category behaviour. ValueError on an empty list, an empty
    name (``A,,B``), a duplicate (it would be trained twice) or a name with ``/`` or ``=`` (``/`` would leave
    the release layout; ``=`` separates a category from its catalogue in ``Cat=info_file`` lists)."""
    names = [part.strip() for part in (text or "").split(",")]
    if names == [""]:
        raise ValueError("no category given (expected a name, or several separated by commas: A,B)")
    for name in names:
        if not name:
            raise ValueError(f"empty category name in {text!r} (expected names separated by commas: A,B)")
        if "/" in name or "=" in name:
            raise ValueError(f"category {name!r} in {text!r}: a name contains no '/' or '='")
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"category {name!r} is named twice in {text!r}")
        seen.add(name)
    return names
