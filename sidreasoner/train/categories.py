"""SFT on several categories in one run (``sft.py --category A,B``): one catalogue each, SID tokens shared.

Each category's files come from the release layout under ``--data_dir`` and become examples of their own
(its tasks word prompts with its name); the training examples of every category are mixed into one
epoch. Validation keeps the categories apart (``eval_next_sid[A]_loss``; ``eval_loss`` is the mean over
every task of every category), and so does the ranking probe: the same SID can be an item of one
catalogue and nothing (or another item) in the other, so each category's valid rows are searched in
its own catalogue's trie. The probe's ``ndcg10`` pools the rows of every category (the selection
metric); ``ndcg10[A]`` is one category's.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..data.records import ReleasePaths, parse_categories
from ..tasks.base import TaskData
from ..tasks.mixture import Mixture, build_mixture, format_table, make_tasks, parse_task_values
from ..tasks.sources import DataPaths, load_task_data

#: per-category file flags: a multi-category run reads every category's files from --data_dir
_ONE_CATEGORY_FILES = ("train_file", "eval_file", "sid_index_path", "item_meta_path", "llm_generated_data_path")


def several(cfg) -> Optional[list[str]]:
    """The categories of ``cfg.category`` when it names more than one, else None (the one-category run)."""
    try:
        names = parse_categories(cfg.category) if cfg.category else []
    except ValueError as e:
        raise ValueError(f"--category: {e}") from None
    return names if len(names) > 1 else None


def check_flags(cfg) -> None:
    """The file flags that name one category's file cannot serve several (ValueError naming them)."""
    given = [f"--{name}" for name in _ONE_CATEGORY_FILES if getattr(cfg, name)]
    if given:
        raise ValueError(f"--category {cfg.category} names several categories, whose files come from --data_dir's "
                         f"release layout; {', '.join(given)} name one category's file")


def narrative_path(given: str, release: ReleasePaths) -> str:
    """A category's narrative corpus: ``<folder>/<Cat>.integrated_narrative.csv`` when a folder is given
    (e.g. the pipeline's teacher corpus folder), else the release layout's. A single file cannot be
    every category's: ValueError."""
    if not given:
        return str(release.narrative)
    if Path(given).is_dir():
        return str(Path(given) / release.narrative.name)
    raise ValueError(f"--llm_generated_sequence_path/--reasoning_train_file {given} is one file, but --category "
                     f"names several: give the folder holding <Category>.integrated_narrative.csv of each")


class SIDTokens:
    """The SID tokens and SIDs of every category's index (what ``load_model`` asks an index for)."""

    def __init__(self, indexes):
        self.indexes = list(indexes)

    def tokens(self) -> list[str]:  # SIDIndex.tokens()'s order: level, then code
        toks = {t for index in self.indexes for t in index.tokens()}
        return sorted(toks, key=lambda t: (t[1], int(t[3:-1])))

    def unique_sids(self) -> list[str]:
        return sorted({s for index in self.indexes for s in index.unique_sids()})


@dataclass
class CategoryData:
    """Every category's task data, by category (in ``--category`` order)."""

    by_category: dict[str, TaskData]
    eval_files: dict[str, str] = field(default_factory=dict)

    @property
    def index(self) -> SIDTokens:
        return SIDTokens(d.index for d in self.by_category.values())


def _read(cfg, paths: DataPaths, names, say: Callable, label: str = "") -> TaskData:
    """One category's task data; tasks turned off and malformed rows are said."""
    data, report = load_task_data(paths, names, cfg.valid_item_fraction, cfg.seed)
    for note in report.notes:
        say(f"{label}task off: {note}")
    for path, log in report.skips.items():
        if log.total:
            say(f"{path}: {log.total} malformed rows left out:\n  " + "\n  ".join(log.lines()))
    return data


