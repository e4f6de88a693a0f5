"""Collision resolution: make every item's code tuple distinct.

Quantisers give near-duplicate items (the same binder in 1", 1.5" and 3") the same codes at every
level. Two strategies:

- ``"reassign"`` (default): in each group sharing a SID, the item closest to its reconstruction keeps
  it; every other item moves to the nearest free code at the deepest level that still has room: first
  the nearest free last-level code under the same prefix (by distance of the item's last-level residual
  to that level's codewords); only when all K completions of the prefix are taken does it change the
  level above, descending again by nearest codewords. SIDs keep exactly L tokens, so the trie, the
  3-level hierarchical reward and the vocabulary (L x K tokens) stay as designed, and the moved item's
  SID is still its nearest available one, its coarse prefix unchanged.
- ``"extra_level"`` (TIGER-style): every item gets one more level whose code is the item's rank within
  its collision group (0 for the closest). Always unique without touching semantic codes, but the SIDs
  get L+1 tokens and the extra token carries no meaning. Added only when collisions exist, to all items,
  so no SID is a prefix of another.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

STRATEGIES = ("reassign", "extra_level")


def collision_stats(codes: np.ndarray) -> dict:
    """``{"groups", "items", "pairs", "largest"}`` for code rows ``[N, L]`` shared by several items."""
    sizes = Counter(map(tuple, np.asarray(codes).tolist())).values()
    shared = [s for s in sizes if s > 1]
    return {"groups": len(shared), "items": int(sum(shared)), "pairs": int(sum(s * (s - 1) // 2 for s in shared)),
            "largest": int(max(shared, default=1))}


@dataclass
class ResolveResult:
    """``codes [N, L]`` (``[N, L+1]`` for extra_level) unique per row; ``moved_at_level[j]`` counts items
    whose codes changed from level j on (reassign); ``extra_level_size``: codes used by the added level."""

    codes: np.ndarray
    strategy: str
    moved_at_level: dict = field(default_factory=dict)
    extra_level_size: int = 0


def _final_error(codes: np.ndarray, codebooks: Sequence[np.ndarray], residuals: Sequence[np.ndarray]) -> np.ndarray:
    """Squared norm of what is left after the last level, per item ``[N]``: how well the SID fits."""
    last = len(codebooks) - 1
    diff = residuals[last] - codebooks[last][codes[:, last]]
    return (diff * diff).sum(1)


def _groups(codes: np.ndarray, err: np.ndarray) -> list[list[int]]:
    """Collision groups, each ordered best fit first (ties: lower index); groups in first-item order."""
    by_sid = defaultdict(list)
    for i, row in enumerate(map(tuple, codes.tolist())):
        by_sid[row].append(i)
    return [sorted(m, key=lambda i: (err[i], i)) for m in by_sid.values() if len(m) > 1]


class _Occupancy:
    """How many placed items lie under each prefix, and how many a prefix can hold (K^(levels left))."""

    def __init__(self, sizes: Sequence[int]):
        self.sizes = list(sizes)
        self.count: Counter = Counter()

    def capacity(self, depth: int) -> int:
        return int(np.prod(self.sizes[depth:], dtype=np.float64)) if depth < len(self.sizes) else 1

    def has_room(self, prefix: tuple) -> bool:
        return self.count[prefix] < self.capacity(len(prefix))

    def add(self, codes: tuple) -> None:
        for d in range(len(codes) + 1):
            self.count[codes[:d]] += 1


def _place(prefix: tuple, residual: np.ndarray, codebooks, occ: _Occupancy) -> tuple:
    """Nearest free completion of ``prefix``: at each level take the nearest codeword with room below."""
    level = len(prefix)
    if level == len(codebooks):
        return prefix
    d = ((codebooks[level] - residual) ** 2).sum(1)
    for c in np.argsort(d, kind="stable"):
        cand = prefix + (int(c),)
        if occ.has_room(cand):
            return _place(cand, residual - codebooks[level][c], codebooks, occ)
    raise AssertionError(f"prefix {prefix} reported room but has no free completion")  # unreachable


def resolve_reassign(codes, codebooks, residuals) -> ResolveResult:
    """Move all but the best-fitting item of each collision group to the nearest free SID."""
    codes = np.asarray(codes, dtype=np.int64)
    sizes = [len(cb) for cb in codebooks]
    occ = _Occupancy(sizes)
    if len(codes) > occ.capacity(0):
        raise ValueError(f"{len(codes)} items cannot get distinct SIDs from {' x '.join(map(str, sizes))} codes")
    groups = _groups(codes, _final_error(codes, codebooks, residuals))
    movers = sorted(i for g in groups for i in g[1:])
    moving = set(movers)
    for i, row in enumerate(map(tuple, codes.tolist())):
        if i not in moving:
            occ.add(row)
    out = codes.copy()
    moved: Counter = Counter()
    for i in movers:
        row = tuple(codes[i].tolist())
        keep = len(row) - 1
        while keep > 0 and not occ.has_room(row[:keep]):
            keep -= 1  # the whole subtree under this prefix is taken: change a coarser level
        new = _place(row[:keep], residuals[keep][i], codebooks, occ)
        occ.add(new)
        out[i] = new
        moved[keep] += 1
    return ResolveResult(out, "reassign", dict(sorted(moved.items())))


def resolve_extra_level(codes, codebooks, residuals) -> ResolveResult:
    """Append a level numbering the items of each collision group (best fit gets 0)."""
    codes = np.asarray(codes, dtype=np.int64)
    groups = _groups(codes, _final_error(codes, codebooks, residuals))
    if not groups:
        return ResolveResult(codes.copy(), "extra_level")
    extra = np.zeros(len(codes), dtype=np.int64)
    for g in groups:
        extra[g] = np.arange(len(g))
    return ResolveResult(np.concatenate([codes, extra[:, None]], 1), "extra_level",
                         extra_level_size=int(extra.max()) + 1)


def resolve_collisions(codes, codebooks, residuals, strategy: str = "reassign") -> ResolveResult:
    """Dispatch to a strategy; the result's code rows are guaranteed distinct (checked)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown collision strategy {strategy!r}; choose from {STRATEGIES}")
    fn = resolve_reassign if strategy == "reassign" else resolve_extra_level
    res = fn(codes, codebooks, residuals)
    left = collision_stats(res.codes)["items"]
    if left:
        raise AssertionError(f"collision resolution left {left} items with shared SIDs")
    return res
