"""python scripts/download_checkpoints.py --output_dir checkpoints/released [--repo_id Sober-Clever/SIDReasoner-Models] [--revision REV] [--from_local DIR]

Fetch released model checkpoints from the Hugging Face hub (huggingface_hub.snapshot_download into
--output_dir; resumable: rerun after an interruption) or install an already downloaded folder
(--from_local: copied, or symlinked with --link), then check every model folder found (a folder with
config.json): weights present (all shards of a sharded checkpoint), config + tokenizer load offline
(trust_remote_code off), the catalogue's SID tokens are single tokens (--info_file), and for small
checkpoints (--check auto: weights < 1 GiB; or --check full) that the model loads with
sidreasoner.train.model_factory.load_model_and_tokenizer. A folder that passes is ready for
``python evaluate.py --base_model FOLDER ...`` unchanged. Writes OUTPUT_DIR/download_checkpoints.json.

The default --repo_id is the checkpoint link of the SIDReasoner README (github.com/HappyPointer/SIDReasoner,
"Checkpoints"); it cannot be verified offline, so check the paper's README for the current one.
Exit status: 0 every model folder passed, 1 a check failed or no model folder was found, 2 usage,
download or offline error (the message says what to download by hand and where to put it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from sidreasoner.data.formats import atomic_write_text, read_info
from sidreasoner.data.records import DataError

DEFAULT_REPO = "Sober-Clever/SIDReasoner-Models"
WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
FULL_LOAD_LIMIT = 1 << 30  # bytes of weights up to which --check auto loads the whole model


class Unreachable(Exception):
    """The hub cannot be reached (offline mode, no network, connection refused)."""


class FetchError(Exception):
    """The hub answered but did not give the checkpoints (unknown repo or revision, gated, no files)."""


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    a = ap.add_argument
    a("--output_dir", type=Path, default=Path("checkpoints/released"),
      help="where the checkpoints go (default: %(default)s)")
    a("--repo_id", default=DEFAULT_REPO,
      help="Hugging Face model repository (default: %(default)s; check the paper's README)")
    a("--revision", default=None, help="branch, tag or commit (default: the main branch)")
    a("--allow_patterns", nargs="+", default=None, help="only these files, e.g. 'stage3/*' (default: everything)")
    a("--from_local", type=Path, default=None, help="an already downloaded checkpoint folder to install instead")
    a("--link", action="store_true", help="with --from_local: symlink the files instead of copying them")
    a("--info_file", type=Path, default=None, help="catalogue info file: check that its SID tokens are single tokens")
    a("--check", default="auto", choices=["auto", "config", "full", "none"],
      help="config: config + tokenizer + weight files; full: also load the model; auto: full below 1 GiB of weights")
    return ap.parse_args(argv)


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def manual_help(args) -> str:
    from huggingface_hub import constants
    url = f"{constants.ENDPOINT}/{args.repo_id}/tree/{args.revision or 'main'}"
    out = args.output_dir
    return "\n".join([
        f"Download the checkpoints by hand from {url}",
        f"  (on a machine with network: hf download {args.repo_id} --local-dir DIR"
        + (f" --revision {args.revision}" if args.revision else "") + ")",
        f"then install them with: python scripts/download_checkpoints.py --from_local DIR --output_dir {out}",
        f"or copy them to {out}/ yourself: each model folder needs config.json, the tokenizer files "
        f"(tokenizer.json, tokenizer_config.json) and the weights (*.safetensors, plus model.safetensors.index.json "
        f"when sharded); then evaluate with python evaluate.py --base_model {out}/<model folder> ..."])


def fetch_hub(args) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    if offline_mode():
        raise Unreachable("HF_HUB_OFFLINE is set")
    try:
        snapshot_download(args.repo_id, revision=args.revision, local_dir=args.output_dir,
                          allow_patterns=args.allow_patterns)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        raise Unreachable(str(e).splitlines()[0]) from None
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as e:
        raise FetchError(f"{type(e).__name__}: {str(e).splitlines()[0]} (check --repo_id/--revision against the "
                         f"paper's README; gated repos need `hf auth login`)") from None
    except (HfHubHTTPError, OSError) as e:
        raise Unreachable(f"{type(e).__name__}: {str(e).splitlines()[0]}") from None


def install_local(src: Path, out: Path, link: bool) -> int:
    """Mirror ``src`` into ``out`` (files copied or symlinked, each via a temp name + rename); returns files."""
    src = src.expanduser()
    if not src.is_dir():
        raise FetchError(f"--from_local {src}: no such folder")
    if src.resolve() == out.resolve():
        return 0
    n = 0
    for path in sorted(src.rglob("*")):
        if not path.is_file() or ".cache" in path.relative_to(src).parts:
            continue
        dst = out / path.relative_to(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()
        os.symlink(path.resolve(), tmp) if link else shutil.copy2(path, tmp)
        os.replace(tmp, dst)
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
    from sidreasoner.train.chat import check_sid_tokens
    result = {"folder": str(folder), "weight_bytes": weight_bytes(folder)}
    if mode == "none":
        return result
    full = mode == "full" or (mode == "auto" and result["weight_bytes"] <= FULL_LOAD_LIMIT)
    if full:
        from sidreasoner.train.model_factory import load_model_and_tokenizer
        model, tokenizer = load_model_and_tokenizer(folder)
        result.update(model_type=model.config.model_type, parameters=sum(p.numel() for p in model.parameters()))
    else:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        result["model_type"] = config.model_type
    result["check"] = "full" if full else "config"
    result["vocab"] = len(tokenizer)
    if sids is not None:
        check_sid_tokens(tokenizer, sids)
        result["sid_tokens"] = "ok"
    return result


def check_all(args) -> tuple[list[dict], bool]:
    from sidreasoner.train.model_factory import ModelLoadError
    sids = [r.sid for r in read_info(args.info_file)] if args.info_file else None
    folders = model_folders(args.output_dir)
    if not folders:
        print(f"no model folder (with config.json) under {args.output_dir}", file=sys.stderr)
        return [], False
    results, ok = [], True
    for folder in folders:
        try:
            res = check_folder(folder, args.check, sids)
            print(f"OK   {folder}  ({res.get('model_type', '?')}, {res['weight_bytes'] / 2**20:.1f} MiB of weights, "
                  f"{res.get('check', 'no')} check{', SID tokens ok' if 'sid_tokens' in res else ''})")
        except (FetchError, ModelLoadError, ValueError, OSError) as e:
            res, ok = {"folder": str(folder), "error": str(e)}, False
            print(f"FAIL {folder}: {e}")
        results.append(res)
    return results, ok


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.from_local is not None:
            n = install_local(args.from_local, args.output_dir, args.link)
            print(f"installed {n} file(s) from {args.from_local} into {args.output_dir}")
        else:
            fetch_hub(args)
            print(f"downloaded {args.repo_id} into {args.output_dir}")
        results, ok = check_all(args)
    except Unreachable as e:
        print(f"download_checkpoints.py: error: cannot reach the Hugging Face hub ({e}).\n{manual_help(args)}",
              file=sys.stderr)
        return 2
    except (FetchError, DataError) as e:
        print(f"download_checkpoints.py: error: {e}\n{manual_help(args)}", file=sys.stderr)
        return 2
    record = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "folders": results}
    atomic_write_text(args.output_dir / "download_checkpoints.json", json.dumps(record, indent=1) + "\n")
    if ok:
        print(f"evaluate with: python evaluate.py --base_model {results[0]['folder']} --data_dir data/Amazon "
              f"--category Office_Products --output_dir results/released")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
