"""Release-format readers and writers (sidreasoner/data/formats.py): round trips and exact errors."""
from __future__ import annotations

import json
import re

import pytest

from sidreasoner.data.formats import (
    SPLIT_COLUMNS, read_index_json, read_info, read_item_json, read_split_csv, write_index_json, write_info,
    write_item_json, write_split_csv)
from sidreasoner.data.records import DataError, InfoRow, Item, ReleasePaths, SequenceRow

HEADER = ",".join(SPLIT_COLUMNS)

ROWS = [
    SequenceRow("U1", ("1",), ("Pen, blue",), ("<a_1><b_2>",), "2", 'Paper 8.5" x 11"', "<a_1><b_3>"),
    SequenceRow("U1", ("1", "2"), ("Pen, blue", 'Paper 8.5" x 11"'), ("<a_1><b_2>", "<a_1><b_3>"),
                "B00X", "Kid's \"glue\"", "<a_2><b_0><c_7>"),
    SequenceRow("U2", ("007", "B00X"), ("Zero-seven", "Kid's \"glue\""), ("<a_0>", "<a_2><b_0><c_7>"), "1",
                "Pen, blue", "<a_1><b_2>"),
    SequenceRow("U3", (), (), (), "1", "Pen, blue", "<a_1><b_2>"),
]


def _raises(exc_type, message: str):
    return pytest.raises(exc_type, match=f"^{re.escape(message)}$")


def _write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# -- round trips ------------------------------------------------------------------------------------
def test_split_csv_round_trip(tmp_path):
    path = tmp_path / "train" / "x.csv"
    write_split_csv(path, ROWS)
    back = read_split_csv(path)
    assert back == ROWS
    assert [r.line for r in back] == [2, 3, 4, 5]
    assert path.read_text().splitlines()[0] == HEADER
    # numeric ids are written as ints (release spelling), others as strings; "007" must stay a string
    assert "\"['007', 'B00X']\"" in path.read_text()
    assert ",\"[1, 'B00X']\"," not in path.read_text() and "[1]" in path.read_text()


def test_index_json_round_trip(tmp_path):
    index = {"1": "<a_1><b_2>", "2": "<a_1><b_3>", "B00X": "<a_2><b_0><c_7><d_1>"}
    path = tmp_path / "x.index.json"
    write_index_json(path, index)
    assert json.loads(path.read_text())["B00X"] == ["<a_2>", "<b_0>", "<c_7>", "<d_1>"]
    assert read_index_json(path) == index


def test_item_json_round_trip(tmp_path):
    items = {"1": Item("1", "Pen, blue", "['A pen.']", "Bic", ""), "2": Item("2", "Ünïcode “quotes”")}
    path = tmp_path / "x.item.json"
    write_item_json(path, items)
    assert read_item_json(path) == items


def test_item_json_non_string_fields_become_json(tmp_path):
    path = _write(tmp_path, "i.json", json.dumps({"1": {"title": "T", "categories": ["a", "b"], "brand": None}}))
    assert read_item_json(path)["1"] == Item("1", "T", "", "", '["a", "b"]')


def test_info_round_trip(tmp_path):
    rows = [InfoRow("<a_1><b_2>", "Pen,  blue (double space kept)", "1"), InfoRow("<a_1><b_3>", "Paper", "2")]
    path = tmp_path / "info.txt"
    write_info(path, rows)
    back = read_info(path)
    assert back == rows and [r.line for r in back] == [1, 2]


def test_info_writer_replaces_tabs_and_newlines(tmp_path):
    path = tmp_path / "info.txt"
    write_info(path, [InfoRow("<a_1>", "a\tb\nc", "1")])
    assert path.read_text() == "<a_1>\ta b c\t1\n"


def test_writers_are_atomic(tmp_path):
    path = tmp_path / "x.csv"
    write_split_csv(path, ROWS)
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]  # no temp file left behind


def test_real_office_files_round_trip_byte_for_byte(office_dir, tmp_path):
    """The writers reproduce the released spelling (valid/test and info byte-identical; the train file
    differs only in its CRLF line ends)."""
    paths = ReleasePaths(office_dir, "Office_Products")
    for split in ("valid", "train"):
        out = tmp_path / f"{split}.csv"
        write_split_csv(out, read_split_csv(paths.split(split)))
        assert out.read_bytes() == paths.split(split).read_bytes().replace(b"\r\n", b"\n")
    write_info(tmp_path / "info.txt", read_info(paths.info))
    assert (tmp_path / "info.txt").read_bytes() == paths.info.read_bytes()
    write_index_json(tmp_path / "i.json", read_index_json(paths.index_json))
    assert json.loads((tmp_path / "i.json").read_text()) == json.loads(paths.index_json.read_text())


