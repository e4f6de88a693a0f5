"""Teacher corpora (sidreasoner/data/corpora.py): think-stripping, readers/writers, SID mentions."""
from __future__ import annotations

import json
import re

import pytest

from sidreasoner.data.corpora import (
    NARRATIVE_COLUMNS, Corpus, EnhancedItem, NarrativeRow, check_sid_mentions, corpus_texts, read_item_enhanced,
    read_narratives, sid_mentions, strip_think, write_item_enhanced, write_narratives)
from sidreasoner.data.records import DataError
from sidreasoner.sid.index import SIDIndex


def _raises(message: str):
    return pytest.raises(DataError, match=f"^{re.escape(message)}$")


@pytest.mark.parametrize("text, visible", [
    ("plain answer", "plain answer"),
    ("<think>\nreasoning\n</think>\n\nThe answer <a_1><b_2>", "The answer <a_1><b_2>"),
    ("<think>a</think>one <think>b</think>two", "one two"),
    ("reasoning began in the prompt\n</think>\n\nanswer", "answer"),        # orphan closing tag
    ("<think>a</think>x</think> y", "y"),
    ("<think>never closed, truncated", ""),                                # unclosed leading block
    ("  \n<think>never closed", ""),
    ("answer first <think>then a truncated block", "answer first"),
    ("<think>\n\n</think>\n\n", ""),                                       # empty think block only
    ("", ""),
    ("no tags but < think > spaced", "no tags but < think > spaced"),       # only exact tags count
])
def test_strip_think(text, visible):
    assert strip_think(text) == visible


def test_strip_think_needs_a_string():
    with pytest.raises(TypeError, match="^strip_think needs a string, got NoneType$"):
        strip_think(None)


# -- item_enhanced_v2.json --------------------------------------------------------------------------
def test_item_enhanced_round_trip_and_skips(tmp_path):
    path = tmp_path / "Toy.item_enhanced_v2.json"
    write_item_enhanced(path, {"1": "<think>plan</think>\nRed pen <a_0><b_0>", "2": "Blue pen", "3": "<think>cut off"},
                        extra={"1": {"title": "Red pen"}})
    raw = json.loads(path.read_text())
    assert raw["1"] == {"title": "Red pen", "llm_stage2": "<think>plan</think>\nRed pen <a_0><b_0>"}
    # lenient about other fields: an entry without llm_stage2 is skipped and listed, extra fields ignored
    raw["4"] = {"title": "No text yet"}
    raw["2"]["stage1"] = "ignored"
    path.write_text(json.dumps(raw))
    corpus = read_item_enhanced(path)
    assert corpus.records == [EnhancedItem("1", "Red pen <a_0><b_0>"), EnhancedItem("2", "Blue pen")]
    assert corpus.skipped == {"empty 'llm_stage2' after removing <think>": ["3"], "no 'llm_stage2' field": ["4"]}
    assert corpus.counts["think_removed"] == 2 and corpus.n_skipped() == 2


@pytest.mark.parametrize("text, message", [
    ('{"1": {"llm_stage2": null}}', "field '1.llm_stage2': item '1': 'llm_stage2' must be a string, got NoneType"),
    ('{"1": {"llm_stage2": ["a"]}}', "field '1.llm_stage2': item '1': 'llm_stage2' must be a string, got list"),
    ('{"1": "text"}', "field '1': item '1': expected an object, got str"),
    ('[{"llm_stage2": "x"}]', None),
    ('{"1": {"llm_stage2": "x"}', "line 1: invalid JSON: Expecting ',' delimiter"),
])
def test_item_enhanced_errors(tmp_path, text, message):
    path = tmp_path / "e.json"
    path.write_text(text)
    expected = f"{path}, {message}" if message else f"{path}: expected a JSON object at top level, got list"
    with _raises(expected):
        read_item_enhanced(path)


def test_item_enhanced_writer_rejects_non_strings(tmp_path):
    with pytest.raises(TypeError, match=r"^item '1': text must be a string, got int$"):
        write_item_enhanced(tmp_path / "e.json", {"1": 5})


# -- integrated_narrative.csv ---------------------------------------------------------------------
ROWS = [
    NarrativeRow(("<a_0><b_0>", "<a_1><b_2>"), "<a_1><b_3>", "Bought <a_0><b_0>, then \"quoted\", text.",
                 "Step 1, step 2\nnewline"),
    NarrativeRow((), "<a_0><b_1>", "", "only reasoning", extra={"user_id": "U7"}),
]


def test_narratives_round_trip(tmp_path):
    path = tmp_path / "n.csv"
    write_narratives(path, ROWS)
    assert path.read_text().splitlines()[0] == ",".join([*NARRATIVE_COLUMNS, "user_id"])
    corpus = read_narratives(path)
    assert corpus.records == ROWS
    assert corpus.records[1].extra == {"user_id": "U7"} and corpus.records[0].extra == {"user_id": ""}
    assert [r.line for r in corpus.records] == [3, 4]  # row 1 spans lines 2-3 (newline in a quoted cell)
    assert corpus.counts["empty_integrated_narrative"] == 1 and corpus.counts["empty_reasoning_path"] == 0


