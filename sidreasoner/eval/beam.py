"""Trie-constrained beam search over SIDs: prefill each prompt once, then decode all beams together.

Scoring and pruning follow Hugging Face beam search exactly (transformers 5.10, ``_beam_search``), so
the ranked lists match ``generate(prefix_allowed_tokens_fn=...)`` (``sidreasoner.eval.reference``):

- a beam's score is the sum of ``log_softmax`` over the FULL vocabulary (not renormalised over the
  allowed tokens) of each SID token and of the final stop token;
- each step takes the top ``2K`` candidates over all beams; stop-token candidates ranked within the
  first ``K`` become finished hypotheses (score / generated_length ** length_penalty, the stop token
  counted); the best ``K`` non-stop candidates among the ``2K`` keep running;
- the finished pool keeps the best ``K``; a row stops adding once its running beams cannot beat its
  worst finished hypothesis (HF's early-stop heuristic with ``early_stopping=False``).

Only the allowed tokens are scored (a gather over the trie's children, no per-beam Python), and the
prompt is run once per row, not once per beam. Two ways to share the prompt between beams:

- ``"tree"``: the beams' SID tokens are appended to the row's own cache, one slot per beam per step,
  with a 4D attention mask so each token sees the prompt, its ancestors and itself (tree attention).
  No cache copies at all. Needs an attention implementation that takes a custom mask
  (``sdpa``, ``eager``).
- ``"expand"``: the prompt cache is gathered to one row per beam after the prefill and reordered each
  step, like HF does after its prefill (works with any attention implementation, e.g. flash-attention).

``"auto"`` picks ``tree`` where it is supported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from ..sid.trie import END, ROOT, SIDTrie

NEG_INF = float("-inf")
_TREE_ATTN = ("sdpa", "eager")


@dataclass
class BeamResult:
    """One row's ranked SIDs (best first) and their beam scores."""

    sids: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


def same_ranking(a: BeamResult, b: BeamResult, tol: float = 1e-5) -> bool:
    """Same ranked SIDs, allowing only swaps between SIDs whose scores differ by less than ``tol``.

    Batched kernels round differently, so two correct searches may order near-tied beams differently;
    anything else (another SID, another score) is a real difference.
    """
    if len(a.sids) != len(b.sids) or set(a.sids) != set(b.sids):
        return False
    score_b = dict(zip(b.sids, b.scores))
    if any(abs(s - score_b[sid]) >= tol for sid, s in zip(a.sids, a.scores)):
        return False
    return a.sids == b.sids or all(abs(x - y) < tol for x, y in zip(a.scores, b.scores))


def catalogue_trie(tokenizer, sids, stop_id: int, source: str) -> SIDTrie:
    """Trie over the catalogue SIDs the tokenizer can write (the rest cannot be searched)."""
    from ..model.chat import usable_sid_coverage
    bad = set(usable_sid_coverage(tokenizer, sorted(sids))["inexpressible"])
    return SIDTrie.from_sids(sorted(s for s in sids if s not in bad), tokenizer, stop_id, source=source)


def pick_mode(model, mode: str = "auto") -> str:
    if mode not in ("auto", "tree", "expand"):
        raise ValueError(f"mode must be 'auto', 'tree' or 'expand', got {mode!r}")
    if mode != "auto":
        return mode
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    attn = getattr(cfg, "_attn_implementation", None) or "eager"
    sliding = any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or []))
    return "tree" if attn in _TREE_ATTN and not sliding else "expand"


def prompt_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded prompt batch, as HF generate computes them (pads get 0)."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 0)


