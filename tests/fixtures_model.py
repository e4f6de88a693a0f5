"""Reusable tiny model for tests: a synthetic catalogue, its SIDIndex, and a saved tiny Qwen3 folder.

Use it from any test module::

    from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)

    def test_something(tiny_model_dir):
        path, index = tiny_model_dir          # path: HF folder; index: SIDIndex of the catalogue

or build one directly with :func:`build_tiny_model_dir`. Everything is deterministic for a seed
(same titles, SIDs, tokenizer and weights), offline, and takes about a second after imports.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from sidreasoner.data.formats import info_rows, write_index_json, write_info, write_item_json
from sidreasoner.data.records import Item, ReleasePaths
from sidreasoner.sid.index import SIDIndex
from sidreasoner.sid.spelling import format_sid

REPO_ROOT = Path(__file__).resolve().parents[1]
#: codebook size per level of the synthetic SIDs (4 x 4 x 4 = 64 distinct SIDs at most)
TINY_CODEBOOKS = (4, 4, 4)
_COLOURS = ("Blue", "Black", "Red", "Green", "Yellow")
_KINDS = ("Gel Pens", "Sticky Notes", "Binder", "Stapler", "Printer Paper", "Desk Organizer", "Envelopes",
          "Highlighters")
_PACKS = ("Single", "3 Pack", "12 Pack")


def tiny_catalogue(n_items: int = 40, seed: int = 0) -> tuple[dict[str, Item], SIDIndex]:
    """``n_items`` office-like items with distinct 3-level SIDs drawn from :data:`TINY_CODEBOOKS`."""
    n_max = TINY_CODEBOOKS[0] * TINY_CODEBOOKS[1] * TINY_CODEBOOKS[2]
    if not 0 < n_items <= n_max:
        raise ValueError(f"n_items must be in 1..{n_max}, got {n_items}")
    rng = random.Random(seed)
    all_codes = [(a, b, c) for a in range(TINY_CODEBOOKS[0]) for b in range(TINY_CODEBOOKS[1])
                 for c in range(TINY_CODEBOOKS[2])]
    codes = rng.sample(all_codes, n_items)
    items, item_to_sid = {}, {}
    for i, code in enumerate(codes):
        item_id = f"I{i:03d}"
        title = f"{rng.choice(_COLOURS)} {rng.choice(_KINDS)}, {rng.choice(_PACKS)}"
        desc = repr([f"Reliable {title.lower()} for the office and school."])
        items[item_id] = Item(item_id=item_id, title=title, description=desc, brand="Acme")
        item_to_sid[item_id] = format_sid(code)
    return items, SIDIndex(item_to_sid, {k: v.title for k, v in items.items()})


def write_catalogue(data_dir: Path, category: str, items: dict[str, Item], index: SIDIndex) -> ReleasePaths:
    """Write index.json, item.json and the info file of a release folder; return its paths."""
    paths = ReleasePaths(Path(data_dir), category)
    write_index_json(paths.index_json, index.item_to_sid)
    write_item_json(paths.item_json, items)
    write_info(paths.info, info_rows(index))
    return paths


def build_tiny_model_dir(out_dir, n_items: int = 40, seed: int = 0, vocab_size: int = 512,
                         hidden_size: int = 64, num_layers: int = 2) -> Path:
    """Save a tiny Qwen3 (random init) + catalogue tokenizer for :func:`tiny_catalogue` to ``out_dir``."""
    from sidreasoner.model.model_factory import make_tiny_qwen3, save_model_dir
    from sidreasoner.train.tokenizer import catalogue_texts, train_catalogue_tokenizer
    items, index = tiny_catalogue(n_items, seed)
    tokenizer = train_catalogue_tokenizer(catalogue_texts(items), vocab_size, index.tokens())
    model = make_tiny_qwen3(tokenizer, hidden_size=hidden_size, num_layers=num_layers, num_heads=4,
                            num_kv_heads=2, intermediate_size=2 * hidden_size, seed=seed)
    meta = {"config": {"n_items": n_items, "seed": seed, "vocab_size": vocab_size, "hidden_size": hidden_size,
                       "num_layers": num_layers}}
    return save_model_dir(out_dir, model, tokenizer, meta=meta, overwrite=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> tuple[Path, SIDIndex]:
    """``(path to a saved tiny model folder, SIDIndex of its 40-item catalogue)``, built once per session."""
    path = build_tiny_model_dir(tmp_path_factory.mktemp("tiny_model") / "model")
    return path, tiny_catalogue()[1]
