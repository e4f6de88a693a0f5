"""Does a reasoning path give the answer away? A path *quotes the target* when it contains the target's
short title, or its brand, while no history item carries that title or brand: information a model
cannot have before it answers. The template teacher never does; a model teacher sees the target, so
``synthesize_corpus.py`` reports the share of its paths that do (``target_title_quoted``,
``target_brand_quoted`` in the statistics)."""
from __future__ import annotations

import re

from .prompts import SequenceContext
from .template import short_title


def _has_phrase(text: str, phrase: str) -> bool:
    return bool(phrase) and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.I) is not None


def _without_history_titles(text: str, ctx: SequenceContext) -> str:
    """``text`` with the history's titles (whole, or cut to their first words as paths name them) blanked:
    "Laptop" inside "Laptop Sleeve" is the history speaking, not the target."""
    cuts = {h.title for h in ctx.history} | {short_title(h.title, n).rstrip(".") for h in ctx.history
                                              for n in (4, 5, 6, 8, 10, 12, 14)}
    for cut in sorted(cuts, key=len, reverse=True):
        text = re.sub(re.escape(cut), " ", text, flags=re.I)
    return text


def quotes_target(reasoning: str, ctx: SequenceContext) -> dict[str, bool]:
    """``{"title": ..., "brand": ...}``: which of the target's facts the path states without the history
    having them (a repeat purchase or a brand already bought is fair to name)."""
    t = ctx.target
    title = short_title(t.title).rstrip(".").strip()
    history_brands = {h.brand.lower() for h in ctx.history if h.brand}
    return {"title": _has_phrase(_without_history_titles(reasoning, ctx), title),
            "brand": bool(t.brand) and t.brand.lower() not in history_brands and _has_phrase(reasoning, t.brand)}
