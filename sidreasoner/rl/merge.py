"""verl FSDP actor checkpoints -> Hugging Face folders, merged by verl's own merger and then checked.

verl saves ``<run>/global_step_N/actor/`` as one ``model_world_size_W_rank_R.pt`` per rank (DTensor
shards of the actor's state dict), ``fsdp_config.json`` and ``huggingface/`` (model config, tokenizer).
``merge_checkpoint`` runs ``verl.model_merger``'s FSDP merger into ``global_step_N/actor_merged`` and
then checks, before the folder is moved into place:

1. every shard loads with ``torch.load(weights_only=True)`` (verl's merger itself unpickles
   without that guard, so a file that fails here is never handed to it);
2. the merged folder loads as a causal LM with its tokenizer (and, with a catalogue, has every SID token);
3. each merged tensor equals the tensor rebuilt independently from the shards, cast to the merged
   dtype (verl writes bfloat16), with no tensor missing or extra.

``merge_all(run_dir)`` does this for every ``global_step_*`` not merged yet.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Callable, Optional

import torch

SHARD_RE = re.compile(r"^model_world_size_(\d+)_rank_(\d+)\.pt$")
STEP_RE = re.compile(r"^global_step_(\d+)$")
MERGED_NAME = "actor_merged"
REPORT_NAME = "merge_report.json"


class MergeError(ValueError):
    """A checkpoint cannot be merged, or its merge does not reproduce the shards; the message says which file."""


def find_shards(actor_dir) -> list[Path]:
    """The model shard files of a verl actor folder, in rank order (MergeError when incomplete or absent)."""
    d = Path(actor_dir)
    if not d.is_dir():
        raise MergeError(f"{d}: checkpoint folder not found")
    found = {}
    for p in d.iterdir():
        if m := SHARD_RE.match(p.name):
            found.setdefault(int(m.group(1)), {})[int(m.group(2))] = p
    if not found:
        raise MergeError(f"{d}: no FSDP model shards (model_world_size_<N>_rank_<R>.pt); give a verl actor folder "
                         f"such as <run dir>/global_step_100/actor")
    if len(found) > 1:
        raise MergeError(f"{d}: shards of several world sizes {sorted(found)}; keep one save per folder")
    world, ranks = next(iter(found.items()))
    missing = sorted(set(range(world)) - set(ranks))
    if missing:
        raise MergeError(f"{d}: world size {world} but the shards of rank(s) {missing} are missing")
    config = d / "fsdp_config.json"
    if not config.is_file():
        raise MergeError(f"{config}: not found (verl writes it beside the shards; the merger reads the world size there)")
    if not (d / "huggingface" / "config.json").is_file():
        raise MergeError(f"{d / 'huggingface'}: no config.json (verl saves the model config and tokenizer there)")
    return [ranks[r] for r in range(world)]


def load_shard(path: Path) -> dict:
    import torch.distributed.tensor  # noqa: F401  (registers DTensor for weights_only unpickling)
    try:
        try:  # mmap: a shard's tensors are read when compared, not all at once
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap can only be used" not in str(e):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) torch.save format
    except Exception as e:  # UnpicklingError for foreign objects, RuntimeError for damaged files
        raise MergeError(f"{path}: cannot be read with torch.load(weights_only=True): {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}") from None


def _full_tensor(key: str, pieces: list) -> torch.Tensor:
    """One tensor from its per-rank pieces: DTensor shards concatenated along their shard dim."""
    from torch.distributed.tensor import DTensor
    first = pieces[0]
    if not isinstance(first, DTensor):
        if any(not torch.equal(p, first) for p in pieces[1:]):
            raise MergeError(f"{key}: a plain (replicated) tensor differs between ranks")
        return first
    mesh = first.device_mesh.mesh
    pieces = pieces[: mesh.shape[-1]]  # with a (ddp, fsdp) mesh the first fsdp group holds every shard
    placement = first.placements[-1]
    if placement.is_replicate():
        return first.to_local()
    if not placement.is_shard():
        raise MergeError(f"{key}: unsupported DTensor placement {placement}")
    return torch.cat([p.to_local() for p in pieces], dim=placement.dim)


def shard_state_dict(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The full state dict rebuilt from the shard files (independently of verl's merger)."""
    shards = [load_shard(p) for p in paths]
    keys = set(shards[0])
    for p, s in zip(paths[1:], shards[1:]):
        if set(s) != keys:
            raise MergeError(f"{p}: holds other tensors than {paths[0].name} ({len(set(s) ^ keys)} names differ)")
    return {k: _full_tensor(k, [s[k] for s in shards]) for k in sorted(keys)}


