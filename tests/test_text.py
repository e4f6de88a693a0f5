"""Item text cleaning (sidreasoner.data.text): table-driven, plus a sweep over the real Office items."""
from __future__ import annotations

import re

import pytest

from sidreasoner.data.records import Item
from sidreasoner.data.text import clean_description, clean_text, item_text, parse_description, truncate


@pytest.mark.parametrize("raw, parts, valid", [
    ("['a', 'b']", ["a", "b"], True),
    ('["It\'s fine", \'\']', ["It's fine", ""], True),
    ("", [], True),
    ("   ", [], True),
    ("plain text, no list", ["plain text, no list"], True),
    # unescaped quote inside a part: literal_eval fails, the lenient split still finds the part
    ("['It's broken']", ["It's broken"], False),
    ("[\"He said \"hi\"\", 'x']", ['He said "hi"', "x"], False),
    ("['one', \"two's\", 'three']", ["one", "two's", "three"], True),
])
def test_parse_description(raw, parts, valid):
    assert parse_description(raw) == (parts, valid)


@pytest.mark.parametrize("raw, clean", [
    ("<b>Bold</b> text", "Bold text"),
    ("a <!-- .x {color:red} --> b", "a b"),
    ("a <!-- unterminated .x {color:red}", "a"),
    (".headerM {color:#000;font-size:24px} Real text", "Real text"),
    ("Intro. td.callout { height: 100 percent; background: #9DC4D8 } ul {padding:0} Outro", "Intro. Outro"),
    ("x /* css comment */ y", "x y"),
    ("<style>p {x:y}</style>After", "After"),
    ("<script>var a = 1;</script>Shown", "Shown"),
    ("braces {sic} stay", "braces {sic} stay"),
    ("uses x < 2W; a > b", "uses x < 2W; a > b"),
    ("Capacity: 1amp;quot; wide", 'Capacity: 1" wide'),
    ("size: 7 1/2amp; quot; x 9", 'size: 7 1/2" x 9'),
    ("Calligraphy amp; Fountain Pens", "Calligraphy & Fountain Pens"),
    ("Caf&eacute; &amp; more&nbsp;here &rdquo;", "Café & more here \u201d"),
    ("see https://youtu.be/T8mfof7ZpU8 and www.amazon.com/x now", "see and now"),
    ("line\\nbreak\\tand\nreal  newline", "line break and real newline"),
])
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


@pytest.mark.parametrize("text, n, out", [
    ("one two three", 7, "one two"),
    ("one two three", 13, "one two three"),
    ("abcdefghij", 5, "abcde"),  # no space in the first half: hard cut
    ("one two", 0, "one two"),  # 0 = no limit
])
def test_truncate(text, n, out):
    assert truncate(text, n) == out


@pytest.mark.parametrize("title, description, max_chars, text", [
    ("Pen &amp; Ink", "['Pen & Ink. Smooth writing.', '']", 100, "Pen & Ink. Smooth writing."),
    ("Stapler", "", 100, "Stapler"),
    ("Stapler", "['', '']", 100, "Stapler"),
    ("Stapler.", "['<p>Heavy duty</p>', ' <!-- .a {b:c} --> ']", 100, "Stapler. Heavy duty"),
    ("", "['Only a description']", 100, "Only a description"),
    ("Binder", "['Round ring binder with pockets']", 20, "Binder. Round ring"),
])
def test_item_text(title, description, max_chars, text):
    assert item_text(Item("1", title, description), max_chars=max_chars) == text


def test_clean_description_joins_parts():
    assert clean_description("['First part.', '', '<i>Second</i>  part.']") == "First part. Second part."


def test_office_items_have_no_markup_left(office_dir):
    from sidreasoner.data.formats import read_item_json
    items = read_item_json(office_dir / "index" / "Office_Products.item.json")
    texts = {k: item_text(v) for k, v in items.items()}
    junk = re.compile(r"<!--|</?[A-Za-z][^<>]*>|\{[^{}]*:[^{}]*\}|&[#A-Za-z0-9]+;|\bamp;|https?://")
    dirty = {k: junk.search(t).group(0) for k, t in texts.items() if junk.search(t)}
    assert dirty == {}
    assert all(texts.values()) and max(map(len, texts.values())) <= 512
    # item 0 carries a CSS style sheet inside an HTML comment in its description
    assert "font-family" in items["0"].description and "font-family" not in texts["0"]
