"""Demo data generator (sidreasoner.data.demo) and scripts/make_demo_data.py."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sidreasoner.data.demo import (DEPARTMENTS, KINDS, DemoConfig, Sample, chronological_split, generate_demo,
                                   planted_stats, structure_baselines, write_release)
from sidreasoner.data.formats import read_index_json, read_info, read_item_json, read_split_csv
from sidreasoner.data.records import SPLITS, ReleasePaths
from sidreasoner.sid.spelling import format_sid

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_demo_data.py"
SMALL = ["--n_items", "300", "--n_users", "200"]


@pytest.fixture(scope="module")
def default_data():
    return generate_demo(DemoConfig(seed=0))


def _script():
    spec = importlib.util.spec_from_file_location("make_demo_data", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- generator ----------------------------------------------------------------------------------------
def test_default_catalogue_size_and_vocabulary(default_data):
    items = default_data.catalogue.items
    assert len(items) == 1200
    assert [it.item_id for it in items] == [str(i) for i in range(1200)]
    assert len({it.department for it in items}) == len(DEPARTMENTS) == 8
    assert len({it.brand for it in items}) == 40
    titles = [it.title() for it in items]
    assert len(set(titles)) == len(titles), "titles must be unique"
    per_kind = {k.name: len(default_data.catalogue.by_kind[k.name]) for k in KINDS}
    assert min(per_kind.values()) >= 2
    item = default_data.items()["0"]
    assert item.categories == f"{items[0].department} > {items[0].kind.name}"
    assert item.title.startswith(items[0].brand + " " + items[0].kind.name + ", ")


def test_description_is_literal_list_naming_use_and_complements():
    from sidreasoner.data.demo import KIND_BY_NAME as K, DemoItem
    it = DemoItem("7", K["Printer"], "Inkwell", "Black", "Small", 1)
    assert it.title() == "Inkwell Printer, Black, Small"
    assert it.description() == repr(["The Inkwell Printer in black, size small. An office essential that prints "
                                      "documents and photos at home. Often bought together with Ink Cartridge "
                                      "and Copy Paper."])
    ink = DemoItem("8", K["Ink Cartridge"], "Inkwell", "Red", "Large", 6)
    assert ink.title() == "Inkwell Ink Cartridge, Red, Large, 6-Pack"
    assert "6 per pack" in ink.description() and "restocking" in ink.description()


def test_vocabulary_is_consistent():
    from sidreasoner.data.demo import KIND_BY_NAME
    assert len(KIND_BY_NAME) == len(KINDS) == 68, "kind names must be unique"
    assert all(c in KIND_BY_NAME and c != k.name for k in KINDS for c in k.complements)
    assert sum(k.consumable for k in KINDS) >= 20 and sum(bool(k.complements) for k in KINDS) >= 30


def test_next_item_follows_the_planted_rules(default_data):
    import numpy as np
    from sidreasoner.data.demo import UserProfile, next_item
    cat = default_data.catalogue
    first = {k.name: int(cat.by_kind[k.name][0]) for k in KINDS}
    user = UserProfile("U1", ("Garden",), (1.0,), ("Terrano",))
    rng = np.random.default_rng(0)
    restock = DemoConfig(p_repeat=1.0, p_complement=0.0, p_noise=0.0)
    hist = [first["Ink Cartridge"], first["Printer"], first["Shampoo"], first["Tent"]]
    assert next_item(hist, user, cat, restock, rng) == first["Shampoo"]  # most recent consumable
    no_consumable = [first["Printer"], first["Tent"]]
    for _ in range(20):  # nothing to restock: an interest pick (Garden, favourite brand or not)
        assert cat.items[next_item(no_consumable, user, cat, restock, rng)].department == "Garden"
    complement = DemoConfig(p_repeat=0.0, p_complement=1.0, p_noise=0.0, brand_match=1.0)
    printer = cat.items[first["Printer"]]
    for _ in range(20):
        nxt = cat.items[next_item([first["Printer"]], user, cat, complement, rng)]
        assert nxt.kind.name in ("Ink Cartridge", "Copy Paper") and nxt.brand == printer.brand
    loyal = DemoConfig(p_repeat=0.0, p_complement=0.0, p_noise=0.0, brand_loyalty=1.0)
    picks = [cat.items[next_item([], user, cat, loyal, rng)] for _ in range(20)]
    assert all(it.department == "Garden" and it.brand == "Terrano" for it in picks)


def test_same_seed_same_data_other_seed_differs(default_data):
    again = generate_demo(DemoConfig(seed=0))
    assert again.splits == default_data.splits
    assert [it.title() for it in again.catalogue.items] == [it.title() for it in default_data.catalogue.items]
    other = generate_demo(DemoConfig(seed=1, n_users=50))  # same catalogue size, fewer users: faster
    assert other.splits["train"][:50] != default_data.splits["train"][:50]
    assert [it.title() for it in other.catalogue.items] != [it.title() for it in default_data.catalogue.items]


def test_catalogue_does_not_depend_on_n_users():
    a = generate_demo(DemoConfig(n_items=300, n_users=20))
    b = generate_demo(DemoConfig(n_items=300, n_users=40))
    assert a.items() == b.items()


def test_split_is_chronological_8_1_1(default_data):
    sp = default_data.splits
    n = sum(len(v) for v in sp.values())
    assert n > 10_000
    for name, ratio in zip(SPLITS, (0.8, 0.1, 0.1)):
        assert abs(len(sp[name]) - ratio * n) <= 1
    assert max(s.time for s in sp["train"]) <= min(s.time for s in sp["valid"])
    assert max(s.time for s in sp["valid"]) <= min(s.time for s in sp["test"])
    for rows in sp.values():
        assert all(a.time <= b.time for a, b in zip(rows, rows[1:]))
    # per user, histories only grow over time: a later row's history ends with the earlier target
    last: dict[str, Sample] = {}
    for s in sp["train"] + sp["valid"] + sp["test"]:
        if s.user_id in last:
            assert s.history[-1] == last[s.user_id].target
        last[s.user_id] = s
    assert len({s.user_id for s in sp["test"]}) > 300  # the test split is not a handful of late users


def test_histories_non_empty_at_most_10_and_sequence_lengths(default_data):
    rows = [s for v in default_data.splits.values() for s in v]
    assert all(1 <= len(s.history) <= 10 for s in rows)
    assert any(len(s.history) == 10 for s in rows)
    per_user: dict[str, int] = {}
    for s in rows:
        per_user[s.user_id] = per_user.get(s.user_id, 0) + 1
    assert len(per_user) == 1500 and min(per_user.values()) == 4 and max(per_user.values()) == 19
    assert sorted(per_user)[:2] == ["U0001", "U0002"]


def test_chronological_split_hand_computed():
    times = [5.0, 1.0, 3.0, 2.0, 9.0, 4.0, 8.0, 7.0, 6.0, 0.5]
    samples = [Sample(f"U{i}", ("0",), str(i), t) for i, t in enumerate(times)]
    sp = chronological_split(samples, (0.8, 0.1, 0.1))
    assert [s.target for s in sp["train"]] == ["9", "1", "3", "2", "5", "0", "8", "7"]
    assert [s.target for s in sp["valid"]] == ["6"]
    assert [s.target for s in sp["test"]] == ["4"]
    tie = [Sample("U", ("0",), str(i), 1.0) for i in range(4)]
    assert [s.target for s in chronological_split(tie, (0.5, 0.25, 0.25))["train"]] == ["0", "1"]


def test_structure_baselines_hand_computed():
    dept = {"a": "X", "b": "X", "c": "Y", "d": "Y"}
    train = [(("a",), "b"), (("a",), "b"), (("c",), "d"), (("b",), "c"), (("d",), "c")]
    test = [(("a",), "b"), (("c",), "d"), (("d",), "a")]
    r = structure_baselines(train, test, dept, k=1)
    # popularity: b=2, c=2, d=1, a=0 -> ranking b, c (tie broken by id), d, a; top-1 = b: row 1 hits
    assert r["most_popular"] == {"hr@1": pytest.approx(1 / 3), "ndcg@1": pytest.approx(1 / 3)}
    # same category top-1: X -> b, Y -> c; hits: row 1 (b)
    assert r["same_category"] == {"hr@1": pytest.approx(1 / 3), "ndcg@1": pytest.approx(1 / 3)}
    # transitions: a->b, c->d, d->c; hits rows 1 and 2
    assert r["transition"] == {"hr@1": pytest.approx(2 / 3), "ndcg@1": pytest.approx(2 / 3)}
    r2 = structure_baselines(train, [(("d",), "a")], dept, k=3)
    # d -> [c], then filled by popularity: c (already in), b, d -> [c, b, d]; a is 4th: miss
    assert r2["transition"]["hr@3"] == 0.0
    r3 = structure_baselines(train, [(("d",), "b")], dept, k=3)
    assert r3["transition"]["ndcg@3"] == pytest.approx(1 / 1.5849625)  # b is 2nd: 1 / log2(3)
    assert planted_stats([(("a", "c"), "b"), (("c",), "c")], dept) == {"same_category_as_last": 0.5,
                                                                       "repeat_of_history_item": 0.5}


def test_planted_structure_is_learnable(default_data):
    """Count baselines fitted on train beat most-popular on test by a clear margin."""
    pairs = {n: [(s.history, s.target) for s in v] for n, v in default_data.splits.items()}
    dept = default_data.department_of()
    r = structure_baselines(pairs["train"], pairs["test"], dept, k=10)
    pop, same, trans = (r[b]["hr@10"] for b in ("most_popular", "same_category", "transition"))
    assert same > 2 * pop and trans > 3 * pop and trans - pop > 0.15, r
    share = planted_stats(pairs["train"], dept)
    assert share["same_category_as_last"] > 0.5 and share["repeat_of_history_item"] > 0.1, share


def test_learnability_check_sees_no_structure_when_none_is_planted():
    """Control: every pick is a global-popularity draw, so the count baselines lose their edge."""
    data = generate_demo(DemoConfig(p_repeat=0.0, p_complement=0.0, p_noise=1.0))
    pairs = {n: [(s.history, s.target) for s in v] for n, v in data.splits.items()}
    r = structure_baselines(pairs["train"], pairs["test"], data.department_of(), k=10)
    pop, same, trans = (r[b]["hr@10"] for b in ("most_popular", "same_category", "transition"))
    assert same < pop + 0.02 and trans < pop + 0.02, r


@pytest.mark.parametrize("kwargs, message", [
    ({"n_items": 50}, "n_items=50: need at least 136 (2 per item kind, 68 kinds)"),
    ({"n_items": 100_000}, "n_items=100000 is too large: kind"),
    ({"min_len": 1}, "need n_users >= 1, 2 <= min_len <= max_len, max_history >= 1; got n_users=1500, min_len=1"),
    ({"p_repeat": 0.5, "p_complement": 0.6}, "p_repeat + p_complement + p_noise must be <= 1"),
    ({"split_ratios": (0.8, 0.2, 0.1)}, "split_ratios must be three fractions summing to 1, got (0.8, 0.2, 0.1)"),
    ({"min_active": 0.0}, "min_active must be in (0, 1], got 0.0"),
])
def test_bad_config_raises_clear_error(kwargs, message):
    with pytest.raises(ValueError) as e:
        generate_demo(DemoConfig(**kwargs))
    assert str(e.value).startswith(message)


def test_write_release_round_trips_through_readers(tmp_path):
    data = generate_demo(DemoConfig(n_items=300, n_users=30))
    sids = {str(i): format_sid((i // 16, i % 16)) for i in range(300)}  # any unique SIDs will do here
    paths = ReleasePaths(tmp_path, "Demo")
    write_release(data, sids, paths)
    assert read_index_json(paths.index_json) == sids
    items = read_item_json(paths.item_json)
    assert items == data.items()
    assert [(r.sid, r.item_id) for r in read_info(paths.info)] == list(zip(sids.values(), sids))
    for name in SPLITS:
        rows = read_split_csv(paths.split(name))
        assert [(r.user_id, r.history_item_ids, r.item_id) for r in rows] == \
            [(s.user_id, s.history, s.target) for s in data.splits[name]]
        assert all(r.item_sid == sids[r.item_id] and r.item_title == items[r.item_id].title for r in rows)
        assert all(list(r.history_sids) == [sids[i] for i in r.history_item_ids] for r in rows)
    with pytest.raises(ValueError, match=r"^1 items have no SID, e.g. \['299'\]$"):
        write_release(data, {k: v for k, v in sids.items() if k != "299"}, paths)


# -- script -------------------------------------------------------------------------------------------
def test_script_help():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    for flag in ("--output_dir", "--seed", "--n_items", "--n_users", "--embedder", "--category", "--overwrite"):
        assert flag in out.stdout


# One BLAS thread: on the shared 2-core test machine a multi-threaded BLAS makes the SID builder's TF-IDF
# SVD ~40x slower (CPU time). The written data do not depend on the thread count (checked by hand).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _one_blas_thread():
    # threadpoolctl limits only libraries already loaded: load scipy's BLAS (used by the SVD) first.
    import sklearn.decomposition  # noqa: F401
    from threadpoolctl import threadpool_limits
    return threadpool_limits(1)


def test_script_small_run_is_consistent_and_deterministic(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--output_dir", str(a), "--seed", "0", *SMALL],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, **ONE_THREAD})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "count baselines fitted on train, scored on test:" in proc.stdout
    assert "collisions after: 0 items" in proc.stdout
    mod = _script()
    with _one_blas_thread():
        assert mod.main(["--output_dir", str(b), "--seed", "0", *SMALL]) == 0
        assert mod.main(["--output_dir", str(c), "--seed", "1", *SMALL]) == 0
    fa, fb, fc = _files(a), _files(b), _files(c)
    conf = "Demo.demo_config.json"
    assert sorted(fa) == sorted(fb) == sorted(fc) == sorted([
        conf, "Demo.demo_report.json", "index/Demo.index.json", "index/Demo.item.json",
        "info/Demo_5_2016-10-2018-11.txt", *(f"{s}/Demo_5_2016-10-2018-11.csv" for s in SPLITS)])
    for name in fa:
        if name != conf:
            assert fa[name] == fb[name], f"{name} differs between two runs with the same seed"
    strip = lambda raw: {k: v for k, v in json.loads(raw)["args"].items() if k != "output_dir"}  # noqa: E731
    assert strip(fa[conf]) == strip(fb[conf])
    assert json.loads(fa[conf])["sid"]["embedder"] == "tfidf" and json.loads(fa[conf])["demo"]["n_items"] == 300
    assert fa["index/Demo.index.json"] != fc["index/Demo.index.json"]
    assert fa["train/Demo_5_2016-10-2018-11.csv"] != fc["train/Demo_5_2016-10-2018-11.csv"]

    paths = ReleasePaths(a, "Demo")
    index = read_index_json(paths.index_json)
    assert len(index) == 300 and len(set(index.values())) == 300, "SIDs must be unique"
    splits = mod.read_back(paths).splits  # validates: no problem of any kind, warnings included
    for rows in splits.values():  # every split SID equals the index's SID for that item
        assert all(r.item_sid == index[r.item_id] for r in rows)
        assert all(list(r.history_sids) == [index[i] for i in r.history_item_ids] for r in rows)
    report = json.loads(fa["Demo.demo_report.json"])
    assert report["catalogue"]["items"] == 300 and report["catalogue"]["users"] == 200
    assert report["dataset"]["rows"] == {**{n: len(splits[n]) for n in SPLITS},
                                         "total": sum(len(v) for v in splits.values())}
    assert report["sid_report"]["collisions_after"]["items"] == 0 and "seconds" not in report["sid_report"]
    assert set(report["baselines_test"]) == {"most_popular", "same_category", "transition", "same_sid_first_code"}


def test_script_refuses_to_overwrite_and_rejects_bad_flags(tmp_path, capsys):
    mod = _script()
    paths = ReleasePaths(tmp_path, "Demo")
    paths.index_json.parent.mkdir(parents=True)
    paths.index_json.write_text("{}")
    for argv, message in (
            ([*SMALL], r"index/Demo.index.json exists; pass --overwrite to replace it$"),
            (["--n_items", "10"], r"^make_demo_data: error: n_items=10: need at least 136")):
        with pytest.raises(SystemExit) as exc:  # a usage error: exit 2, as argparse's
            mod.main(["--output_dir", str(tmp_path), *argv])
        assert exc.value.code == 2
        assert re.search(message, capsys.readouterr().err.strip())
