"""Fusion of thinking and non-thinking lists (sidreasoner.eval.fusion): scores by hand, the weight chosen
on valid, the CLI's files."""
from __future__ import annotations

import json

import pytest

from sidreasoner.data.records import DataError
from sidreasoner.eval import fusion as F

A, B, C, T = "<a_1><b_1><c_1>", "<a_2><b_2><c_2>", "<a_3><b_3><c_3>", "<a_9><b_9><c_9>"


def rec(row, ranked, scores, target=T):
    return {"row": row, "user_id": f"u{row}", "target": target, "ranked": ranked, "scores": scores}


@pytest.mark.parametrize("weight, ranked, scores", [
    (0.0, [A, B, C], [-1.0, -2.0, -2.0]),     # non-thinking list; C (think only) at the floor -2, after B
    (1.0, [C, A, B], [-0.5, -1.5, -1.5]),     # thinking list; B (non-thinking only) at the thinking floor
    (0.5, [A, C, B], [-1.25, -1.25, -1.75]),  # A: .5*-1.5 + .5*-1; C: .5*-.5 + .5*-2 (floor); ties by SID
])
def test_fuse_row_by_hand(weight, ranked, scores):
    think = rec(0, [C, A], [-0.5, -1.5])
    nothink = rec(0, [A, B], [-1.0, -2.0])
    got = F.fuse_row(think, nothink, weight, k=3)
    assert got["ranked"] == ranked and got["scores"] == pytest.approx(scores)


@pytest.mark.parametrize("weight, mode", [(0.0, "nothink"), (1.0, "think")])
def test_end_weights_give_back_a_list_exactly_even_on_ties(weight, mode):
    think = rec(0, [A, B], [-1.0, -2.0])       # A < B as strings: a SID-only tie-break would put A first
    nothink = rec(0, [C, B], [-1.0, -3.0])     # A gets the non-thinking floor -3, tying with B
    want = {"think": think, "nothink": nothink}[mode]["ranked"]
    assert F.fuse_row(think, nothink, weight, k=2)["ranked"] == want


def test_fused_rows_name_the_items_of_their_sids():
    """Re-ranked lists carry each SID's items from the list it came from (a SID shared by two items names both)."""
    think = {**rec(0, [C, A], [-0.5, -1.5]), "items": [["i3"], ["i1", "i9"]], "titles": [["C"], ["A", "A2"]]}
    nothink = {**rec(0, [A, B], [-1.0, -2.0]), "items": [["i1", "i9"], ["i2"]], "titles": [["A", "A2"], ["B"]]}
    got = F.fuse_row(think, nothink, 0.5, k=3)
    assert got["ranked"] == [A, C, B] and got["items"] == [["i1", "i9"], ["i3"], ["i2"]]
    assert got["titles"] == [["A", "A2"], ["C"], ["B"]]
    thought = F.adaptive_row(think, nothink, threshold=9.0, k=10)
    assert thought["ranked"] == [C, A] and thought["items"] == [["i3"], ["i1", "i9"]]
    plain = F.fuse_row(rec(0, [C], [-0.5]), rec(0, [A], [-1.0]), 0.5, k=2)
    assert "items" not in plain and "titles" not in plain  # records without items: none made up


def test_rows_without_scores_are_refused():
    with pytest.raises(DataError, match="needs a score for every ranked SID"):
        F.fuse_row(rec(0, [A], []), rec(0, [A], [-1.0]), 0.5, 10)


