"""Build the RL parquet files of one category (or of several, ``category="A,B"``): ``train.parquet`` and ``valid.parquet`` (never test).

``prepare_rl_data(cfg)`` reads the release split CSVs, writes the parquet files (``sidreasoner.rl.data``)
with ``prepare_config.json`` and ``prepare_report.json`` beside them, and returns the report. With
``if_missing`` (the stage script calls it before every run) the rows are built and their content key, a hash
of every row as it would be written (prompt messages, think mode, ground truth, data_source, ...), is compared
with the key recorded beside the files: the same key keeps the files, another key (new prompt wording, other
rows or settings) rebuilds them, so stage 3 never trains on prompts evaluation no longer uses. Files made by
other means (no ``prepare_config.json``) are kept as they are: the pre-flight checks them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..data.formats import atomic_write_text, read_info, read_split_csv
from ..data.records import DataError, ReleasePaths, parse_categories
from ..model.chat import model_prompt_style
from ..paths import DEFAULT_DATA_DIR
from ..ranges import SEED, at_least, check_ranges
from ..sid.spelling import format_sid, parse_sid
from ..tasks.prompts import check_style
from .data import RL_SPLITS, build_split_records, format_info_files, parse_info_files, write_rl_parquet

CONFIG_NAME = "prepare_config.json"
REPORT_NAME = "prepare_report.json"
#: settings that do not change the files' contents
_RUNTIME = ("if_missing", "overwrite", "model_path")  # model_path: only through the prompt style it resolves


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


#: numeric flags and the values they accept (sidreasoner.ranges)
_RANGES = {"max_train_rows": at_least(0, "0: all rows"), "max_valid_rows": at_least(0, "0: all rows"),
           "valid_holdout": at_least(0), "seed": SEED}


@dataclass
class PrepareConfig:
    data_dir: str = _f(DEFAULT_DATA_DIR, "release-layout data folder (train/ valid/ info/)")
    category: str = _f("", "category, e.g. Office_Products; several, comma-separated (A,B): the rows of each, "
                           "each row's data_source naming its category")
    output_dir: str = _f("", "where train.parquet and valid.parquet go (default data/rl/<category>)")
    think: bool = _f(True, "thinking-mode prompts (ask to think step by step; the chat template opens <think>); "
                           "False: non-thinking prompts")
    prompt_style: str = _f("native", "wording of the prompts: native, compact (history SIDs only) or release "
                                     "(the SIDReasoner release's prompts); use the "
                                     "style the RL model was trained with (its folder's prompt_style.json); "
                                     "auto: the style recorded in --model_path's folder (native without one)")
    model_path: str = _f("", "with --prompt_style auto: the model the prompts are for (the RL run's start)")
    max_train_rows: int = _f(0, "keep a seeded random subset of this many train rows (of each category; 0: all)")
    max_valid_rows: int = _f(0, "keep a seeded random subset of this many valid rows (of each category; 0: all)")
    seed: int = _f(0, "seed of the row subsets")
    train_from: str = _f("train", "split the RL train prompts come from: train (the paper) or valid: the valid rows "
                                  "after the first --valid_holdout, rows the SFT stages never fitted; the first "
                                  "--valid_holdout valid rows stay the validation prompts (and the rows a run's "
                                  "choices are made on)")
    valid_holdout: int = _f(1000, "with --train_from valid: the first N valid rows, kept out of RL training")
    info_file: str = _f("", "catalogue used to count targets outside it (default: the release info file); several "
                            "categories: A=path,B=path (default: each one's release info file)")
    if_missing: bool = _f(False, "do nothing when the files exist and were written with the same settings")
    overwrite: bool = _f(False, "replace existing files")

    def resolved(self) -> "PrepareConfig":
        if not self.category:
            raise ValueError("--category is required (names the split files under --data_dir)")
        if self.train_from not in ("train", "valid"):
            raise ValueError(f"--train_from must be train or valid, got {self.train_from!r}")
        check_ranges(self, _RANGES)  # a negative cap used to drop rows silently
        c = dataclasses.replace(self)
        c.output_dir = c.output_dir or str(Path("data") / "rl" / c.category)
        if len(self.categories()) > 1:
            c.info_file = format_info_files(_info_files(c))
        c.info_file = c.info_file or str(ReleasePaths(Path(c.data_dir), c.category).info)
        if c.prompt_style == "auto":  # as RL_training_script.sh resolves PROMPT_STYLE=auto
            if not c.model_path:
                raise ValueError("--prompt_style auto needs --model_path (the model whose recorded style words "
                                 "the prompts)")
            c.prompt_style = model_prompt_style(c.model_path)
        check_style(c.prompt_style)
        return c

    def categories(self) -> list[str]:
        """``--category A,B``: rows of each (one catalogue each); one name: ``[category]`` as given."""
        try:
            names = parse_categories(self.category)
        except ValueError as e:
            raise ValueError(f"--category: {e}") from None
        return names if len(names) > 1 else [self.category]

    def content_settings(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in _RUNTIME}


def _info_files(cfg: PrepareConfig) -> dict[str, str]:
    """Several categories: each one's catalogue, from ``--info_file A=path,B=path`` or the release layout."""
    cats = cfg.categories()
    given = parse_info_files(cfg.info_file)
    if cfg.info_file and given is None:
        raise ValueError(f"--info_file {cfg.info_file!r} is one catalogue, but --category names {len(cats)}: give "
                         f"one per category ({format_info_files({c: '...' for c in cats})}) or leave it empty")
    files = given if given is not None else {c: str(ReleasePaths(Path(cfg.data_dir), c).info) for c in cats}
    if sorted(files) != sorted(cats):
        raise ValueError(f"--info_file names the catalogues of {', '.join(files)}, but --category is "
                         f"{', '.join(cats)}")
    return {c: files[c] for c in cats}


