"""Batching without padding waste.

Two ways, both exact (same loss as one example at a time):

- ``group`` (default): :class:`StepGroupedSampler` draws each optimiser step's examples at random,
  exactly as a random sampler would, then orders them by length *inside the step* so each
  micro-batch holds similar lengths; :class:`PadCollator` pads to the longest of the micro-batch.
  The gradient of a step is a sum over the same examples (the Trainer normalises by the step's
  label-token count), so the optimisation is unchanged; only the padding goes.
- ``pack``: :class:`PackCollator` concatenates a micro-batch into one row with ``position_ids``
  restarting at 0 for every example (transformers' ``DataCollatorWithFlattening``). Qwen3 detects
  the restarts and builds a block-diagonal causal mask for sdpa/eager attention; with
  ``flash_attention_2`` the collator also passes ``cu_seq_lens`` so the kernel skips cross-example
  work. No padding at all, but with sdpa the attention still spans the whole packed row, so it pays
  off when the linear layers dominate (real models) rather than for tiny ones.

``pad`` (plain pad-to-longest over random micro-batches) is the baseline of the throughput benchmark.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
from transformers.data.data_collator import DataCollatorWithFlattening

from .sft_config import BATCHING_MODES
from .sft_data import IGNORE_INDEX


class PadCollator:
    """Right-pads ``input_ids`` (with ``pad_id``) and ``labels`` (with -100) to the batch's longest
    row, rounded up to ``pad_to_multiple_of`` (tensor-core friendly shapes on GPU)."""

    def __init__(self, pad_id: int, pad_to_multiple_of: int = 1):
        self.pad_id, self.multiple = pad_id, max(1, pad_to_multiple_of)

    def __call__(self, features: Sequence[dict]) -> dict:
        width = max(len(f["input_ids"]) for f in features)
        width = int(math.ceil(width / self.multiple) * self.multiple)
        n = len(features)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            ids[i, :k] = torch.as_tensor(f["input_ids"], dtype=torch.long)
            labels[i, :k] = torch.as_tensor(f["labels"], dtype=torch.long)
            mask[i, :k] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class PackCollator:
    """One row per micro-batch, ``position_ids`` restarting per example (see module docstring).

    The first label of every example becomes -100 (it would be predicted from the previous
    example's last token); chat examples' first token is a prompt token, already -100.
    The batch carries ``use_cache=False``: transformers only derives the per-example attention
    blocks from ``position_ids`` when no KV cache is in play, and a model whose config has
    ``use_cache=True`` would otherwise build one and let examples attend to each other silently.
    """

    def __init__(self, flash_attention: bool = False):
        self._inner = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX,
                                                 return_flash_attn_kwargs=flash_attention)

    def __call__(self, features: Sequence[dict]) -> dict:
        return {**self._inner(list(features)), "use_cache": False}


def make_collator(mode: str, pad_id: int, attn_implementation: str = "sdpa", pad_to_multiple_of: int = 1):
    if mode not in BATCHING_MODES:
        raise ValueError(f"unknown batching mode {mode!r}; choose one of {BATCHING_MODES}")
    if mode == "pack":
        return PackCollator(flash_attention=(attn_implementation or "").startswith("flash"))
    return PadCollator(pad_id, pad_to_multiple_of)


class StepGroupedSampler(torch.utils.data.Sampler):
    """Random optimiser-step groups, length-sorted micro-batches inside each group.

    ``group_size`` = examples per optimiser step over all processes (micro x accumulation x world).
    Per epoch (``set_epoch``): a seeded permutation is cut into groups; each group is sorted by
    length, cut into micro-batches of ``micro_batch_size`` and the micro-batches are shuffled, so
    the order of lengths carries no signal. Deterministic in (seed, epoch): a resumed run skips
    exactly the micro-batches it already trained on.
    """

    def __init__(self, lengths: Sequence[int], micro_batch_size: int, group_size: int, seed: int = 0):
        if micro_batch_size < 1 or group_size < 1:
            raise ValueError("micro_batch_size and group_size must be >= 1")
        self.lengths = list(lengths)
        # whole micro-batches per group, so micro-batches never straddle two optimiser steps
        self.micro, self.seed, self.epoch = micro_batch_size, seed, 0
        self.group = math.ceil(group_size / micro_batch_size) * micro_batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(len(self.lengths), generator=g).tolist()
        for start in range(0, len(perm), self.group):
            group = sorted(perm[start:start + self.group], key=lambda i: self.lengths[i])
            micro = [group[i:i + self.micro] for i in range(0, len(group), self.micro)]
            # a short last micro-batch (epoch end only) stays last so the ones before keep full size
            tail = [micro.pop()] if len(micro[-1]) < self.micro else []
            for j in torch.randperm(len(micro), generator=g).tolist():
                yield from micro[j]
            for m in tail:
                yield from m


def padding_stats(lengths: Sequence[int], order: Sequence[int], micro_batch_size: int) -> dict:
    """Real vs padded token counts when ``order`` is cut into micro-batches padded to their longest."""
    real = padded = 0
    for i in range(0, len(order), micro_batch_size):
        batch = [lengths[j] for j in order[i:i + micro_batch_size]]
        real += sum(batch)
        padded += max(batch) * len(batch)
    return {"real_tokens": real, "padded_tokens": padded, "padding_fraction": 1 - real / padded if padded else 0.0}
