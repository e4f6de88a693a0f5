"""Trie-constrained beam search and the target's probability through a rollout server (verl's vLLM).

``SID_ROLLOUT=beam`` and ``REWARD=rank`` on ``BACKEND=verl``: the agent loop (``verl_agent.py``) cannot run
the policy itself, and verl's server returns only the sampled token's log-probability; but it returns
vLLM's *prompt* log-probabilities (``sampling_params["prompt_logprobs"] = k``: for each prompt position
the top-k tokens of the full-vocabulary softmax, temperature-free, or with ``k = 0`` the prompt token's
own). That is enough for both pieces, with the same numbers the TRL backend computes with the model:

* the beam search of :func:`beam_search`: HF's beam step (``sidreasoner.eval.beam._select``) over the
  catalogue trie, each beam's children scored by one request whose last prompt token is a child (the
  top-k at that position are the next-token log-probabilities); children outside that top-k are scored
  one request each, only when fewer than ``2 x beams`` children were in it (the others cannot enter the
  beam: each is less likely than every child seen);
* :func:`target_prob`: one request over context + target, the target tokens' log-probabilities.

``PromptLogprobs`` is ``async (ids, k) -> (token ids, log-probabilities)`` in verl's layout
(``verl.workers.rollout.vllm_rollout.utils.extract_prompt_logprobs``): entry ``j`` lists the top-k (k = 0:
the prompt's own token) at prompt position ``j + 1``.

Cost: every request recomputes its prompt (vLLM does not read the prefix cache for prompt log-probabilities),
about ``levels x beams`` requests per rollout. Not run under vLLM here (no GPU); tested against a server
that answers from a real model.
"""
from __future__ import annotations

import asyncio
import math
from typing import Awaitable, Callable, Optional, Sequence

from ..sid.trie import ROOT, SIDTrie

PromptLogprobs = Callable[[list, int], Awaitable[tuple[list, list]]]


async def next_logprobs(score: PromptLogprobs, ids: list, children: Sequence[int], probe_k: int,
                        need: int) -> dict:
    """``{child: log p(child | ids)}`` for at least the ``need`` likeliest children (all of them when fewer):
    one request probing the top ``probe_k``, then one per child it missed when too few were in it."""
    at = len(ids) - 1  # entry of the position holding the appended child
    top_ids, top_lps = await score(list(ids) + [children[0]], probe_k)
    seen = {t: lp for t, lp in zip(top_ids[at], top_lps[at]) if t is not None}
    found = {c: seen[c] for c in children if c in seen}
    missing = [c for c in children if c not in found]
    if missing and len(found) < min(need, len(children)):
        answers = await asyncio.gather(*(score(list(ids) + [c], 0) for c in missing))
        found.update({c: lps[at][0] for c, (_, lps) in zip(missing, answers)})
    return found


async def beam_search(score: PromptLogprobs, context: list, trie: SIDTrie, num_beams: int,
                      probe_k: Optional[int] = None) -> list[tuple[str, float]]:
    """Up to ``num_beams`` catalogue SIDs after ``context``, best first, with their summed log-probabilities:
    HF's beam step as ``constrained_beam_search`` takes it (the best ``2K`` candidates; stop tokens among the
    first ``K`` finish a beam; the best ``K`` others run on; a search ends once no running beam can beat the
    worst of ``K`` finished ones)."""
    K = num_beams
    probe_k = probe_k or 2 * K
    running = [(0.0, ROOT, [])]  # (score, trie node, SID ids so far)
    finished: list[tuple[float, str]] = []
    for _ in range(trie.max_depth + 1):
        children = [trie.children_of(node) for _, node, _ in running]
        lps = await asyncio.gather(*(next_logprobs(score, context + prefix, list(kids), probe_k, 2 * K)
                                     for (_, _, prefix), kids in zip(running, children)))
        cands = sorted(((s + lp, tok, b) for b, ((s, _, _), got) in enumerate(zip(running, lps))
                        for tok, lp in got.items()), key=lambda c: -c[0])[:2 * K]
        done_now = [(total, trie.sid_of_node(running[b][1])) for r, (total, tok, b) in enumerate(cands)
                    if tok == trie.stop_id and r < K]
        finished = sorted(finished + done_now, key=lambda f: -f[0])[:K]
        running = [(total, children[b][tok], running[b][2] + [tok]) for total, tok, b in cands
                   if tok != trie.stop_id][:K]
        worst = finished[-1][0] if len(finished) == K else -math.inf
        if not running or not running[0][0] > worst:
            break
    return [(sid, s) for s, sid in finished]


async def target_prob(score: PromptLogprobs, context: list, target: Sequence[int]) -> float:
    """The target's per-token (geometric mean) probability after ``context``, full-vocabulary softmax: the
    dense term of ``REWARD=rank`` (``RankReward.target_prob`` on TRL)."""
    if not target:
        return 0.0
    _, lps = await score(list(context) + list(target), 0)
    picked = [lps[j][0] for j in range(len(context) - 1, len(context) + len(target) - 1)]
    return math.exp(sum(picked) / len(picked))
