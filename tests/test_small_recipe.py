"""The stage-1 levers for small models: prompt styles, history loss, supervised-positions loss,
dropout, and checkpoint selection by valid ranking (a probe that must agree with evaluate.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)
from fixtures_sft import CATEGORY, write_tiny_release

from sidreasoner.data.formats import read_split_csv
from sidreasoner.data.records import SequenceRow
from sidreasoner.tasks import prompts
from sidreasoner.tasks.base import ChatExample, TaskData
from sidreasoner.tasks.sequence import COVERED, NextSID, covered_rows
from sidreasoner.model.chat import PROMPT_FILE, model_prompt_style, next_sid_prompt_text, write_prompt_style
from sidreasoner.train.sft_config import SFTConfig
from sidreasoner.train.sft_trainer import run_sft

A, B, C = "<a_1><b_2><c_3>", "<a_4><b_5><c_6>", "<a_7><b_8><c_9>"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_tiny_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from sidreasoner.model.model_factory import load_model_and_tokenizer
    return load_model_and_tokenizer(str(tiny_model_dir[0]), dtype=torch.float32)


# -- prompt styles ---------------------------------------------------------------------------
@pytest.mark.parametrize("style,think,system,user", [
    ("compact", False, None, A + B),
    ("compact", True, None, A + B),
    ("native", False, prompts.SYSTEM_PROMPT, prompts.next_sid_prompt([A, B], think=False)),
    ("native", True, prompts.SYSTEM_PROMPT, prompts.next_sid_prompt([A, B], think=True)),
])
def test_next_sid_turns(style, think, system, user):
    assert prompts.next_sid_turns([A, B], think=think, style=style) == (system, user)


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="unknown prompt style 'terse'"):
        prompts.next_sid_turns([A], style="terse")


def test_compact_prompt_is_much_shorter(model):
    _, tok = model
    sids = ["<a_0><b_1><c_2>", "<a_1><b_2><c_3>", "<a_3><b_0><c_1>"] * 3
    native = tok.encode(next_sid_prompt_text(tok, sids, False, "native"))
    compact = tok.encode(next_sid_prompt_text(tok, sids, False, "compact"))
    assert len(compact) < len(native) / 2
    assert "system" not in next_sid_prompt_text(tok, sids, False, "compact")


@pytest.mark.parametrize("recorded,requested,expected", [
    (None, "auto", "native"),                        # a folder without prompt_style.json (a base model)
    ({"prompt_style": "compact"}, "auto", "compact"),
    ({"prompt_style": "compact"}, "native", "native"),  # an explicit request wins
    ({}, "", "native"),                               # a record without the field
])
def test_model_prompt_style(tmp_path, recorded, requested, expected):
    if recorded is not None:
        (tmp_path / PROMPT_FILE).write_text(json.dumps(recorded))
    assert model_prompt_style(tmp_path, requested) == expected


def test_written_style_is_read_back_and_checked(tmp_path):
    write_prompt_style(tmp_path, "compact")
    assert model_prompt_style(tmp_path) == "compact"
    with pytest.raises(ValueError, match="unknown prompt style"):
        write_prompt_style(tmp_path, "chatty")


def test_unreadable_training_config_names_the_file(tmp_path):
    (tmp_path / PROMPT_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="prompt_style.json: unreadable"):
        model_prompt_style(tmp_path)


# -- history loss ----------------------------------------------------------------------------
def _row(user, hist, target):
    return SequenceRow(user, tuple(hist), (), (), target, "", "")


@pytest.mark.parametrize("rows,covered", [
    ([_row("u", "a", "b"), _row("u", "ab", "c"), _row("u", "abc", "d")], {0, 1}),
    ([_row("u", "a", "b"), _row("v", "ab", "c")], set()),               # another user's sequence
    ([_row("u", "ab", "c"), _row("u", "xb", "c")], set()),              # same length, not a prefix
    ([_row("u", "a", "b"), _row("u", "ac", "d")], set()),               # a -> b is not in a c d
    ([_row("u", "ab", "c"), _row("u", "a", "b"), _row("u", "abc", "d"), _row("u", "abc", "e")], {0, 1}),
])
def test_covered_rows(rows, covered):
    assert covered_rows(rows) == covered


def test_history_loss_drops_covered_rows_and_counts_them(release):
    from sidreasoner.data.formats import read_sid_index
    index = read_sid_index(release.index_json, release.item_json)
    train, valid = read_split_csv(release.split("train")), read_split_csv(release.split("valid"))
    data = TaskData(index, train_rows=train, valid_rows=valid, train_path=str(release.split("train")))
    plain, hist = NextSID("compact").build(data), NextSID("compact", history_loss=True).build(data)
    assert len(plain.train) == len(train) == 64 and len(hist.train) == 16  # one 5-item walk per user
    assert hist.skips.counts[COVERED] == 48
    assert all(ex.prompt_sid_loss for ex in hist.train) and not any(ex.prompt_sid_loss for ex in hist.valid)


def test_prompt_sid_loss_labels_the_history_sids(model):
    from sidreasoner.train.sft_data import IGNORE_INDEX, ExampleEncoder
    _, tok = model
    sids = ["<a_0><b_1><c_2>", "<a_1><b_2><c_3>"]
    ex = ChatExample("next_sid", (("user", "".join(sids)),), "<a_2><b_3><c_0>", prompt_sid_loss=True)
    enc = ExampleEncoder(tok, 512).encode(ex)
    labelled = [tok.convert_ids_to_tokens(i) for i in enc.labels if i != IGNORE_INDEX]
    assert labelled[:6] == ["<a_0>", "<b_1>", "<c_2>", "<a_1>", "<b_2>", "<c_3>"]
    assert labelled[6:9] == ["<a_2>", "<b_3>", "<c_0>"] and labelled[9] == "<|im_end|>"
    plain = ExampleEncoder(tok, 512).encode(ChatExample("next_sid", ex.messages, ex.answer))
    assert sum(i != IGNORE_INDEX for i in enc.labels) == sum(i != IGNORE_INDEX for i in plain.labels) + 6


# -- supervised-positions loss ----------------------------------------------------------------
def _batch(tok):
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 0, 0]])
    labels = torch.tensor([[-100, -100, -100, 8, 9, 10], [-100, 12, -100, 14, -100, -100]])
    return {"input_ids": ids, "attention_mask": torch.tensor([[1] * 6, [1] * 4 + [0] * 2]), "labels": labels}


def test_supervised_loss_equals_the_models_own_loss(model):
    from sidreasoner.train.loss import supervised_loss
    m, tok = model
    batch = _batch(tok)
    with torch.no_grad():
        ours = supervised_loss(m, batch)
        theirs = m(**batch).loss
        assert torch.allclose(ours, theirs, atol=1e-5)
        # normalised by the step's token count when gradient accumulation gives one
        assert torch.allclose(supervised_loss(m, batch, num_items=torch.tensor(10)), ours * 5 / 10, atol=1e-6)


def test_example_normalisation_weighs_every_example_the_same(model):
    from sidreasoner.train.loss import supervised_loss
    m, tok = model
    batch = _batch(tok)  # row 0: 3 supervised tokens, row 1: 2
    with torch.no_grad():
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["labels"][:, 1:], reduction="none")
        per_row = [ce[0, 2:5].mean(), ce[1, [0, 2]].mean()]  # each example's mean token loss
        expected = (2.5 * per_row[0] + 2.5 * per_row[1]) / 5  # 2.5 of weight per example over 5 tokens
        got = supervised_loss(m, batch, mean_answer_tokens=2.5)
    assert torch.allclose(got, expected, atol=1e-5)



@pytest.mark.parametrize("keep, answer", [
    ("0110011000", "0000011000"),  # history run, gap, answer run, padding
    ("0001110000", "0001110000"),  # answer only
    ("1101000111", "0000000111"),  # two history runs, answer at the end
    ("0000000000", "0000000000"),  # nothing supervised
])
def test_answer_mask_is_the_last_supervised_run(keep, answer):
    from sidreasoner.train.loss import answer_mask
    row = torch.tensor([[c == "1" for c in keep]])
    assert "".join(str(int(x)) for x in answer_mask(row)[0]) == answer


def test_history_weight_scales_only_the_prompt_tokens(model):
    from sidreasoner.train.loss import supervised_loss
    m, tok = model
    batch = _batch(tok)  # row 1: target 12 is history (a gap follows), 14 is the answer
    with torch.no_grad():
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch["labels"][:, 1:], reduction="none")
        expected = (ce[0, 2:5].sum() + 0.25 * ce[1, 0] + ce[1, 2]) / 5
        got = supervised_loss(m, batch, history_weight=0.25)
    assert torch.allclose(got, expected, atol=1e-5)


def test_label_smoothing_mixes_in_the_uniform_target(model):
    """Per supervised token: (1 - e) x -log p(target) + e x the mean of -log p over the vocabulary."""
    from sidreasoner.train.loss import supervised_loss
    m, tok = model
    batch = _batch(tok)
    with torch.no_grad():
        logp = torch.log_softmax(m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1], -1)
        target = batch["labels"][:, 1:]
        keep = target != -100
        nll = -logp[keep].gather(-1, target[keep].unsqueeze(-1)).squeeze(-1)
        expected = ((0.9 * nll + 0.1 * -logp[keep].mean(-1)).sum() / keep.sum())
        got = supervised_loss(m, batch, label_smoothing=0.1)
    assert torch.allclose(got, expected, atol=1e-5)


# -- dropout ---------------------------------------------------------------------------------
def test_dropout_trains_noisy_evaluates_clean_and_saves_plain_qwen3(tiny_model_dir, tmp_path):
    from sidreasoner.train.dropout import add_dropout
    from sidreasoner.model.model_factory import load_model_and_tokenizer
    m, _ = load_model_and_tokenizer(str(tiny_model_dir[0]), dtype=torch.float32)
    ids = torch.tensor([[5, 6, 7, 8]])
    clean = m(input_ids=ids).logits
    assert add_dropout(m, 0.0) == 0
    assert add_dropout(m, 0.3) == 1 + 2 * len(m.model.layers)
    m.train()
    torch.manual_seed(0)
    a, b = m(input_ids=ids).logits, m(input_ids=ids).logits
    assert not torch.allclose(a, b)
    m.eval()
    assert torch.allclose(m(input_ids=ids).logits, clean, atol=1e-6)
    m.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()).get("attention_dropout", 0.0) == 0.0


# -- selection by valid ranking ---------------------------------------------------------------
def test_rank_probe_agrees_with_the_evaluator(model, release, tmp_path):
    from sidreasoner.eval.runner import EvalConfig, run_evaluation
    from sidreasoner.data.formats import read_sid_index
    from sidreasoner.train.rank_eval import RankingProbe
    m, tok = model
    rows = read_split_csv(release.split("valid"))
    index = read_sid_index(release.index_json, release.item_json)
    probe = RankingProbe(rows, tok, index, "native", num_beams=10, batch_size=5)
    got = probe(m)
    cfg = EvalConfig.from_release(release.data_dir, CATEGORY, split="valid", base_model="unused",
                                  output_dir=str(tmp_path / "ev"), num_beams=10, prompt_style="native", ks=[10])
    ref = run_evaluation(cfg, model=m, tokenizer=tok)
    assert got == pytest.approx({"ndcg10": ref["NDCG@10"], "hr10": ref["HR@10"]}, abs=1e-9)


def test_thinking_probe_agrees_with_the_evaluators_thinking_mode(model, release, tmp_path):
    from sidreasoner.eval.runner import EvalConfig, run_evaluation
    from sidreasoner.data.formats import read_sid_index
    from sidreasoner.train.rank_eval import RankingProbe
    m, tok = model
    rows = read_split_csv(release.split("valid"))
    index = read_sid_index(release.index_json, release.item_json)
    got = RankingProbe(rows, tok, index, "native", num_beams=10, batch_size=64, think_rows=6, think_tokens=6)(m)
    cfg = EvalConfig.from_release(release.data_dir, CATEGORY, split="valid", base_model="unused", limit=6,
                                  output_dir=str(tmp_path / "ev"), num_beams=10, prompt_style="native", ks=[10],
                                  think=True, max_think_tokens=6, repetition_penalty=1.3, batch_size=64)
    ref = run_evaluation(cfg, model=m, tokenizer=tok)
    assert got["think_ndcg10"] == pytest.approx(ref["NDCG@10"], abs=1e-9)
    assert got["both_ndcg10"] == pytest.approx((got["ndcg10"] + got["think_ndcg10"]) / 2)


@pytest.mark.parametrize("flags, message", [
    ({"select_on": "think", "rank_eval_rows": 16}, "--select_on think needs the thinking probe"),
    ({"rank_eval_think_rows": -1}, "--rank_eval_think_rows must be >= 0"),
])
def test_bad_probe_flags(flags, message):
    from sidreasoner.train.sft_config import resolve
    with pytest.raises(ValueError, match=message):
        resolve(SFTConfig(base_model="m", data_dir="d", category="C", **flags))


def test_training_selects_on_valid_ndcg_and_records_the_style(tiny_model_dir, release, tmp_path):
    cfg = SFTConfig(base_model=str(tiny_model_dir[0]), data_dir=str(release.data_dir), category=CATEGORY,
                    output_dir=str(tmp_path), tasks="next_sid", prompt_style="compact", history_loss=True,
                    dropout=0.1, batch_size=8, micro_batch_size=8, learning_rate=5e-3, warmup_steps=0,
                    max_steps=4, eval_steps=2, rank_eval_rows=16, logging_steps=1, log_file=str(tmp_path / "l.jsonl"),
                    resume_from_checkpoint="none", seed=0)
    summary = run_sft(cfg)
    assert summary["select_metric"] == "eval_ndcg10"
    hist = summary["eval_history"]
    assert len(hist) == 2 and all(0.0 <= h["eval_ndcg10"] <= 1.0 for h in hist)
    assert summary["best_metric"] == max(h["eval_ndcg10"] for h in hist)
    final = Path(summary["final_checkpoint"])
    assert model_prompt_style(final) == "compact"
    # a stage 2 from it inherits the style unless told otherwise
    from sidreasoner.train.sft_config import resolve
    assert resolve(SFTConfig(stage="reasoning", base_model=str(final), category=CATEGORY)).prompt_style == "compact"


def test_training_can_select_on_both_modes(tiny_model_dir, release, tmp_path):
    cfg = SFTConfig(base_model=str(tiny_model_dir[0]), data_dir=str(release.data_dir), category=CATEGORY,
                    output_dir=str(tmp_path), tasks="next_sid", prompt_style="compact", batch_size=8,
                    micro_batch_size=8, learning_rate=5e-3, warmup_steps=0, max_steps=2, eval_steps=1,
                    rank_eval_rows=8, rank_eval_think_rows=4, rank_eval_think_tokens=4, select_on="both",
                    resume_from_checkpoint="none", seed=0, log_file=str(tmp_path / "l.jsonl"))
    summary = run_sft(cfg)
    hist = summary["eval_history"]
    assert summary["select_metric"] == "eval_both_ndcg10" and len(hist) == 2
    assert all(h["eval_both_ndcg10"] == pytest.approx((h["eval_ndcg10"] + h["eval_think_ndcg10"]) / 2) for h in hist)
    assert summary["best_metric"] == max(h["eval_both_ndcg10"] for h in hist)


def test_recent_crops_add_short_history_copies(release):
    from sidreasoner.data.formats import read_sid_index
    index = read_sid_index(release.index_json, release.item_json)
    train = read_split_csv(release.split("train"))
    data = TaskData(index, train_rows=train, valid_rows=(), train_path=str(release.split("train")))
    split = NextSID("compact", recent_crops=2).build(data)
    # per user, histories of 1..4 items: cuts to the last 1 and 2 items where shorter (0 + 1 + 2 + 2)
    assert len(split.train) == 64 + 16 * 5
    crops = [ex for ex in split.train if "(last " in ex.source]
    row = train[3]  # the first user's 4-item history
    expected = {"".join(row.history_sids[-k:]) for k in (1, 2)}
    got = {ex.messages[-1][1] for ex in crops if ex.source.startswith(f"{Path(release.split('train')).name} line {row.line} ")}
    assert got == expected and all(ex.answer == row.item_sid for ex in crops if ex.messages[-1][1] in expected)


def test_untied_tiny_model_has_its_own_output_embeddings(tmp_path):
    from fixtures_model import tiny_catalogue
    from sidreasoner.model.model_factory import load_model_and_tokenizer, make_tiny_qwen3, save_model_dir
    from sidreasoner.train.tokenizer import catalogue_texts, train_catalogue_tokenizer
    items, index = tiny_catalogue()
    tok = train_catalogue_tokenizer(catalogue_texts(items), 512, index.tokens())
    tied = make_tiny_qwen3(tok, hidden_size=32, num_layers=1, intermediate_size=64)
    untied = make_tiny_qwen3(tok, hidden_size=32, num_layers=1, intermediate_size=64, tie_embeddings=False)
    n = sum(p.numel() for p in tied.parameters())
    assert sum(p.numel() for p in untied.parameters()) == n + len(tok) * 32
    save_model_dir(tmp_path / "m", untied, tok, meta={}, overwrite=True)
    back, _ = load_model_and_tokenizer(str(tmp_path / "m"), dtype=torch.float32)
    assert not back.config.tie_word_embeddings
    assert torch.equal(back.get_output_embeddings().weight, untied.get_output_embeddings().weight)
    assert not torch.equal(back.get_output_embeddings().weight, back.get_input_embeddings().weight)


@pytest.mark.parametrize("flags, message", [
    (["--history_loss_weight", "-0.5"], "--history_loss_weight must be >= 0"),
    (["--label_smoothing", "1.0"], r"--label_smoothing must be in \[0, 1\)"),
    (["--history_loss_weight", "0.5", "--batching", "pack"], "needs example boundaries"),
    (["--loss_norm", "example", "--batching", "pack"], "needs example boundaries"),
    (["--recent_crops", "-1"], "--recent_crops must be >= 0"),
    (["--num_epochs", "0"], r"--num_epochs must be > 0 \(an untrained model is not a result\), got 0.0"),
    (["--max_steps", "0"], r"--max_steps must be -1 \(run the epochs\) or > 0, got 0"),
    (["--learning_rate=-1e-4"], "--learning_rate must be > 0"),
    (["--warmup_steps", "-5"], "--warmup_steps must be >= 0"),
    (["--cutoff_len", "0"], "--cutoff_len must be >= 8"),
    (["--save_total_limit", "0"], "--save_total_limit must be >= 1"),
    (["--valid_fraction", "1.5"], r"--valid_fraction must be in \[0, 1\)"),
])
def test_bad_loss_flags_are_refused(flags, message):
    from sidreasoner.train.sft_config import parse_config, resolve
    with pytest.raises(ValueError, match=message):
        resolve(parse_config(["--base_model", "m", "--data_dir", "d", "--category", "C"] + flags))
