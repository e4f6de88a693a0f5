"""The offline template teacher (sidreasoner/teacher/template.py): wording helpers by table, passages and
reasoning paths by behaviour (SIDs inline, target SID never in the reasoning, deterministic by seed);
and the LLM prompts and answer format the template stands in for (sidreasoner/teacher/prompts.py)."""
from __future__ import annotations

from collections import Counter

import pytest

from sidreasoner.sid.spelling import find_sids, format_sid
from sidreasoner.teacher.prompts import (ItemBrief, ItemContext, SequenceContext, SequenceDraft, format_sequence_answer,
                                         item_messages, parse_sequence_answer, repair_messages, sequence_messages)
from sidreasoner.teacher.leakage import quotes_target
from sidreasoner.teacher.template import TemplateTeacher, short_title, type_phrase


def sids_in(text: str) -> list[str]:
    return [format_sid(m.codes) for m in find_sids(text)]


@pytest.mark.parametrize("title, brand, want", [
    ("HP 74 Black & 75 Tri-color Original Ink Cartridges, 2 Cartridges (CB335WN, CB337WN)", "HP", "ink cartridges"),
    ("AmazonBasics 6-Sheet Cross-Cut Paper and Credit Card Shredder", "AmazonBasics", "card shredder"),
    ("Inkwell Ink Cartridge, Black, M", "Inkwell", "ink cartridge"),
    ("Pilot G2 Gel Pens for school, 12 count", "Pilot", "gel pens"),
    ("Sharpie Permanent Markers - Fine Point", "Sharpie", "permanent markers"),
    ("Stapler", "", "stapler"),
    ("12 x 4", "", "product"),
])
def test_type_phrase(title, brand, want):
    assert type_phrase(title, brand) == want


@pytest.mark.parametrize("title, n, want", [
    ("Inkwell Ink Cartridge, Black, M", 8, "Inkwell Ink Cartridge"),
    ("Avery Big Tab Write & Erase Dividers (11 tabs)", 8, "Avery Big Tab Write & Erase Dividers"),
    ("one two three four five", 3, "one two three..."),
])
def test_short_title(title, n, want):
    assert short_title(title, n) == want


PRINTER = ItemBrief("1", "<a_1><b_1><c_1>", "Inkwell Printer, Black", "Inkwell", "Office", "Prints documents at home.")
INK = ItemBrief("2", "<a_1><b_2><c_1>", "Inkwell Ink Cartridge, Black", "Inkwell", "Office", "Refills an Inkwell printer.")
PAPER = ItemBrief("3", "<a_2><b_1><c_1>", "Paperline Copy Paper, 500 sheets", "Paperline", "", "Bright white paper.")
PEN = ItemBrief("4", "<a_3><b_1><c_1>", "Scribewell Ballpoint Pen, Blue", "Scribewell")


def test_item_passage_interleaves_own_and_neighbour_sids():
    text = TemplateTeacher(seed=0).item_passage(ItemContext(INK, (PRINTER, PAPER)))
    counts = Counter(sids_in(text))
    assert counts[INK.sid] >= 2 and counts[PRINTER.sid] == 1 and counts[PAPER.sid] == 1 and len(counts) == 3
    assert "Inkwell" in text and "Refills an Inkwell printer." in text and "ink cartridge" in text


def test_item_passage_without_neighbours_or_description():
    text = TemplateTeacher(seed=0).item_passage(ItemContext(PEN))
    assert set(sids_in(text)) == {PEN.sid} and sids_in(text).count(PEN.sid) >= 2


def test_deterministic_by_seed_and_key_not_by_order():
    ctxs = [ItemContext(ItemBrief(str(i), f"<a_{i}><b_0><c_0>", f"Brand{i} Thing {i}", f"Brand{i}")) for i in range(12)]
    a = [TemplateTeacher(seed=1).item_passage(c) for c in ctxs]
    b = [TemplateTeacher(seed=1).item_passage(c) for c in reversed(ctxs)][::-1]
    other = [TemplateTeacher(seed=2).item_passage(c) for c in ctxs]
    assert a == b and a != other


def test_reasoning_uses_only_the_history_and_concludes_at_a_kind():
    ctx = SequenceContext("train row 1", (PAPER, PRINTER), INK)
    draft = TemplateTeacher(seed=0).sequence(ctx)
    assert sids_in(draft.narrative) == [PAPER.sid, PRINTER.sid, INK.sid]  # the narrative may tell the story
    path = draft.reasoning_path
    assert INK.sid not in sids_in(path) and "Ink Cartridge" not in path and "Refills" not in path
    assert "No other shopper's next purchase after Inkwell Printer <a_1><b_1><c_1> is on record" in path
    assert path.endswith("a printer.")  # the last item's kind: the level the evidence supports
    assert quotes_target(path, ctx) == {"title": False, "brand": False}