# -- bad input: split CSV -----------------------------------------------------------------------------
GOOD_ROW = "U1,\"['t1', 't2']\",T,\"[1, 2]\",3,\"['<a_1>', '<a_2>']\",<a_3>"


@pytest.mark.parametrize("row, message", [
    ("U1,\"['t1', 't2'\",T,\"[1, 2]\",3,\"['<a_1>', '<a_2>']\",<a_3>",
     "line 2, field 'history_item_title': not a Python-literal list: \"['t1', 't2'\" (SyntaxError)"),
    ("U1,\"['t1', 't2']\",T,\"[1, 2\",3,\"['<a_1>', '<a_2>']\",<a_3>",
     "line 2, field 'history_item_id': not a Python-literal list: '[1, 2' (SyntaxError)"),
    ("U1,\"['t1', 't2']\",T,\"__import__('os').getcwd()\",3,\"['<a_1>', '<a_2>']\",<a_3>",
     "line 2, field 'history_item_id': not a Python-literal list: \"__import__('os').getcwd()\" (ValueError)"),
    ("U1,\"['t1', 't2']\",T,5,3,\"['<a_1>', '<a_2>']\",<a_3>",
     "line 2, field 'history_item_id': expected a list, got int: '5'"),
    ("U1,\"['t1', 't2']\",T,\"[1]\",3,\"['<a_1>', '<a_2>']\",<a_3>",
     "line 2, field 'history_item_sid': history lengths differ: 2 titles, 1 ids, 2 SIDs"),
    ("U1,\"['t1', 't2']\",T,\"[1, 2]\",3,\"['<a_1>', '<b_2>']\",<a_3>",
     "line 2, field 'history_item_sid': SID '<b_2>': token <b_2> at position 0, expected level 'a'"),
    ("U1,\"['t1', 't2']\",T,\"[1, 2]\",3,\"['<a_1>', 7]\",<a_3>",
     "line 2, field 'history_item_sid': SID must be a string, got 7"),
    ("U1,\"['t1', 't2']\",T,\"[1, 2]\",3,\"['<a_1>', '<a_2>']\",a_3",
     "line 2, field 'item_sid': unexpected text 'a_3' in SID 'a_3'"),
    ("U1,\"['t1', 't2']\",T,\"[1, 2]\", ,\"['<a_1>', '<a_2>']\",<a_3>",
     "line 2, field 'item_id': empty item id"),
    ("U1,\"['t1', 't2']\",T,\"[1, 2]\",3", "line 2: row has 5 fields, header has 7"),
    (GOOD_ROW + ",extra,more", "line 2: row has 9 fields, header has 7"),
])
def test_split_csv_bad_row(tmp_path, row, message):
    path = _write(tmp_path, "s.csv", f"{HEADER}\n{row}\n")
    with _raises(DataError, f"{path}, {message}") as info:
        read_split_csv(path)
    assert info.value.row == 2


def test_split_csv_good_row_parses(tmp_path):
    path = _write(tmp_path, "s.csv", f"{HEADER}\n{GOOD_ROW}\n")
    assert read_split_csv(path) == [SequenceRow("U1", ("1", "2"), ("t1", "t2"), ("<a_1>", "<a_2>"), "3", "T", "<a_3>")]


def test_split_csv_missing_column(tmp_path):
    cols = [c for c in SPLIT_COLUMNS if c != "item_sid"]
    path = _write(tmp_path, "s.csv", ",".join(cols) + "\n")
    with _raises(DataError, f"{path}, line 1: missing columns ['item_sid']; found {cols}"):
        read_split_csv(path)


def test_split_csv_empty_file(tmp_path):
    path = _write(tmp_path, "s.csv", "")
    with _raises(DataError, f"{path}, line 1: missing columns {list(SPLIT_COLUMNS)}; found None"):
        read_split_csv(path)


def test_missing_file_and_directory(tmp_path):
    with _raises(DataError, f"{tmp_path / 'nope.csv'}: file not found"):
        read_split_csv(tmp_path / "nope.csv")
    with _raises(DataError, f"{tmp_path}: file not found (it is a directory)"):
        read_info(tmp_path)
    for reader in (read_index_json, read_item_json):
        with _raises(DataError, f"{tmp_path / 'x.json'}: file not found"):
            reader(tmp_path / "x.json")


