"""Released model checkpoints: fetch them from the Hugging Face hub or install a downloaded folder, then check
every model folder (weights complete, config + tokenizer load offline, SID tokens, optionally a full load)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Optional

from sidreasoner.data.formats import read_info

from .common import FetchError, hub_snapshot, hub_tree_url, place_file, write_record

DEFAULT_REPO = "Sober-Clever/SIDReasoner-Models"
WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
FULL_LOAD_LIMIT = 1 << 30  # bytes of weights up to which --check auto loads the whole model


def manual_help(repo_id: str, revision: Optional[str], out: Path) -> str:
    """What to download by hand, how to install it, and what each model folder must hold."""
    return "\n".join([
        f"Download the checkpoints by hand from {hub_tree_url(repo_id, revision)}",
        f"  (on a machine with network: hf download {repo_id} --local-dir DIR"
        + (f" --revision {revision}" if revision else "") + ")",
        f"then install them with: python scripts/download_checkpoints.py --from_local DIR --output_dir {out}",
        f"or copy them to {out}/ yourself: each model folder needs config.json, the tokenizer files "
        f"(tokenizer.json, tokenizer_config.json) and the weights (*.safetensors, plus model.safetensors.index.json "
        f"when sharded); then evaluate with python evaluate.py --base_model {out}/<model folder> ..."])


def fetch_hub(repo_id: str, revision: Optional[str], out: Path, allow_patterns) -> None:
    """snapshot_download of ``repo_id`` (a model repository) straight into ``out``."""
    hub_snapshot(repo_id, revision=revision, local_dir=out, allow_patterns=allow_patterns)


def install_local(src: Path, out: Path, link: bool) -> int:
    """Mirror ``src`` into ``out`` (files copied or symlinked, each via a temp name + rename); returns files."""
    src = src.expanduser()
    if not src.is_dir():
        raise FetchError(f"--from_local {src}: no such folder")
    if src.resolve() == out.resolve():
        return 0
    n = 0
    for path in sorted(src.rglob("*")):
        # .cache: huggingface_hub's download bookkeeping inside a --local-dir download, not part of the model
        if not path.is_file() or ".cache" in path.relative_to(src).parts:
            continue
        place_file(path, out / path.relative_to(src), link)
        n += 1
    return n


def model_folders(root: Path) -> list[Path]:
    """Folders under ``root`` (itself included) holding a config.json; hub bookkeeping is skipped."""
    return sorted(p.parent for p in root.rglob("config.json") if ".cache" not in p.relative_to(root).parts)


def weight_bytes(folder: Path) -> int:
    """Bytes of weights; raises FetchError when none are there or a listed shard is missing."""
    files = [p for g in WEIGHT_GLOBS for p in folder.glob(g)]
    if not files:
        raise FetchError(f"{folder}: no weights ({' or '.join(WEIGHT_GLOBS)}): incomplete download?")
    for name in SHARD_INDEXES:
        if (folder / name).is_file():
            shards = set(json.loads((folder / name).read_text(encoding="utf-8")).get("weight_map", {}).values())
            missing = sorted(s for s in shards if not (folder / s).is_file())
            if missing:
                raise FetchError(f"{folder}: {len(missing)} of {len(shards)} shards missing (e.g. {missing[0]}): "
                                 f"rerun to resume the download")
    return sum(p.stat().st_size for p in files)


def check_folder(folder: Path, mode: str, sids) -> dict:
    """What was checked and what it found; raises on the first failure (ModelLoadError, ValueError, ...)."""
    from transformers import AutoConfig, AutoTokenizer
    from sidreasoner.model.chat import usable_sid_coverage
    result = {"folder": str(folder), "weight_bytes": weight_bytes(folder)}
    if mode == "none":
        return result
    full = mode == "full" or (mode == "auto" and result["weight_bytes"] <= FULL_LOAD_LIMIT)
    if full:
        from sidreasoner.model.model_factory import load_model_and_tokenizer
        model, tokenizer = load_model_and_tokenizer(folder)
        result.update(model_type=model.config.model_type, parameters=sum(p.numel() for p in model.parameters()))
    else:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        result["model_type"] = config.model_type
    result["check"] = "full" if full else "config"
    result["vocab"] = len(tokenizer)
    if sids is not None:
        cov = usable_sid_coverage(tokenizer, sids)  # raises for a base model without any SID token
        # a few missing tokens are reported, not refused: the evaluator scores on the SIDs the model can write
        result["sid_coverage"] = {"sids": cov["sids"], "expressible": cov["expressible"],
                                  "inexpressible": len(cov["inexpressible"]), "bad_tokens": cov["bad_tokens"][:20]}
        result["sid_tokens"] = "ok" if not cov["inexpressible"] else "partial"
    return result


def catalogue_sids(info_file: Optional[Path]) -> Optional[list]:
    """The SIDs of the catalogue info file (None without one: the SID-token check is skipped)."""
    return [r.sid for r in read_info(info_file)] if info_file else None


def check_all(folders: list[Path], mode: str, sids) -> Iterator[dict]:
    """:func:`check_folder` of each folder, one result at a time (a full load can take minutes); a failed
    folder yields ``{"folder": ..., "error": <message>}`` and the next one is checked."""
    from sidreasoner.model.model_factory import ModelLoadError
    for folder in folders:
        try:
            yield check_folder(folder, mode, sids)
        except (FetchError, ModelLoadError, ValueError, OSError) as e:
            yield {"folder": str(folder), "error": str(e)}


def status_line(result: dict) -> str:
    """One line per checked folder: ``OK   <folder>  (...)`` or ``FAIL <folder>: <error>``."""
    if "error" in result:
        return f"FAIL {result['folder']}: {result['error']}"
    cov = result.get("sid_coverage")
    sid = "" if cov is None else ", SID tokens ok" if not cov["inexpressible"] else (
        f", {cov['inexpressible']} of {cov['sids']} catalogue SIDs not writable (tokens missing: "
        f"{', '.join(cov['bad_tokens'][:5])}); evaluate.py scores the other {cov['expressible']} and counts "
        f"rows with such a target as misses")
    return (f"OK   {result['folder']}  ({result.get('model_type', '?')}, {result['weight_bytes'] / 2**20:.1f} MiB "
            f"of weights, {result.get('check', 'no')} check{sid})")


def record_checks(args, results: list[dict]) -> None:
    """Write ``OUTPUT_DIR/download_checkpoints.json``: the flags and the result of every folder."""
    write_record(args.output_dir / "download_checkpoints.json", args, folders=results)
