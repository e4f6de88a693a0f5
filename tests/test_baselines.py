"""Baselines: most-popular counts and ranking (hand-computed, table-driven), SID dedup of colliding items,
last-item transitions (counts once per sequence step, ranking with popularity back-off, window; hand-computed),
SASRec's masks (causal, padding), learning a planted transition, determinism, early stopping, the CLI
and its run folder (tabled by compare_results.py), bad input, and popularity on the real Office data."""
from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sidreasoner.baselines import popularity as pop
from sidreasoner.baselines import transitions as tr
from sidreasoner.baselines.__main__ import main as baselines_main
from sidreasoner.baselines.common import ItemVocab, load_vocab, top_sids
from sidreasoner.baselines.sasrec import (IGNORE, SASRec, SASRecConfig, encode_rows, load_sasrec, predict,
                                         train_sasrec)
from sidreasoner.data.formats import (info_rows, read_sid_index, read_split_csv, write_index_json, write_info,
                                      write_item_json, write_split_csv)
from sidreasoner.data.records import DataError, Item, ReleasePaths, SequenceRow
from sidreasoner.eval.metrics import compute_metrics
from sidreasoner.sid.index import SIDIndex
from sidreasoner.sid.spelling import format_sid

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


pytestmark = pytest.mark.usefixtures("one_thread")


# -- a hand-made catalogue: B and E share a SID ------------------------------------------------------
SIDS = {"A": format_sid((0, 0, 0)), "B": format_sid((0, 1, 0)), "C": format_sid((1, 0, 0)),
        "D": format_sid((1, 1, 0)), "E": format_sid((0, 1, 0))}
A, B, C, D, E = (SIDS[k] for k in "ABCDE")


def row(user, hist, target, line=None) -> SequenceRow:
    sid = lambda i: SIDS.get(i, format_sid((9, 9, 9)))  # noqa: E731 (unknown ids get some SID)
    return SequenceRow(user, tuple(hist), tuple(f"t{i}" for i in hist), tuple(sid(i) for i in hist), target,
                       f"t{target}", sid(target), line)


HAND_VOCAB = ItemVocab.from_index(SIDIndex(SIDS), "index.json")
HAND_TRAIN = [row("u1", "A", "B", 2), row("u1", "AB", "C", 3), row("u2", "C", "B", 4), row("u3", "D", "A", 5)]
HAND_TEST = [row("u1", "ABC", "C"), row("u2", "CB", "E"), row("u3", "DA", "A"), row("u4", "B", "A")]


@pytest.mark.parametrize("counts, expected_counts, expected_ranked, hr1, hr3, ndcg3", [
    # rows: A = hist r1, r2 + target r4 = 3; B = target r1, hist r2, target r3 = 3; C = 2; D = 1; E = 0.
    # ranking A, B (tie, index order), C -> test target ranks 3, 2 (E via B's SID), 1, 1
    ("rows", [3, 3, 2, 1, 0], [A, B, C], 2 / 4, 4 / 4, (1 / math.log2(4) + 1 / math.log2(3) + 1 + 1) / 4),
    # targets: B = 2, A = 1, C = 1 (tie -> index order A first), D = E = 0 -> ranks 3, 1, 2, 2
    ("targets", [1, 2, 1, 0, 0], [B, A, C], 1 / 4, 4 / 4, (1 / math.log2(4) + 1 + 2 / math.log2(3)) / 4),
])
def test_popularity_hand_computed(counts, expected_counts, expected_ranked, hr1, hr3, ndcg3):
    c = pop.item_counts(HAND_TRAIN, HAND_VOCAB, counts)
    assert c.tolist() == expected_counts
    records = pop.predict(HAND_TEST, c, HAND_VOCAB, 3)
    assert [r["ranked"] for r in records] == [expected_ranked] * 4
    assert records[1] == {"row": 1, "user_id": "u2", "target": E, "ranked": expected_ranked,
                          "scores": [float(sorted(expected_counts, reverse=True)[i]) for i in (0, 1, 2)]}
    m = compute_metrics(records, ks=[1, 3], num_beams=3)
    assert (m["HR@1"], m["HR@3"]) == pytest.approx((hr1, hr3))
    assert m["NDCG@3"] == pytest.approx(ndcg3)


