"""Catalogue tokenizer, Qwen3 chat template and chat helpers (sidreasoner.train.tokenizer / chat_template / chat)."""
from __future__ import annotations

import pytest

from sidreasoner.model.chat import check_sid_tokens, render_prompt, render_training_example, stop_token_id
from sidreasoner.model.chat_template import EMPTY_THINK_BLOCK, QWEN3_CHAT_TEMPLATE, render_chat
from sidreasoner.train.tokenizer import (REASONING_TEXT, split_out_tokens, train_catalogue_tokenizer)

SIDS = ["<a_1><b_2><c_3>", "<a_1><b_0><c_3>", "<a_0><b_2><c_1>"]
SID_TOKENS = ["<a_0>", "<a_1>", "<b_0>", "<b_2>", "<c_1>", "<c_3>"]
TEXTS = ["Blue Gel Pens, 12 Pack. Smooth writing gel pens for office and school."] * 5 + \
        ["Heavy Duty Stapler. Staples up to 40 sheets of printer paper."] * 5


@pytest.fixture(scope="module")
def tok():
    return train_catalogue_tokenizer(TEXTS, vocab_size=1000, sid_tokens=SID_TOKENS)


# -- chat template: exact Qwen3 strings ------------------------------------------------------------
SYS, USER = {"role": "system", "content": "S"}, {"role": "user", "content": "U"}
HEAD = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
TEMPLATE_CASES = [
    # (messages, add_generation_prompt, enable_thinking, expected)
    ([SYS, USER], True, False, HEAD + "<|im_start|>assistant\n<think>\n\n</think>\n\n"),
    ([SYS, USER], True, True, HEAD + "<|im_start|>assistant\n"),
    ([USER], True, False, "<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"),
    # training rendering, thinking: the reasoning is kept in the last turn
    ([SYS, USER, {"role": "assistant", "content": "<think>\nR\n</think>\n\n<a_1><b_2><c_3>"}], False, True,
     HEAD + "<|im_start|>assistant\n<think>\nR\n</think>\n\n<a_1><b_2><c_3><|im_end|>\n"),
    # training rendering, plain answer: Qwen3 writes the empty think block (= the non-thinking prompt)
    ([SYS, USER, {"role": "assistant", "content": "<a_1><b_2><c_3>"}], False, True,
     HEAD + "<|im_start|>assistant\n<think>\n\n</think>\n\n<a_1><b_2><c_3><|im_end|>\n"),
    # reasoning_content field instead of inline tags
    ([USER, {"role": "assistant", "content": "A", "reasoning_content": "R"}], False, True,
     "<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n<think>\nR\n</think>\n\nA<|im_end|>\n"),
    # multi-turn: reasoning of assistant turns before the last user turn is dropped
    ([{"role": "user", "content": "U1"}, {"role": "assistant", "content": "<think>\nr1\n</think>\n\nA1"},
      {"role": "user", "content": "U2"}, {"role": "assistant", "content": "<think>\nr2\n</think>\n\nA2"}], False, True,
     "<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n"
     "<|im_start|>assistant\n<think>\nr2\n</think>\n\nA2<|im_end|>\n"),
]


@pytest.mark.parametrize("messages,gen,think,expected", TEMPLATE_CASES)
def test_chat_template_renders_like_qwen3(tok, messages, gen, think, expected):
    got = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen, enable_thinking=think)
    assert got == expected
    assert render_chat(messages, add_generation_prompt=gen, enable_thinking=think) == expected


def test_template_is_qwen3_official_text_known_to_trl(tok):
    # TRL swaps in its assistant-only-loss training template only for the exact official text
    chat_template_utils = pytest.importorskip("trl.chat_template_utils")
    assert QWEN3_CHAT_TEMPLATE == chat_template_utils.qwen3_chat_template
    assert chat_template_utils.get_training_chat_template(tok) == chat_template_utils.qwen3_training_chat_template


