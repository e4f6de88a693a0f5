"""Offline template teacher: corpus text from item metadata and co-purchase facts, no LLM needed.

It answers the same :class:`~sidreasoner.teacher.prompts.ItemContext` / ``SequenceContext`` an LLM
teacher gets, so ``make demo`` and tests run the whole corpus path offline. The text is plain but true
to the data: product type words from the title, brand, description snippet, co-purchased items. The
reasoning path uses only what a recommender knows before answering (the history's titles, brands and
recurring kinds, and what other train rows bought right after the last item) and concludes at the level
that supports (a kind, a brand); it never quotes the target's title, description or SID, so the SID
after ``</think>`` is not a copy of something the path already said. Sentence variants are drawn from a
per-item / per-row RNG seeded from ``seed`` and the item or row key, so output is deterministic and
independent of job order.
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
    is ``a`` and whose target is ``b``: the co-purchase facts its reasoning cites (minus the row being
    written about); ``items`` (item id -> brief) names those successors' kinds."""

    name = "template"

    def __init__(self, seed: int = 0, follows: Mapping[str, Mapping[str, int]] | None = None,
                 max_neighbours: int = 3, snippet_words: int = 30, items: Mapping[str, ItemBrief] | None = None):
        self.seed, self.follows, self.items = seed, dict(follows or {}), dict(items or {})
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
        """What a recommender could reason before the answer: history titles, brands and kinds, and what
        followed the last item in the train split (this row left out); it concludes at the level that
        evidence supports (a kind, a brand), never the target's title or description."""
        t = ctx.target
        # A history item that IS the target (repeat purchase) is named by title only: no target SID here.
        cite = [(h, "" if h.sid == t.sid else f" {h.sid}") for h in ctx.history]
        named = _join([f"{short_title(h.title, 6)}{s}" for h, s in reversed(cite[-3:])])
        steps = [f"The history has one item, {named}." if len(cite) == 1 else
                 f"The history has {len(cite)} items; the most recent are {named}."]
        brand, brand_step = self._brand_habit(cite)
        kind, kind_step = self._recurring_kind(cite)
        after, after_step = self._what_follows(cite, t)
        steps += brand_step + kind_step + after_step
        last = cite[-1][0]
        guess = after or kind or type_phrase(last.title, last.brand)
        end = rng.choice(("So the next item is likely", "Putting this together, the user probably wants",
                          "The best next recommendation is therefore"))
        return " ".join(steps) + f" {end} {_article(guess)}{' from ' + brand if brand else ''}."

    @staticmethod
    def _brand_habit(cite) -> tuple[str, list[str]]:
        """(brand bought at least twice, its sentence)."""
        top = Counter(h.brand for h, _ in cite if h.brand).most_common(1)
        if not top or top[0][1] < 2:
            return "", []
        brand, n = top[0]
        share = ("Both purchases" if n == 2 else f"All {n} purchases") if n == len(cite) else \
            f"{n} of the {len(cite)} purchases"
        return brand, [f"{share} are from {brand}, so the user leans towards {brand}."]

    @staticmethod
    def _recurring_kind(cite) -> tuple[str, list[str]]:
        """(product kind bought at least twice, its sentence)."""
        kinds = Counter(type_phrase(h.title, h.brand) for h, _ in cite)
        kind, n = kinds.most_common(1)[0]
        if n < 2 or kind == "product":
            return "", []
        return kind, [f"{kind.capitalize()} came up {n} times: a refill or a related {kind} product is plausible."]

    def _what_follows(self, cite, t: ItemBrief) -> tuple[str, list[str]]:
        """(most common kind bought right after the last item by other train rows, its sentence); this
        row's own (last item -> target) pair is not counted."""
        last, s = cite[-1]
        counts = Counter(self.follows.get(last.item_id, {}))
        counts[t.item_id] -= 1
        kinds: Counter = Counter()
        for item_id, n in counts.items():
            item = self.items.get(item_id)
            if n > 0 and item is not None:
                kinds[type_phrase(item.title, item.brand)] += n
        if not kinds:
            return "", [f"No other shopper's next purchase after {short_title(last.title, 6)}{s} is on record, "
                        f"so the recent need ({type_phrase(last.title, last.brand)}) matters most."]
        top = [k for k, _ in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))[:2]]
        return top[0], [f"Shoppers who bought {short_title(last.title, 6)}{s} most often bought "
                        f"{' or '.join(top)} right after it."]
