"""The reference evaluation path: HF ``generate`` beam search + a per-beam ``prefix_allowed_tokens_fn``.

This is how the reference release evaluates (every prompt copied to every beam, a Python callback per
beam per step). It is kept for parity checks and the benchmark; :mod:`sidreasoner.eval.beam` is the
fast path and must return the same ranked SIDs.

Decoding parameters are set explicitly in a fresh ``GenerationConfig``: a checkpoint's own
``generation_config.json`` (Qwen3 ships ``do_sample=True, top_k, top_p``) would otherwise turn beam
search into beam sampling. ``early_stopping=False`` is HF's exact stopping rule for
``length_penalty=0`` (a finished beam is final once no running beam can beat it).

HF pads a row that has fewer valid hypotheses than beams with placeholder beams scored about -1e9
(its initial beams 1..K-1 start at -1e9); those, and any sequence that is not a catalogue SID followed
by the stop token, are dropped, so each row gets ``min(K, valid)`` SIDs.
"""
from __future__ import annotations

from typing import Optional

import torch
from transformers import GenerationConfig

from ..sid.trie import SIDTrie
from .beam import BeamResult

#: HF's placeholder beams carry scores near -1e9; real log-prob sums are far above this
PLACEHOLDER_SCORE = -1e8


def prefix_allowed_fn(trie: SIDTrie, prompt_len: int):
    """``prefix_allowed_tokens_fn`` for a left-padded batch whose prompts all have length ``prompt_len``."""
    def fn(batch_id: int, input_ids: torch.Tensor) -> list[int]:
        return trie.allowed(input_ids[prompt_len:].tolist())
    return fn


def reference_generation_config(num_beams: int, max_new_tokens: int, stop_id: int, pad_id: int,
                                length_penalty: float = 0.0) -> GenerationConfig:
    return GenerationConfig(
        num_beams=num_beams, num_return_sequences=num_beams, do_sample=False,
        length_penalty=length_penalty if num_beams > 1 else None,
        early_stopping=False, max_new_tokens=max_new_tokens, eos_token_id=stop_id, pad_token_id=pad_id,
        temperature=None, top_k=None, top_p=None, min_p=None, repetition_penalty=None,
        output_scores=True, output_logits=num_beams == 1, return_dict_in_generate=True)


def _greedy_scores(out, stop_id: int) -> torch.Tensor:
    """``num_beams=1`` runs HF greedy search, which reports no sequence score: sum the full-vocab
    log-probs of the chosen tokens up to and including the first stop token."""
    logp = torch.stack([torch.log_softmax(l.float(), -1) for l in out.logits], dim=1)  # [R, T, V]
    chosen = out.sequences[:, -logp.shape[1]:]
    tok_lp = logp.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
    after_stop = (chosen == stop_id).long().cumsum(1) - (chosen == stop_id).long() > 0
    return tok_lp.masked_fill(after_stop, 0.0).sum(1)


@torch.no_grad()
def reference_beam_search(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, trie: SIDTrie,
                          num_beams: int, length_penalty: float = 0.0, pad_id: Optional[int] = None,
                          max_new_tokens: Optional[int] = None) -> list[BeamResult]:
    """Same contract as :func:`sidreasoner.eval.beam.constrained_beam_search`, via ``model.generate``."""
    prompt_len = input_ids.shape[1]
    cfg = reference_generation_config(num_beams, max_new_tokens or trie.max_depth + 1, trie.stop_id,
                                      trie.stop_id if pad_id is None else pad_id, length_penalty)
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=cfg,
                         prefix_allowed_tokens_fn=prefix_allowed_fn(trie, prompt_len))
    gen = out.sequences[:, prompt_len:].tolist()
    scores = (out.sequences_scores if num_beams > 1 else _greedy_scores(out, trie.stop_id)).tolist()
    results = []
    for r in range(input_ids.shape[0]):
        res, seen = BeamResult(), set()
        for k in range(r * num_beams, (r + 1) * num_beams):
            sid = trie.sid_of_ids(gen[k])
            if sid is None or scores[k] < PLACEHOLDER_SCORE or sid in seen:
                continue
            seen.add(sid)
            res.sids.append(sid)
            res.scores.append(scores[k])
        results.append(res)
    return results