def test_render_chat_rejects_bad_messages():
    with pytest.raises(ValueError, match=r"render_chat: no messages"):
        render_chat([])
    with pytest.raises(ValueError, match=r"render_chat: message 1 needs 'role' and 'content'"):
        render_chat([USER, {"role": "assistant"}])


# -- chat helpers --------------------------------------------------------------------------------
def test_render_prompt_modes_and_system(tok):
    assert render_prompt(tok, "U", think=False, system="S") == HEAD + "<|im_start|>assistant\n" + EMPTY_THINK_BLOCK
    assert render_prompt(tok, "U", think=True, system="S") == HEAD + "<|im_start|>assistant\n"
    assert render_prompt(tok, "U", think=True, system=None) == "<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    assert render_prompt(tok, "U", think=False).startswith("<|im_start|>system\nYou are a recommender system.")
    with pytest.raises(ValueError, match="empty user message"):
        render_prompt(tok, "  ", think=False)


@pytest.mark.parametrize("think,answer,completion", [
    (False, "<a_1><b_2><c_3>", "<a_1><b_2><c_3><|im_end|>\n"),
    (True, "<think>\nR\n</think>\n\n<a_1><b_2><c_3>", "<think>\nR\n</think>\n\n<a_1><b_2><c_3><|im_end|>\n"),
])
def test_render_training_example_prompt_is_prefix(tok, think, answer, completion):
    prompt, comp = render_training_example(tok, "U", answer, think=think, system="S")
    assert prompt == render_prompt(tok, "U", think=think, system="S")
    assert comp == completion


def test_render_training_example_detects_mode_mismatch(tok):
    # a reasoning answer under the non-thinking prompt cannot be rendered as prompt + completion
    with pytest.raises(ValueError, match="chat template does not extend the non-thinking prompt"):
        render_training_example(tok, "U", "<think>\nR\n</think>\n\nA", think=False)


def test_stop_token_id(tok):
    assert stop_token_id(tok) == 2 == tok.convert_tokens_to_ids("<|im_end|>") == tok.eos_token_id


def test_stop_token_id_missing():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    bare = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE(vocab={"a": 0}, merges=[])))
    with pytest.raises(ValueError, match=r"tokenizer has no <\|im_end\|> token: not a Qwen-style chat tokenizer"):
        stop_token_id(bare)


def test_check_sid_tokens(tok):
    check_sid_tokens(tok, SIDS)  # all present: no error
    with pytest.raises(ValueError, match=r"^checkpoint has no SID tokens: 2 missing from the vocabulary of 3 "
                                         r"\(e\.g\. <a_7>, <c_9>\); run stage 1 / add_sid_tokens first$"):
        check_sid_tokens(tok, ["<a_7><b_2><c_9>"])
    bare = train_catalogue_tokenizer(TEXTS, vocab_size=300)
    with pytest.raises(ValueError, match=r"checkpoint has no SID tokens: 6 missing from the vocabulary of 6"):
        check_sid_tokens(bare, SIDS)
    with pytest.raises(ValueError, match="no SIDs given"):
        check_sid_tokens(tok, [])


def test_check_sid_tokens_catches_a_token_that_splits():
    # "<a_1>" is in the vocabulary but only as a BPE entry: the pre-tokenizer cuts it into characters
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    raw = Tokenizer(models.BPE(vocab={"<": 0, "a": 1, "_": 2, "1": 3, ">": 4, "<a_1>": 5}, merges=[]))
    raw.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    split_tok = PreTrainedTokenizerFast(tokenizer_object=raw)
    assert split_tok.encode("<a_1>", add_special_tokens=False) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"^checkpoint has no SID tokens: 1 not encoded as one token of 1 "
                                         r"\(e\.g\. <a_1>\); run stage 1"):
        check_sid_tokens(split_tok, ["<a_1>"])


