"""Thinking mode: generate the reasoning, close ``</think>``, then hand the prompt to the SID search.

The assistant turn of stage 2 reads ``<think>\\n{reasoning}\\n</think>\\n\\n{SID}``. Here the prompt
is opened with ``<think>\\n`` (forced, so even a model that skips the tag gets a well-formed turn),
the model writes the reasoning until it emits ``</think>``, the stop token, or ``max_think_tokens``;
the reasoning is then closed exactly as in training (``\\n</think>\\n\\n``) whether or not the model
closed it, and the constrained SID search continues from there.

Backends: vLLM for the reasoning when it is installed and a CUDA GPU is present (``backend="auto"``),
HF ``generate`` otherwise. Greedy by default; ``num_paths > 1`` samples that many paths at
``temperature`` (the caller merges their beams by score).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from transformers import GenerationConfig

from .padding import encode_left_padded

log = logging.getLogger(__name__)

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass
class Reasoning:
    """One generated reasoning path: its text (tags stripped) and whether the model closed it itself."""

    text: str
    closed: bool


def open_think(prompt: str) -> str:
    """The prompt with the assistant's ``<think>\\n`` opener (added unless the template already put it)."""
    return prompt if prompt.rstrip().endswith(THINK_OPEN) else prompt + THINK_OPEN + "\n"


def close_think(think_prompt: str, reasoning: str) -> str:
    """Prompt for the SID search: the opened think prompt + reasoning + the training-format closer."""
    return f"{think_prompt}{reasoning.strip()}\n{THINK_CLOSE}\n\n"


def reasoning_prompt(prompt: str, style: str) -> str:
    """The thinking prompt the reasoning is generated from: opened with ``<think>\n``, except under the
    ``release`` style, whose evaluation lets the model open the block itself. The evaluator and the
    training-time thinking probe both ask through this, so they ask alike."""
    return prompt if style == "release" else open_think(prompt)


def search_prompt(prompt: str, reasoning: str) -> str:
    """The SID search's prompt after a reasoning: opened (if the model was left to open it) and closed."""
    return close_think(open_think(prompt), reasoning)


def pick_backend(backend: str = "auto") -> str:
    if backend not in ("auto", "hf", "vllm"):
        raise ValueError(f"reasoning backend must be auto, hf or vllm, got {backend!r}")
    if backend != "auto":
        return backend
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "hf"
    return "vllm" if torch.cuda.is_available() else "hf"


def split_reasoning(text: str, stop_texts: Sequence[str] = ()) -> Reasoning:
    """Generated text -> reasoning up to the first ``</think>`` (closed) or all of it (unclosed).

    A stray ``<think>`` the model repeats at the start and trailing stop tokens are removed.
    """
    closed = THINK_CLOSE in text
    body = text.split(THINK_CLOSE, 1)[0]
    for stop in stop_texts:
        if stop and stop in body:
            body = body.split(stop, 1)[0]
    body = body.strip()
    if body.startswith(THINK_OPEN):
        body = body[len(THINK_OPEN):].strip()
    return Reasoning(body, closed)


def stop_texts_of(tokenizer, stop_id: int) -> list[str]:
    """Texts that end a reasoning besides ``</think>``: the stop token, EOS and the pad token."""
    ids = {stop_id, tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    return sorted({tokenizer.decode([i]) for i in ids} - {""})


@torch.no_grad()
def hf_reasoning(model, tokenizer, prompts: Sequence[str], stop_id: int, max_think_tokens: int,
                 num_paths: int = 1, temperature: float = 1.0, seed: Optional[int] = None,
                 repetition_penalty: float = 1.0, sample: Optional[bool] = None) -> list[list[Reasoning]]:
    """Reasoning for each (already think-opened) prompt with HF ``generate``: ``num_paths`` per prompt.
    ``repetition_penalty`` > 1 (CTRL's, as HF applies it) breaks the loops a small model falls into
    when it decodes greedily ("the user leans towards the user leans towards ..."). ``sample`` (default:
    ``num_paths > 1``) samples at ``temperature`` even for one path (stage-3 rollouts)."""
    ids, mask = encode_left_padded(tokenizer, prompts, stop_id, model.device)
    sample = num_paths > 1 if sample is None else sample
    close_ids = tokenizer.encode(THINK_CLOSE, add_special_tokens=False)
    eos = [stop_id] + [t for t in (tokenizer.eos_token_id,) if t is not None and t != stop_id]
    kwargs = {}
    if len(close_ids) == 1:
        eos.append(close_ids[0])
    else:  # </think> is not one token for this tokenizer: stop on the string instead
        kwargs = {"stop_strings": [THINK_CLOSE], "tokenizer": tokenizer}
    cfg = GenerationConfig(max_new_tokens=max_think_tokens, do_sample=sample, num_beams=1,
                           num_return_sequences=num_paths, temperature=temperature if sample else None,
                           top_k=None, top_p=None, min_p=None,
                           repetition_penalty=repetition_penalty if repetition_penalty != 1.0 else None,
                           eos_token_id=eos, pad_token_id=stop_id)
    if seed is not None:
        torch.manual_seed(seed)
    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=cfg, **kwargs)
    texts = tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=False)
    stops = stop_texts_of(tokenizer, stop_id)
    paths = [split_reasoning(t, stops) for t in texts]
    return [paths[i * num_paths:(i + 1) * num_paths] for i in range(len(prompts))]


def vllm_reasoning(model_path: str, prompts: Sequence[str], stop_texts: Sequence[str], max_think_tokens: int,
                   num_paths: int = 1, temperature: float = 1.0, seed: Optional[int] = None,
                   gpu_memory_utilization: float = 0.4, repetition_penalty: float = 1.0) -> list[list[Reasoning]]:
    """Reasoning with vLLM (GPU). The engine is built once per process and reused.

    Not exercised by the CPU test suite (vLLM is not installed there); the HF path is the reference.
    """
    from vllm import LLM, SamplingParams
    global _VLLM
    if _VLLM is None or _VLLM[0] != model_path:
        _VLLM = (model_path, LLM(model=model_path, gpu_memory_utilization=gpu_memory_utilization, seed=seed or 0))
    params = SamplingParams(n=num_paths, temperature=temperature if num_paths > 1 else 0.0,
                            max_tokens=max_think_tokens, stop=[THINK_CLOSE, *stop_texts],
                            repetition_penalty=repetition_penalty,
                            include_stop_str_in_output=True, skip_special_tokens=False, seed=seed)
    outs = _VLLM[1].generate(list(prompts), params, use_tqdm=False)
    return [[split_reasoning(c.text, stop_texts) for c in o.outputs] for o in outs]


_VLLM = None