def test_brand_habit_and_recurring_kind_come_from_the_history():
    pen2 = ItemBrief("5", "<a_3><b_2><c_1>", "Scribewell Ballpoint Pen, Red", "Scribewell")
    path = TemplateTeacher(seed=0).sequence(SequenceContext("r", (PAPER, PEN, pen2), INK)).reasoning_path
    assert "2 of the 3 purchases are from Scribewell, so the user leans towards Scribewell." in path
    assert "Ballpoint pen came up 2 times" in path
    assert path.endswith("ballpoint pen from Scribewell.")


def test_repeat_purchase_names_the_history_copy_by_title_only():
    ctx = SequenceContext("row", (INK, PRINTER, INK), INK)
    draft = TemplateTeacher(seed=0).sequence(ctx)
    assert set(sids_in(draft.reasoning_path)) == {PRINTER.sid}  # the two INK purchases appear by title
    assert "Inkwell Ink Cartridge" in draft.reasoning_path
    assert quotes_target(draft.reasoning_path, ctx) == {"title": False, "brand": False}  # known from history


@pytest.mark.parametrize("n_rows, cited", [(0, False), (1, False), (2, True), (5, True)])
def test_what_follows_the_last_item_leaves_this_row_out(n_rows, cited):
    follows = {PEN.item_id: Counter({PAPER.item_id: n_rows})} if n_rows else {}
    teacher = TemplateTeacher(seed=0, follows=follows, items={PAPER.item_id: PAPER})
    path = teacher.sequence(SequenceContext("r", (PEN,), PAPER)).reasoning_path
    assert ("Shoppers who bought Scribewell Ballpoint Pen <a_3><b_1><c_1> most often bought copy paper "
            "right after it." in path) is cited
    assert path.endswith("copy paper." if cited else "ballpoint pen.")


@pytest.mark.parametrize("path, title, brand", [
    ("So the next item is Inkwell Ink Cartridge.", True, False),       # target title; brand Inkwell is in history
    ("Probably something from Paperline.", False, False),              # a history brand
    ("The user wants toner.", False, False),
    ("Maybe scribewell ink", False, True),                             # brand the history lacks, any case
    ("Scribewellness", False, False),                                  # not the whole word
])
def test_quotes_target_flags_only_facts_the_history_lacks(path, title, brand):
    target = ItemBrief("9", "<a_9><b_9><c_9>", "Inkwell Ink Cartridge, Black", "Scribewell")
    assert quotes_target(path, SequenceContext("r", (PAPER, PRINTER), target)) == {"title": title, "brand": brand}


@pytest.mark.parametrize("text, want", [
    ("<narrative>A <a_1></narrative>\n<reasoning_path>B</reasoning_path>", SequenceDraft("A <a_1>", "B")),
    ("intro <narrative> A </narrative><reasoning_path> B ", SequenceDraft("A", "B")),       # unclosed last part
    ("<narrative>A\n<reasoning_path>B</reasoning_path>", SequenceDraft("A", "B")),         # unclosed first part
    ("<narrative>A</narrative>", None),
    ("just prose", None),
])
def test_parse_sequence_answer(text, want):
    assert parse_sequence_answer(text) == want


def test_format_and_parse_round_trip():
    d = SequenceDraft("story <a_1><b_1><c_1>", "because <a_1><b_1><c_1>, a pen")
    assert parse_sequence_answer(format_sequence_answer(d)) == d


def test_prompts_carry_the_facts_and_the_sid_rules():
    item = item_messages(ItemContext(INK, (PRINTER,)))
    assert [m["role"] for m in item] == ["system", "user"]
    user = item[1]["content"]
    assert user.startswith(f"Item: {INK.sid} Inkwell Ink Cartridge, Black; brand: Inkwell")
    assert f"- {PRINTER.sid} Inkwell Printer, Black" in user and f"exactly as {INK.sid} at least twice" in user
    seq = sequence_messages(SequenceContext("r", (PAPER, PRINTER), INK))[1]["content"]
    assert f"1. {PAPER.sid} Paperline Copy Paper" in seq and f"2. {PRINTER.sid} Inkwell Printer" in seq
    assert f"Do NOT write the next item's SID {INK.sid} anywhere in this part." in seq
    fix = repair_messages(item, "bad answer", ["unknown_sid: '<a_9>' is not a catalogue SID"])
    assert fix[:2] == item and fix[2] == {"role": "assistant", "content": "bad answer"}
    assert fix[3]["content"].startswith("Your answer broke these rules:\n- unknown_sid: '<a_9>'")