# -- tokenizer -----------------------------------------------------------------------------------
def test_special_and_added_token_layout(tok):
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    assert (tok.pad_token, tok.eos_token, tok.bos_token, tok.padding_side) == ("<|endoftext|>", "<|im_end|>", None, "left")
    added = {t.content: t for t in tok.added_tokens_decoder.values()}
    for t in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]:
        assert added[t].special
    for t in ["<think>", "</think>"] + SID_TOKENS:
        assert not added[t].special, t
    assert len(tok) <= 1000 + 2 + len(SID_TOKENS)
    ids = tok.convert_tokens_to_ids(["<think>", "</think>"] + SID_TOKENS)
    assert ids == list(range(len(tok) - 2 - len(SID_TOKENS), len(tok)))  # think tags, then SIDs, at the end


def test_sid_tokens_and_think_tags_are_single_ids_and_survive_skip_special(tok):
    text = "<|im_start|>assistant\n<think>\nR\n</think>\n\n<a_1><b_2><c_3><|im_end|>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    toks = tok.convert_ids_to_tokens(ids)
    for t in ["<think>", "</think>", "<a_1>", "<b_2>", "<c_3>", "<|im_end|>"]:
        assert toks.count(t) == 1, (t, toks)
    assert tok.decode(ids, skip_special_tokens=True) == "assistant\n<think>\nR\n</think>\n\n<a_1><b_2><c_3>"
    assert tok.decode(ids) == text
    for t in SID_TOKENS + ["<think>", "</think>"]:
        assert len(tok.encode(t, add_special_tokens=False)) == 1
        assert len(tok.encode(f"x {t}y", add_special_tokens=False)) >= 3  # matched inside text too


def test_catalogue_and_prompt_words_are_compact(tok):
    # words seen often in the catalogue / prompt wording become single tokens
    for word in [" Stapler", " pens", " chronological", " semantic", " recommender", " step"]:
        assert len(tok.encode(word, add_special_tokens=False)) == 1, word
    assert len(tok.encode(REASONING_TEXT, add_special_tokens=False)) < 1.5 * len(REASONING_TEXT.split())
    assert len(tok.encode("<think>\n\n</think>\n\n", add_special_tokens=False)) == 4  # <think> \n\n </think> \n\n


def test_any_text_encodes_without_unknowns(tok):
    text = "Ünïcödé 漢字 emoji 🙂 and tabs\t"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text


def test_save_and_reload_offline(tok, tmp_path, monkeypatch):
    from transformers import AutoTokenizer
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = render_prompt(tok, "The user bought <a_1><b_2><c_3>, <a_0><b_2><c_1>.", think=False)
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.chat_template == QWEN3_CHAT_TEMPLATE
    assert (again.pad_token, again.eos_token, again.padding_side) == ("<|endoftext|>", "<|im_end|>", "left")
    assert render_prompt(again, "U", think=False, system="S") == render_prompt(tok, "U", think=False, system="S")


def test_deterministic(tok):
    again = train_catalogue_tokenizer(TEXTS, vocab_size=1000, sid_tokens=SID_TOKENS)
    assert again.get_vocab() == tok.get_vocab()


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"^vocab_size must be at least 259 \(256 bytes \+ 3 special tokens\), got 100$"):
        train_catalogue_tokenizer(TEXTS, vocab_size=100)
    with pytest.raises(ValueError, match=r"^not SID tokens \(expected like '<a_12>'\): \['<a_1><b_2>', 'a_1'\]$"):
        train_catalogue_tokenizer(TEXTS, vocab_size=300, sid_tokens=["<a_1>", "<a_1><b_2>", "a_1"])
    with pytest.raises(TypeError, match="texts must be an iterable of strings, not one string"):
        train_catalogue_tokenizer("one text", vocab_size=300)


@pytest.mark.parametrize("text,pieces", [
    ("plain text", ["plain text"]),
    ("<|im_start|>user\nhi<|im_end|>\n", ["user\nhi", "\n"]),
    ("order: <a_1><b_2><c_3>, <a_4><b_5>. Next", ["order: ", ", ", ". Next"]),
    ("<think>\nwhy\n</think>\n\n<a_1><b_2>", ["\nwhy\n", "\n\n"]),
    ("<a_1>", []),
])
def test_split_out_tokens(text, pieces):
    assert split_out_tokens(text) == pieces
