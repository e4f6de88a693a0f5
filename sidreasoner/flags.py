"""Command lines from config dataclasses: the one dataclass -> argparse loop and the one boolean parser.

Every entry point keeps its knobs in a dataclass whose fields carry their help text (``field(metadata=
{"help": ...})``); its parser is built here::

    p = argparse.ArgumentParser(...)
    add_dataclass_args(p, SFTConfig)                 # --field for each field, typed from its annotation
    cfg = from_namespace(SFTConfig, p.parse_args(argv))

A field's flag: its annotation's type (``Optional[int]`` -> ``int``; ``bool`` -> ``--flag``, ``--flag 1``,
``--flag false``: :func:`parse_bool`), its default (``defaults`` overrides it for the command line), and from
its metadata ``help`` (required: a field without help text is refused), ``choices``, ``metavar``, ``required``
``nargs`` and ``action`` (argparse's: e.g. ``append``; a bool field with ``store_true`` is a switch that takes no
value, for a flag followed by a positional argument: ``logfilter -a FILE``), ``short`` (an alias such as ``-a``),
``positional`` (the field is a positional argument, not ``--name``) and ``type``
(a converter from the flag's text, for a field whose annotation is not one of bool/int/float/str/Path).
A value of the wrong type is answered by argparse naming the flag (``argument --batch_size: invalid int value:
'two'``), exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Union

#: the spellings of a boolean, case-insensitive (flags, shell knobs, hydra's true/false)
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
BOOL_TEXT = "a boolean (1/0, true/false)"  # the message names the usual spellings; all of the above are accepted


class BoolError(ValueError, argparse.ArgumentTypeError):
    """A text that is not a boolean: a ValueError, and argparse shows its message after the flag's name."""


def parse_bool(value, name: str = "") -> bool:
    """``1/0, true/false, yes/no, on/off`` (any case, surrounding spaces ignored) as a bool; a bool passes
    through. Anything else: BoolError (a ValueError) naming ``name`` when given
    (``THINK must be a boolean (...), got 'maybe'``), else ``expected a boolean (...), got 'maybe'``."""
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise BoolError(f"{name} must be {BOOL_TEXT}, got {value!r}" if name else f"expected {BOOL_TEXT}, got {value!r}")



def _base(kind):
    """``Optional[X]`` -> ``X``; anything else as it is."""
    if typing.get_origin(kind) is Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return kind


def field_types(cls) -> dict:
    """``{field name: its type}`` with ``Optional`` removed (string annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: _base(hints[f.name]) for f in dataclasses.fields(cls)}


def field_help(f: dataclasses.Field, cls=None) -> str:
    text = f.metadata.get("help")
    if not text:
        owner = f"{cls.__name__}." if cls is not None else ""
        raise TypeError(f"config field {owner}{f.name} has no help text (field(metadata={{'help': ...}}))")
    return text


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def add_dataclass_args(parser, cls, *, defaults: Optional[Mapping[str, Any]] = None, exclude: Iterable[str] = (),
                       flag_help_suffix: Union[str, Callable[[dataclasses.Field], str], None] = None,
                       type_for: Optional[Callable[[dataclasses.Field, Any], Callable[[str], Any]]] = None):
    """Add ``--name`` to ``parser`` for each field of the dataclass ``cls`` not in ``exclude``; returns ``parser``.

    ``defaults``: command-line defaults other than the fields' (a field without a default gets None).
    ``flag_help_suffix``: appended to each help text (a string, may hold ``%(default)s``, or a function of the
    field). ``type_for(field, type)``: the flag's converter instead of the type's own (e.g. one whose error
    names an environment knob); bool fields keep ``nargs='?'``/``const=True``.
    """
    defaults, skip = dict(defaults or {}), set(exclude)
    kinds = field_types(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = kinds[f.name]
        help_text = field_help(f, cls)
        if flag_help_suffix:
            help_text += flag_help_suffix(f) if callable(flag_help_suffix) else flag_help_suffix
        kw: dict = {"help": help_text, "default": defaults.get(f.name, _default(f))}
        convert = f.metadata.get("type") or (type_for(f, kind) if type_for else None)
        if kind is bool and f.metadata.get("action") in ("store_true", "store_false"):
            pass  # argparse's switch: no value, no converter
        elif kind is bool:
            kw.update(type=convert or parse_bool, nargs="?", const=True, metavar="BOOL")
        elif convert is not None:
            kw["type"] = convert
        elif kind in (int, float, str, Path):
            kw["type"] = kind
        else:
            raise TypeError(f"config field {cls.__name__}.{f.name}: no flag type for {kind!r} "
                            f"(give field(metadata={{'type': converter}}))")
        for key in ("choices", "metavar", "required", "nargs", "action"):
            if key in f.metadata:
                kw[key] = f.metadata[key]
        if f.metadata.get("positional"):
            parser.add_argument(f.name, **kw)
        else:
            short = (f.metadata["short"],) if "short" in f.metadata else ()
            parser.add_argument(f"--{f.name}", *short, **kw)
    return parser


def from_namespace(cls, ns, **override):
    """``cls`` from the attributes of parsed flags named after its fields (others ignored); ``override``
    replaces some of them. A field missing from ``ns`` keeps its default."""
    names = {f.name for f in dataclasses.fields(cls)}
    kw = {n: getattr(ns, n) for n in names if hasattr(ns, n)}
    kw.update(override)
    return cls(**kw)