@pytest.mark.parametrize("order, k, ranked", [
    ([1, 4, 2, 3, 0], 3, [B, C, D]),      # E (index 4) repeats B's SID: skipped, 3 distinct SIDs
    ([4, 1, 0], 2, [E, A]),               # E first: its SID stands for both; B skipped
    ([0, 1, 4, 2, 3], 10, [A, B, C, D]),  # only 4 distinct SIDs exist: the list is short, never repeats
])
def test_top_sids_dedups_colliding_items(order, k, ranked):
    scores = np.arange(5, dtype=float) * 10
    got, sc = top_sids(np.array(order), scores, HAND_VOCAB, k)
    assert got == ranked and len(set(got)) == len(got)
    assert sc == [10.0 * next(i for i in order if SIDS["ABCDE"[i]] == s) for s in got]


def test_unknown_item_in_train_is_named():
    bad = HAND_TRAIN + [row("u9", "AZ", "B", 7)]
    with pytest.raises(DataError) as e:
        pop.item_counts(bad, HAND_VOCAB, "rows", "train.csv")
    assert str(e.value) == "train.csv, line 7, field 'history_item_id': item id 'Z' is not in the catalogue index.json"


# -- last-item transitions -------------------------------------------------------------------------
# u1's sequence A B C A as its three successive prefixes; u5's first row already has two history items.
TRANS_TRAIN = [row("u1", "A", "B", 2), row("u1", "AB", "C", 3), row("u1", "ABC", "A", 4), row("u2", "A", "C", 5),
               row("u3", "A", "B", 6), row("u4", "D", "C", 7), row("u5", "CD", "A", 8)]
# popularity ("rows"): A 7, C 5, B 4, D 2, E 0 -> plain ranking A, C, B, D (E shares B's SID)
TRANS_POP = [7, 4, 5, 2, 0]


@pytest.mark.parametrize("train, expected", [
    # A->B: u1 once (not once per later prefix: that would be 3) + u3; u5's first row adds C->D and D->A
    (TRANS_TRAIN, {"A": {"B": 2, "C": 1}, "B": {"C": 1}, "C": {"A": 1, "D": 1}, "D": {"C": 1, "A": 1}}),
    # one user A B A B: each step of the sequence once
    ([row("u", "A", "B"), row("u", "AB", "A"), row("u", "ABA", "B")], {"A": {"B": 2}, "B": {"A": 1}}),
    # a first row with an empty history has no transition; the user's next row counts its own step
    ([row("u", "", "A"), row("u", "A", "E"), row("v", "E", "E")], {"A": {"E": 1}, "E": {"E": 1}}),
])
def test_transition_counts_once_per_sequence_step(train, expected):
    succ = tr.transition_counts(train, HAND_VOCAB)
    pos = {i: n for n, i in enumerate("ABCDE")}
    assert succ == {pos[a]: {pos[b]: c for b, c in bs.items()} for a, bs in expected.items()}


@pytest.mark.parametrize("hist, window, ranked, scores", [
    # base = max popularity + 1 = 8. Last item A: B 2*8+4, C 1*8+5, then popularity A 7, D 2 (E = B's SID)
    ("A", 1, [B, C, A, D], [20, 13, 7, 2]),
    ("DA", 1, [B, C, A, D], [20, 13, 7, 2]),           # window 1: only the last item counts
    ("C", 1, [A, D, C, B], [15, 10, 5, 4]),             # A, D tie on transitions: popularity breaks it
    ("B", 1, [C, A, B, D], [13, 7, 4, 2]),              # one successor, the rest by popularity
    ("AE", 1, [A, C, B, D], [7, 5, 4, 2]),              # E never precedes anything: pure popularity
    ("", 1, [A, C, B, D], [7, 5, 4, 2]),                # no history: pure popularity
    ("CB", 1, [C, A, B, D], [13, 7, 4, 2]),
    # window 2, weights x lcm(1,2)=2: B's successors x2 (C 2), C's x1 (A 1, D 1)
    ("CB", 2, [C, A, D, B], [21, 15, 10, 4]),
    # window 3, lcm 6: C x6 (A 6, D 6), B x3 (C 3), A x2 (B 4, C 2) -> A 6, D 6, C 5, B 4
    ("ABC", 3, [A, D, C, B], [55, 50, 45, 36]),
])
def test_transitions_rank_successors_then_popularity(hist, window, ranked, scores):
    succ = tr.transition_counts(TRANS_TRAIN, HAND_VOCAB)
    counts = pop.item_counts(TRANS_TRAIN, HAND_VOCAB, "rows")
    assert counts.tolist() == TRANS_POP
    [rec] = tr.predict([row("t", hist, "A")], succ, counts, HAND_VOCAB, 4, window)
    assert rec == {"row": 0, "user_id": "t", "target": A, "ranked": ranked, "scores": [float(x) for x in scores]}


