"""A small byte-level BPE tokenizer trained on a catalogue, shaped like Qwen3's.

Structure copied from Qwen2/Qwen3's ``tokenizer.json`` (NFC normaliser, Qwen's pre-tokenisation
regex, byte-level BPE, byte-level decoder), so any UTF-8 text encodes without unknown tokens. Ids:

- ``<|endoftext|>`` 0 (pad), ``<|im_start|>`` 1, ``<|im_end|>`` 2 (eos for chat): special tokens;
- the learned byte-level BPE vocabulary (``vocab_size`` entries in all, the specials included);
- ``<think>``, ``</think>`` and then every SID token, as ordinary NON-special added tokens: each is one
  id, and ``decode(..., skip_special_tokens=True)`` keeps them (verl and TRL decode that way before
  calling rewards).

The training text is the catalogue (``sidreasoner.data.text.item_text``: title + cleaned
description) plus, repeated so BPE learns them, the chat scaffolding and prompt wording
(``sidreasoner.tasks.prompts``) and some generic English reasoning prose, so prompts and reasoning
tokenise compactly. SIDs are cut out of that text before training: they are added tokens, and BPE
merges of ``<a_`` fragments would only waste vocabulary.
"""
from __future__ import annotations

import re
from typing import Iterable, Iterator, Mapping, Optional, Sequence

from ..data.records import Item
from ..sid.spelling import find_sid_runs, format_sid, is_sid_token
from ..tasks.prompts import SYSTEM_PROMPT
from ..model.chat_template import (ENDOFTEXT, IM_END, IM_START, QWEN3_CHAT_TEMPLATE, THINK_CLOSE, THINK_OPEN,
                            render_chat)

#: BPE vocabulary size (256 byte symbols + 3 specials + merges); think tags and SIDs come on top
DEFAULT_VOCAB_SIZE = 3072
DEFAULT_MODEL_MAX_LENGTH = 2048
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
THINK_TOKENS = (THINK_OPEN, THINK_CLOSE)
MIN_VOCAB = 256 + len(SPECIAL_TOKENS)

# Generic reasoning prose (what stage-2 reasoning paths sound like), so such text is not spelled
# out byte by byte by a tokenizer that only saw product titles.
REASONING_TEXT = (
    "Let me think step by step about what the user needs. The user has recently bought several items, "
    "and the history shows a clear pattern. First, the most recent purchases suggest an ongoing project. "
    "Second, the earlier items were supplies that usually need to be replaced or refilled. Because these "
    "products are often used together, the next item is likely a complementary product from the same "
    "category, or a related accessory. However, the user might also prefer a similar brand. Therefore, "
    "considering the overall interest and the most recent interaction, the best recommendation is an item "
    "that matches this need. In summary, based on this reasoning, I would recommend the following item. "
    "The answer is the semantic ID of the next item."
)
_TAG_SPLIT = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS + THINK_TOKENS))


def catalogue_texts(items: Mapping[str, Item]) -> list[str]:
    """One clean text per item (title + cleaned description), empty ones left out."""
    from ..data.text import item_text
    return [t for t in (item_text(it) for it in items.values()) if t]


def split_out_tokens(text: str) -> list[str]:
    """Cut chat special tokens, think tags and SIDs out of ``text``; return the non-empty pieces.

    The tokenizer matches added tokens before pre-tokenisation, so these pieces are exactly what BPE
    sees around them at encode time.
    """
    pieces = []
    for part in _TAG_SPLIT.split(text):
        pos = 0
        for start, end, _ in find_sid_runs(part):
            pieces.append(part[pos:start])
            pos = end
        pieces.append(part[pos:])
    return [p for p in pieces if p]


def _user_prompts(sid: str, title: str) -> list[tuple[str, bool]]:
    """Every prompt wording of ``sidreasoner.tasks.prompts`` with placeholders, and its think mode."""
    from ..tasks import prompts as P
    sids, titles = [sid] * 3, [title] * 3
    return [(P.next_sid_prompt(sids, think=False), False), (P.next_sid_prompt(sids, think=True), True),
            (P.next_title_from_sids_prompt(sids), False), (P.next_title_from_titles_prompt(titles), False),
            (P.next_sid_from_titles_prompt(titles), False), (P.sid_to_title_prompt(sid), False),
            (P.title_to_sid_prompt(title), False)]


def scaffold_texts() -> list[str]:
    """The chat scaffolding and prompt wording, rendered through the real template, SIDs cut out."""
    sid = format_sid((1, 2, 3))  # a placeholder: only the text around SIDs matters here
    texts = []
    for user, think in _user_prompts(sid, title="Item"):
        reasoning = f"{THINK_OPEN}\n{REASONING_TEXT}\n{THINK_CLOSE}\n\n" if think else ""
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user},
                    {"role": "assistant", "content": reasoning + sid}]
        texts.append(render_chat(messages))
        texts.append(render_chat(messages[:2], add_generation_prompt=True, enable_thinking=think))
    return [p for t in texts for p in split_out_tokens(t)]


def _corpus(texts: Iterable[str], scaffold_repeats: int) -> Iterator[str]:
    for t in texts:
        yield from split_out_tokens(t)
    scaffold = scaffold_texts() + [REASONING_TEXT]
    for _ in range(scaffold_repeats):
        yield from scaffold


def _bpe_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    # Qwen's own pre-tokenisation split (digits one by one, contractions, letters, punctuation runs)
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def _check_sid_tokens(sid_tokens: Iterable[str]) -> list[str]:
    toks = list(dict.fromkeys(sid_tokens))  # de-duplicated, order kept
    bad = [t for t in toks if not isinstance(t, str) or not is_sid_token(t)]
    if bad:
        raise ValueError(f"not SID tokens (expected like '<a_12>'): {bad[:5]!r}"
                         + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))
    return toks


def train_catalogue_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE,
                              sid_tokens: Sequence[str] = (), *, scaffold_repeats: Optional[int] = None,
                              min_frequency: int = 2, model_max_length: int = DEFAULT_MODEL_MAX_LENGTH):
    """Train the byte-level BPE on ``texts`` and wrap it as a Qwen3-style HF tokenizer.

    ``vocab_size`` counts the byte alphabet, the 3 special tokens and the merges; the think tags and
    ``sid_tokens`` are added after it (so ``len(tok) <= vocab_size + 2 + len(sid_tokens)``; fewer when
    the corpus is too small to learn every merge). ``scaffold_repeats`` (default: one per 10 texts,
    at least 20) is how often the chat scaffolding and prompt wording are repeated in the corpus.
    Returns a ``PreTrainedTokenizerFast`` with the Qwen3 chat template, eos ``<|im_end|>``, pad
    ``<|endoftext|>`` and left padding (generation); ``save_pretrained`` it to use it offline.
    """
    from tokenizers import AddedToken, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size must be at least {MIN_VOCAB} (256 bytes + 3 special tokens), got {vocab_size}")
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings, not one string")
    sids = _check_sid_tokens(sid_tokens)
    texts = list(texts)
    repeats = max(20, len(texts) // 10) if scaffold_repeats is None else scaffold_repeats
    tok = _bpe_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(texts, repeats), trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS + tuple(sids)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=None, eos_token=IM_END, pad_token=ENDOFTEXT, unk_token=None,
        padding_side="left", clean_up_tokenization_spaces=False, model_max_length=model_max_length,
        chat_template=QWEN3_CHAT_TEMPLATE)
