"""Cross-file validation (sidreasoner/data/validate.py): each problem kind on a tiny hand-made release.

``write_release`` (also used by test_check_data.py) writes a consistent 6-item release with the
formats.py writers; each test breaks one thing and checks the exact problem reported.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sidreasoner.data.corpora import NarrativeRow, write_item_enhanced, write_narratives
from sidreasoner.data.formats import write_index_json, write_info, write_item_json, write_split_csv
from sidreasoner.data.records import InfoRow, Item, ReleasePaths, SequenceRow
from sidreasoner.data.validate import KINDS, Problem, ValidationReport, validate_release

CATEGORY = "Toy"
#: item id -> (SID, title). Items 5 and 6 share a SID (one collision, as the real release has 15).
ITEMS = {"1": ("<a_0><b_0><c_0>", "Red pen"), "2": ("<a_0><b_0><c_1>", "Blue pen"),
         "3": ("<a_0><b_1><c_0>", "Stapler"), "4": ("<a_1><b_0><c_0>", "Paper"),
         "5": ("<a_1><b_1><c_0>", "Glue"), "6": ("<a_1><b_1><c_0>", "Glue stick")}


def row(user: str, history: list[str], target: str) -> SequenceRow:
    return SequenceRow(user, tuple(history), tuple(ITEMS[i][1] for i in history), tuple(ITEMS[i][0] for i in history),
                       target, ITEMS[target][1], ITEMS[target][0])


#: train sees items 1-4; item 5 is a cold target in valid and test; item 6 is in no split
SPLIT_ROWS = {
    "train": [row("U1", ["1"], "2"), row("U1", ["1", "2"], "3"), row("U2", ["4"], "2")],
    "valid": [row("U1", ["1", "2", "3"], "4"), row("U3", ["2"], "5")],
    "test": [row("U2", ["4", "2"], "5"), row("U1", ["1", "2", "3", "4"], "1")],
}


def write_release(root: Path, splits=None, index=None, items=None, info=None) -> ReleasePaths:
    """Write the tiny release (or the given replacements of its parts) under ``root``."""
    paths = ReleasePaths(root, CATEGORY)
    for name, rows in (splits or SPLIT_ROWS).items():
        write_split_csv(paths.split(name), rows)
    index = index if index is not None else {i: sid for i, (sid, _) in ITEMS.items()}
    write_index_json(paths.index_json, index)
    write_item_json(paths.item_json, items if items is not None else {i: Item(i, t) for i, (_, t) in ITEMS.items()})
    write_info(paths.info, info if info is not None else [InfoRow(s, t, i) for i, (s, t) in ITEMS.items()])
    return paths


def problems(report: ValidationReport, kind: str) -> list[tuple]:
    return [(Path(p.path).name, p.row, p.field, p.message) for p in report.problems if p.kind == kind]


def with_row(split: str, index: int, new: SequenceRow) -> dict:
    splits = {k: list(v) for k, v in SPLIT_ROWS.items()}
    splits[split][index] = new
    return splits


CSV = f"{CATEGORY}_5_2016-10-2018-11.csv"


def test_clean_release_is_valid_with_the_collision_as_warning(tmp_path):
    report = validate_release(write_release(tmp_path))
    assert report.ok
    assert report.counts() == {"sid_collision": 1}
    assert problems(report, "sid_collision") == [
        ("Toy.index.json", None, "5", "SID <a_1><b_1><c_0> is shared by items 5, 6")]
    assert len(report.files) == 6 and report.files[str(ReleasePaths(tmp_path, CATEGORY).split("train"))] == 3


def test_missing_file_is_an_error_and_the_rest_is_still_checked(tmp_path):
    paths = write_release(tmp_path, splits=with_row("train", 0, replace(SPLIT_ROWS["train"][0], item_id="99")))
    paths.split("valid").unlink()
    report = validate_release(paths)
    assert not report.ok
    assert problems(report, "unreadable_file") == [(CSV, None, None, "file not found")]
    assert problems(report, "unknown_item") == [(CSV, 2, "item_id", "target: item id '99' is not in index.json")]


def _append_line(path: Path, line: str) -> None:
    path.write_text(path.read_text() + line + "\n")


@pytest.mark.parametrize("line, kind, field, message", [
    ("U9,\"['Red pen']\",Blue pen,[1],2", "malformed_row", None, "row has 5 fields, header has 7"),
    ("U9,\"['Red pen']\",Blue pen,\"[1\",2,\"['<a_0><b_0><c_0>']\",<a_0><b_0><c_1>", "unparsable_list",
     "history_item_id", "not a Python-literal list: '[1' (SyntaxError)"),
    ("U9,\"['Red pen']\",Blue pen,[1],2,\"['<a_0><c_0>']\",<a_0><b_0><c_1>", "bad_sid", "history_item_sid",
     "SID '<a_0><c_0>': token <c_0> at position 1, expected level 'b'"),
    ("U9,\"['Red pen']\",Blue pen,\"[1, 2]\",2,\"['<a_0><b_0><c_0>']\",<a_0><b_0><c_1>", "history_length_mismatch",
     "history_item_sid", "history lengths differ: 1 titles, 2 ids, 1 SIDs"),
])
def test_reader_row_errors_are_classified_and_do_not_stop_the_check(tmp_path, line, kind, field, message):
    paths = write_release(tmp_path)
    _append_line(paths.split("train"), line)  # line 5
    _append_line(paths.split("train"), "U9,\"['Red pen']\",Blue pen,[1],2,\"['<a_0><b_0><c_1>']\",<a_0><b_0><c_1>")
    report = validate_release(paths)
    assert report.counts() == {kind: 1, "sid_mismatch": 1, "sid_collision": 1}
    assert problems(report, kind) == [(CSV, 5, field, message)]
    # the row after the broken one was still read and checked
    assert problems(report, "sid_mismatch") == [(CSV, 6, "history_item_sid", "history position 0: SID <a_0><b_0><c_1> "
                                                 "for item '1', but index.json has <a_0><b_0><c_0>")]


def test_sid_not_in_index_and_unknown_history_item(tmp_path):
    bad = replace(SPLIT_ROWS["valid"][1], item_sid="<a_9><b_9><c_9>", history_item_ids=("77",))
    report = validate_release(write_release(tmp_path, splits=with_row("valid", 1, bad)))
    assert problems(report, "sid_not_in_index") == [
        (CSV, 3, "item_sid", "target: SID <a_9><b_9><c_9> for item '5', but index.json has <a_1><b_1><c_0> "
                             "(and no catalogue item has that SID)")]
    assert problems(report, "unknown_item") == [
        (CSV, 3, "history_item_id", "history position 0: item id '77' is not in index.json")]
    assert report.files[str(ReleasePaths(tmp_path, CATEGORY).split("valid"))] == 2


def test_empty_and_long_histories(tmp_path):
    splits = with_row("train", 2, replace(SPLIT_ROWS["train"][2], history_item_ids=(), history_titles=(),
                                          history_sids=()))
    report = validate_release(write_release(tmp_path, splits=splits), max_history=2)
    assert problems(report, "empty_history") == [(CSV, 4, "history_item_id", "history is empty")]
    assert problems(report, "long_history") == [
        (CSV, 2, "history_item_id", "history has 3 items (max 2)"),
        (CSV, 3, "history_item_id", "history has 4 items (max 2)")]
    assert KINDS["long_history"][0] == "warning" and KINDS["empty_history"][0] == "error"
    assert not report.ok


def test_title_mismatch_is_a_warning(tmp_path):
    bad = replace(SPLIT_ROWS["test"][0], history_titles=("Paper", "Blue ink pen"))
    report = validate_release(write_release(tmp_path, splits=with_row("test", 0, bad)))
    assert report.ok
    assert problems(report, "title_mismatch") == [
        (CSV, 2, "history_item_title", "history position 1: item '2': title 'Blue ink pen' differs from item.json's "
                                       "'Blue pen'")]


def test_info_file_checks(tmp_path):
    info = [InfoRow(s, t, i) for i, (s, t) in ITEMS.items() if i != "4"]
    info[0] = InfoRow("<a_0><b_0><c_1>", "Red pen", "1")          # line 1: SID differs from index.json
    info.append(InfoRow("<a_0><b_0><c_1>", "Blue pen", "2"))      # line 6: item 2 again
    info.append(InfoRow("<a_5><b_5><c_5>", "Ghost", "42"))        # line 7: unknown item
    report = validate_release(write_release(tmp_path, info=info))
    name = f"{CATEGORY}_5_2016-10-2018-11.txt"
    assert problems(report, "info_sid_mismatch") == [
        (name, 1, "sid", "item '1' has SID <a_0><b_0><c_1> here but <a_0><b_0><c_0> in index.json")]
    assert problems(report, "duplicate_info_item") == [(name, 6, "item_id", "item '2' already listed on line 2")]
    assert problems(report, "unknown_item") == [(name, 7, "item_id", "item '42' is not in index.json")]
    assert problems(report, "missing_from_info") == [(name, None, "item_id", "item '4' of index.json is not listed")]


def test_metadata_coverage(tmp_path):
    items = {i: Item(i, t) for i, (_, t) in ITEMS.items() if i != "3"}
    items["8"] = Item("8", "Orphan")
    report = validate_release(write_release(tmp_path, items=items))
    assert problems(report, "missing_metadata") == [
        ("Toy.item.json", None, "3", "item '3' is in index.json but has no metadata")]
    assert problems(report, "metadata_without_sid") == [
        ("Toy.item.json", None, "8", "item '8' has metadata but no SID in index.json")]
    assert not report.ok


def test_unreadable_index_is_reported_and_cross_checks_are_skipped(tmp_path):
    paths = write_release(tmp_path)
    paths.index_json.write_text('{"1": ["<a_0>", "<c_0>"]}')
    report = validate_release(paths)
    assert report.counts() == {"unreadable_file": 1}
    assert problems(report, "unreadable_file") == [
        ("Toy.index.json", None, "1", "item '1': SID '<a_0><c_0>': token <c_0> at position 1, expected level 'b'")]


def test_teacher_corpora_are_checked_when_present(tmp_path):
    paths = write_release(tmp_path)
    write_item_enhanced(paths.item_enhanced, {
        "1": "<think>plan</think>Item <a_0><b_0><c_0> is a red pen, in group <a_0><b_0>.",
        "2": "Mentions <a_7><b_7><c_7>.", "3": "<think>never closed"})
    write_narratives(paths.narrative, [
        NarrativeRow(("<a_0><b_0><c_0>",), "<a_0><b_0><c_1>", "After <a_0><b_0><c_0> comes <a_0><b_0><c_1>.", "why"),
        NarrativeRow(("<a_0><b_0><c_0>", "<a_3><b_3><c_3>"), "<a_0><b_0><c_1>", "text", "<think>x</think>reason")])
    report = validate_release(paths)
    assert problems(report, "corpus_unknown_mention") == [
        ("Toy.item_enhanced_v2.json", None, "2.llm_stage2", "mentions <a_7><b_7><c_7>")]
    assert problems(report, "corpus_unknown_sid") == [
        ("Toy.integrated_narrative.csv", 3, "history_item_sid", "SID <a_3><b_3><c_3> is no catalogue SID")]
    assert problems(report, "corpus_skipped") == [
        ("Toy.item_enhanced_v2.json", None, None, "1 entries: empty 'llm_stage2' after removing <think> (first: 3)")]
    assert "item_enhanced: 3 SID mentions (1 catalogue SIDs, 1 prefixes, 1 unknown)" in report.notes
    assert "narrative: 2 SID mentions (2 catalogue SIDs, 0 prefixes, 0 unknown)" in report.notes


def test_report_format_shows_first_examples_and_totals():
    report = ValidationReport()
    for i in range(7):
        report.add("unknown_item", "f.csv", f"item id '{i}' is not in index.json", i + 2, "item_id")
    report.add("long_history", "f.csv", "history has 11 items (max 10)", 3, "history_item_id")
    text = report.format(max_examples=2)
    assert text.splitlines() == [
        "validation: 7 error(s), 1 warning(s) in 0 file(s) read",
        "ERROR unknown_item (7): item id not in index.json",
        "  f.csv, line 2, field 'item_id': item id '0' is not in index.json",
        "  f.csv, line 3, field 'item_id': item id '1' is not in index.json",
        "  ... and 5 more",
        "WARNING long_history (1): history longer than the maximum",
        "  f.csv, line 3, field 'history_item_id': history has 11 items (max 10)",
        "RESULT: INVALID",
    ]
    d = report.to_dict(max_examples=1)
    assert (d["ok"], d["errors"], d["warnings"]) == (False, 7, 1)
    assert d["problems"]["unknown_item"]["count"] == 7
    assert d["problems"]["unknown_item"]["examples"] == [
        {"severity": "error", "kind": "unknown_item", "path": "f.csv", "row": 2, "field": "item_id",
         "message": "item id '0' is not in index.json"}]


def test_problem_str_matches_data_error_spelling():
    assert str(Problem("error", "bad_sid", "a.csv", 4, "item_sid", "x")) == "a.csv, line 4, field 'item_sid': x"
    assert str(Problem("warning", "sid_collision", "i.json", None, "5", "y")) == "i.json, field '5': y"
