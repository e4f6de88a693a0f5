"""SIDIndex (sidreasoner/sid/index.py): lookups, collisions, level facts; read from files by sidreasoner.data.formats."""
from __future__ import annotations

from collections import Counter

import pytest

from sidreasoner.data.formats import (info_rows, read_info_index, read_sid_index, write_index_json, write_info,
                                      write_item_json)
from sidreasoner.data.records import InfoRow, Item, ReleasePaths
from sidreasoner.sid.index import SIDIndex, sids_of
from sidreasoner.sid.spelling import SIDFormatError

# items 3, 4 and 5 share one SID (3 pairs); 6 has a 4-level SID (a collision-resolving extra level)
ITEMS = {"1": "<a_1><b_2><c_3>", "2": "<a_1><b_10><c_3>", "3": "<a_2><b_0><c_0>", "4": "<a_2><b_0><c_0>",
         "5": "<a_2><b_0><c_0>", "6": "<a_10><b_2><c_3><d_1>", "7": "<a_1><b_2><c_4>"}
TITLES = {"1": "Pen", "3": "Glue A", "4": "Glue B"}


@pytest.fixture()
def index() -> SIDIndex:
    return SIDIndex(ITEMS, TITLES)


def test_lookups(index):
    assert len(index) == 7
    assert "1" in index and 1 in index and "99" not in index  # ids are strings; ints are looked up as strings
    assert index.sid("6") == "<a_10><b_2><c_3><d_1>" and index.sid(2) == "<a_1><b_10><c_3>"
    assert index.is_valid_sid("<a_2><b_0><c_0>") and not index.is_valid_sid("<a_2><b_0>")
    with pytest.raises(KeyError):
        index.sid("99")
    assert sids_of(index, ["1", "3"]) == ["<a_1><b_2><c_3>", "<a_2><b_0><c_0>"]


def test_unique_sids_keep_first_seen_order(index):
    assert index.unique_sids() == ["<a_1><b_2><c_3>", "<a_1><b_10><c_3>", "<a_2><b_0><c_0>",
                                   "<a_10><b_2><c_3><d_1>", "<a_1><b_2><c_4>"]


def test_collisions(index):
    assert index.collisions() == {"<a_2><b_0><c_0>": ["3", "4", "5"]}
    assert index.colliding_pairs() == 3  # 3 items on one SID: 3*2/2
    assert index.title_of_sid("<a_2><b_0><c_0>") == "Glue A"  # the first item's title
    assert index.title_of_sid("<a_1><b_10><c_3>") == ""  # item without a title
    assert index.title_of_sid("<a_9>") == ""  # unknown SID


@pytest.mark.parametrize("item_to_sid, pairs", [
    ({}, 0), ({"1": "<a_1>"}, 0), ({"1": "<a_1>", "2": "<a_1>"}, 1),
    ({"1": "<a_1>", "2": "<a_1>", "3": "<a_2>", "4": "<a_2>"}, 2),
    ({str(i): "<a_0>" for i in range(5)}, 10),
])
def test_colliding_pairs_table(item_to_sid, pairs):
    assert SIDIndex(item_to_sid).colliding_pairs() == pairs


def test_level_facts(index):
    assert index.level_counts() == Counter({3: 4, 4: 1})
    assert index.codes_per_level() == [3, 3, 3, 1]  # a: {1,2,10}; b: {2,10,0}; c: {3,0,4}; d: {1}
    # sorted by level, then numerically by code (<a_2> before <a_10>)
    assert index.tokens() == ["<a_1>", "<a_2>", "<a_10>", "<b_0>", "<b_2>", "<b_10>", "<c_0>", "<c_3>", "<c_4>",
                              "<d_1>"]
    assert SIDIndex.tokens_of("<a_1><b_2>") == ["<a_1>", "<b_2>"]


def test_invalid_sid_is_rejected():
    with pytest.raises(SIDFormatError, match=r"^SID '<a_1><c_2>': token <c_2> at position 1, expected level 'b'$"):
        SIDIndex({"1": "<a_1><c_2>"})


def test_from_files_and_info_rows(tmp_path):
    paths = ReleasePaths(tmp_path, "Toy")
    write_index_json(paths.index_json, ITEMS)
    write_item_json(paths.item_json, {i: Item(i, f"title {i}") for i in ITEMS})
    index = read_sid_index(paths.index_json, paths.item_json)
    assert index.item_to_sid == ITEMS and index.titles["6"] == "title 6"
    assert read_sid_index(paths.index_json).titles == {}
    write_info(paths.info, info_rows(index))
    again = read_info_index(paths.info)
    assert again.item_to_sid == ITEMS and again.titles == index.titles
    assert info_rows(index)[0] == InfoRow("<a_1><b_2><c_3>", "title 1", "1")


def test_real_office_index(office_dir):
    paths = ReleasePaths(office_dir, "Office_Products")
    index = read_sid_index(paths.index_json, paths.item_json)
    assert len(index) == 3459
    assert index.colliding_pairs() == 15 and len(index.collisions()) == 15
    assert len(index.unique_sids()) == 3459 - 15
    assert index.level_counts() == Counter({3: 3444})
    assert index.codes_per_level() == [88, 256, 256]
    assert index.sid("0") == "<a_60><b_159><c_203>"
    assert index.titles["0"].startswith("HP 74 Black & 75 Tri-color")
    info = read_info_index(paths.info)
    assert info.item_to_sid == index.item_to_sid
