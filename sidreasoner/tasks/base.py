"""What every SFT task produces and consumes.

A task turns data rows into *examples*: :class:`ChatExample` (a prompt's messages and an assistant
target; the loss falls on the target and the stop token) or :class:`TextExample` (plain language
modelling text; the loss falls on every token). Tokenisation happens later, in
``sidreasoner.train.sft_data``, so tasks stay free of tokenizer details and are testable as text.

Each task returns a :class:`TaskSplit`: training examples, held-out validation examples (never the
training items or rows) and a :class:`SkipLog` that counts every row it could not use, by reason.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from ..data.records import SequenceRow
from ..paths import DEFAULT_SEED
from ..sid.index import SIDIndex
from .prompts import SYSTEM_PROMPT


@dataclass(frozen=True)
class ChatExample:
    """A chat turn to learn: ``messages`` (role, content) pairs form the prompt, the assistant answers.

    ``reasoning is None``: non-thinking answer (the prompt ends with Qwen3's empty think block, as the
    evaluator's non-thinking prompt does). ``reasoning`` a string: the target is
    ``<think>\\n{reasoning}\\n</think>\\n\\n{answer}`` after a thinking-mode prompt.
    """

    task: str
    messages: tuple[tuple[str, str], ...]
    answer: str
    reasoning: Optional[str] = None
    source: str = ""  # "file row N" where the example came from, for messages
    #: also supervise the SID tokens inside the prompt (the history: each item predicted from the ones before)
    prompt_sid_loss: bool = False


@dataclass(frozen=True)
class TextExample:
    """Plain LM text (the loss falls on all tokens and a closing end-of-text token)."""

    task: str
    text: str
    source: str = ""


Example = Union[ChatExample, TextExample]


def chat(task: str, user: str, answer: str, reasoning: Optional[str] = None, source: str = "",
         system: Optional[str] = SYSTEM_PROMPT, prompt_sid_loss: bool = False) -> ChatExample:
    """A single-turn recommender example (system prompt + one user message)."""
    msgs = ((("system", system),) if system else ()) + (("user", user),)
    return ChatExample(task, msgs, answer, reasoning, source, prompt_sid_loss)


class SkipLog:
    """Counts rows a task could not use, by reason, keeping the first few sources of each reason."""

    KEEP = 3

    def __init__(self):
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def skip(self, reason: str, source: str = "") -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        seen = self.examples.setdefault(reason, [])
        if source and len(seen) < self.KEEP:
            seen.append(source)

    def merge(self, other: "SkipLog") -> None:
        for reason, n in other.counts.items():
            self.counts[reason] = self.counts.get(reason, 0) + n
            seen = self.examples.setdefault(reason, [])
            seen.extend(other.examples.get(reason, [])[: self.KEEP - len(seen)])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        """One line per reason: ``"  12 x empty title (e.g. item.json item 42, ...)"``."""
        out = []
        for reason, n in sorted(self.counts.items(), key=lambda kv: -kv[1]):
            eg = self.examples.get(reason)
            out.append(f"{n:>6} x {reason}" + (f" (e.g. {'; '.join(eg)})" if eg else ""))
        return out


@dataclass
class TaskSplit:
    train: list[Example]
    valid: list[Example]
    skips: SkipLog = field(default_factory=SkipLog)
    note: str = ""  # e.g. "off: corpus file absent"


@dataclass
class TaskData:
    """Everything the tasks read. Optional corpora are None when their files are absent."""

    index: SIDIndex                      # item id <-> SID, with titles from item.json
    train_rows: Sequence[SequenceRow] = ()
    valid_rows: Sequence[SequenceRow] = ()
    train_path: str = "train split"
    valid_path: str = "valid split"
    item_path: str = "item.json"
    valid_items: frozenset = frozenset()  # item ids held out of every item-level task's training
    item_corpus: Optional[object] = None  # A's item-level enriched-text corpus (llm_stage2)
    narratives: Optional[object] = None   # A's sequence-narrative corpus (integrated_narrative, reasoning_path)
    general_path: Optional[str] = None
    seed: int = DEFAULT_SEED


class Task(ABC):
    """One SFT task. ``name`` is the key used in ``--tasks``, weights, caps and validation metrics."""

    name: str = ""
    description: str = ""

    @abstractmethod
    def build(self, data: TaskData) -> TaskSplit:
        """Turn the task's rows into train and validation examples, counting rows it skips."""


def held_out(key: str, fraction: float, seed: int) -> bool:
    """Deterministic held-out membership by hashing ``key`` (stable across processes and runs,
    unlike Python's ``hash``), so every DDP rank and every resumed run holds out the same rows."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64 < fraction


def row_source(path: str, row: SequenceRow, fallback: int) -> str:
    """Where a split row came from: the file line when the reader recorded it, else its position."""
    line = getattr(row, "line", None)
    return f"{Path(path).name} line {line}" if line else f"{Path(path).name} row {fallback}"
