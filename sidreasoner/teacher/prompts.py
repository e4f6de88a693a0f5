"""What the teacher is told: the facts of one item or one training sequence, and the writing rules.

Two corpora: an item passage (``llm_stage2``) that interleaves the item's SID with what
the item is, who buys it and what it goes with; and, per training sequence, an integrated narrative
(the history with SIDs inline, ending with the purchase of the next item) plus a reasoning path that
reasons over the history as a recommender would and ends at the next item WITHOUT quoting its SID.

The same :class:`ItemContext` / :class:`SequenceContext` feed the LLM prompts here and the offline
template teacher, so both teachers see the same facts. SIDs arrive already spelled (strings from
``sidreasoner.sid.spelling``); nothing here builds or parses SID strings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

from ..data.records import Item
from ..data.text import clean_description, clean_text, truncate

NARRATIVE_TAG = "narrative"
REASONING_TAG = "reasoning_path"
#: longest description snippet put into a prompt, in characters (the teacher needs the gist, not a page)
PROMPT_DESCRIPTION_CHARS = 400


@dataclass(frozen=True)
class ItemBrief:
    """One item as the teacher sees it: SID and cleaned metadata."""

    item_id: str
    sid: str
    title: str
    brand: str = ""
    categories: str = ""
    description: str = ""


class ItemBriefs:
    """Cleaned item metadata, built once per (item, SID): descriptions are costly to clean."""

    def __init__(self, items: dict[str, Item]):
        self.items, self._memo = items, {}

    def __call__(self, item_id: str, sid: str, fallback_title: str = "") -> ItemBrief:
        key = (item_id, sid)
        if key not in self._memo:
            it = self.items.get(item_id)
            self._memo[key] = ItemBrief(item_id, sid, clean_text(fallback_title) or f"item {item_id}") if it is None \
                else ItemBrief(item_id, sid, clean_text(it.title), clean_text(it.brand), clean_text(it.categories),
                               truncate(clean_description(it.description), 1000))
        return self._memo[key]


@dataclass(frozen=True)
class ItemContext:
    """An item-passage job: the item and the items most often bought right before/after it in training."""

    item: ItemBrief
    neighbours: tuple[ItemBrief, ...] = ()


@dataclass(frozen=True)
class SequenceContext:
    """A sequence job: a training row's history (chronological) and its target. ``label`` names the
    source row in messages (``"train.csv line 12"``)."""

    label: str
    history: tuple[ItemBrief, ...]
    target: ItemBrief


@dataclass(frozen=True)
class SequenceDraft:
    narrative: str
    reasoning_path: str


SYSTEM = ("You write training text for a recommender system that names every product by a semantic ID "
          "(SID): a short code of tokens such as <a_12><b_34><c_56>. Copy SIDs character for character "
          "from the input; never invent, shorten, reorder or change one.")

ITEM_RULES = """Write one paragraph of 60 to 150 words about the item {sid}. It must say:
- what the item is (use the title and description);
- who typically buys it and why;
- what it goes with (the related items below, when there are any).
Rules:
- Write the item's SID exactly as {sid} at least twice, each time right after words that name the item.
- You may mention related items only by the SIDs listed above, spelled exactly as given. Write no other SID.
- No headings, lists, quotes around the paragraph or preamble: output the paragraph only."""

SEQUENCE_RULES = """Write two parts, each inside its tags:
<{n}>
A story of 80 to 200 words about this shopper's purchases in order. Name every purchase with its SID right after it, and end with the purchase of the next item and its SID {target_sid}.
</{n}>
<{r}>
Step-by-step reasoning of 60 to 200 words, written as a recommender who sees only the history: what the purchases have in common (brands, product types, needs, complementary or refill patterns, the most recent items), citing history items by their SIDs. End by describing the next item the user is likely to buy (its type, brand, key features, title). Do NOT write the next item's SID {target_sid} anywhere in this part.
</{r}>
Write no SID other than those listed above. Output only the two tagged parts."""

REPAIR = ("Your answer broke these rules:\n{problems}\nRewrite the whole answer so that it follows every rule, "
          "in the same format.")


def _describe(item: ItemBrief, max_chars: int = PROMPT_DESCRIPTION_CHARS) -> str:
    parts = [f"{item.sid} {item.title}"]
    if item.brand:
        parts.append(f"brand: {item.brand}")
    if item.categories:
        parts.append(f"categories: {item.categories}")
    line = "; ".join(parts)
    if item.description:
        line += f"\n   description: {truncate(item.description, max_chars)}"
    return line


def item_messages(ctx: ItemContext) -> list[dict]:
    """Chat messages asking for the item passage of ``ctx.item``."""
    lines = [f"Item: {_describe(ctx.item)}"]
    if ctx.neighbours:
        lines.append("Related items (often bought right before or after it by the same shoppers):")
        lines += [f"- {n.sid} {n.title}" for n in ctx.neighbours]
    else:
        lines.append("Related items: none known.")
    lines.append("")
    lines.append(ITEM_RULES.format(sid=ctx.item.sid))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def sequence_messages(ctx: SequenceContext) -> list[dict]:
    """Chat messages asking for the narrative and reasoning path of one training sequence."""
    lines = ["A shopper bought these items, oldest first:"]
    lines += [f"{i}. {_describe(h, 160)}" for i, h in enumerate(ctx.history, 1)]
    lines.append("")
    lines.append(f"The next item they bought (you know it; the reasoning must arrive at it without its SID):\n"
                 f"   {_describe(ctx.target)}")
    lines.append("")
    lines.append(SEQUENCE_RULES.format(n=NARRATIVE_TAG, r=REASONING_TAG, target_sid=ctx.target.sid))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def repair_messages(messages: Sequence[dict], answer: str, problems: Sequence[str]) -> list[dict]:
    """Follow-up turn: the first answer and the rules it broke, asking for a corrected answer."""
    bullet = "\n".join(f"- {p}" for p in problems)
    return [*messages, {"role": "assistant", "content": answer},
            {"role": "user", "content": REPAIR.format(problems=bullet)}]


def _tagged(text: str, tag: str, next_tag: Optional[str]) -> Optional[str]:
    # The closing tag is sometimes dropped by teachers; then the part runs to the next opening tag.
    stop = rf"</{tag}>" + (rf"|(?=<{next_tag}>)" if next_tag else "") + r"|\Z"
    m = re.search(rf"<{tag}>(.*?)(?:{stop})", text, re.S)
    return m.group(1).strip() if m else None


def parse_sequence_answer(text: str) -> Optional[SequenceDraft]:
    """Teacher answer (``<think>`` already stripped) -> its two parts; None when either tag is missing."""
    narrative = _tagged(text, NARRATIVE_TAG, REASONING_TAG)
    reasoning = _tagged(text, REASONING_TAG, None)
    if narrative is None or reasoning is None:
        return None
    return SequenceDraft(narrative, reasoning)


def format_sequence_answer(draft: SequenceDraft) -> str:
    """The tagged form a teacher answers in (used by test servers and to show drafts in reports)."""
    return (f"<{NARRATIVE_TAG}>\n{draft.narrative}\n</{NARRATIVE_TAG}>\n"
            f"<{REASONING_TAG}>\n{draft.reasoning_path}\n</{REASONING_TAG}>")