def output_paths(cfg: PrepareConfig) -> dict[str, Path]:
    return {split: Path(cfg.output_dir) / f"{split}.parquet" for split in RL_SPLITS}


def _existing_settings(out: Path):
    try:
        return json.loads((out / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def content_key(records: dict) -> str:
    """sha256 of every row of every RL file as it is written (``{split: [record, ...]}``): what the reuse of
    existing files is decided on, not the settings that made them."""
    h = hashlib.sha256()
    for split in sorted(records):
        for rec in records[split]:
            h.update(json.dumps([split, rec], sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
            h.update(b"\n")
    return h.hexdigest()


def _existing_files(cfg: PrepareConfig):
    """(present files, their prepare_config.json or None); FileExistsError when they may not be replaced."""
    paths = output_paths(cfg)
    present = [p for p in paths.values() if p.exists()]
    if present and not cfg.overwrite and not cfg.if_missing:
        raise FileExistsError(f"{present[0]} exists (pass --overwrite to replace it, or --if_missing to keep it)")
    return present, (_existing_settings(Path(cfg.output_dir)) if present and not cfg.overwrite else None)


def _catalogue(info_file: str):
    """Canonical SIDs of the info file, or None when it is absent (the target check is then skipped)."""
    if not Path(info_file).is_file():
        return None
    return {format_sid(parse_sid(r.sid)) for r in read_info(info_file)}


def _source_rows(cfg: PrepareConfig, release: ReleasePaths, split: str):
    """(CSV path, rows) of one RL file: its own split, or with ``train_from=valid`` the valid split cut at
    ``valid_holdout`` (train file: the rows after it; valid file: the rows before it)."""
    if cfg.train_from == "train":
        src = release.split(split)
        return src, read_split_csv(src)
    src = release.split("valid")
    rows = read_split_csv(src)
    if cfg.valid_holdout < 1 or cfg.valid_holdout >= len(rows):
        raise DataError(src, f"--valid_holdout {cfg.valid_holdout} must be between 1 and {len(rows) - 1} (the split "
                             f"has {len(rows)} rows; the rest become the RL train prompts)")
    return src, (rows[cfg.valid_holdout:] if split == "train" else rows[:cfg.valid_holdout])


def _category_split(cfg: PrepareConfig, category: str, info: str, catalogue, split: str, say, label: str):
    """(records, report entry) of one category's rows for one RL file; DataError when none is usable."""
    src, rows = _source_rows(cfg, ReleasePaths(Path(cfg.data_dir), category), split)
    limit = {"train": cfg.max_train_rows, "valid": cfg.max_valid_rows}[split]
    records, rep = build_split_records(rows, src, category, "valid" if cfg.train_from == "valid" else split,
                                       cfg.think, catalogue, limit, cfg.seed, cfg.prompt_style)
    if not records:
        raise DataError(src, f"no usable rows for the RL {split} file ({rep.skips.total} skipped)")
    say(label(rep.written) + (f" ({rep.sampled_out} sampled out)" if rep.sampled_out else ""))
    for line in rep.skips.lines():
        say(f"  skipped {line}")
    if rep.targets_not_in_catalogue:
        say(f"  warning: {rep.targets_not_in_catalogue} targets are not in the catalogue {info}")
    return records, {**rep.as_dict(), "source": str(src)}


def _build(cfg: PrepareConfig, say) -> tuple[dict, dict]:
    """The records of each RL file and the report (nothing written)."""
    several = len(cfg.categories()) > 1
    files = _info_files(cfg) if several else {cfg.category: cfg.info_file}
    catalogues = {category: _catalogue(info) for category, info in files.items()}
    for category, info in files.items():
        if catalogues[category] is None:
            say(f"note: no catalogue at {info}; targets are not checked against it")
    report, out = {"output_dir": cfg.output_dir, "splits": {}}, {}
    for split, path in output_paths(cfg).items():
        records, parts = [], {}
        for category in files:
            label = ((lambda n, c=category: f"{split} [{c}]: {n} rows") if several
                     else (lambda n: f"{split}: {n} rows -> {path}"))
            recs, parts[category] = _category_split(cfg, category, files[category], catalogues[category], split,
                                                    say, label)
            records += recs
        out[split] = records
        if several:
            report["splits"][split] = {"written": len(records), "parquet": str(path), "categories": parts}
            say(f"{split}: {len(records)} rows of {len(files)} categories -> {path}")
        else:
            report["splits"][split] = {**parts[cfg.category], "parquet": str(path)}
    return out, report


def prepare_rl_data(cfg: PrepareConfig, say=print) -> dict:
    """Write (or keep, with ``if_missing`` when their content key is unchanged) the train/valid parquet files;
    return the report. Several categories: each file holds every category's rows (each row's data_source
    names its category, so the reward checks it against that category's catalogue), ``max_*_rows`` apply per
    category."""
    cfg = cfg.resolved()
    out = Path(cfg.output_dir)
    present, old = _existing_files(cfg)
    if present and old is None and not cfg.overwrite:
        if len(present) < len(RL_SPLITS):
            raise FileExistsError(f"{out} holds {present[0].name} without {CONFIG_NAME} and a file missing; pass "
                                  f"--overwrite to rebuild it or choose another --output_dir")
        say(f"RL data in {out} has no {CONFIG_NAME} (made by other means); kept as it is (--overwrite rebuilds it)")
        return {}
    said: list[str] = []
    records, report = _build(cfg, said.append)  # said only when the files are written
    key = content_key(records)
    if present and old is not None and old.get("content_key") == key and len(present) == len(RL_SPLITS):
        say(f"RL data in {out} is present with the same rows and prompts; kept as it is (--overwrite rebuilds it)")
        return json.loads((out / REPORT_NAME).read_text(encoding="utf-8")) if (out / REPORT_NAME).is_file() else report
    if present and old is not None and len(present) == len(RL_SPLITS) and not cfg.overwrite:
        say(f"RL data in {out} was built with other rows or prompts (content key {str(old.get('content_key'))[:12]} "
            f"-> {key[:12]}); rebuilding it")
    for line in said:
        say(line)
    for split, path in output_paths(cfg).items():
        write_rl_parquet(path, records[split])
    atomic_write_text(out / CONFIG_NAME, json.dumps({**cfg.content_settings(), "content_key": key}, indent=1) + "\n")
    atomic_write_text(out / REPORT_NAME, json.dumps(report, indent=1) + "\n")
    return report