def test_not_utf8(tmp_path):
    for name, reader in (("s.csv", read_split_csv), ("i.json", read_index_json), ("info.txt", read_info)):
        path = tmp_path / name
        path.write_bytes(HEADER.encode() + b"\n\xff\xfe\n" if name.endswith(".csv") else b"\xff\xfe")
        with _raises(DataError, f"{path}: not UTF-8 text (invalid start byte)"):
            reader(path)


def test_on_error_collects_every_bad_row(tmp_path):
    rows = [GOOD_ROW, "U1,\"['t1', 't2']\",T,\"[1, 2]\",3", GOOD_ROW, GOOD_ROW.replace("<a_3>", "<c_3>")]
    path = _write(tmp_path, "s.csv", HEADER + "\n" + "\n".join(rows) + "\n")
    errors: list[DataError] = []
    good = read_split_csv(path, on_error=errors.append)
    assert [r.line for r in good] == [2, 4]
    assert [(e.row, e.field) for e in errors] == [(3, None), (5, "item_sid")]


# -- bad input: JSON files -----------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ('{"1": ["<a_1>"],\n "2": ["<a_2>"]\n "3": []}', "line 3: invalid JSON: Expecting ',' delimiter"),
    ('["<a_1>"]', "expected a JSON object at top level, got list"),
    ('{"1": []}', "field '1': item '1': expected a non-empty list of SID tokens, got []"),
    ('{"1": "<a_1>"}', "field '1': item '1': expected a non-empty list of SID tokens, got '<a_1>'"),
    ('{"1": ["<a_1>", 5]}', "field '1': item '1': expected a non-empty list of SID tokens, got ['<a_1>', 5]"),
    ('{"7": ["<a_1>", "<c_2>"]}',
     "field '7': item '7': SID '<a_1><c_2>': token <c_2> at position 1, expected level 'b'"),
])
def test_index_json_errors(tmp_path, text, message):
    path = _write(tmp_path, "x.index.json", text)
    with _raises(DataError, f"{path}, {message}" if message.startswith(("line", "field")) else f"{path}: {message}"):
        read_index_json(path)


@pytest.mark.parametrize("text, message", [
    ('{"1": "Pen"}', "field '1': item '1': expected an object, got str"),
    ('{"1": {"description": "d"}}', "field '1.title': item '1': missing or non-string 'title'"),
    ('{"1": {"title": 3}}', "field '1.title': item '1': missing or non-string 'title'"),
])
def test_item_json_errors(tmp_path, text, message):
    path = _write(tmp_path, "x.item.json", text)
    with _raises(DataError, f"{path}, {message}"):
        read_item_json(path)


# -- bad input: info file ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("<a_1>\tPen\t1\n<a_2>\tPaper\n", "line 2: expected 3 tab-separated fields (SID, title, item_id), got 2"),
    ("<a_1>\tPen\t1\n\n<a_2>\tPaper\t2\n", "line 2: empty line"),
    ("<a_1>\tPen\t1\n<a_2><a_3>\tPaper\t2\n", "line 2, field 'sid': SID '<a_2><a_3>': token <a_3> at position 1, "
                                              "expected level 'b'"),
    ("<a_1>\tPen\t1\tx\n", "line 1: expected 3 tab-separated fields (SID, title, item_id), got 4"),
])
def test_info_errors(tmp_path, text, message):
    path = _write(tmp_path, "info.txt", text)
    with _raises(DataError, f"{path}, {message}"):
        read_info(path)


def test_info_on_error_skips_bad_lines(tmp_path):
    path = _write(tmp_path, "info.txt", "<a_1>\tPen\t1\nbad\n<a_2>\tPaper\t2\n")
    errors: list[DataError] = []
    assert [r.item_id for r in read_info(path, on_error=errors.append)] == ["1", "2"]
    assert [e.row for e in errors] == [2]


def test_data_error_message_parts():
    assert str(DataError("f.csv", "bad", 3, "item_id")) == "f.csv, line 3, field 'item_id': bad"
    assert str(DataError("f.csv", "bad")) == "f.csv: bad"
    e = DataError("f.csv", "bad", field="x")
    assert (e.path, e.row, e.field, e.reason, str(e)) == ("f.csv", None, "x", "bad", "f.csv, field 'x': bad")
