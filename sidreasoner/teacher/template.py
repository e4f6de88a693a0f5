"""Offline template teacher: corpus text from item metadata and co-purchase facts, no LLM needed.

It answers the same :class:`~sidreasoner.teacher.prompts.ItemContext` / ``SequenceContext`` an LLM
teacher gets, so ``make demo`` and tests run the whole corpus path offline. The text is plain but true
to the data: product type words from the title, brand, description snippet, co-purchased items; the
reasoning path cites the history features that actually connect to the target (shared brand, shared
title words, co-purchase links, recency) and ends at the target's title and description without its
SID. Sentence variants are drawn from a per-item / per-row RNG seeded from ``seed`` and the item or
row key, so output is deterministic and independent of job order.
"""
from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from typing import Mapping, Sequence

from .prompts import ItemBrief, ItemContext, SequenceContext, SequenceDraft

_STOP = frozenset("""a an and the of for with in on to by from or at as is it its this that your you new
pack count set piece pcs inch inches size color colour black white blue red green assorted each per
x lb oz ft mm cm one two three four five six ten dozen box""".split())
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]")
_TYPE_CUT = re.compile(r",|\(|\s[-|/–]\s|\s(?:for|with|by|in)\s", re.I)

_OPENERS = ("{sid} is {title}{by_brand}.", "Item {sid} ({type}) is {title}{by_brand}.",
            "Meet {sid}: {title}{by_brand}.")
_WHO = ("It is bought by {audience}.", "Typical buyers of {sid} are {audience}.",
        "{sid} suits {audience}.")
_GOES = ("Shoppers who buy {sid} have also picked up {list}.", "{sid} goes well with {list}.",
         "It pairs with {list}, items the same shoppers buy around it.")
_ALONE = ("It pairs naturally with other {type} supplies.", "It works well alongside related {type} products.")
_CLOSE = ("In short, {sid} is a good pick for anyone who needs {a_type}.",
          "Recommend {sid} when someone needs {a_type}.")
_STEPS = ("First", "Then", "After that", "Later", "Next")


