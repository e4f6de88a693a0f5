"""HR@K / NDCG@K: hand-computed tables, edge rules (duplicates, short rows, invalid beams), bad rows, CLI."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from sidreasoner.data.formats import read_info, read_split_csv, write_info
from sidreasoner.data.records import DataError, InfoRow, ReleasePaths
from sidreasoner.eval.metrics import compute_metrics, resolve_ks, target_rank

T = "<a_1><b_1><c_1>"


def other(i: int) -> str:
    return f"<a_9><b_9><c_{i}>"


def ranked_with_target_at(rank, length=10, target=T):
    """A list of `length` distinct SIDs with `target` at 1-based `rank` (None: absent)."""
    out = [other(i) for i in range(length)]
    if rank is not None:
        out[rank - 1] = target
    return out


def row(rank, length=10, user="u", target=T):
    return {"user_id": user, "target": target, "ranked": ranked_with_target_at(rank, length, target),
            "scores": [-float(i) for i in range(length)]}


# one row: (rank of the target, {metric: hand-computed value})
SINGLE = [
    (1, {"HR@1": 1, "HR@3": 1, "HR@10": 1, "NDCG@1": 1.0, "NDCG@3": 1.0, "NDCG@10": 1.0}),
    (2, {"HR@1": 0, "HR@3": 1, "NDCG@3": 1 / math.log2(3), "NDCG@10": 0.6309297535714575}),
    (3, {"HR@1": 0, "HR@3": 1, "HR@5": 1, "NDCG@1": 0.0, "NDCG@3": 0.5, "NDCG@5": 0.5, "NDCG@10": 0.5}),
    (7, {"HR@5": 0, "HR@10": 1, "NDCG@5": 0.0, "NDCG@10": 1 / 3}),
    (10, {"HR@5": 0, "HR@10": 1, "NDCG@10": 1 / math.log2(11)}),
    (None, {"HR@1": 0, "HR@10": 0, "NDCG@10": 0.0}),
]


@pytest.mark.parametrize("rank, expected", SINGLE)
def test_single_row(rank, expected):
    m = compute_metrics([row(rank)])
    for k, v in expected.items():
        assert m[k] == pytest.approx(v), k


def test_average_over_rows_by_hand():
    # ranks 3, 1, absent, 7 over four rows
    m = compute_metrics([row(3), row(1), row(None), row(7)])
    assert [k for k in m if "@" in k] == ["HR@1", "HR@3", "HR@5", "HR@10", "NDCG@1", "NDCG@3", "NDCG@5", "NDCG@10"]
    assert (m["HR@1"], m["HR@3"], m["HR@5"], m["HR@10"]) == (0.25, 0.5, 0.5, 0.75)
    assert m["NDCG@1"] == 0.25
    assert m["NDCG@3"] == pytest.approx((0.5 + 1) / 4)  # 0.375
    assert m["NDCG@5"] == pytest.approx(0.375)
    assert m["NDCG@10"] == pytest.approx((0.5 + 1 + 1 / 3) / 4)  # 0.458333...
    assert (m["n"], m["num_beams"], m["predictions"], m["rows_short"], m["rows_with_duplicates"]) == (4, 10, 40, 0, 0)
    assert m["invalid_rate"] is None and m["invalid_predictions"] is None


@pytest.mark.parametrize("ks, beams, expected", [
    (None, 10, (1, 3, 5, 10)), (None, 50, (1, 3, 5, 10, 20, 50)), (None, 15, (1, 3, 5, 10)),
    (None, 2, (1,)), (None, 0, (1,)), ([10, 1, 5, 5], 10, (1, 5, 10)),
])
def test_resolve_ks(ks, beams, expected):
    assert resolve_ks(ks, beams) == expected


def test_explicit_ks_and_beams():
    m = compute_metrics([row(3, length=20)], ks=[1, 20], num_beams=20)
    assert (m["HR@1"], m["HR@20"], m["NDCG@20"]) == (0, 1, 0.5)
    with pytest.raises(ValueError, match=r"^K=20 exceeds num_beams=10: HR@20 would equal HR@10$"):
        compute_metrics([row(3)], ks=[5, 20], num_beams=10)


def test_duplicates_keep_first_occurrence_and_positions():
    dup = {"user_id": "u", "target": T, "ranked": [other(0), other(0), T, T, other(1)]}
    assert target_rank(dup["ranked"], T) == 3
    m = compute_metrics([dup], ks=[1, 3, 5])
    # rank 3 as returned (not 2 after removing the repeat); the second T adds nothing
    assert (m["HR@1"], m["HR@3"], m["NDCG@3"], m["NDCG@5"]) == (0, 1, 0.5, 0.5)
    assert m["rows_with_duplicates"] == 1
    # a generator repeating one SID cannot pull a late target into the top K
    spam = {"user_id": "v", "target": T, "ranked": [other(0)] * 10 + [T]}
    assert compute_metrics([spam], ks=[10])["HR@10"] == 0


def test_short_rows_and_invalid_beams():
    catalogue = {T} | {other(i) for i in range(8)}  # other(8), other(9) are not items
    rows = [row(1), row(2, length=5), {"user_id": "w", "target": T, "ranked": []}]
    m = compute_metrics(rows, catalogue=catalogue)
    assert (m["num_beams"], m["rows_short"], m["predictions"]) == (10, 2, 15)
    # row 1 returns T, other(1..9): other(8), other(9) are invalid; row 2 returns T, other(0, 2, 3, 4): all valid
    assert m["invalid_predictions"] == 2 and m["invalid_rate"] == pytest.approx(2 / 15)
    assert m["HR@1"] == pytest.approx(1 / 3) and m["NDCG@3"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert compute_metrics(rows, catalogue=catalogue, num_beams=20)["rows_short"] == 3


def test_matching_is_by_sid_string():
    # colliding items share one SID string: predicting that string is a hit for either item
    assert compute_metrics([{"user_id": 1, "target": T, "ranked": [T]}])["HR@1"] == 1
    # a different spelling of the same codes is not the string: spaces make it a miss
    assert compute_metrics([{"user_id": 1, "target": T, "ranked": ["<a_1> <b_1> <c_1>"]}])["HR@1"] == 0


@pytest.mark.parametrize("rec, message", [
    ([1, 2], "<records>, line 2: expected a JSON object, got list"),
    ({"user_id": "u", "ranked": []}, "<records>, line 2, field 'target': missing field (have ['ranked', 'user_id'])"),
    ({"user_id": None, "target": T, "ranked": []}, "<records>, line 2, field 'user_id': expected a string or integer, got None"),
    ({"user_id": "u", "target": "<b_1>", "ranked": []},
     "<records>, line 2, field 'target': SID '<b_1>': token <b_1> at position 0, expected level 'a'"),
    ({"user_id": "u", "target": T, "ranked": T}, "<records>, line 2, field 'ranked': expected a list of SID strings, got str"),
    ({"user_id": "u", "target": T, "ranked": [T, 5]}, "<records>, line 2, field 'ranked': ranked[1] is 5, expected a SID string"),
    ({"user_id": "u", "target": T, "ranked": [T], "scores": [1.0, 2.0]},
     "<records>, line 2, field 'scores': expected a list of 1 numbers (one per ranked SID), got [1.0, 2.0]"),
    ({"user_id": "u", "target": T, "ranked": [T], "scores": ["x"]}, "<records>, line 2, field 'scores': non-numeric score in ['x']"),
])
def test_bad_records_name_row_and_field(rec, message):
    with pytest.raises(DataError) as e:
        compute_metrics([row(1), rec])
    assert str(e.value) == message


def test_no_rows():
    with pytest.raises(DataError, match=r"^<records>: no prediction rows to score$"):
        compute_metrics([])


# -- CLI -----------------------------------------------------------------------------------------

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sidreasoner.eval.metrics", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def write_jsonl(path, rows, extra_lines=()):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(extra_lines), encoding="utf-8")
    return path


def test_cli_help():
    r = run_cli("--help")
    assert r.returncode == 0 and "--info_file" in r.stdout and "--ks" in r.stdout


def test_cli_recomputes_and_writes(tmp_path):
    preds = write_jsonl(tmp_path / "predictions.jsonl", [row(3), row(1), row(None), row(7)], extra_lines=["\n"])
    info = tmp_path / "info.txt"
    write_info(info, [InfoRow(T, "target item", "0")] + [InfoRow(other(i), f"item {i}", str(i + 1)) for i in range(5)])
    out = tmp_path / "m" / "metrics.json"
    r = run_cli(preds, "--info_file", info, "--ks", "1,3,10", "--output", out)
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    assert (m["HR@1"], m["HR@3"], m["HR@10"]) == (0.25, 0.5, 0.75)
    assert m["NDCG@10"] == pytest.approx(0.4583333333333333)
    # other(5..9) are not in the info file: 5 of them in each of the rows with rank 3, 1 and none, 4 in the
    # rank-7 row (its other(6) was replaced by the target)
    assert (m["predictions"], m["invalid_predictions"]) == (40, 19)
    assert "HR@5" not in m
    assert "NDCG@10               0.4583" in r.stdout
    assert "skipped 1 blank line(s)" in r.stderr
    config = json.loads((tmp_path / "m" / "metrics.config.json").read_text())
    assert config["ks"] == [1, 3, 10] and config["info_file"] == str(info)


def test_cli_bad_line_names_file_and_line(tmp_path):
    preds = write_jsonl(tmp_path / "p.jsonl", [row(1)], extra_lines=["not json\n"])
    r = run_cli(preds)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {preds}, line 2: invalid JSON: Expecting value (column 1)"
    preds = write_jsonl(tmp_path / "q.jsonl", [row(1), {"user_id": "u", "target": T, "ranked": [1]}])
    r = run_cli(preds)
    assert r.stderr.strip() == f"error: {preds}, line 2, field 'ranked': ranked[0] is 1, expected a SID string"
    r = run_cli(tmp_path / "missing.jsonl")
    assert r.stderr.strip() == f"error: {tmp_path / 'missing.jsonl'}: file not found"
    r = run_cli(preds, "--ks", "1,x")
    assert r.returncode == 2 and "--ks expects comma-separated integers like 1,5,10, got '1,x'" in r.stderr


def test_office_most_recent_baseline(office_dir, tmp_path):
    """Real data: 'most recent history items first' predictions; checks against independent counts."""
    paths = ReleasePaths(office_dir, "Office_Products")
    rows = read_split_csv(paths.split("test"))
    catalogue = {r.sid for r in read_info(paths.info)}
    preds = [{"user_id": r.user_id, "target": r.item_sid, "ranked": list(reversed(r.history_sids))} for r in rows]
    m = compute_metrics(preds, ks=[1, 10], catalogue=catalogue, num_beams=10)
    assert m["n"] == len(rows) == 4866
    assert m["invalid_rate"] == 0.0
    assert m["rows_short"] == sum(1 for r in rows if len(r.history_sids) < 10)
    assert m["rows_with_duplicates"] == sum(1 for r in rows if len(set(r.history_sids)) < len(r.history_sids))
    assert m["HR@1"] == pytest.approx(sum(r.history_sids[-1] == r.item_sid for r in rows) / len(rows))
    assert m["HR@10"] == pytest.approx(sum(r.item_sid in r.history_sids for r in rows) / len(rows))
