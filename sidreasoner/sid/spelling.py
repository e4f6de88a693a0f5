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
from typing import Iterable, NamedTuple, Sequence

#: level i is spelled with LEVEL_LETTERS[i]; 8 levels is far more than any quantiser uses
LEVEL_LETTERS = "abcdefgh"
MAX_LEVELS = len(LEVEL_LETTERS)

# One SID token. Codes are non-negative decimal integers without sign.
_TOKEN_RE = re.compile(r"<([a-h])_([0-9]{1,6})>")
# Tolerant scan for free text (rewards, model outputs): allows whitespace inside and between tokens.
_LOOSE_TOKEN_RE = re.compile(r"<\s*([a-h])\s*_\s*([0-9]{1,6})\s*>")
# First level-'a' token: where a run can start. Searching for it in C keeps scan_sid linear-time and fast
# on huge adversarial texts (e.g. 1 MB of '<b_1>' tokens would otherwise loop in Python per token).
_LOOSE_FIRST_RE = re.compile(r"<\s*a\s*_\s*[0-9]{1,6}\s*>")


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
    first = _LOOSE_FIRST_RE.search(text)
    if first is None:
        return ()
    codes: list[int] = []
    prev_end = None
    for m in _LOOSE_TOKEN_RE.finditer(text, first.start()):
        level = LEVEL_LETTERS.index(m.group(1))
        contiguous = prev_end is None or text[prev_end:m.start()].strip() == ""
        if codes and (level != len(codes) or not contiguous):
            break
        if not codes and level != 0:
            continue  # a run must start at level 'a'
        codes.append(int(m.group(2)))
        prev_end = m.end()
    return tuple(codes)


class SIDMatch(NamedTuple):
    """A SID found in free text: ``text[start:end]`` spells ``codes``."""

    start: int
    end: int
    codes: tuple[int, ...]


def _token_runs(text: str) -> list[list[tuple[int, int, int, int]]]:
    """Runs of SID tokens as ``[(start, end, level, code), ...]``: tokens separated only by
    whitespace, a level-``a`` token always starting a new run. Shared by the two finders below."""
    runs: list[list[tuple[int, int, int, int]]] = []
    for m in _LOOSE_TOKEN_RE.finditer(text):
        level = LEVEL_LETTERS.index(m.group(1))
        if not runs or level == 0 or text[runs[-1][-1][1]:m.start()].strip() != "":
            runs.append([])
        runs[-1].append((m.start(), m.end(), level, int(m.group(2))))
    return runs


def find_sids(text: str) -> list[SIDMatch]:
    """Every SID written in free text, in order. Never raises; ``[]`` for non-strings.

    Same leniency as :func:`scan_sid`: a SID is a maximal run of tokens whose levels go a, b, c, ...
    with only whitespace between them. A token that breaks the order ends the SID (and starts the
    next one if it is level 'a'); tokens outside any SID (a stray ``<b_3>``) are ignored. The first
    match's codes equal ``scan_sid(text)``.
    """
    if not isinstance(text, str):
        return []
    found = []
    for run in _token_runs(text):
        n = 0  # length of the run's in-order prefix a, b, c, ...
        while n < len(run) and run[n][2] == n:
            n += 1
        if n:
            found.append(SIDMatch(run[0][0], run[n - 1][1], tuple(t[3] for t in run[:n])))
    return found


def find_sid_runs(text: str) -> list[tuple[int, int, tuple[tuple[int, int], ...]]]:
    """Every run of SID tokens in free text, in order: ``[(start, end, ((level, code), ...)), ...]``.

    Unlike :func:`find_sids`, every token lands in a run whatever the level order, so callers can
    reject partial or disordered SIDs (``"<b_2><c_1>"`` is one run with levels (1, 2)).
    ``text[start:end]`` is the run as written, for redaction or respelling. Never raises; non-strings
    give ``[]``.
    """
    if not isinstance(text, str):
        return []
    return [(run[0][0], run[-1][1], tuple((t[2], t[3]) for t in run)) for run in _token_runs(text)]


def run_codes(run_tokens: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """Codes of a run from :func:`find_sid_runs` when its levels go a, b, c, ... in order; else ``()``."""
    if not run_tokens or any(level != i for i, (level, _) in enumerate(run_tokens)):
        return ()
    return tuple(code for _, code in run_tokens)


def all_level_tokens(codebook_sizes: Sequence[int]) -> list[str]:
    """Every token a quantiser with these codebook sizes (per level) can emit, level by level."""
    return [format_token(level, c) for level, k in enumerate(codebook_sizes) for c in range(k)]
