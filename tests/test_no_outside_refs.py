"""No tracked text points outside the repository: not to the workplace's design document (a clone has none), not
to the shared folder beside the checkout (a clone has none beside it). This file spells both apart, so it names
neither itself; .ci/ is the CI machinery's, not the project's."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NEEDLES = ("DESIGN" + ".md", "../" + "shared")  # spelled apart, so this file does not name them itself
#: files still pointing outside, each waiting for an edit in flight (to shrink, never to grow)
PENDING: set[str] = set()


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [f for f in out.splitlines() if not f.startswith(".ci/")]


def _pointing_out() -> set[str]:
    found = set()
    for name in _tracked():
        try:
            text = (REPO / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if any(n in text for n in NEEDLES):
            found.add(name)
    return found


def test_nothing_points_outside_the_repository():
    found = _pointing_out()
    assert found <= PENDING, f"these point to {' or '.join(NEEDLES)}: {sorted(found - PENDING)}"
    assert PENDING <= found, f"fixed: remove {sorted(PENDING - found)} from PENDING"


def test_architecture_document_is_there():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for heading in ("## Layers", "## From bash to each stage", "## Where each concept lives", "## How to add"):
        assert heading in text
