"""Item text for embedding: title + cleaned description.

The release stores ``description`` as a Python-literal list *string* (``"['part 1', 'part 2']"``) whose
parts carry scraped-page junk: HTML tags and comments, CSS rule blocks, entities (sometimes
double-escaped and mangled, e.g. ``1amp;quot;`` for ``1"``), URLs and literal ``\\n``. ``item_text``
turns an :class:`Item` into one clean line of text; nothing here raises on odd input, because item
text is free text: a description that is not a valid literal list (about 7% of Office_Products, from
unescaped quotes inside the parts) is read leniently and the fact is reported by
:func:`parse_description` so callers can count it.
"""
from __future__ import annotations

import ast
import html
import re

from .records import Item

#: default cap on the whole text, in characters (~110 word pieces): title plus the opening of the
#: description. all-MiniLM-L6-v2 was trained on 128-token inputs; 1000 characters made embedding the
#: Office catalogue ~3x slower on 2 CPU cores (33 s vs 11 s per 400 texts).
DEFAULT_MAX_CHARS = 512

_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_STYLE_SCRIPT = re.compile(r"<(style|script)\b.*?(?:</\1\s*>|$)", re.S | re.I)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
# A CSS rule block plus the one selector token before it (``.headerM {color:#000; ...}``). Only
# braces whose body looks like declarations (``name: value``) count, so "{sic}" in prose stays.
_CSS_RULE = re.compile(r"[^\s{}]*\s*\{[^{}]*:[^{}]*\}")
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,500}>")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.I)
# ``&amp;quot;`` with its ``&`` lost (``amp;quot;``, ``amp; quot;``): restore the inner entity.
_MANGLED_AMP = re.compile(r"&?amp;\s?(#?\w+;)")
_BARE_AMP = re.compile(r"(?<![&\w])amp;")
_LITERAL_ESCAPES = re.compile(r"\\[ntr]")
_SPACE = re.compile(r"\s+")
# Separators between parts of a list string that failed literal_eval: ``', '``, ``", "``, ``', "``...
_PART_SEP = re.compile(r"""['"]\s*,\s*['"]""")


def parse_description(raw: str) -> tuple[list[str], bool]:
    """Split a stored description into its parts: ``(parts, was_valid_literal)``.

    ``"['a', 'b']"`` -> ``(["a", "b"], True)``. A plain string (not a list literal) is one part. A
    list-looking string that ``ast.literal_eval`` rejects (unescaped quotes inside a part) is split
    leniently on quote-comma-quote separators and returns ``was_valid_literal=False``.
    """
    if not isinstance(raw, str):
        return ([str(raw)] if raw else []), False
    s = raw.strip()
    if not s:
        return [], True
    if not (s.startswith("[") and s.endswith("]")):
        return [s], True
    try:
        value = ast.literal_eval(s)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None], True
    inner = s[1:-1].strip()
    if inner[:1] in "'\"":
        inner = inner[1:]
    if inner[-1:] in "'\"":
        inner = inner[:-1]
    return [p for p in _PART_SEP.split(inner)], False


def clean_text(text: str) -> str:
    """Strip HTML comments/tags, CSS, URLs and entities from one string; collapse whitespace."""
    t = _HTML_COMMENT.sub(" ", text)
    t = _STYLE_SCRIPT.sub(" ", t)
    t = _CSS_COMMENT.sub(" ", t)
    t = _CSS_RULE.sub(" ", t)
    t = _TAG.sub(" ", t)
    t = _URL.sub(" ", t)
    t = _LITERAL_ESCAPES.sub(" ", t)
    t = _MANGLED_AMP.sub(r"&\1", t)
    t = _BARE_AMP.sub("&", t)
    t = html.unescape(t)
    return _SPACE.sub(" ", t.replace("\xa0", " ")).strip()


def truncate(text: str, max_chars: int) -> str:
    """Cut at a word boundary so the result has at most ``max_chars`` characters."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    cut = text[:max_chars + 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > max_chars // 2 else text[:max_chars]).rstrip()


def clean_description(raw: str) -> str:
    """A stored description -> one clean string (parts cleaned, empty parts dropped, joined by spaces)."""
    parts, _ = parse_description(raw)
    return " ".join(p for p in (clean_text(x) for x in parts) if p)


def item_text(item: Item, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """``"<title>. <description>"`` cleaned and cut to ``max_chars``; just the title when there is no
    description. The title is cleaned too (titles carry entities such as ``&rdquo;``); a description
    that opens by repeating the title loses that repeat."""
    title = clean_text(item.title)
    desc = clean_description(item.description)
    if title and desc.lower().startswith(title.lower()):
        desc = desc[len(title):].lstrip(" .,;:-")  # many descriptions open by repeating the title
    if desc and title:
        text = f"{title.rstrip('.')}. {desc}"
    else:
        text = title or desc
    return truncate(text, max_chars)