def compare_weights(merged: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> dict:
    """Every expected tensor equals the merged one (after casting to its dtype); extra merged tensors must be
    tied to a compared one (e.g. a tied lm_head). Returns counts; MergeError on the first difference."""
    missing = sorted(set(expected) - set(merged))
    if missing:
        raise MergeError(f"merged model lacks {len(missing)} tensors of the shards, e.g. {missing[:3]}")
    compared_ptrs = set()
    for key, want in expected.items():
        got = merged[key]
        if got.shape != want.shape or not torch.equal(got, want.to(got.dtype)):
            diff = "shape " + str(tuple(got.shape)) if got.shape != want.shape else \
                f"max |diff| {(got.float() - want.to(got.dtype).float()).abs().max().item():.3g}"
            raise MergeError(f"merged tensor {key} differs from the shards ({diff})")
        compared_ptrs.add(got.data_ptr())
    extra = [k for k in merged if k not in expected and merged[k].data_ptr() not in compared_ptrs]
    if extra:
        raise MergeError(f"merged model has {len(extra)} tensors that are not in the shards, e.g. {extra[:3]}")
    unique = {merged[k].data_ptr(): merged[k].numel() for k in expected}  # a tied lm_head counts once
    return {"tensors": len(expected), "parameters": sum(unique.values()),
            "dtype": str(next(iter(merged.values())).dtype)}


def run_verl_merge(actor_dir: Path, target_dir: Path) -> None:
    """``python -m verl.model_merger merge --backend fsdp --local_dir ACTOR --target_dir TARGET``, in process."""
    from verl.model_merger.base_model_merger import ModelMergerConfig
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger
    target_dir.mkdir(parents=True, exist_ok=True)
    config = ModelMergerConfig(operation="merge", backend="fsdp", local_dir=str(actor_dir), target_dir=str(target_dir),
                               hf_model_config_path=str(actor_dir / "huggingface"))
    merger = FSDPModelMerger(config)
    merger.merge_and_save()
    merger.cleanup()


def verify_merged(merged_dir: Path, expected: dict[str, torch.Tensor], info_file: Optional[str] = None) -> dict:
    """The merged folder loads (model + tokenizer), equals the shards, and knows the catalogue's SID tokens."""
    from ..model.model_factory import load_model_and_tokenizer
    model, tokenizer = load_model_and_tokenizer(merged_dir, dtype=None)
    report = compare_weights(model.state_dict(), expected)
    if info_file:
        from ..model.chat import check_sid_tokens
        from .verl_reward import load_catalogue
        check_sid_tokens(tokenizer, sorted(load_catalogue(info_file)))
        report["sid_tokens_checked"] = info_file
    return report


def merge_checkpoint(actor_dir, output_dir=None, info_file: Optional[str] = None, overwrite: bool = False,
                     say: Callable[[str], None] = print) -> dict:
    """Merge one ``global_step_N/actor`` into ``output_dir`` (default its sibling ``actor_merged``), checked."""
    actor = Path(actor_dir)
    paths = find_shards(actor)
    out = Path(output_dir) if output_dir else actor.parent / MERGED_NAME
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (pass --overwrite to merge again)")
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    expected = shard_state_dict(paths)  # checks every shard loads with weights_only=True first
    say(f"merging {len(paths)} shards of {actor} with verl's FSDP merger")
    run_verl_merge(actor, partial)
    report = {"actor_dir": str(actor), "output_dir": str(out), "world_size": len(paths),
              **verify_merged(partial, expected, info_file)}
    (partial / REPORT_NAME).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    say(f"{out}: {report['tensors']} tensors ({report['parameters']:,} parameters, {report['dtype']}) equal the shards")
    return report


def step_dirs(run_dir) -> list[Path]:
    """``global_step_N`` folders of a verl run that hold an ``actor`` folder, by step."""
    d = Path(run_dir)
    if not d.is_dir():
        raise MergeError(f"{d}: run folder not found")
    steps = [(int(m.group(1)), p) for p in d.iterdir() if (m := STEP_RE.match(p.name)) and (p / "actor").is_dir()]
    if not steps:
        raise MergeError(f"{d}: no global_step_*/actor folders: nothing to merge (verl saves them every "
                         f"trainer.save_freq steps into trainer.default_local_dir)")
    return [p for _, p in sorted(steps)]


def merge_all(run_dir, info_file: Optional[str] = None, overwrite: bool = False,
              say: Callable[[str], None] = print) -> list[dict]:
    """Merge every step of a run; steps whose ``actor_merged`` already holds a report are kept."""
    reports = []
    for step in step_dirs(run_dir):
        done = step / MERGED_NAME / REPORT_NAME
        if done.is_file() and not overwrite:
            say(f"{step.name}: already merged ({done.parent})")
            reports.append(json.loads(done.read_text(encoding="utf-8")))
            continue
        reports.append(merge_checkpoint(step / "actor", None, info_file, overwrite, say))
    return reports
