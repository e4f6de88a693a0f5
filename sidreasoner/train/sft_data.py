"""Examples -> token ids and label masks (loss on answers only, stop token supervised).

Chat examples: ``ids = tokenize(prompt) + tokenize(target) + [<|im_end|>]`` where ``prompt`` is the
chat template's generation prompt (``chat.render_prompt`` for single-turn examples, so it is the
evaluator's prompt byte for byte; non-thinking prompts end with the empty think block) and
``target`` is the answer (thinking examples: ``<think>\\n{reasoning}\\n</think>\\n\\n{answer}``).
Labels are ``-100`` over the prompt and the ids over target + stop token (examples with
``prompt_sid_loss`` also keep the labels of the prompt's SID tokens: the history, SASRec-style). The prompt is tokenised on
its own, exactly as at inference, so the model learns the continuation it will be asked for.

LM examples: ``ids = tokenize(text) + [<|endoftext|>]``, labels = ids (Qwen3 separates plain
documents with ``<|endoftext|>``; ``<|im_end|>`` stays the end of an assistant turn).

Examples longer than ``cutoff_len`` tokens are left out and counted per task (truncating would cut
the answer, the only supervised part, or teach an LM text to end mid-sentence).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..sid.spelling import is_sid_token
from ..tasks.base import ChatExample, Example, TextExample
from ..model.chat import render_prompt, stop_token_id
from ..model.chat_template import ENDOFTEXT, THINK_CLOSE, THINK_OPEN

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: list
    labels: list
    task: str


def chat_target(ex: ChatExample) -> str:
    """The assistant text after the generation prompt (without the stop token)."""
    if ex.reasoning is None:
        return ex.answer
    return f"{THINK_OPEN}\n{ex.reasoning.strip()}\n{THINK_CLOSE}\n\n{ex.answer}"


def chat_prompt(tokenizer, ex: ChatExample) -> str:
    """The generation prompt; thinking mode iff the example carries reasoning."""
    think = ex.reasoning is not None
    roles = [r for r, _ in ex.messages]
    if roles in (["user"], ["system", "user"]):
        system = ex.messages[0][1] if roles[0] == "system" else None
        return render_prompt(tokenizer, ex.messages[-1][1], think=think, system=system)
    msgs = [{"role": r, "content": c} for r, c in ex.messages]
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, enable_thinking=think)


def document_end_id(tokenizer) -> int:
    tid = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    if tid is None or tid == tokenizer.unk_token_id:
        if tokenizer.eos_token_id is None:
            raise ValueError(f"the tokenizer has neither {ENDOFTEXT} nor an eos token to end LM documents")
        return tokenizer.eos_token_id
    return tid


@dataclass
class EncodeStats:
    """Per task: examples kept, left out as overlong, and real (non-pad) tokens kept."""

    kept: dict = field(default_factory=dict)
    overlong: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)

    def lines(self, cutoff_len: int) -> list[str]:
        return [f"{t}: {n} examples longer than {cutoff_len} tokens left out" for t, n in self.overlong.items() if n]


class ExampleEncoder:
    """Tokenises examples in batches (the fast tokenizer's batch call is ~10x quicker than one by one)."""

    def __init__(self, tokenizer, cutoff_len: int, mask_prompt: bool = True):
        self.tokenizer, self.cutoff_len, self.mask_prompt = tokenizer, cutoff_len, mask_prompt
        self.stop_id = stop_token_id(tokenizer)
        self.doc_end_id = document_end_id(tokenizer)
        # ids of SID tokens: supervised inside the prompt for examples with prompt_sid_loss
        self.sid_ids = frozenset(i for t, i in tokenizer.get_vocab().items() if is_sid_token(t))

    def _prompt_labels(self, ex: Example, pre: list) -> list:
        if isinstance(ex, ChatExample) and ex.prompt_sid_loss:
            return [i if i in self.sid_ids else IGNORE_INDEX for i in pre]
        return [IGNORE_INDEX] * len(pre)

    def _texts(self, ex: Example) -> tuple[str, str, int]:
        """(unsupervised prefix, supervised text, closing token id)."""
        if isinstance(ex, TextExample):
            return "", ex.text, self.doc_end_id
        return chat_prompt(self.tokenizer, ex), chat_target(ex), self.stop_id

    def _tok(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []

    def encode_batch(self, batch: Sequence[Example]) -> list[Encoded]:
        parts = [self._texts(ex) for ex in batch]
        prefixes = self._tok([p for p, _, _ in parts])
        targets = self._tok([t for _, t, _ in parts])
        out = []
        for ex, pre, tgt, (_, _, end) in zip(batch, prefixes, targets, parts):
            supervised = tgt + [end]
            ids = pre + supervised
            labels = ids if not self.mask_prompt else self._prompt_labels(ex, pre) + supervised
            out.append(Encoded(ids, list(labels), ex.task))
        return out

    def encode(self, ex: Example) -> Encoded:
        return self.encode_batch([ex])[0]

    def encode_all(self, examples: Iterable[Example], desc: str = "tokenising", chunk: int = 512,
                   stats: Optional[EncodeStats] = None, show: bool = True) -> list[Encoded]:
        examples = list(examples)
        stats = stats if stats is not None else EncodeStats()
        # a weighted task repeats the same Example objects (whole copies): each object is tokenised once
        unique = list({id(ex): ex for ex in examples}.values())
        encoded: dict[int, Encoded] = {}
        with tqdm(total=len(unique), desc=desc, unit="ex", disable=not show) as bar:
            for i in range(0, len(unique), chunk):
                batch = unique[i:i + chunk]
                encoded.update(zip(map(id, batch), self.encode_batch(batch)))
                bar.update(len(batch))
        kept = []
        for ex in examples:
            enc = encoded[id(ex)]
            if len(enc.input_ids) > self.cutoff_len:
                stats.overlong[enc.task] = stats.overlong.get(enc.task, 0) + 1
                continue
            stats.kept[enc.task] = stats.kept.get(enc.task, 0) + 1
            stats.tokens[enc.task] = stats.tokens.get(enc.task, 0) + len(enc.input_ids)
            kept.append(Encoded(list(enc.input_ids), list(enc.labels), enc.task))  # copies never share lists
        return kept


class TokenizedDataset(torch.utils.data.Dataset):
    """Encoded examples as a map-style dataset; ``lengths`` feeds the length-grouped sampler."""

    def __init__(self, encoded: Sequence[Encoded]):
        self.items = list(encoded)
        self.lengths = [len(e.input_ids) for e in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def mean_answer_tokens(self) -> float:
        """Mean supervised tokens per example (the weight of one example under per-example loss)."""
        counts = [sum(1 for x in e.labels[1:] if x != IGNORE_INDEX) for e in self.items]
        return sum(counts) / max(len(counts), 1)

    def __getitem__(self, i: int) -> dict:
        e = self.items[i]
        return {"input_ids": e.input_ids, "labels": e.labels}