class _TreeDecoder:
    """Beams of a row share one cache; each step appends ``B`` slots and a mask of who sees what."""

    def __init__(self, model, cache, attention_mask: torch.Tensor):
        self.model, self.cache = model, cache
        self.lengths = attention_mask.sum(-1)  # [R] real prompt tokens
        self.visible = attention_mask.bool().unsqueeze(1)  # [R, B=1, L]: what each beam's last token sees

    def step(self, tokens: torch.Tensor, parents: torch.Tensor, depth: int) -> torch.Tensor:
        R, B = tokens.shape
        seen = self.visible.gather(1, parents.unsqueeze(-1).expand(R, B, self.visible.shape[-1]))
        own = torch.eye(B, dtype=torch.bool, device=tokens.device).expand(R, B, B)
        self.visible = torch.cat([seen, own], dim=-1)  # [R, B, L + B]
        dtype = self.model.dtype if self.model.dtype.is_floating_point else torch.float32
        mask = torch.zeros(self.visible.shape, dtype=dtype, device=tokens.device)
        mask = mask.masked_fill(~self.visible, torch.finfo(dtype).min).unsqueeze(1)  # [R, 1, B, L + B]
        pos = (self.lengths.unsqueeze(-1) + depth).expand(R, B)
        out = self.model(input_ids=tokens, attention_mask=mask, position_ids=pos,
                         past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        return out.logits.float()  # [R, B, V]


class _ExpandDecoder:
    """One cache row per beam (gathered from the row's prompt cache), reordered every step."""

    def __init__(self, model, cache, attention_mask: torch.Tensor):
        self.model, self.cache = model, cache
        self.lengths = attention_mask.sum(-1)
        self.mask = attention_mask.long().unsqueeze(1)  # [R, B=1, L]

    def step(self, tokens: torch.Tensor, parents: torch.Tensor, depth: int) -> torch.Tensor:
        R, B = tokens.shape
        prev_b = self.mask.shape[1]
        rows = torch.arange(R, device=tokens.device).unsqueeze(-1) * prev_b
        self.cache.reorder_cache((rows + parents).reshape(-1))  # gather: also expands 1 -> B after the prefill
        seen = self.mask.gather(1, parents.unsqueeze(-1).expand(R, B, self.mask.shape[-1]))
        self.mask = torch.cat([seen, torch.ones(R, B, 1, dtype=seen.dtype, device=seen.device)], dim=-1)
        pos = self.lengths.repeat_interleave(B).unsqueeze(-1) + depth
        out = self.model(input_ids=tokens.reshape(R * B, 1), attention_mask=self.mask.reshape(R * B, -1),
                         position_ids=pos, past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        return out.logits[:, -1].float().reshape(R, B, -1)


class _Finished:
    """Per-row pool of the best ``K`` finished hypotheses: scores ``[R, K]`` and trie leaf nodes."""

    def __init__(self, R: int, K: int, device):
        self.scores = torch.full((R, K), NEG_INF, device=device)
        self.nodes = torch.full((R, K), END, dtype=torch.long, device=device)

    def merge(self, scores: torch.Tensor, nodes: torch.Tensor) -> None:
        K = self.scores.shape[1]
        all_s = torch.cat([self.scores, scores], dim=1)
        all_n = torch.cat([self.nodes, nodes], dim=1)
        top_s, top_i = all_s.topk(K, dim=1)
        self.scores, self.nodes = top_s, all_n.gather(1, top_i)

    def worst(self) -> torch.Tensor:
        return self.scores.min(dim=1).values  # -inf while a slot is empty

    def results(self, trie: SIDTrie) -> list[BeamResult]:
        out = []
        for scores, nodes in zip(self.scores.tolist(), self.nodes.tolist()):
            res = BeamResult()
            for s, n in zip(scores, nodes):
                if s != NEG_INF:
                    res.sids.append(trie.sid_of_node(n))
                    res.scores.append(s)
            out.append(res)
        return out


def _select(logits, nodes, scores, trie: SIDTrie, K: int, step: int, length_penalty: float,
            finished: _Finished, done: torch.Tensor, bias: Optional[torch.Tensor] = None):
    """One HF-equivalent beam step over the allowed candidates. Returns the running beams (trimmed).
    ``bias``: ``[n_nodes]`` subtracted from the log-probability of the edge into each node."""
    R, B, _ = logits.shape
    tok, child, valid = trie.candidates(nodes)  # [R, B, C]
    C = tok.shape[-1]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, tok)
    if bias is not None:
        logp = logp - bias[child]
    total = torch.where(valid, scores.unsqueeze(-1) + logp, NEG_INF).reshape(R, B * C)
    n_top = min(2 * K, B * C)
    top_s, top_i = total.topk(n_top, dim=1)  # sorted, best first
    top_tok = tok.reshape(R, -1).gather(1, top_i)
    top_child = child.reshape(R, -1).gather(1, top_i)
    top_parent = top_i // C
    finite = top_s > NEG_INF
    is_stop = top_tok == trie.stop_id
    # Finished: stop candidates ranked within the first K, in rows still able to improve.
    rank_ok = torch.arange(n_top, device=top_s.device) < K
    new_fin = is_stop & finite & rank_ok & ~done.unsqueeze(-1)
    gen_len = float(step + 1)  # tokens generated including this stop token
    fin_scores = torch.where(new_fin, top_s / gen_len ** length_penalty, NEG_INF)
    finished.merge(fin_scores, nodes.gather(1, top_parent))
    # Running: best K non-stop candidates among the 2K (done rows stop decoding).
    run_s = torch.where(finite & ~is_stop & ~done.unsqueeze(-1), top_s, NEG_INF)
    run_s, run_j = run_s.topk(min(K, n_top), dim=1)
    alive = run_s > NEG_INF
    n_keep = int(alive.sum(1).max()) if alive.any() else 0
    run_s, run_j = run_s[:, :n_keep], run_j[:, :n_keep]
    best = run_s[:, 0] if n_keep else torch.full((R,), NEG_INF, device=top_s.device)
    # HF's heuristic: a row is done once its best running beam cannot beat the worst finished one.
    # It assumes scores only fall; a bias can raise them, so a biased search runs to the end.
    if bias is None:
        done = done | ~(best / gen_len ** length_penalty > finished.worst())
    return (top_child.gather(1, run_j), run_s, top_parent.gather(1, run_j), top_tok.gather(1, run_j), done)


@torch.no_grad()
def constrained_beam_search(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, trie: SIDTrie,
                            num_beams: int, length_penalty: float = 0.0, mode: str = "auto",
                            max_steps: Optional[int] = None, bias: Optional[torch.Tensor] = None) -> list[BeamResult]:
    """Ranked catalogue SIDs for each left-padded prompt row (``input_ids``/``attention_mask``: ``[R, L]``).

    Returns, per row, up to ``num_beams`` distinct SIDs best first (``min(num_beams, items)`` for a
    catalogue where no SID is a prefix of another) with their scores. ``bias`` (``[trie.n_nodes]``,
    e.g. ``alpha`` x ``sidreasoner.eval.calibration.edge_prior``) is subtracted from every step's
    log-probability, so a SID's score becomes ``log p(SID) - sum of its edges' bias``.
    """
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    vocab = model.get_output_embeddings().weight.shape[0]
    if trie.max_token_id >= vocab:
        raise ValueError(f"the SID trie uses token id {trie.max_token_id} but the model's output layer has "
                         f"only {vocab} rows: the model and tokenizer do not belong together")
    device = input_ids.device
    trie.to(device)
    if bias is not None:
        bias = bias.to(device=device, dtype=torch.float32)
    mode = pick_mode(model, mode)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=prompt_positions(attention_mask),
                use_cache=True, logits_to_keep=1)
    decoder = (_TreeDecoder if mode == "tree" else _ExpandDecoder)(model, out.past_key_values, attention_mask)
    logits = out.logits[:, -1:].float()  # [R, 1, V]: one (root) beam per row
    del out
    R = input_ids.shape[0]
    nodes = torch.full((R, 1), ROOT, dtype=torch.long, device=device)
    scores = torch.zeros((R, 1), device=device)
    finished = _Finished(R, num_beams, device)
    done = torch.zeros(R, dtype=torch.bool, device=device)
    for step in range(max_steps or trie.max_depth + 1):
        nodes, scores, parents, tokens, done = _select(logits, nodes, scores, trie, num_beams, step,
                                                       length_penalty, finished, done, bias)
        if nodes.shape[1] == 0 or bool(done.all()):
            break
        logits = decoder.step(tokens, parents, step)
    return finished.results(trie)