def _run(folder, records):
    folder.mkdir(parents=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_weight_chosen_on_valid_never_below_nonthinking_there(tmp_path):
    # valid: thinking puts the target second, non-thinking first -> w = 0 wins
    _run(tmp_path / "vt", [rec(0, [A, T], [-1.0, -1.1]), rec(1, [B, T], [-1.0, -3.0])])
    _run(tmp_path / "vn", [rec(0, [T, A], [-1.0, -2.0]), rec(1, [T, B], [-1.0, -1.5])])
    _run(tmp_path / "tt", [rec(0, [T], [-0.1])])
    _run(tmp_path / "tn", [rec(0, [A, T], [-1.0, -1.2]), rec(7, [A], [-1.0])])  # thinking scored a subset
    out = tmp_path / "fused"
    assert F.main(["--valid", str(tmp_path / "vt"), str(tmp_path / "vn"), "--test", str(tmp_path / "tt"),
                   str(tmp_path / "tn"), "--output_dir", str(out)]) == 0
    record = json.loads((out / "fusion.json").read_text())
    assert record["weight"] == 0.0 and record["valid_ndcg10"]["0.0"] == 1.0 > record["valid_ndcg10"]["1.0"]
    rows = [json.loads(l) for l in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["ranked"] for r in rows] == [[A, T]]  # w = 0: the non-thinking list of the scored row
    assert json.loads((out / "metrics.json").read_text())["n"] == 1


def test_cli_needs_a_way_to_pick_the_weight(tmp_path, capsys):
    with pytest.raises(SystemExit):
        F.main(["--test", "a", "b", "--output_dir", str(tmp_path)])
    assert "give --valid THINK_DIR NOTHINK_DIR" in capsys.readouterr().err


@pytest.mark.parametrize("nothink_scores, threshold, thought", [
    ([-1.0, -1.2], 0.5, True),    # margin 0.2 <= 0.5: unsure, take the thinking list
    ([-1.0, -1.2], 0.2, True),    # at the threshold: thinks
    ([-1.0, -3.0], 0.5, False),   # margin 2.0: sure, keep the non-thinking list
    ([-1.0, -1.2], -1.0, False),  # threshold -1: never think
    ([-1.0], 9.0, False),         # one SID: infinitely sure
])
def test_adaptive_thinks_only_when_unsure(nothink_scores, threshold, thought):
    think, nothink = rec(0, [C, A], [-0.5, -0.6]), rec(0, [A, B][:len(nothink_scores)], nothink_scores)
    got = F.adaptive_row(think, nothink, threshold, k=10)
    assert got["thought"] is thought and got["ranked"] == (think if thought else nothink)["ranked"]


def test_adaptive_cli_chooses_a_threshold_on_valid(tmp_path):
    # valid: thinking is right exactly where non-thinking is unsure (rows 0, 1), wrong where it is sure
    _run(tmp_path / "vt", [rec(0, [T], [-1.0]), rec(1, [T], [-1.0]), rec(2, [A], [-1.0]), rec(3, [A], [-1.0])])
    _run(tmp_path / "vn", [rec(0, [A, T], [-1.0, -1.1]), rec(1, [B, T], [-1.0, -1.05]),
                           rec(2, [T, A], [-1.0, -4.0]), rec(3, [T, B], [-1.0, -5.0])])
    out = tmp_path / "ad"
    assert F.main(["--method", "adaptive", "--valid", str(tmp_path / "vt"), str(tmp_path / "vn"),
                   "--test", str(tmp_path / "vt"), str(tmp_path / "vn"), "--output_dir", str(out)]) == 0
    record = json.loads((out / "fusion.json").read_text())
    assert record["valid_ndcg10"]["-1.0"] < 1.0 and record["valid_ndcg10"][str(record["weight"])] == 1.0
    assert record["thought_share"] == 0.5


def test_best_method_takes_the_one_that_scores_best_on_valid(tmp_path):
    # valid: thinking is right only where non-thinking is unsure (adaptive scores 1.0; fusion cannot:
    # on row 2 the confident non-thinking list is right and the thinking one puts T nowhere)
    _run(tmp_path / "vt", [rec(0, [T], [-0.1]), rec(1, [T], [-0.1]), rec(2, [A], [-0.1])])
    _run(tmp_path / "vn", [rec(0, [A, T], [-1.0, -1.01]), rec(1, [B, T], [-1.0, -1.01]),
                           rec(2, [T, A], [-1.0, -9.0])])
    out = tmp_path / "best"
    assert F.main(["--method", "best", "--valid", str(tmp_path / "vt"), str(tmp_path / "vn"),
                   "--test", str(tmp_path / "vt"), str(tmp_path / "vn"), "--output_dir", str(out)]) == 0
    record = json.loads((out / "fusion.json").read_text())
    assert record["asked"] == "best" and record["method"] == "adaptive"
    assert set(record["valid_by_method"]) == {"fusion", "adaptive"}  # no --prior: no calibrated
    by_method = record["valid_by_method"]
    assert by_method["adaptive"]["valid_ndcg10"] == 1.0 > by_method["fusion"]["valid_ndcg10"]
    with pytest.raises(SystemExit):
        F.main(["--method", "best", "--weight", "0.5", "--test", "a", "b", "--output_dir", str(out)])