def test_narratives_strip_teacher_think(tmp_path):
    path = tmp_path / "n.csv"
    write_narratives(path, [NarrativeRow(("<a_0>",), "<a_1>", "<think>x</think>\nStory", "<think>unclosed")])
    corpus = read_narratives(path)
    assert corpus.records[0].integrated_narrative == "Story" and corpus.records[0].reasoning_path == ""
    assert corpus.counts["think_removed"] == 2 and corpus.counts["empty_reasoning_path"] == 1


HEAD = ",".join(NARRATIVE_COLUMNS)


@pytest.mark.parametrize("body, message", [
    ("\"['<a_0>'\",<a_1>,n,r",
     "line 2, field 'history_item_sid': not a Python-literal list: \"['<a_0>'\" (SyntaxError)"),
    ("\"['<a_0><a_1>']\",<a_1>,n,r",
     "line 2, field 'history_item_sid': SID '<a_0><a_1>': token <a_1> at position 1, expected level 'b'"),
    ("\"[3]\",<a_1>,n,r", "line 2, field 'history_item_sid': SID must be a string, got 3"),
    ("\"['<a_0>']\",item 1,n,r", "line 2, field 'item_sid': unexpected text 'item 1' in SID 'item 1'"),
    ("\"['<a_0>']\",<a_1>,n", "line 2: row does not have the header's 4 fields"),
])
def test_narrative_errors(tmp_path, body, message):
    path = tmp_path / "n.csv"
    path.write_text(f"{HEAD}\n{body}\n")
    with _raises(f"{path}, {message}"):
        read_narratives(path)


def test_narrative_missing_column_and_file(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("history_item_sid,item_sid,integrated_narrative\n")
    with _raises(f"{path}, line 1: missing columns ['reasoning_path']; found "
                 "['history_item_sid', 'item_sid', 'integrated_narrative']"):
        read_narratives(path)
    with _raises(f"{tmp_path / 'none.csv'}: file not found"):
        read_narratives(tmp_path / "none.csv")


def test_narrative_on_error_skips_and_lists(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text(f"{HEAD}\n\"['<a_0>']\",<a_1>,n,r\n\"[\",<a_1>,n,r\n\"['<a_0>']\",<a_2>,n,r\n")
    errors: list[DataError] = []
    corpus = read_narratives(path, on_error=errors.append)
    assert [r.item_sid for r in corpus.records] == ["<a_1>", "<a_2>"]
    assert [(e.row, e.field) for e in errors] == [(3, "history_item_sid")]
    assert corpus.skipped == {"malformed row": ["line 3"]}


# -- SID mentions -------------------------------------------------------------------------------
@pytest.mark.parametrize("text, sids", [
    ("Item <a_1><b_2><c_3> then < a_4 > <b_5>.", ["<a_1><b_2><c_3>", "<a_4><b_5>"]),
    ("<a_1><b_2>, <a_1><b_2><c_9>", ["<a_1><b_2>", "<a_1><b_2><c_9>"]),
    ("no SID", []),
    ("<b_2><c_3>", []),
])
def test_sid_mentions(text, sids):
    assert sid_mentions(text) == sids


def test_check_sid_mentions_known_prefix_unknown():
    index = SIDIndex({"1": "<a_1><b_2><c_3>", "2": "<a_1><b_5><c_0>"})
    rep = check_sid_mentions([
        ("item 1", "It is <a_1><b_2><c_3>, in family <a_1> and group <a_1><b_5>."),
        ("item 2", "Wrong: <a_1><b_2><c_4> and <a_2>; also <a_1><b_2><c_3><d_0>."),
        ("item 3", "nothing"),
    ], index)
    assert (rep.texts, rep.mentions, rep.known, rep.prefixes) == (3, 6, 1, 2)
    assert rep.unknown == [("item 2", "<a_1><b_2><c_4>"), ("item 2", "<a_2>"), ("item 2", "<a_1><b_2><c_3><d_0>")]
    assert check_sid_mentions([("x", "<a_1><b_2><c_3>")], ["<a_1><b_2><c_3>"]).known == 1  # plain SID list works


def test_corpus_texts_labels():
    items = Corpus("e.json", [EnhancedItem("7", "t")])
    narr = Corpus("n.csv", [NarrativeRow(("<a_0>",), "<a_1>", "n", "r", line=5)])
    assert corpus_texts(items) == [((None, "7.llm_stage2"), "t")]
    assert corpus_texts(narr) == [((5, "integrated_narrative"), "n"), ((5, "reasoning_path"), "r")]