@pytest.mark.parametrize("window", [0, 11])
def test_transitions_window_out_of_range(window):
    with pytest.raises(ValueError, match=r"window must be 1\.\.10"):
        tr.predict([row("t", "A", "B")], {}, np.zeros(5), HAND_VOCAB, 3, window)


# -- SASRec ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("hist, target, max_len, supervise, inputs, labels", [
    # item indices: A=1 .. E=5; labels are classes (index - 1); inputs left-padded
    ("ABC", "D", 4, "all", [0, 1, 2, 3], [IGNORE, 1, 2, 3]),
    ("ABC", "D", 2, "all", [2, 3], [2, 3]),
    ("ABC", "D", 4, "last", [0, 1, 2, 3], [IGNORE, IGNORE, IGNORE, 3]),
    ("E", "A", 3, "all", [0, 0, 5], [IGNORE, IGNORE, 0]),
])
def test_encode_rows(hist, target, max_len, supervise, inputs, labels):
    x, y = encode_rows([row("u", hist, target)], HAND_VOCAB, max_len, supervise)
    assert x.tolist() == [inputs] and y.tolist() == [labels]


def test_encode_rows_refuses_empty_history():
    with pytest.raises(DataError, match=r"^valid.csv, line 3, field 'history_item_id': empty history: "
                                        r"SASRec has nothing to condition on$"):
        encode_rows([row("u", "", "A", 3)], HAND_VOCAB, 4, "all", "valid.csv")


def tiny_model(seed=0, n_items=12, max_len=6) -> SASRec:
    torch.manual_seed(seed)
    return SASRec(n_items, SASRecConfig(hidden=16, blocks=2, heads=2, max_len=max_len, seed=seed)).eval()


@pytest.mark.parametrize("t", [0, 2, 4])
def test_sasrec_is_causal(t):
    model = tiny_model()
    seq = torch.tensor([[3, 1, 4, 1, 5, 9]])
    later = seq.clone()
    later[0, t + 1:] = torch.tensor([7, 8, 2, 6, 11])[: 5 - t]
    with torch.no_grad():
        h1, h2 = model(seq), model(later)
    assert torch.allclose(h1[:, :t + 1], h2[:, :t + 1], atol=1e-6)
    assert not torch.allclose(h1[:, t + 1:], h2[:, t + 1:], atol=1e-4)  # the later positions do change


def test_sasrec_padding_does_not_leak():
    """A left-padded row gives the same outputs for its items as the same items without padding."""
    model = tiny_model()
    with torch.no_grad():
        padded = model(torch.tensor([[0, 0, 0, 4, 2, 7]]))
        bare = model(torch.tensor([[4, 2, 7]]))
    assert torch.allclose(padded[:, 3:], bare, atol=1e-6)
    assert torch.isfinite(padded).all()