def _rng(seed: int, key: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def short_title(title: str, max_words: int = 8) -> str:
    """The title's first segment (before a comma or parenthesis), at most ``max_words`` words."""
    head = re.split(r",|\(", title, maxsplit=1)[0].strip() or title.strip()
    words = head.split()
    return " ".join(words[:max_words]) + ("..." if len(words) > max_words else "")


def type_phrase(title: str, brand: str = "") -> str:
    """Product type from a title: the last one or two plain words of its first segment, brand and
    model codes dropped. ``"HP 74 Black Ink Cartridges, 2 Pack"`` -> ``"ink cartridges"``."""
    head = _TYPE_CUT.split(title, maxsplit=1)[0]
    brand_words = {w.lower() for w in brand.split()}
    words = [w for w in _WORD.findall(head) if w.lower() not in brand_words and not w.isupper()]
    words = [w for w in words if w.lower() not in _STOP] or words
    return " ".join(words[-2:]).lower() if words else "product"


def keywords(item: ItemBrief) -> set[str]:
    """Content words of the title (lower case, brand and stop words removed)."""
    brand_words = {w.lower() for w in item.brand.split()}
    return {w.lower() for w in _WORD.findall(item.title)
            if len(w) > 2 and w.lower() not in _STOP and w.lower() not in brand_words}


def _article(phrase: str) -> str:
    """``"stapler"`` -> ``"a stapler"``; plurals (``"gel pens"``) take no article."""
    if phrase.endswith("s") and not phrase.endswith("ss"):
        return phrase
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _snippet(text: str, max_words: int) -> str:
    """First sentence(s) of a description, at most ``max_words`` words, ending cleanly."""
    words = text.split()
    if not words:
        return ""
    cut = " ".join(words[:max_words])
    end = max(cut.rfind(". "), cut.rfind("! "))
    if end > 40:
        cut = cut[:end + 1]
    if cut.endswith((".", "!", "?")):
        return cut
    return cut.rstrip(",;:") + ("..." if len(words) > max_words else ".")


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


class TemplateTeacher:
    """Deterministic offline teacher. ``follows[a][b]`` counts training rows whose last history item
    is ``a`` and whose target is ``b``: the co-purchase facts it cites (only when >= 2 rows, i.e. more
    than the row being written about)."""

    name = "template"

    def __init__(self, seed: int = 0, follows: Mapping[str, Mapping[str, int]] | None = None,
                 max_neighbours: int = 3, snippet_words: int = 30):
        self.seed, self.follows = seed, dict(follows or {})
        self.max_neighbours, self.snippet_words = max_neighbours, snippet_words

    # -- item passages --------------------------------------------------------------------------
    def item_passage(self, ctx: ItemContext) -> str:
        it = ctx.item
        rng = _rng(self.seed, f"item:{it.item_id}")
        kind = type_phrase(it.title, it.brand)
        fill = dict(sid=it.sid, title=short_title(it.title, 12), a_type=_article(kind), type=kind,
                    by_brand=f" by {it.brand}" if it.brand else "", audience=self._audience(ctx, kind))
        out = [rng.choice(_OPENERS).format(**fill)]
        if it.description:
            out.append(_snippet(it.description, self.snippet_words))
        out.append(rng.choice(_WHO).format(**fill))
        near = ctx.neighbours[:self.max_neighbours]
        if near:
            names = [f"{_article(type_phrase(n.title, n.brand))} {n.sid}" for n in near]
            out.append(rng.choice(_GOES).format(list=_join(names), sid=it.sid))
        else:
            out.append(rng.choice(_ALONE).format(type=kind))
        out.append(rng.choice(_CLOSE).format(**fill))
        return " ".join(out)

    def _audience(self, ctx: ItemContext, kind: str) -> str:
        """Who buys it: from its category words, and from the brands of what its buyers also buy."""
        where = f"{ctx.item.categories.split(',')[0].strip().lower()} shoppers" if ctx.item.categories else \
            "shoppers at home, at school or in the office"
        brands = [n.brand for n in ctx.neighbours if n.brand and n.brand != ctx.item.brand]
        also = f" who also buy {brands[0]} products" if brands else ""
        return f"{where} who need {kind}{also}" if not also else f"{where}{also} and need {kind}"

    # -- sequences -------------------------------------------------------------------------------
    def sequence(self, ctx: SequenceContext) -> SequenceDraft:
        rng = _rng(self.seed, f"seq:{ctx.label}")
        return SequenceDraft(self._narrative(ctx, rng), self._reasoning(ctx, rng))

    def _narrative(self, ctx: SequenceContext, rng: random.Random) -> str:
        n = len(ctx.history)
        out = [f"This shopper made {n} purchase{'s' if n != 1 else ''} before the next one."]
        for i, h in enumerate(ctx.history):
            lead = "Most recently" if i == n - 1 and n > 1 else (_STEPS[0] if i == 0 else rng.choice(_STEPS[1:]))
            out.append(f"{lead} they bought {short_title(h.title)} {h.sid}.")
        t = ctx.target
        out.append(f"Their next purchase was {short_title(t.title)} {t.sid}"
                   + (f", {_article(type_phrase(t.title, t.brand))} by {t.brand}." if t.brand else "."))
        return " ".join(out)

    def _reasoning(self, ctx: SequenceContext, rng: random.Random) -> str:
        t = ctx.target
        # A history item that IS the target (repeat purchase) is named by title only: no target SID here.
        cite = [(h, "" if h.sid == t.sid else f" {h.sid}") for h in ctx.history]
        recent = cite[-3:]
        named = _join([f"{short_title(h.title, 6)}{s}" for h, s in reversed(recent)])
        steps = [f"The history has one item, {named}." if len(cite) == 1 else
                 f"The history has {len(cite)} items; the most recent are {named}."]
        steps += self._brand_step(cite, t) + self._overlap_step(cite, t) + self._follow_step(cite, t)
        kind = type_phrase(t.title, t.brand)
        if len(steps) == 1:
            last, s = cite[-1]
            steps.append(f"No strong pattern links the items, so the recent need behind {short_title(last.title, 6)}{s} "
                         f"({type_phrase(last.title, last.brand)}) matters most.")
        end = rng.choice(("So the next item is likely", "Putting this together, the user probably wants",
                          "The best next recommendation is therefore"))
        close = f"{end} {_article(kind)}{' from ' + t.brand if t.brand else ''}: \"{short_title(t.title, 14)}\""
        snip = _snippet(t.description, 20) if t.description else ""
        return " ".join(steps) + " " + close + (f" - {snip}" if snip else ".")

    def _brand_step(self, cite, t: ItemBrief) -> list[str]:
        same = [f"{h.sid}" if s else f"\"{short_title(h.title, 5)}\"" for h, s in cite if t.brand and h.brand == t.brand]
        if same:
            share = "Every purchase" if len(same) == len(cite) else f"{len(same)} of the {len(cite)} purchases"
            return [f"{share} ({_join(same)}) {'is' if len(same) == 1 else 'are'} from {t.brand}, "
                    f"so the user leans towards {t.brand}."]
        top = Counter(h.brand for h, _ in cite if h.brand).most_common(1)
        if top and top[0][1] >= 2:
            return [f"The user often buys {top[0][0]} but may try another brand for a new need."]
        return []

    def _overlap_step(self, cite, t: ItemBrief) -> list[str]:
        want = keywords(t)
        for h, s in reversed(cite):  # the most recent item sharing words with the target
            shared = sorted(keywords(h) & want)
            if shared:
                same_type = type_phrase(h.title, h.brand) == type_phrase(t.title, t.brand)
                why = "a repeat or refill of the same kind of product" if same_type else "a closely related product"
                return [f"{short_title(h.title, 6)}{s} shares \"{', '.join(shared[:3])}\" with what fits next, "
                        f"pointing to {why}."]
        return []

    def _follow_step(self, cite, t: ItemBrief) -> list[str]:
        for h, s in reversed(cite):
            if self.follows.get(h.item_id, {}).get(t.item_id, 0) >= 2:
                return [f"Several shoppers who bought {short_title(h.title, 6)}{s} went on to buy "
                        f"{_article(type_phrase(t.title, t.brand))} right after it."]
        return []
