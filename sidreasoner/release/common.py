"""What the data and checkpoint downloads share: the two failure kinds, offline detection, the hub snapshot
with its errors sorted into those kinds, file placement by temp name + rename, and the JSON record."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional

from sidreasoner.data.formats import atomic_write_text


class Unreachable(Exception):
    """The source cannot be reached (offline mode, no network, connection refused)."""


class FetchError(Exception):
    """The source answered but did not give the files (unknown repo or revision, gated, wrong content, bad sha256)."""


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def require_online() -> None:
    # HF_HUB_OFFLINE also stops plain HTTP downloads: one switch for "no network" in every script
    if offline_mode():
        raise Unreachable("HF_HUB_OFFLINE is set")


def hub_snapshot(repo_id: str, *, local_dir: Path, revision: Optional[str], allow_patterns,
                 repo_type: Optional[str] = None) -> Path:
    """snapshot_download into ``local_dir`` (huggingface_hub resumes partial files); hub errors become
    :class:`Unreachable` (rerun later or download by hand) or :class:`FetchError` (fix the flags)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    require_online()
    try:
        path = snapshot_download(repo_id, repo_type=repo_type, revision=revision, local_dir=local_dir,
                                 allow_patterns=allow_patterns)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        raise Unreachable(str(e).splitlines()[0]) from None
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as e:
        raise FetchError(f"{type(e).__name__}: {str(e).splitlines()[0]} (check --repo_id/--revision against the "
                         f"paper's README; gated repos need `hf auth login`)") from None
    except (HfHubHTTPError, OSError) as e:
        raise Unreachable(f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
    return Path(path)


def hub_tree_url(repo_id: str, revision: Optional[str], repo_type: str = "model") -> str:
    """The hub's file browser of ``repo_id`` (honours HF_ENDPOINT), for downloading by hand."""
    from huggingface_hub import constants
    kind = "datasets/" if repo_type == "dataset" else ""
    return f"{constants.ENDPOINT}/{kind}{repo_id}/tree/{revision or 'main'}"


def place_file(src: Path, dst: Path, link: bool) -> None:
    """Copy (or symlink) ``src`` to ``dst`` via a temp name + rename: an interrupted run never leaves a
    half-copied file under the final name, so a rerun can trust what is there."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    os.symlink(src.resolve(), tmp) if link else shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def write_record(path: Path, args, **fields) -> None:
    """``{"config": <the script's flags>, **fields}`` as JSON at ``path`` (paths written as strings)."""
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    atomic_write_text(path, json.dumps({"config": config, **fields}, indent=1) + "\n")
