"""The package as `pip install .` sees it (pyproject.toml): every console script's target imports and has ``main``;
every third-party package imported under ``sidreasoner/`` is declared (dependencies or an extra) and pinned in
requirements.txt, the lock `make` installs; the lock holds nothing that is neither; the verl reward entry is a
file of the installed package."""
from __future__ import annotations

import ast
import importlib
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
#: import names whose distribution is not installed here (GPU only) -> distribution
NOT_INSTALLED_HERE = {"vllm": "vllm"}
#: pinned in requirements.txt without being imported: a dependency of a dependency kept for a reproducible lock
LOCK_ONLY = {"pandas"}  # datasets' and verl's


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _norm(re.match(r"[A-Za-z0-9_.-]+", req).group(0))


def _declared() -> dict[str, str]:
    """distribution -> where it is declared ("dependencies" or "extra NAME")."""
    out = {_requirement_name(r): "dependencies" for r in PROJECT["dependencies"]}
    for extra, reqs in PROJECT["optional-dependencies"].items():
        out.update({_requirement_name(r): f"extra {extra}" for r in reqs})
    return out


def _pinned(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            pins[_requirement_name(line)] = line.partition("==")[2]
    return pins


def _third_party_imports() -> dict[str, set[str]]:
    """top-level import name -> files under sidreasoner/ importing it (function-level imports included)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "sidreasoner").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("sidreasoner", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def _distributions(import_name: str) -> set[str]:
    dists = packages_distributions().get(import_name) or [NOT_INSTALLED_HERE.get(import_name, import_name)]
    return {_norm(d) for d in dists}


@pytest.mark.parametrize("name", sorted(PROJECT["scripts"]))
def test_console_script_target_has_main(name):
    module, _, attr = PROJECT["scripts"][name].partition(":")
    assert attr == "main"
    assert callable(getattr(importlib.import_module(module), attr)), f"{name}: {module} has no main()"


def test_every_import_is_declared_and_pinned():
    declared, pins = _declared(), _pinned(REPO / "requirements.txt")
    for top, files in _third_party_imports().items():
        dists = _distributions(top)
        assert dists & set(declared), f"{top} (imported by {sorted(files)[0]}) is not declared in pyproject.toml"
        if not any(declared.get(d, "").startswith("extra vllm") for d in dists):
            assert dists & set(pins), f"{top} is not pinned in requirements.txt"


def test_lock_holds_only_what_is_used():
    declared, pins = _declared(), _pinned(REPO / "requirements.txt")
    unused = set(pins) - set(declared) - {_norm(x) for x in LOCK_ONLY}
    assert not unused, f"requirements.txt pins what nothing declares: {sorted(unused)}"
    assert "faiss-cpu" not in pins


def test_declared_ranges_hold_the_lock():
    """`>= X` of a dependency is never above the lock's pin (the locks install what pyproject allows)."""
    pins = _pinned(REPO / "requirements.txt") | {}
    gpu = _pinned(REPO / "requirements-gpu.txt")
    reqs = PROJECT["dependencies"] + [r for rs in PROJECT["optional-dependencies"].values() for r in rs]
    for req in reqs:
        m = re.search(r">=\s*([0-9][^,;\s]*)", req)
        name = _requirement_name(req)
        for lock in (pins, gpu):
            if m and lock.get(name):
                low = tuple(int(x) for x in m.group(1).split("."))
                assert tuple(int(x) for x in lock[name].split(".")) >= low, f"{req} excludes the lock's {lock[name]}"


def test_verl_reward_entry_is_in_the_package():
    from sidreasoner.rl import verl_config
    package_dir = Path(importlib.import_module("sidreasoner").__file__).resolve().parent
    assert verl_config.REWARD_FILE.is_file() and package_dir in verl_config.REWARD_FILE.parents
    text = verl_config.REWARD_FILE.read_text(encoding="utf-8")
    assert "sys.path" not in text and "from sidreasoner.rl.verl_reward import compute_score" in text


def test_verl_loads_the_reward_entry(tmp_path):
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from sidreasoner.data.formats import write_info
    from sidreasoner.data.records import InfoRow
    from sidreasoner.rl.verl_config import REWARD_FILE
    info = tmp_path / "Tiny_5_2016-10-2018-11.txt"
    write_info(info, [InfoRow("<a_1><b_2><c_3>", "item", "I1")])
    fn = get_custom_reward_fn(OmegaConf.create({"reward": {"custom_reward_function": {
        "path": str(REWARD_FILE), "name": "compute_score", "reward_kwargs": {"info_file": str(info)}},
        "reward_manager": {"source": "register", "name": "naive"}, "sandbox_fusion": {"url": None}}}))
    out = fn(data_source="sidreasoner/Tiny", solution_str="<think>\nx\n</think>\n\n<a_1><b_2><c_3>",
             ground_truth="<a_1><b_2><c_3>", extra_info=None)
    assert out["exact"] == 1 and out["score"] > 1
