"""Log files without progress-bar redraws: a progress bar (tqdm) redraws its line with carriage returns, so a
log file written from the raw stream holds every redraw (21 lines became 112). Here a line keeps only what a
terminal would show at its end: the last non-empty segment between carriage returns.

    some_command 2>&1 | python -m sidreasoner.logfilter -a logs/run.txt    # in place of `tee -a logs/run.txt`

passes the stream through to stdout unchanged (the terminal still sees the live bar) and appends the collapsed
lines to the file. ``collapse_file(path)`` rewrites a finished log in place (the pipeline's step logs).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Optional, Sequence

from .flags import add_dataclass_args


def final_state(line: bytes) -> bytes:
    """What a terminal shows of one line (no ``\\n``): its last non-empty ``\\r`` segment."""
    segments = [s for s in line.split(b"\r") if s.strip()]
    return segments[-1] if segments else b""


def collapse(data: bytes) -> bytes:
    """Every line of ``data`` reduced to its final state (a trailing unterminated line included)."""
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    out = b"\n".join(final_state(line) for line in lines)
    return out


def collapse_file(path) -> None:
    """Rewrite the log at ``path`` with every line reduced to its final state (nothing when it has no ``\\r``)."""
    p = Path(path)
    data = p.read_bytes()
    if b"\r" in data:
        tmp = p.with_name(p.name + ".collapsing")
        tmp.write_bytes(collapse(data))
        os.replace(tmp, p)


class LineCollapser:
    """Streaming ``collapse``: feed chunks, complete lines go to ``sink`` in their final state."""

    def __init__(self, sink: BinaryIO):
        self.sink, self.pending = sink, b""

    def feed(self, chunk: bytes) -> None:
        *done, self.pending = (self.pending + chunk).replace(b"\r\n", b"\n").split(b"\n")
        if done:
            self.sink.write(b"".join(final_state(line) + b"\n" for line in done))
            self.sink.flush()
        if b"\r" in self.pending:  # keep only the latest redraw of the open line (a bar can run for hours)
            self.pending = self.pending[self.pending.rstrip(b"\r").rfind(b"\r") + 1:]

    def close(self) -> None:
        if self.pending.strip(b"\r"):
            self.sink.write(final_state(self.pending) + b"\n")
        self.pending = b""
        self.sink.flush()


@dataclass
class LogFilterFlags:
    """The command line of ``python -m sidreasoner.logfilter``."""
    file: str = field(default=None, metadata={"help": "log file", "positional": True})
    append: bool = field(default=False, metadata={"help": "append to FILE (default: overwrite)", "short": "-a",
                                                  "action": "store_true"})


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description="tee without progress-bar redraws: stdin to stdout unchanged, and to "
                                            "FILE with every line in its final state")
    add_dataclass_args(p, LogFilterFlags)
    args = p.parse_args(argv)
    Path(args.file).parent.mkdir(parents=True, exist_ok=True)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    with open(args.file, "ab" if args.append else "wb") as f:
        collapser = LineCollapser(f)
        while chunk := os.read(stdin.fileno(), 65536):
            try:
                stdout.write(chunk)
                stdout.flush()
            except BrokenPipeError:  # the terminal side went away: keep writing the file, as tee -p would
                stdout = open(os.devnull, "wb")
            collapser.feed(chunk)
        collapser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