def planted(n_items=24, users=150, length=9, seed=0) -> tuple[dict, list, list, list]:
    """Sequences follow i -> i+1 (mod n) with prob 0.9, else a random item; per user the prefixes of the
    first ``length - 2`` items are train rows, the next two are one valid and one test row."""
    rnd = random.Random(seed)
    ids = [f"I{i:02d}" for i in range(n_items)]
    sids = {i: format_sid((n // 8, n % 8, 0)) for n, i in enumerate(ids)}
    train, valid, test = [], [], []
    for u in range(users):
        seq = [rnd.randrange(n_items)]
        while len(seq) < length:
            seq.append((seq[-1] + 1) % n_items if rnd.random() < 0.9 else rnd.randrange(n_items))
        items = [ids[s] for s in seq]
        mk = lambda h, t: SequenceRow(f"u{u}", tuple(h), tuple(h),  # noqa: E731
                                      tuple(sids[i] for i in h), t, t, sids[t])
        train += [mk(items[:j], items[j]) for j in range(1, length - 2)]
        valid.append(mk(items[:length - 2], items[length - 2]))
        test.append(mk(items[:length - 1], items[length - 1]))
    return sids, train, valid, test


PLANT_CFG = dict(hidden=32, blocks=1, heads=1, dropout=0.1, max_len=8, lr=5e-3, batch_size=64, max_epochs=12,
                 patience=3)


@pytest.fixture(scope="module")
def planted_run():
    sids, train, valid, test = planted()
    vocab = ItemVocab.from_index(SIDIndex(sids), "index.json")
    model, log = train_sasrec(train, valid, vocab, SASRecConfig(**PLANT_CFG), progress=False)
    return vocab, (train, valid, test), model, log


def test_sasrec_learns_planted_transitions_and_beats_popularity(planted_run):
    vocab, (train, _, test), model, log = planted_run
    assert log[-1]["loss"] < log[0]["loss"] - 0.5
    sas = compute_metrics(predict(model, test, vocab, 10), num_beams=10)
    popular = compute_metrics(pop.predict(test, pop.item_counts(train, vocab), vocab, 10), num_beams=10)
    assert sas["HR@1"] > 0.6 > 0.2 > popular["HR@1"]  # 90% of next items follow the planted rule
    assert sas["NDCG@10"] > popular["NDCG@10"] + 0.4


def test_sasrec_restores_best_valid_weights(planted_run):
    vocab, (_, valid, _), model, log = planted_run
    best = max(e["valid"]["NDCG@10"] for e in log)
    assert compute_metrics(predict(model, valid, vocab, 10), num_beams=10)["NDCG@10"] == pytest.approx(best)
    best_epoch = max(log, key=lambda e: e["valid"]["NDCG@10"])["epoch"]
    assert len(log) == PLANT_CFG["max_epochs"] or len(log) == best_epoch + PLANT_CFG["patience"]


def test_sasrec_is_deterministic_by_seed():
    sids, train, valid, _ = planted(users=40)
    vocab = ItemVocab.from_index(SIDIndex(sids), "index.json")
    cfg = dict(PLANT_CFG, max_epochs=2, patience=5)
    runs = [train_sasrec(train, valid, vocab, SASRecConfig(**cfg, seed=s), progress=False) for s in (0, 0, 1)]
    (m0, l0), (m1, l1), (m2, l2) = runs
    assert l0 == [dict(e, seconds=l0[i]["seconds"]) for i, e in enumerate(l1)]  # same up to timings
    assert all(torch.equal(a, b) for a, b in zip(m0.state_dict().values(), m1.state_dict().values()))
    assert not torch.equal(m0.item_emb.weight, m2.item_emb.weight)


# -- the CLI on a tiny release folder --------------------------------------------------------------
CAT = "Tiny"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    sids, train, valid, test = planted(users=60, seed=1)
    data = tmp_path_factory.mktemp("release")
    paths = ReleasePaths(data, CAT)
    write_index_json(paths.index_json, sids)
    write_item_json(paths.item_json, {i: Item(i, f"Item {i}") for i in sids})
    write_info(paths.info, info_rows(SIDIndex(sids, {i: f"Item {i}" for i in sids})))
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        write_split_csv(paths.split(name), rows)
    return data


def test_cli_help_lists_every_flag(capsys):
    out = subprocess.run([sys.executable, "-m", "sidreasoner.baselines", "sasrec", "--help"], capture_output=True,
                         text=True, env=ENV, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    for flag in ("--data_dir", "--num_beams", "--patience", "--supervise", "--max_len", "--seed"):
        assert flag in out.stdout
    with pytest.raises(SystemExit):
        baselines_main(["popularity", "--help"])
    assert "--counts" in capsys.readouterr().out


def test_cli_runs_are_tabled_by_compare_results(release, tmp_path):
    common = ["--data_dir", str(release), "--category", CAT, "--num_beams", "5"]
    out = subprocess.run([sys.executable, "-m", "sidreasoner.baselines", "popularity", *common,
                          "--output_dir", str(tmp_path / "pop")], capture_output=True, text=True, env=ENV,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert baselines_main(["sasrec", *common, "--output_dir", str(tmp_path / "sas"), "--max_epochs", "2",
                           "--hidden", "16", "--no_progress"]) == 0
    for name in ("pop", "sas"):
        run = tmp_path / name
        assert {"predictions.jsonl", "metrics.json", "config.json", "run.json"} <= {p.name for p in run.iterdir()}
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["n"] == 60 and metrics["num_beams"] == 5 and metrics["invalid_rate"] == 0.0
        preds = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
        assert [p["row"] for p in preds] == list(range(60))
        assert all(len(set(p["ranked"])) == 5 for p in preds)
    reloaded = load_sasrec(tmp_path / "sas" / "sasrec.pt")  # the saved model reproduces the run's predictions
    test = read_split_csv(ReleasePaths(release, CAT).split("test"))
    vocab = load_vocab(ReleasePaths(release, CAT))
    assert predict(reloaded, test, vocab, 5) == [json.loads(x) for x in
                                                 (tmp_path / "sas" / "predictions.jsonl").read_text().splitlines()]
    assert len((tmp_path / "sas" / "train_log.jsonl").read_text().splitlines()) == 2
    table = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_results.py"), str(tmp_path / "pop"),
                            str(tmp_path / "sas"), "--metrics", "HR@5,NDCG@5", "--output_dir", str(tmp_path / "cmp")],
                           capture_output=True, text=True, env=ENV, cwd=REPO, timeout=120)
    assert table.returncode == 0, table.stderr
    assert "popularity" in table.stdout and "sasrec" in table.stdout


def test_cli_transitions_learns_the_planted_rule(release, tmp_path, capsys):
    """90% of next items follow i -> i+1: the last item's successors find them; popularity cannot."""
    common = ["--data_dir", str(release), "--category", CAT, "--num_beams", "5"]
    with pytest.raises(SystemExit):
        baselines_main(["transitions", "--help"])
    assert "--window" in capsys.readouterr().out
    assert baselines_main(["popularity", *common, "--output_dir", str(tmp_path / "pop")]) == 0
    assert baselines_main(["transitions", *common, "--output_dir", str(tmp_path / "tr")]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["baseline"] == "transitions"
    m, p = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("tr", "pop"))
    assert m["n"] == 60 and m["num_beams"] == 5 and m["invalid_rate"] == 0.0
    assert m["HR@1"] > 0.6 and m["HR@1"] > p["HR@1"] + 0.4
    run = json.loads((tmp_path / "tr" / "run.json").read_text())
    assert run["transitions"] == 60 * 6  # 6 train rows per user, each its own step once
    assert json.loads((tmp_path / "tr" / "config.json").read_text())["window"] == 1
    assert baselines_main(["transitions", *common, "--output_dir", str(tmp_path / "w"), "--window", "12"]) == 2
    assert "window must be 1..10" in capsys.readouterr().err


def test_cli_bad_input_exits_2_with_the_file(release, tmp_path, capsys):
    code = baselines_main(["popularity", "--data_dir", str(tmp_path / "nowhere"), "--category", CAT,
                           "--output_dir", str(tmp_path / "o")])
    assert code == 2
    expected = ReleasePaths(tmp_path / "nowhere", CAT).index_json
    assert capsys.readouterr().err.strip() == f"python -m sidreasoner.baselines: error: {expected}: file not found"
    assert baselines_main(["sasrec", "--data_dir", str(release), "--category", CAT, "--output_dir",
                           str(tmp_path / "o"), "--hidden", "30", "--heads", "4"]) == 2
    assert "hidden (30) must be divisible by heads (4)" in capsys.readouterr().err
    assert baselines_main(["sasrec", "--data_dir", str(release), "--category", CAT, "--output_dir",
                           str(tmp_path / "o"), "--select_metric", "MRR"]) == 2
    assert "select_metric must look like NDCG@10 or HR@10, got 'MRR'" in capsys.readouterr().err


def test_popularity_on_office_matches_an_independent_count(office_dir, tmp_path):
    """Train-target counts -> top-10 SIDs, computed here by hand, give the CLI's HR@10 exactly."""
    paths = ReleasePaths(office_dir, "Office_Products")
    assert baselines_main(["popularity", "--data_dir", str(office_dir), "--category", "Office_Products",
                           "--output_dir", str(tmp_path), "--counts", "targets"]) == 0
    train, test = read_split_csv(paths.split("train")), read_split_csv(paths.split("test"))
    index = read_sid_index(paths.index_json)
    count: dict[str, int] = {}
    for r in train:
        count[r.item_id] = count.get(r.item_id, 0) + 1
    order = sorted(index.item_to_sid, key=lambda i: -count.get(i, 0))  # stable: index order breaks ties
    top = list(dict.fromkeys(index.sid(i) for i in order))[:10]
    expected = sum(r.item_sid in top for r in test) / len(test)
    assert json.loads((tmp_path / "metrics.json").read_text())["HR@10"] == pytest.approx(expected)
