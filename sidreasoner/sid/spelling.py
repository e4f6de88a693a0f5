"""The SID spelling: the ONLY code that knows how a semantic ID is written.

A semantic ID is a tuple of integer codes, one per residual-quantisation level. It is written as one
token per level, ``<{letter}_{code}>`` with letter ``a`` for level 0, ``b`` for level 1, ... e.g.
``(60, 159, 203)`` <-> ``"<a_60><b_159><c_203>"``. Variable length is allowed (a collision-resolving
extra level makes some SIDs 4 tokens long); levels must appear in order, starting at ``a``.

Everything else (index, trie, rewards, metrics, prompts, tokenizer setup) calls these functions
instead of formatting or parsing SID strings itself.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

#: level i is spelled with LEVEL_LETTERS[i]; 8 levels is far more than any quantiser uses
LEVEL_LETTERS = "abcdefgh"
MAX_LEVELS = len(LEVEL_LETTERS)

# One SID token. Codes are non-negative decimal integers without sign.
_TOKEN_RE = re.compile(r"<([a-h])_(\d{1,6})>")
# Tolerant scan for free text (rewards, model outputs): allows whitespace inside and between tokens.
_LOOSE_TOKEN_RE = re.compile(r"<\s*([a-h])\s*_\s*(\d{1,6})\s*>")


class SIDFormatError(ValueError):
    """A string is not a well-formed SID. The message says what is wrong and where."""


def format_token(level: int, code: int) -> str:
    """Token for ``code`` at ``level``: ``format_token(1, 7) == "<b_7>"``."""
    if not 0 <= level < MAX_LEVELS:
        raise SIDFormatError(f"SID level {level} out of range 0..{MAX_LEVELS - 1}")
    if code < 0:
        raise SIDFormatError(f"SID code must be >= 0, got {code} at level {level}")
    return f"<{LEVEL_LETTERS[level]}_{int(code)}>"


def parse_token(token: str) -> tuple[int, int]:
    """``"<b_7>"`` -> ``(1, 7)`` (level, code). Raises SIDFormatError on anything else."""
    m = _TOKEN_RE.fullmatch(token)
    if m is None:
        raise SIDFormatError(f"not a SID token: {token!r} (expected like '<a_12>')")
    return LEVEL_LETTERS.index(m.group(1)), int(m.group(2))


def is_sid_token(token: str) -> bool:
    return _TOKEN_RE.fullmatch(token) is not None


def format_sid(codes: Sequence[int]) -> str:
    """``(60, 159, 203)`` -> ``"<a_60><b_159><c_203>"``."""
    if not codes:
        raise SIDFormatError("a SID needs at least one level")
    return "".join(format_token(level, c) for level, c in enumerate(codes))


def sid_tokens(codes: Sequence[int]) -> list[str]:
    """``(60, 159)`` -> ``["<a_60>", "<b_159>"]``."""
    return [format_token(level, c) for level, c in enumerate(codes)]


def split_sid(sid: str) -> list[str]:
    """Strictly split a SID string into its tokens, checking levels run a, b, c, ...

    ``"<a_60><b_159><c_203>"`` -> ``["<a_60>", "<b_159>", "<c_203>"]``.
    """
    return sid_tokens(parse_sid(sid))


def parse_sid(sid: str) -> tuple[int, ...]:
    """Strictly parse a SID string into its codes: ``"<a_60><b_159>"`` -> ``(60, 159)``."""
    if not isinstance(sid, str):
        raise SIDFormatError(f"a SID must be a string, got {type(sid).__name__}")
    s = sid.strip()
    if not s:
        raise SIDFormatError("empty SID")
    codes: list[int] = []
    pos = 0
    for m in _TOKEN_RE.finditer(s):
        if m.start() != pos:
            raise SIDFormatError(f"unexpected text {s[pos:m.start()]!r} in SID {sid!r}")
        level = LEVEL_LETTERS.index(m.group(1))
        if level != len(codes):
            want = LEVEL_LETTERS[len(codes)]
            raise SIDFormatError(f"SID {sid!r}: token {m.group(0)} at position {len(codes)}, expected level '{want}'")
        codes.append(int(m.group(2)))
        pos = m.end()
    if pos != len(s):
        raise SIDFormatError(f"unexpected text {s[pos:]!r} in SID {sid!r}")
    return tuple(codes)


def join_tokens(tokens: Iterable[str]) -> str:
    """Tokens (as in index.json) -> SID string, validated: ``["<a_1>", "<b_2>"]`` -> ``"<a_1><b_2>"``."""
    s = "".join(tokens)
    parse_sid(s)
    return s


def scan_sid(text: str) -> tuple[int, ...]:
    """Leniently find the first SID in free text; ``()`` if there is none. Never raises.

    Reads the first run of SID tokens whose levels go a, b, c, ... (whitespace allowed inside and
    between tokens, so ``"< a_1 > <b_2>"`` gives ``(1, 2)``); the run stops at the first token that
    breaks the level order or at non-space text between tokens. Used by rewards and output parsing.
    """
    if not isinstance(text, str):
        return ()
    codes: list[int] = []
    prev_end = None
    for m in _LOOSE_TOKEN_RE.finditer(text):
        level = LEVEL_LETTERS.index(m.group(1))
        contiguous = prev_end is None or text[prev_end:m.start()].strip() == ""
        if codes and (level != len(codes) or not contiguous):
            break
        if not codes and level != 0:
            continue  # a run must start at level 'a'
        codes.append(int(m.group(2)))
        prev_end = m.end()
    return tuple(codes)


def all_level_tokens(codebook_sizes: Sequence[int]) -> list[str]:
    """Every token a quantiser with these codebook sizes (per level) can emit, level by level."""
    return [format_token(level, c) for level, k in enumerate(codebook_sizes) for c in range(k)]
