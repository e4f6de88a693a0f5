"""Shared fixtures. Area-specific fixtures live in the area's own test module or tests/fixtures_*.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OFFICE_CATEGORY = "Office_Products"


def _office_dir() -> Path:
    """The real Amazon Office_Products data (release layout): $SIDREASONER_OFFICE_DIR, else the repository's
    data/Amazon (scripts/download_data.py), else the CI machine's copy in the folder beside the clone."""
    if os.environ.get("SIDREASONER_OFFICE_DIR"):
        return Path(os.environ["SIDREASONER_OFFICE_DIR"])
    candidates = (REPO / "data" / "Amazon", REPO.parent / "shared" / "data" / "Amazon")
    return next((d for d in candidates if (d / "index" / f"{OFFICE_CATEGORY}.index.json").is_file()), candidates[0])


OFFICE_DIR = _office_dir()


@pytest.fixture(scope="session")
def office_dir() -> Path:
    """The Office_Products release folder; the test is skipped when it is absent."""
    if not (OFFICE_DIR / "index" / f"{OFFICE_CATEGORY}.index.json").is_file():
        pytest.skip(f"real Office data not found at {OFFICE_DIR}")
    return OFFICE_DIR


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matmuls on a shared 2-core box: extra OpenMP threads only spin (10-100x slower). A module
    opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``; the count is restored after it."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """Skip `gpu`-marked tests when no CUDA device is present (they are deselected by default too)."""
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
