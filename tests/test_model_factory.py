"""Model factory (sidreasoner.model.model_factory), the tiny-model fixture and scripts/make_tiny_model.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fixtures_model import REPO_ROOT, tiny_catalogue, tiny_model_dir, write_catalogue  # noqa: F401
from sidreasoner.model.chat import check_sid_tokens, render_prompt, stop_token_id
from sidreasoner.model.model_factory import (ModelLoadError, add_sid_tokens, embeddings_tied, load_model_and_tokenizer,
                                             looks_local, make_tiny_qwen3, neutral_generation_config, resolve_dtype,
                                             save_model_dir, trainable_new_token_rows)
from sidreasoner.train.tokenizer import catalogue_texts, train_catalogue_tokenizer

SCRIPT = REPO_ROOT / "scripts" / "make_tiny_model.py"
NEW_SIDS = ["<a_0>", "<a_1>", "<b_0>", "<b_1>", "<c_0>"]


@pytest.fixture(scope="module")
def plain_tokenizer():
    """A catalogue tokenizer WITHOUT SID tokens (a base model before stage 1)."""
    items, _ = tiny_catalogue()
    return train_catalogue_tokenizer(catalogue_texts(items), vocab_size=400)


def _tiny(tokenizer, tied=True, seed=0):
    model = make_tiny_qwen3(tokenizer, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                            intermediate_size=64, seed=seed)
    if not tied:  # the same architecture with a separate lm_head (as Qwen3-8B)
        from transformers import Qwen3ForCausalLM
        model.config.tie_word_embeddings = False
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(model.config).eval()
    return model


# -- make_tiny_qwen3 ---------------------------------------------------------------------------------
def test_make_tiny_qwen3_shape_ties_and_generation_config(plain_tokenizer):
    model = make_tiny_qwen3(plain_tokenizer, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                            intermediate_size=128)
    cfg = model.config
    assert (cfg.model_type, cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.head_dim) == \
        ("qwen3", len(plain_tokenizer), 64, 2, 16)
    assert embeddings_tied(model) and cfg.tie_word_embeddings
    gc = model.generation_config
    assert (gc.eos_token_id, gc.pad_token_id, gc.do_sample) == (2, 0, False)
    assert model.get_input_embeddings().weight.dtype == torch.float32


def test_make_tiny_qwen3_seeded(plain_tokenizer):
    a, b, c = (_tiny(plain_tokenizer, seed=s) for s in (0, 0, 1))
    wa, wb, wc = (m.model.layers[0].mlp.up_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_make_tiny_qwen3_bad_heads(plain_tokenizer):
    with pytest.raises(ValueError, match=r"hidden_size \(30\) must divide by num_heads \(4\)"):
        make_tiny_qwen3(plain_tokenizer, hidden_size=30, num_heads=4)


# -- add_sid_tokens ----------------------------------------------------------------------------------
@pytest.mark.parametrize("tied", [True, False])
def test_add_sid_tokens_resizes_and_keeps_old_rows(plain_tokenizer, tied):
    tok = train_catalogue_tokenizer(catalogue_texts(tiny_catalogue()[0]), vocab_size=400)
    model = _tiny(tok, tied=tied)
    n_old = len(tok)
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    assert add_sid_tokens(model, tok, NEW_SIDS + ["<a_0>"]) == len(NEW_SIDS)
    emb, out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert len(tok) == n_old + len(NEW_SIDS) == emb.shape[0] == out.shape[0] == model.config.vocab_size
    assert torch.equal(emb[:n_old], old_in) and torch.equal(out[:n_old], old_out)
    assert embeddings_tied(model) == tied
    new_ids = tok.convert_tokens_to_ids(NEW_SIDS)
    assert new_ids == list(range(n_old, n_old + len(NEW_SIDS)))
    for w, old in ((emb, old_in), (out, old_out)):
        # new rows: the old mean plus noise far smaller than the rows' own spread, and not all equal
        dev = (w[new_ids] - old.mean(0)).abs().max()
        assert dev < 0.1 * old.std(0).max() and dev > 0
        assert not torch.equal(w[new_ids[0]], w[new_ids[1]])
    for t in NEW_SIDS:  # ordinary added tokens, one id each, kept by skip_special_tokens decoding
        assert tok.encode(f"x{t}y", add_special_tokens=False).count(tok.convert_tokens_to_ids(t)) == 1
    assert tok.decode(tok.encode("".join(NEW_SIDS), add_special_tokens=False), skip_special_tokens=True) == "".join(NEW_SIDS)
    # a second call (stage 2 on a stage-1 model) adds nothing and changes nothing
    before = emb.detach().clone()
    assert add_sid_tokens(model, tok, NEW_SIDS) == 0
    assert torch.equal(model.get_input_embeddings().weight, before)


def test_add_sid_tokens_reuses_spare_rows(plain_tokenizer):
    tok = train_catalogue_tokenizer(catalogue_texts(tiny_catalogue()[0]), vocab_size=400)
    model = _tiny(tok)
    model.resize_token_embeddings(len(tok) + 20, mean_resizing=False)  # Qwen pads its embedding like this
    rows = model.get_input_embeddings().weight.shape[0]
    assert add_sid_tokens(model, tok, NEW_SIDS) == len(NEW_SIDS)
    assert model.get_input_embeddings().weight.shape[0] == rows and embeddings_tied(model)


def test_add_sid_tokens_rejects_non_sid(plain_tokenizer):
    with pytest.raises(ValueError, match=r"add_sid_tokens: not SID tokens \(expected like '<a_12>'\): \['<x_1>'\]"):
        add_sid_tokens(_tiny(plain_tokenizer), plain_tokenizer, ["<a_1>", "<x_1>"])


# -- trainable_new_token_rows ------------------------------------------------------------------------
@pytest.mark.parametrize("tied", [True, False])
def test_trainable_rows_only_new_rows_change(tied):
    tok = train_catalogue_tokenizer(catalogue_texts(tiny_catalogue()[0]), vocab_size=400)
    model = _tiny(tok, tied=tied)
    add_sid_tokens(model, tok, NEW_SIDS)
    new_ids = tok.convert_tokens_to_ids(NEW_SIDS)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    peft_model = trainable_new_token_rows(model, new_ids)
    n_train = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert n_train == len(new_ids) * 32 * (1 if tied else 2)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=0.1)
    ids = torch.tensor([tok.encode("Blue pens <a_0><b_1><c_0> and <a_1><b_0>", add_special_tokens=False)])
    loss = peft_model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    merged = peft_model.merge_and_unload()
    after = merged.state_dict()
    assert set(after) == set(before)
    changed_rows = set()
    for name, old in before.items():
        new = after[name]
        if name.endswith(("embed_tokens.weight", "lm_head.weight")):
            diff = (new != old).any(dim=1).nonzero().flatten().tolist()
            changed_rows.update(diff)
            assert set(diff) <= set(new_ids), name
        else:
            assert torch.equal(new, old), name
    assert changed_rows == set(new_ids)
    assert embeddings_tied(merged) == tied


def test_trainable_rows_bad_ids(plain_tokenizer):
    model = _tiny(plain_tokenizer)
    with pytest.raises(ValueError, match=r"token ids must be a non-empty list within 0\.\.\d+"):
        trainable_new_token_rows(model, [10 ** 6])


# -- loading -----------------------------------------------------------------------------------------
def test_load_fixture_model_generates(tiny_model_dir):
    path, index = tiny_model_dir
    model, tok = load_model_and_tokenizer(path, dtype="fp32")
    check_sid_tokens(tok, index.unique_sids())
    assert (model.dtype, tok.pad_token, tok.padding_side, stop_token_id(tok)) == (torch.float32, "<|endoftext|>", "left", 2)
    prompt = render_prompt(tok, "The user bought " + ", ".join(index.unique_sids()[:3]) + ".", think=False)
    enc = tok([prompt], return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert out.shape[1] <= enc["input_ids"].shape[1] + 4 and out.shape[1] > enc["input_ids"].shape[1]
    again, _ = load_model_and_tokenizer(path)
    assert torch.equal(again.lm_head.weight, model.lm_head.weight)


def test_fixture_is_deterministic(tiny_model_dir, tmp_path):
    from fixtures_model import build_tiny_model_dir
    path, index = tiny_model_dir
    other = build_tiny_model_dir(tmp_path / "again")
    assert (other / "tokenizer.json").read_text() == (path / "tokenizer.json").read_text()
    assert (other / "model.safetensors").read_bytes() == (path / "model.safetensors").read_bytes()
    assert len(index) == 40 and len(set(index.unique_sids())) == 40


def test_load_missing_path_is_clear(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ModelLoadError, match=rf"^model folder not found: {missing} \(a local path is never looked up on the hub\)$"):
        load_model_and_tokenizer(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"empty: no config\.json, not a Hugging Face model folder"):
        load_model_and_tokenizer(tmp_path / "empty")
    with pytest.raises(ModelLoadError, match=r"^model folder not found: checkpoints/stage1/final"):
        load_model_and_tokenizer("checkpoints/stage1/final")


def test_load_unknown_hub_id_offline(monkeypatch):
    import huggingface_hub.constants
    # read at import time from the environment: patch the constant so no request is even tried
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match=r"^cannot load model 'nobody/no-such-model-xyz': "):
        load_model_and_tokenizer("nobody/no-such-model-xyz")


@pytest.mark.parametrize("path,local", [
    ("Qwen/Qwen3-1.7B", False), ("gpt2", False), ("/abs/model", True), ("./model", True), ("../m", True),
    ("~/m", True), ("checkpoints/stage1/final", True), ("model/", True),
])
def test_looks_local(path, local):
    assert looks_local(path) == local


def test_resolve_dtype():
    assert resolve_dtype(None) == "auto" == resolve_dtype("auto")
    assert resolve_dtype("bf16") is torch.bfloat16 and resolve_dtype("fp32") is torch.float32
    assert resolve_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match=r"unknown dtype 'fp8': use one of \['auto', 'bf16'"):
        resolve_dtype("fp8")


def test_sampling_generation_config_is_neutralised(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    path, _ = tiny_model_dir
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    gc = model.generation_config
    gc.do_sample, gc.top_k, gc.top_p, gc.temperature = True, 20, 0.95, 0.6  # Qwen3's shipped defaults
    save_model_dir(tmp_path / "sampling", model, tok)
    saved = json.loads((tmp_path / "sampling" / "generation_config.json").read_text())
    assert saved["do_sample"] is True and saved["top_k"] == 20
    loaded, _ = load_model_and_tokenizer(tmp_path / "sampling")
    g = loaded.generation_config
    assert (g.do_sample, g.top_k, g.top_p, g.temperature) == (False, None, None, None)
    assert (g.eos_token_id, g.pad_token_id) == (2, 0)
    gc.do_sample, gc.top_k = True, 5
    assert neutral_generation_config(model) == {"do_sample": True, "temperature": 0.6, "top_k": 5, "top_p": 0.95}
    assert neutral_generation_config(model) == {}


def test_pad_token_set_when_missing(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    path, _ = tiny_model_dir
    tok = AutoTokenizer.from_pretrained(path)
    tok.pad_token = None
    save_model_dir(tmp_path / "nopad", AutoModelForCausalLM.from_pretrained(path), tok)
    model, tok2 = load_model_and_tokenizer(tmp_path / "nopad", padding_side="right")
    assert (tok2.pad_token, tok2.pad_token_id, model.config.pad_token_id, tok2.padding_side) == \
        ("<|endoftext|>", 0, 0, "right")


def test_save_model_dir_refuses_non_empty(tiny_model_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match=r"out exists and is not empty \(pass overwrite=True / --overwrite"):
        save_model_dir(tmp_path / "out", None, None)


# -- scripts/make_tiny_model.py ----------------------------------------------------------------------
def _run_script(*args, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO_ROOT)


def test_script_help():
    r = _run_script("--help")
    assert r.returncode == 0
    for flag in ("--data_dir", "--category", "--output_dir", "--vocab_size", "--hidden_size", "--num_layers",
                 "--num_heads", "--seed", "--overwrite"):
        assert flag in r.stdout
    assert "Build the tiny offline base model" in r.stdout


def test_script_real_run_on_tiny_release(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    items, index = tiny_catalogue(30, seed=3)
    write_catalogue(tmp_path / "data", "Tiny", items, index)
    out = tmp_path / "model"
    r = _run_script("--data_dir", tmp_path / "data", "--category", "Tiny", "--output_dir", out, "--vocab_size", 500,
                    "--hidden_size", 32, "--num_layers", 1, "--num_heads", 2, "--seed", 1)
    assert r.returncode == 0, r.stderr
    assert "items 30 (30 with a SID)" in r.stdout and "vocab size" in r.stdout and "parameters" in r.stdout
    meta = json.loads((out / "sidreasoner_model.json").read_text())
    assert meta["config"]["hidden_size"] == 32 and meta["config"]["intermediate_size"] == 96
    assert meta["stats"]["sid_tokens"] == len(index.tokens())
    # a tokenizer class name transformers 4.x loads too (5.x would write "TokenizersBackend")
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size == len(tok) == meta["stats"]["tokenizer_size"]
    assert model.config.num_hidden_layers == 1 and embeddings_tied(model)
    check_sid_tokens(tok, index.unique_sids())


def _script_main():
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_tiny_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module.main


def test_script_bad_input_exits_2_with_message(tmp_path, capsys):
    main = _script_main()
    items, index = tiny_catalogue(10)
    write_catalogue(tmp_path / "data", "Tiny", items, index)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    assert main(["--data_dir", str(tmp_path / "data"), "--category", "Tiny", "--output_dir", str(tmp_path / "busy")]) == 2
    assert capsys.readouterr().err == (f"make_tiny_model: error: {tmp_path / 'busy'} exists and is not empty "
                                       f"(pass overwrite=True / --overwrite to replace it)\n")
    assert main(["--data_dir", str(tmp_path / "data"), "--category", "Nope", "--output_dir", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err == f"make_tiny_model: error: {tmp_path / 'data' / 'index' / 'Nope.item.json'}: file not found\n"
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_script_on_office(office_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from sidreasoner.data.formats import read_split_csv
    from sidreasoner.data.formats import read_sid_index
    from sidreasoner.tasks.prompts import next_sid_prompt
    out = tmp_path / "office"
    r = _run_script("--data_dir", office_dir, "--category", "Office_Products", "--output_dir", out, timeout=600)
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "sidreasoner_model.json").read_text())["stats"]
    assert meta["items"] == 3459 and meta["tokenizer_size"] <= 3072 + 2 + meta["sid_tokens"]
    assert meta["prompt_tokens"]["no_think_mean"] < 150  # ~10 SIDs x 3 tokens + ~70 of wording
    model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    index = read_sid_index(Path(office_dir) / "index" / "Office_Products.index.json")
    check_sid_tokens(tok, index.unique_sids())
    row = read_split_csv(Path(office_dir) / "test" / "Office_Products_5_2016-10-2018-11.csv")[0]
    enc = tok([render_prompt(tok, next_sid_prompt(row.history_sids), think=False)], return_tensors="pt")
    gen = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert gen.shape[1] > enc["input_ids"].shape[1]