def load(cfg, names, say: Callable):
    """The task data of the tasks ``names``: one category's :class:`TaskData` (from the resolved path
    flags), or with several categories a :class:`CategoryData` of each one's release-layout files."""
    if not several(cfg):
        return _read(cfg, DataPaths(cfg.sid_index_path, cfg.item_meta_path, cfg.train_file, cfg.eval_file,
                                    cfg.llm_generated_data_path, cfg.llm_generated_sequence_path,
                                    cfg.general_reasoning_path), names, say)
    out = CategoryData({})
    for category in several(cfg):
        rp = ReleasePaths(Path(cfg.data_dir), category)
        paths = DataPaths(str(rp.index_json), str(rp.item_json), str(rp.split("train")), str(rp.split("valid")),
                          str(rp.item_enhanced), narrative_path(cfg.llm_generated_sequence_path, rp),
                          cfg.general_reasoning_path)
        out.by_category[category] = _read(cfg, paths, names, say, f"[{category}] ")
        out.eval_files[category] = paths.eval_file
    return out


def mixture(cfg, data: CategoryData, names, say: Callable) -> Mixture:
    """Each category's mixture (its tasks name it), validation sets as ``task[Category]``, the training
    examples of all of them shuffled together."""
    weights = parse_task_values(cfg.task_weights, "--task_weights")
    caps = parse_task_values(cfg.task_caps, "--task_caps", int)
    mix = Mixture([], {})
    for category, cat_data in data.by_category.items():
        tasks = make_tasks(names, cfg.valid_fraction, cfg.general_max_samples, cfg.prompt_style, cfg.history_loss,
                           cfg.keep_covered_rows, cfg.recent_crops, category)
        part = build_mixture(tasks, cat_data, weights, caps, cfg.max_valid_per_task, cfg.seed)
        say(f"category {category}:\n" + format_table(part.table, part.skips))
        mix.train += part.train
        mix.valid.update({f"{task}[{category}]": examples for task, examples in part.valid.items()})
        mix.table += [{**row, "task": f"{row['task']}[{category}]"} for row in part.table]
        mix.skips.update({f"{task}[{category}]": log for task, log in part.skips.items()})
    random.Random(cfg.seed).shuffle(mix.train)  # one epoch interleaves the categories
    return mix


class CategoryProbes:
    """One :class:`RankingProbe` per category (its own catalogue's trie); the metrics of all rows pooled
    (``ndcg10``, ``think_ndcg10``, ``both_ndcg10``: what selects the checkpoint) and each category's
    (``ndcg10[A]`` ...)."""

    def __init__(self, probes: dict):
        self.probes = probes

    def __call__(self, model) -> dict:
        per = {category: probe(model) for category, probe in self.probes.items()}
        out = {}
        for key in next(iter(per.values())):
            if key == "both_ndcg10":
                continue
            # a category's metric is a mean over its rows: pooled = weighted by the rows it scored
            weights = {c: (p.think_rows if key.startswith("think_") else len(p.rows)) for c, p in self.probes.items()}
            total = sum(weights.values())
            out[key] = sum(per[c][key] * w for c, w in weights.items()) / total if total else 0.0
        if "think_ndcg10" in out:
            out["both_ndcg10"] = (out["ndcg10"] + out["think_ndcg10"]) / 2
        for category, metrics in per.items():
            out.update({f"{key}[{category}]": value for key, value in metrics.items()})
        return out


def make_probes(cfg, data: CategoryData, tokenizer, say: Callable) -> CategoryProbes:
    """Each category's probe over ``--rank_eval_rows`` of its valid rows (each category gets that many)."""
    from .rank_eval import RankingProbe, pick_rows
    probes = {}
    for category, cat_data in data.by_category.items():
        from ..data.formats import read_split_csv
        valid_rows = cat_data.valid_rows or read_split_csv(data.eval_files[category])  # tasks without it
        if not valid_rows:
            raise ValueError(f"--rank_eval_rows needs the valid split: {data.eval_files[category]} has no rows")
        rows = [r for r in pick_rows(valid_rows, cfg.rank_eval_rows, cfg.seed)
                if cat_data.index.is_valid_sid(r.item_sid)]
        think = min(cfg.rank_eval_think_rows, len(rows))
        say(f"ranking probe [{category}]: {len(rows)} valid rows ({think} also in thinking mode), "
            f"{cfg.rank_eval_beams} beams in its own catalogue")
        probes[category] = RankingProbe(rows, tokenizer, cat_data.index, cfg.prompt_style, cfg.rank_eval_beams,
                                        think_rows=think, think_tokens=cfg.rank_eval_think_tokens)
    say(f"the checkpoint is selected on valid NDCG@10 ({cfg.select_on}) over the rows of every category")
    return CategoryProbes(probes)
