"""scripts/check_data.py, run as users run it (subprocess): help, a valid and a broken tiny release,
usage errors, and the real Office_Products release."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_validate import CATEGORY, write_release

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "check_data.py"


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def test_help_documents_every_flag():
    out = run("--help")
    assert out.returncode == 0
    assert out.stdout.startswith("usage: check_data.py")
    for flag in ("--data_dir", "--category", "--split_suffix", "--max_history", "--max_examples", "--json"):
        assert flag in out.stdout
    assert SCRIPT.read_text().split('"""')[1].startswith("python scripts/check_data.py --data_dir")


def test_valid_tiny_release_exits_0_and_writes_json(tmp_path):
    write_release(tmp_path / "data")
    out = run("--data_dir", tmp_path / "data", "--category", CATEGORY, "--json", tmp_path / "report.json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "RESULT: OK (with warnings)" in out.stdout
    assert "WARNING sid_collision (1)" in out.stdout
    table = [ln.split() for ln in out.stdout.splitlines()]
    assert [t for t in table if t[:1] in (["rows"], ["users"]) and t[1].isdigit()] == [
        ["rows", "3", "2", "2", "7"], ["users", "2", "2", "2", "3"]]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["config"]["category"] == CATEGORY and report["config"]["max_history"] == 10
    assert report["stats"]["rows"] == {"train": 3, "valid": 2, "test": 2, "total": 7}
    assert report["validation"]["ok"] is True and report["validation"]["warnings"] == 1


def test_broken_release_exits_1_naming_file_line_and_field(tmp_path):
    paths = write_release(tmp_path)
    text = paths.split("test").read_text().replace("<a_1><b_1><c_0>\n", "<a_1><b_9><c_0>\n", 1)
    paths.split("test").write_text(text)
    out = run("--data_dir", tmp_path, "--category", CATEGORY, "--max_examples", "1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "ERROR sid_not_in_index (1)" in out.stdout
    assert (f"{paths.split('test')}, line 2, field 'item_sid': target: SID <a_1><b_9><c_0> for item '5', "
            "but index.json has <a_1><b_1><c_0>") in out.stdout
    assert "RESULT: INVALID" in out.stdout


def test_usage_errors_exit_2(tmp_path):
    out = run("--data_dir", tmp_path / "missing", "--category", CATEGORY)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"check_data.py: error: data folder not found: {tmp_path / 'missing'} "
                                  "(expected a release folder with train/ valid/ test/ index/ info/)")
    write_release(tmp_path / "data")
    out = run("--data_dir", tmp_path / "data", "--category", "Toys")
    assert out.returncode == 2
    assert "no files of category 'Toys'" in out.stderr and "categories found: Toy" in out.stderr
    assert str(tmp_path / "data" / "index" / "Toys.index.json") in out.stderr
    out = run("--category", CATEGORY)
    assert out.returncode == 2 and "the following arguments are required: --data_dir" in out.stderr
    out = run("--data_dir", tmp_path, "--category", CATEGORY, "--max_history", "0")
    assert out.returncode == 2 and "--max_history must be >= 1" in out.stderr


def test_real_office_release(office_dir, tmp_path):
    out = run("--data_dir", office_dir, "--category", "Office_Products", "--json", tmp_path / "office.json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "validation: 0 error(s), 15 warning(s)" in out.stdout
    stats = json.loads((tmp_path / "office.json").read_text())["stats"]
    assert stats["items"] == 3459 and stats["unique_sids"] == 3444
    assert stats["collisions"] == {"shared_sids": 15, "items_on_shared_sids": 30, "colliding_pairs": 15}
    assert stats["rows"] == {"train": 9484, "valid": 4866, "test": 4866, "total": 19216}
    assert stats["users"]["train"] == 2413
    assert stats["sid_levels"] == {"3": 3444} and stats["codes_per_level"] == [88, 256, 256]
    assert stats["history_length"]["all"]["max"] == 10 and stats["history_length"]["all"]["histogram"][0] == 0


# -- the statistics it prints (sidreasoner/data/stats.py), by hand on the tiny release ---------------
def test_compute_stats_by_hand():
    from sidreasoner.data.stats import compute_stats, render_stats
    from test_validate import ITEMS, SPLIT_ROWS
    stats = compute_stats(SPLIT_ROWS, {i: s for i, (s, _) in ITEMS.items()}, max_history=4, category=CATEGORY)
    assert (stats["items"], stats["unique_sids"], stats["items_never_used"]) == (6, 5, 1)
    assert stats["sid_levels"] == {"3": 5} and stats["codes_per_level"] == [2, 2, 2]
    assert stats["collisions"] == {"shared_sids": 1, "items_on_shared_sids": 2, "colliding_pairs": 1}
    assert stats["rows"] == {"train": 3, "valid": 2, "test": 2, "total": 7}
    assert stats["users"] == {"train": 2, "valid": 2, "test": 2, "total": 3}
    # history lengths: train 1,2,1; valid 3,1; test 2,4
    assert stats["history_length"]["train"] == {"rows": 3, "histogram": [0, 2, 1, 0, 0], "over_max": 0,
                                                "min": 1, "mean": 1.333, "median": 1.0, "max": 2}
    assert stats["history_length"]["all"] == {"rows": 7, "histogram": [0, 3, 2, 1, 1], "over_max": 0,
                                              "min": 1, "mean": 2.0, "median": 2.0, "max": 4}
    assert stats["target_items"]["valid"] == {"items": 2, "catalogue_share": round(2 / 6, 4)}
    assert stats["target_items"]["total"]["items"] == 5
    # train sees items 1-4 (targets 2, 3; histories 1, 2, 4): item 5 is the cold target of one valid and one test row
    assert stats["cold_targets"] == {"valid": {"rows": 1, "row_share": 0.5, "items": 1},
                                     "test": {"rows": 1, "row_share": 0.5, "items": 1}}
    short = compute_stats(SPLIT_ROWS, {i: s for i, (s, _) in ITEMS.items()}, max_history=2)
    assert short["history_length"]["all"]["histogram"] == [0, 3, 2] and short["history_length"]["all"]["over_max"] == 2
    lines = render_stats(stats).splitlines()
    assert lines[:3] == ["dataset Toy", "  items 6; distinct SIDs 5; items in no split 1",
                         "                             train  valid   test  total"]
    assert "  cold target rows               -      1      1      -" in lines
    assert "  rows with length 3      0      1     0    1" in lines
    assert "  colliding item pairs            1" in lines


def test_compute_stats_empty_split():
    from sidreasoner.data.stats import compute_stats, render_stats
    stats = compute_stats({"train": [], "test": []}, {"1": "<a_0>"})
    assert stats["history_length"]["test"]["min"] is None and stats["cold_targets"]["test"]["row_share"] is None
    assert "rows with length 0" in render_stats(stats)
