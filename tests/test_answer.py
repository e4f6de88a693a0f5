"""parse_answer: the one completion parser (rules in sidreasoner/sid/answer.py's docstring)."""
from __future__ import annotations

import time  # timings use process_time (CPU seconds): other jobs share these 2 cores

import pytest
from hypothesis import given, settings, strategies as st

from sidreasoner.sid.answer import Answer, parse_answer

SID = "<a_60><b_159><c_203>"
CODES = (60, 159, 203)

# (completion, expected sid, expected think_closed, expected reasoning, expected answer_text)
CASES = [
    # non-thinking mode: no tags, the whole text is the answer
    (SID, SID, False, "", SID),
    (f"  {SID}\n", SID, False, "", SID),
    (f"The next item is {SID}. It matches the pens.", SID, False, "", f"The next item is {SID}. It matches the pens."),
    # thinking mode with both tags
    (f"<think>\nuser likes ink\n</think>\n\n{SID}", SID, True, "user likes ink", SID),
    # <think> was in the prompt (Qwen3 thinking template): only </think> in the completion
    (f"user likes ink</think>{SID}", SID, True, "user likes ink", SID),
    # unclosed reasoning gives no answer, even with a SID inside it
    (f"<think>maybe {SID}", None, False, f"maybe {SID}", ""),
    # a SID inside the reasoning but none in the answer: no SID
    (f"<think>maybe {SID}</think>I am not sure.", None, True, f"maybe {SID}", "I am not sure."),
    # several </think>: the answer follows the LAST; the reasoning is the last block's inside
    (f"<think>a</think><a_1><b_1><c_1><think>b</think>{SID}", SID, True, "b", SID),
    # nested tags: last </think> wins, reasoning runs from the last <think> before it
    (f"<think>x<think>y</think>z</think>{SID}", SID, True, "y</think>z", SID),
    # re-opened think after the last close: answer cut at it
    (f"<think>r</think>{SID}<think>second thoughts <a_1><b_2><c_3>", SID, False, "r", SID),
    (f"<think>r</think><think>only thoughts {SID}", None, False, "r", ""),
    # whitespace inside and between tokens; canonical spelling comes back
    ("</think> < a_60 > <b_159>\n<c_203 >", SID, True, "", "< a_60 > <b_159>\n<c_203 >"),
    # text after the SID is ignored; only the FIRST run counts
    (f"</think>{SID} or <a_1><b_2><c_3>", SID, True, "", f"{SID} or <a_1><b_2><c_3>"),
    # <br>-like tags: around the run they are just text; inside the run they end it
    (f"</think><br>{SID}<br/>", SID, True, "", f"<br>{SID}<br/>"),
    ("</think><a_60><br><b_159><c_203>", "<a_60>", True, "", "<a_60><br><b_159><c_203>"),
    # a run must start at level a; out-of-order tokens end it
    ("</think><b_1><a_2><c_3>", "<a_2>", True, "", "<b_1><a_2><c_3>"),
    # partial SIDs parse as what they are (the reward gives partial credit)
    ("</think><a_60><b_159>", "<a_60><b_159>", True, "", "<a_60><b_159>"),
    # nothing parseable
    ("</think>", None, True, "", ""),
    ("", None, False, "", ""),
    ("<a_x><b_1>", None, False, "", "<a_x><b_1>"),
]


@pytest.mark.parametrize("text, sid, closed, reasoning, answer", CASES)
def test_parse_answer_table(text, sid, closed, reasoning, answer):
    a = parse_answer(text)
    assert (a.sid, a.think_closed, a.reasoning, a.answer_text) == (sid, closed, reasoning, answer)
    assert a.parsed == (sid is not None)
    assert a.codes == (CODES if sid == SID else a.codes)
    assert (a.codes == ()) == (sid is None)


@pytest.mark.parametrize("value", [None, 12, 3.5, ["<a_1>"], {"x": 1}, object()])
def test_non_text_inputs_give_empty_answer(value):
    assert parse_answer(value) == Answer(None, (), False, "", "")


def test_bytes_are_decoded_leniently():
    assert parse_answer(f"</think>{SID}".encode()).sid == SID
    assert parse_answer(b"\xff\xfe</think><a_1><b_2>").sid == "<a_1><b_2>"


def test_answer_is_frozen():
    a = parse_answer(SID)
    with pytest.raises(AttributeError):
        a.sid = "<a_1>"


def test_unicode_and_lone_surrogates_do_not_break_it():
    assert parse_answer(f"<think>日本語 🤖</think>\ud800 {SID} ✓").sid == SID


HUGE = [
    ("x" * 1_000_000 + f"</think>{SID}", SID),
    ("<think>" + "y" * 1_000_000, None),
    ("</think>" + "<" * 1_000_000, None),
    ("</think>" + "<b_1>" * 200_000, None),  # every token the wrong level: must not loop per token in Python
    ("</think>" + f"{SID} " + "z" * 1_000_000, SID),
]


@pytest.mark.parametrize("text, sid", HUGE)
def test_huge_strings_are_fast(text, sid):
    parse_answer(text)  # warm-up (regex compile caches)
    t0 = time.process_time()
    a = parse_answer(text)
    elapsed = time.process_time() - t0
    assert a.sid == sid
    assert elapsed < 0.05, f"parse_answer took {elapsed * 1e3:.1f} ms on {len(text)} characters"


TOKENS = st.sampled_from(["<think>", "</think>", "<a_1>", "<b_2>", "<c_3>", "< a_4 >", "<br>", " ", "\n",
                          "<", ">", "_", "a", "7", "</", "think>", "<d_9>"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(TOKENS, max_size=40).map("".join), st.text(), st.binary()))
def test_never_raises_and_is_consistent(text):
    a = parse_answer(text)
    assert isinstance(a, Answer)
    if a.sid is not None:
        assert a.codes and a.sid.startswith("<a_")
        assert "</think>" not in a.answer_text  # the answer always follows the LAST close
