"""The task mixture: which tasks each stage trains, per-task weights and caps, and the summary table.

Weight ``w`` scales a task's training examples per epoch: ``w = 0`` turns the task off, ``w = 1``
uses every example once, ``w = 0.5`` a seeded half, ``w = 2.5`` every example twice plus a seeded
half. A cap bounds the result. Validation sets are never weighted, only capped
(``max_valid_per_task``) so evaluation stays affordable.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

from ..paths import DEFAULT_SEED
from .base import Example, SkipLog, Task, TaskData, TaskSplit
from .corpus import ItemText, Narrative
from .general import GeneralChat
from .items import SIDToTitle, TitleToSID
from .reasoning import Reasoning
from .sequence import NextSID, NextSIDFromTitles, NextTitleFromSIDs, NextTitleFromTitles

#: stage -> the tasks it trains by default (``--tasks`` overrides)
STAGE_TASKS = {
    "alignment": ("next_sid", "sid_to_title", "title_to_sid", "sid_history_to_title", "title_history_to_title",
                  "title_history_to_sid", "item_text", "narrative", "general"),
    "reasoning": ("reasoning",),
}
TASK_NAMES = STAGE_TASKS["alignment"] + STAGE_TASKS["reasoning"]


def make_tasks(names: Sequence[str], valid_fraction: float = 0.05, general_max_samples: int = 60000,
               prompt_style: str = "native", history_loss: bool = False, keep_covered: bool = False,
               recent_crops: int = 0, category: str = "") -> list[Task]:
    """Task objects for ``names`` (in that order); unknown names raise ``ValueError`` listing the known ones.
    ``prompt_style`` words the chat tasks' prompts (``tasks.prompts``: native and compact differ in the
    history -> next-SID prompts only, release words every task it has); ``category`` (e.g.
    Office_Products) is named in release texts that name it; ``history_loss``: next_sid also supervises
    the history SIDs of its prompts (``NextSID``)."""
    factories = {
        "next_sid": lambda: NextSID(prompt_style, history_loss, keep_covered, recent_crops),
        "sid_to_title": lambda: SIDToTitle(prompt_style), "title_to_sid": lambda: TitleToSID(prompt_style),
        "sid_history_to_title": lambda: NextTitleFromSIDs(prompt_style, category),
        "title_history_to_title": lambda: NextTitleFromTitles(prompt_style, category),
        "title_history_to_sid": lambda: NextSIDFromTitles(prompt_style, category), "item_text": ItemText,
        "narrative": lambda: Narrative(valid_fraction), "reasoning": lambda: Reasoning(valid_fraction, prompt_style),
        "general": lambda: GeneralChat(general_max_samples, valid_fraction=min(valid_fraction, 0.01)),
    }
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known tasks: {', '.join(TASK_NAMES)}")
    return [factories[n]() for n in names]


def parse_task_values(spec: str, flag: str, cast=float) -> dict[str, float]:
    """``"next_sid=2,general=0.5"`` -> ``{"next_sid": 2.0, "general": 0.5}``, checked against the task names."""
    out = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in TASK_NAMES:
            raise ValueError(f"{flag}: expected TASK=VALUE with TASK in {', '.join(TASK_NAMES)}; got {part!r}")
        try:
            out[name] = cast(value)
        except ValueError:
            raise ValueError(f"{flag}: value for {name!r} is not a number: {value!r}") from None
        if out[name] < 0:
            raise ValueError(f"{flag}: value for {name!r} must be >= 0, got {value}")
    return out


def weighted_sample(examples: Sequence[Example], weight: float, cap: Optional[int], rng: random.Random) -> list:
    """``round(weight * n)`` examples (bounded by ``cap``): whole copies, then a seeded sample of the rest."""
    n = len(examples)
    target = round(weight * n)
    if cap is not None and cap > 0:
        target = min(target, cap)
    if n == 0 or target == 0:
        return []
    copies, rest = divmod(target, n)
    return list(examples) * copies + rng.sample(list(examples), rest)


@dataclass
class Mixture:
    train: list                                  # shuffled training examples of every task
    valid: dict[str, list]                       # task -> held-out validation examples
    table: list[dict] = field(default_factory=list)
    skips: dict[str, SkipLog] = field(default_factory=dict)


def build_mixture(tasks: Sequence[Task], data: TaskData, weights: Mapping[str, float] | None = None,
                  caps: Mapping[str, int] | None = None, max_valid_per_task: int = 500, seed: int = DEFAULT_SEED) -> Mixture:
    """Run every task, weight/cap its training examples, cap its validation set, summarise."""
    weights, caps = dict(weights or {}), dict(caps or {})
    rng = random.Random(seed)
    mix = Mixture([], {})
    for task in tasks:
        w = weights.get(task.name, 1.0)
        split: TaskSplit = task.build(data) if w > 0 else TaskSplit([], [], note="off: weight 0")
        chosen = weighted_sample(split.train, w, caps.get(task.name), rng)
        valid = list(split.valid)
        if max_valid_per_task and len(valid) > max_valid_per_task:
            valid = random.Random(seed).sample(valid, max_valid_per_task)
        mix.train += chosen
        if valid:
            mix.valid[task.name] = valid
        mix.skips[task.name] = split.skips
        mix.table.append({"task": task.name, "what": task.description, "available": len(split.train),
                          "weight": w, "cap": caps.get(task.name), "train": len(chosen), "valid": len(valid),
                          "skipped": split.skips.total, "note": split.note})
    rng.shuffle(mix.train)
    return mix


def format_table(table: Sequence[dict], skips: Mapping[str, SkipLog] | None = None) -> str:
    """A fixed-width summary: one line per task, then every skip reason with examples."""
    head = f"{'task':<24}{'available':>10}{'weight':>8}{'cap':>8}{'train':>9}{'valid':>7}{'skipped':>9}  note"
    lines = [head, "-" * len(head)]
    for r in table:
        cap = "-" if r["cap"] is None else str(r["cap"])
        lines.append(f"{r['task']:<24}{r['available']:>10}{r['weight']:>8g}{cap:>8}{r['train']:>9}{r['valid']:>7}"
                     f"{r['skipped']:>9}  {r['note']}")
    lines.append(f"{'total':<24}{sum(r['available'] for r in table):>10}{'':>16}"
                 f"{sum(r['train'] for r in table):>9}{sum(r['valid'] for r in table):>7}"
                 f"{sum(r['skipped'] for r in table):>9}")
    for name, log in (skips or {}).items():
        if log.total:
            lines.append(f"skipped rows of {name}:")
            lines += ["  " + s for s in log.lines()]
    return "\n".join(lines)
