"""Run folders shared by the trainers (stage 1/2 SFT in ``train``, stage 3 GRPO in ``rl``): the main-process
check, the last complete ``checkpoint-N`` of a Hugging Face Trainer run and ``--resume_from_checkpoint``'s
values, and the JSON-lines training log (one object per logging event; a resumed run drops the lines a
killed run wrote after its checkpoint).

Below ``train`` and ``rl``, above ``data``: neither stage imports the other's modules for these.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Optional

from transformers import TrainerCallback

from .data.formats import atomic_write_text
from .data.records import DataError

_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def say(*args) -> None:
    if is_main_process():
        print(*args, flush=True)


# -- checkpoints and resume --------------------------------------------------------------------
def _state_readable(folder: Path) -> bool:
    """``trainer_state.json`` exists and parses (a kill mid-write, or a full disk, leaves it truncated)."""
    try:
        json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError):
        return False


def last_complete_checkpoint(output_dir) -> Optional[str]:
    """Highest ``checkpoint-N`` holding a readable ``trainer_state.json`` (the Trainer writes it last, so
    a folder without it, or with a truncated one, is a save that a kill interrupted: the one before is
    used, and the skipped one is named)."""
    d = Path(output_dir)
    if not d.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in d.iterdir() if (m := _CKPT_RE.match(p.name)) and p.is_dir()
                    and (p / "trainer_state.json").is_file()), reverse=True)
    for _, folder in found:
        if _state_readable(folder):
            return str(folder)
        say(f"note: {folder / 'trainer_state.json'} is unreadable (an interrupted save?); resuming from an "
            f"earlier checkpoint")
    return None


def resolve_resume(value: str, output_dir) -> Optional[str]:
    """``auto`` -> the last complete checkpoint or None; ``none``/``false``/empty -> None; else a folder."""
    v = (value or "").strip()
    if v.lower() in ("", "none", "false", "no"):
        return None
    if v.lower() in ("auto", "true", "yes"):
        return last_complete_checkpoint(output_dir)
    if not (Path(v) / "trainer_state.json").is_file():
        raise DataError(v, "not a complete Trainer checkpoint (no trainer_state.json) (--resume_from_checkpoint)")
    if not _state_readable(Path(v)):
        raise DataError(Path(v) / "trainer_state.json", "unreadable (truncated?) (--resume_from_checkpoint)")
    return v


# -- JSON-lines logs ---------------------------------------------------------------------------------------------
def append_jsonl(path, entry: dict) -> None:
    """One JSON object as one line at the end of ``path`` (its folder made when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


class JsonlLogCallback(TrainerCallback):
    """Appends every log event (loss, lr, eval losses) to a JSON-lines file."""

    def __init__(self, path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        """Resumed at step N: drop the lines a killed run wrote after its checkpoint (they are trained again)."""
        if state.is_world_process_zero and state.global_step > 0 and self.path.is_file():
            kept = [line for line in self.path.read_text(encoding="utf-8").splitlines(keepends=True)
                    if _logged_step(line) <= state.global_step]
            atomic_write_text(self.path, "".join(kept))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            append_jsonl(self.path, {"step": state.global_step, "epoch": state.epoch, **logs})


def _logged_step(line: str) -> float:
    try:
        return json.loads(line).get("step", 0)
    except (ValueError, AttributeError):
        return float("inf")  # a torn line from the kill: dropped
