"""The values numeric flags and environment knobs accept, checked where they are parsed.

Every entry point keeps one table ``{name: Range}`` of its numeric flags (or knobs) and checks it right after
parsing, before any data is read or model loaded::

    RANGES = {"batch_size": at_least(1), "dropout": between(0, 1, hi_open=True), "limit": optional(at_least(1))}
    args = parse_checked(parser, argv, RANGES)   # argparse: usage + "error: --batch_size must be >= 1, got 0", exit 2
    check_ranges(cfg, RANGES)                    # anything else: ValueError with the same message
    check_ranges(knobs, RANGES, label=knob)      # environment knobs: "KL_COEF must be >= 0, got nan"
    raise UsageError("--a and --b exclude each other")  # found later: main() answers it with exit_usage (exit 2)

NaN and infinities are outside every range (a NaN compares false with everything, so ``x < 0`` checks let it
through); ``None`` is outside every range unless wrapped in ``optional``.
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Callable, Mapping, NamedTuple, NoReturn, Optional, Sequence


class Range(NamedTuple):
    ok: Callable[[Any], bool]  # called with a finite number (or None for ``optional``)
    text: str                  # what the message says the flag accepts: ">= 1", "in [0, 1)", ...


def _note(note: str) -> str:
    return f" ({note})" if note else ""


def at_least(lo, note: str = "") -> Range:
    return Range(lambda v: v >= lo, f">= {lo}{_note(note)}")


def above(lo, note: str = "") -> Range:
    return Range(lambda v: v > lo, f"> {lo}{_note(note)}")


def between(lo, hi, *, lo_open: bool = False, hi_open: bool = False, note: str = "") -> Range:
    """``[lo, hi]``, with either end open."""
    def ok(v):
        return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    return Range(ok, f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}{_note(note)}")


def finite(note: str = "") -> Range:
    return Range(lambda v: True, f"a finite number{_note(note)}")


def either(value, rest: Range, note: str = "") -> Range:
    """``value`` (a sentinel such as -1 or 0, explained by ``note``) or anything ``rest`` accepts."""
    return Range(lambda v: v == value or rest.ok(v), f"{value}{_note(note)} or {rest.text}")


def optional(rng: Range) -> Range:
    """``rng`` or None (the flag left out)."""
    return Range(lambda v: v is None or rng.ok(v), rng.text)


#: seeds: numpy's range (random.seed takes any int, np.random.seed and default_rng only these)
SEED = between(0, 2 ** 32 - 1)


def flag(name: str) -> str:
    return f"--{name}"


def knob(name: str) -> str:
    return name.upper()


def knob_and_flag(name: str) -> str:
    return f"{name.upper()} (--{name})"


def _inside(value, rng: Range) -> bool:
    if isinstance(value, bool) or (value is not None and not isinstance(value, (int, float))):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return bool(rng.ok(value))


def check_ranges(values, table: Mapping[str, Range], label: Callable[[str], str] = flag) -> None:
    """ValueError naming the first value of ``table`` outside its range (``values``: an object or a mapping)."""
    for name, rng in table.items():
        value = values[name] if isinstance(values, Mapping) else getattr(values, name)
        if not _inside(value, rng):
            raise ValueError(f"{label(name)} must be {rng.text}, got {value}")


def check_list(name: str, values: Optional[Sequence], rng: Range, label: Callable[[str], str] = flag) -> None:
    """Every item of a list flag (``--ks 1,5,10``) inside ``rng``."""
    bad = [v for v in values or () if not _inside(v, rng)]
    if bad:
        raise ValueError(f"{label(name)} values must be {rng.text}, got {', '.join(map(str, bad))}")


def parse_checked(parser: argparse.ArgumentParser, argv, table: Mapping[str, Range]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, a value outside ``table`` answered as argparse answers a bad type (exit 2)."""
    args = parser.parse_args(argv)
    try:
        check_ranges(args, table)
    except ValueError as e:
        parser.error(str(e))
    return args


class UsageError(SystemExit):
    """A flag, knob or combination found wrong after argparse parsed it; ``str(e)`` is the message naming it.

    Exit status 2 is argparse's for a usage error, 1 is left for a run that failed: an entry point catches this
    and calls ``exit_usage``. (Left uncaught it is a SystemExit with a message: the message, exit status 1.)
    """

    def __init__(self, message: str):
        super().__init__(message)


def exit_usage(prog: str, message) -> NoReturn:
    """``prog: error: message`` on stderr and exit status 2, as argparse answers a bad flag."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)
