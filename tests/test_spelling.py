"""The SID spelling (sidreasoner/sid/spelling.py): table-driven, exact error messages."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidreasoner.sid.spelling import (
    SIDFormatError, SIDMatch, all_level_tokens, find_sids, format_sid, format_token, is_sid_token, join_tokens,
    parse_sid, parse_token, scan_sid, sid_tokens, split_sid)


@pytest.mark.parametrize("level, code, token", [
    (0, 0, "<a_0>"), (1, 7, "<b_7>"), (2, 255, "<c_255>"), (7, 123456, "<h_123456>")])
def test_format_and_parse_token(level, code, token):
    assert format_token(level, code) == token
    assert parse_token(token) == (level, code)
    assert is_sid_token(token)


@pytest.mark.parametrize("level, code, message", [
    (8, 1, "SID level 8 out of range 0..7"),
    (-1, 1, "SID level -1 out of range 0..7"),
    (0, -1, "SID code must be >= 0, got -1 at level 0"),
])
def test_format_token_errors(level, code, message):
    with pytest.raises(SIDFormatError, match=f"^{re.escape(message)}$"):
        format_token(level, code)


@pytest.mark.parametrize("token", ["<i_1>", "<a_-1>", "<a_1> ", "a_1", "<A_1>", "<a_1234567>", "<a_>", "<a_1><b_2>",
                                   "<a_\u0661>", "<a_\uff11>", "<a_1\u0663>"])  # Arabic-Indic, full-width digits
def test_parse_token_rejects(token):
    assert not is_sid_token(token)
    message = f"not a SID token: {token!r} (expected like '<a_12>')"
    with pytest.raises(SIDFormatError, match=f"^{re.escape(message)}$"):
        parse_token(token)


@pytest.mark.parametrize("codes, sid", [
    ((60, 159, 203), "<a_60><b_159><c_203>"),
    ((0,), "<a_0>"),
    ((1, 2, 3, 4), "<a_1><b_2><c_3><d_4>"),
    ((255, 0, 255), "<a_255><b_0><c_255>"),
])
def test_sid_round_trip(codes, sid):
    assert format_sid(codes) == sid
    assert parse_sid(sid) == codes
    assert sid_tokens(codes) == split_sid(sid) == re.findall(r"<[a-h]_\d+>", sid)
    assert join_tokens(split_sid(sid)) == sid


def test_parse_sid_strips_outer_whitespace():
    assert parse_sid("  <a_1><b_2>\n") == (1, 2)


@pytest.mark.parametrize("sid, message", [
    (12, "a SID must be a string, got int"),
    (None, "a SID must be a string, got NoneType"),
    ("", "empty SID"),
    ("   ", "empty SID"),
    ("<b_1>", "SID '<b_1>': token <b_1> at position 0, expected level 'a'"),
    ("<a_1><c_2>", "SID '<a_1><c_2>': token <c_2> at position 1, expected level 'b'"),
    ("<a_1><a_2>", "SID '<a_1><a_2>': token <a_2> at position 1, expected level 'b'"),
    ("<a_1>x<b_2>", "unexpected text 'x' in SID '<a_1>x<b_2>'"),
    ("<a_1><b_2>!", "unexpected text '!' in SID '<a_1><b_2>!'"),
    ("<a_1> <b_2>", "unexpected text ' ' in SID '<a_1> <b_2>'"),
    ("< a_1>", "unexpected text '< a_1>' in SID '< a_1>'"),
    ("a_1", "unexpected text 'a_1' in SID 'a_1'"),
])
def test_parse_sid_errors(sid, message):
    with pytest.raises(SIDFormatError, match=f"^{re.escape(message)}$"):
        parse_sid(sid)


def test_format_sid_needs_a_level():
    with pytest.raises(SIDFormatError, match="^a SID needs at least one level$"):
        format_sid(())


def test_join_tokens_validates():
    assert join_tokens(["<a_1>", "<b_2>"]) == "<a_1><b_2>"
    with pytest.raises(SIDFormatError, match=re.escape("token <b_2> at position 0, expected level 'a'")):
        join_tokens(["<b_2>", "<a_1>"])


@pytest.mark.parametrize("text, codes", [
    ("<a_1><b_2><c_3>", (1, 2, 3)),
    ("< a_1 > <b_2>", (1, 2)),                          # whitespace inside and between tokens
    ("<a_1>\n\t<b_2>  <c_3>", (1, 2, 3)),
    ("The answer is <a_1><b_2><c_3>. Done", (1, 2, 3)),  # leading and trailing text
    ("<a_1><b_2><c_3>garbage<d_4>", (1, 2, 3)),
    ("<a_1><c_3>", (1,)),                              # broken level order stops the run
    ("<a_1><b_2><a_3><b_4>", (1, 2)),
    ("<b_2><a_5><b_6>", (5, 6)),                       # a run starts at level a
    ("<a_1>, <b_2>", (1,)),                            # non-space text between tokens ends the run
    ("<a_007><b_10>", (7, 10)),
    ("no sid here", ()),
    ("", ()),
    ("<b_1><c_2>", ()),
    ("<A_1><B_2>", ()),
    ("<a_1234567>", ()),
    ("<a_\u0661><b_\u0662><c_\u0663>", ()),          # non-ASCII digits are not codes
    ("<a_1><b_\u0662>", (1,)),
    (None, ()),
    (123, ()),
    (["<a_1>"], ()),
])
def test_scan_sid(text, codes):
    assert scan_sid(text) == codes


@pytest.mark.parametrize("text, expected", [
    ("", []),
    (None, []),
    ("<a_1><b_2>", [SIDMatch(0, 10, (1, 2))]),
    ("x <a_1> <b_2>, then <a_3><b_4><c_5>.", [SIDMatch(2, 13, (1, 2)), SIDMatch(20, 35, (3, 4, 5))]),
    ("<a_1><b_2><a_3>", [SIDMatch(0, 10, (1, 2)), SIDMatch(10, 15, (3,))]),
    ("<b_9><a_1><c_2><a_4>", [SIDMatch(5, 10, (1,)), SIDMatch(15, 20, (4,))]),
    ("<a_1>x<b_2>", [SIDMatch(0, 5, (1,))]),
])
def test_find_sids(text, expected):
    assert find_sids(text) == expected


_PIECES = st.sampled_from(["<a_1>", "<b_2>", "<c_3>", "<d_4>", "< a_5 >", " ", ",", "x", "\n", "<a_", ">"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_find_sids_agrees_with_scan_sid(text):
    found = find_sids(text)
    assert (found[0].codes if found else ()) == scan_sid(text)
    for m in found:  # each span re-scans to its own codes
        assert scan_sid(text[m.start:m.end]) == m.codes


def test_all_level_tokens():
    assert all_level_tokens([2, 3]) == ["<a_0>", "<a_1>", "<b_0>", "<b_1>", "<b_2>"]
    assert all_level_tokens([]) == []
