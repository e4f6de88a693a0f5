"""python scripts/download_data.py --output_dir data/Amazon [--category Office_Products] [--repo_id ID | --url URL | --from_local PATH]

Fetch the released SIDReasoner / MiniOneRec data into the release layout (DESIGN.md §3), then verify it
(every file read and cross-checked by sidreasoner.data.validate, statistics printed) and write
OUTPUT_DIR/download_<Cat>.json (resolved config + sha256 of every installed file).

Sources, in this order of precedence:
  --from_local PATH  a folder (or .zip / .tar.gz archive) you already downloaded: copied (--link: symlinked).
  --repo_id ID       a Hugging Face repository holding the release layout (huggingface_hub.snapshot_download,
                     only the category's files; resumable: rerun after an interruption).
  --url URL          an archive of the release (default: the dataset link of the SIDReasoner README, a Google
                     Drive file; resumable HTTP download into --cache_dir, optional --sha256 check).
The release's hosting is not verifiable offline: check the paper's README (github.com/HappyPointer/SIDReasoner)
for the current data link and pass it with --url or --repo_id.

Offline (no network, HF_HUB_OFFLINE=1, connection refused) the script exits 2 and says what to download
by hand and exactly where to put the files. Exit status: 0 installed and valid, 1 installed but the
validation found errors, 2 usage, download or offline error.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional

from sidreasoner.data.formats import atomic_write_text
from sidreasoner.data.records import SPLITS, DataError, ReleasePaths

#: the dataset link of the SIDReasoner README (HappyPointer/SIDReasoner, "Dataset" section)
DRIVE_FILE_ID = "1S92QvaEs7aAhCwWOUovyb4y5P-pXwUhH"
DRIVE_VIEW_URL = f"https://drive.google.com/file/d/{DRIVE_FILE_ID}/view?usp=sharing"
DEFAULT_URL = f"https://drive.usercontent.google.com/download?id={DRIVE_FILE_ID}&export=download&confirm=t"
LAYOUT_DIRS = ("train", "valid", "test", "index", "info")
CHUNK = 1 << 20  # bytes per read of an HTTP download


class Unreachable(Exception):
    """The source cannot be reached (offline mode, no network, connection refused)."""


class FetchError(Exception):
    """The source was reached but did not give the release (not found, wrong content, bad checksum)."""


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    a = ap.add_argument
    a("--output_dir", type=Path, default=Path("data/Amazon"), help="release folder to fill (default: %(default)s)")
    a("--category", nargs="+", default=["Office_Products"], help="categories to install (default: %(default)s)")
    a("--from_local", type=Path, default=None, help="an already downloaded folder or .zip/.tar(.gz) archive")
    a("--link", action="store_true", help="with --from_local: symlink the files instead of copying them")
    a("--repo_id", default=None, help="Hugging Face repository with the release layout (check the paper's README)")
    a("--repo_type", default="dataset", choices=["dataset", "model"], help="type of --repo_id (default: %(default)s)")
    a("--revision", default=None, help="branch, tag or commit of --repo_id (default: the main branch)")
    a("--allow_patterns", nargs="+", default=None,
      help="files to fetch from --repo_id (default: the categories' files, '*<Cat>.*' and '*<Cat>_*')")
    a("--url", default=DEFAULT_URL,
      help="archive URL of the release (default: the SIDReasoner README's Google Drive file)")
    a("--sha256", default=None, help="expected sha256 of the --url archive (checked when given)")
    a("--cache_dir", type=Path, default=None, help="where partial downloads live (default: OUTPUT_DIR/.download)")
    a("--split_suffix", default="_5_2016-10-2018-11", help="file-name suffix after the category (default: %(default)s)")
    a("--force", action="store_true", help="fetch and install again even when the category is already installed")
    return ap.parse_args(argv)


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def manual_help(args, url: str) -> str:
    """What to download by hand and the exact files and folders it must end up as."""
    out = args.output_dir
    lines = [f"Download the release by hand from {url}", "then install it with",
             f"    python scripts/download_data.py --from_local PATH_TO_DOWNLOAD --output_dir {out} "
             f"--category {' '.join(args.category)}",
             "or put the files in this layout yourself:"]
    for cat in args.category:
        p = ReleasePaths(out, cat, split_suffix=args.split_suffix)
        lines += [f"    {p.split(s)}" for s in SPLITS] + [f"    {p.index_json}", f"    {p.item_json}", f"    {p.info}"]
    lines.append(f"and check them with: python scripts/check_data.py --data_dir {out} --category {args.category[0]}")
    return "\n".join(lines)


def hf_patterns(categories) -> list[str]:
    return [pat for c in categories for pat in (f"*{c}.*", f"*{c}_*")]


def fetch_hf(args, dest: Path) -> Path:
    """snapshot_download of the categories' files into ``dest`` (huggingface_hub resumes partial files)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    if offline_mode():
        raise Unreachable("HF_HUB_OFFLINE is set")
    try:
        path = snapshot_download(args.repo_id, repo_type=args.repo_type, revision=args.revision, local_dir=dest,
                                 allow_patterns=args.allow_patterns or hf_patterns(args.category))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        raise Unreachable(str(e).splitlines()[0]) from None
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as e:
        raise FetchError(f"{type(e).__name__}: {str(e).splitlines()[0]} (check --repo_id/--revision against the "
                         f"paper's README; gated repos need `hf auth login`)") from None
    except (HfHubHTTPError, OSError) as e:
        raise Unreachable(f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
    return Path(path)


def fetch_url(url: str, dest: Path, sha256: Optional[str]) -> Path:
    """Download ``url`` to ``dest/<name>``, resuming ``<name>.part`` with an HTTP Range request."""
    if offline_mode():
        raise Unreachable("HF_HUB_OFFLINE is set")
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / "release_archive"
    part = final.with_name(final.name + ".part")
    if not final.exists():
        _http_to_part(url, part)
        os.replace(part, final)
    if sha256:
        got = sha256_of(final)
        if got != sha256.lower():
            final.rename(final.with_name(final.name + ".bad"))
            raise FetchError(f"{url}: sha256 {got} differs from the expected {sha256} (file kept as {final}.bad)")
    return final


def _http_to_part(url: str, part: Path) -> None:
    from tqdm import tqdm
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=30)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the .part already holds the whole file
            return
        raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise Unreachable(f"{url}: {getattr(e, 'reason', e)}") from None
    with resp:
        if "text/html" in resp.headers.get("Content-Type", ""):
            raise FetchError(f"{url} answered with a web page, not the archive (Google Drive asks large downloads "
                             f"to be confirmed in a browser)")
        if have and resp.status != 206:
            have = 0  # the server ignored the Range header: start over
        total = resp.headers.get("Content-Length")
        mode = "ab" if have else "wb"
        with open(part, mode) as f, tqdm(total=int(total) + have if total else None, initial=have, unit="B",
                                         unit_scale=True, desc="download") as bar:
            while chunk := resp.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def unpack(archive: Path, dest: Path) -> Path:
    """Extract a .zip / .tar(.gz) into ``dest`` (members may not leave it); done once (marker file)."""
    marker = dest / ".unpacked"
    if marker.is_file() and marker.read_text(encoding="utf-8") == str(archive.resolve()):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            root = dest.resolve()
            for name in z.namelist():
                if not (root / name).resolve().is_relative_to(root):
                    raise FetchError(f"{archive}: member {name!r} would be written outside {dest}")
            z.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")  # refuses absolute paths, '..', device files, outside links
    else:
        raise FetchError(f"{archive}: neither a zip nor a tar archive (was the download a web page?)")
    marker.write_text(str(archive.resolve()), encoding="utf-8")
    return dest


def find_release_root(tree: Path, category: str) -> Path:
    """The folder under ``tree`` that holds ``index/<category>.index.json`` (the shallowest one)."""
    hits = sorted(tree.rglob(f"index/{category}.index.json"), key=lambda p: (len(p.parts), str(p)))
    if hits:
        return hits[0].parent.parent
    found = sorted({p.name[:-len(".index.json")] for p in tree.rglob("index/*.index.json")})
    raise FetchError(f"{tree}: no index/{category}.index.json in the download (categories found: "
                     f"{', '.join(found) or 'none'})")


def category_files(root: Path, category: str) -> list[Path]:
    """Files of ``category`` under the layout folders of ``root`` (relative paths)."""
    out = []
    for d in LAYOUT_DIRS:
        for p in sorted((root / d).glob(f"{category}*")) if (root / d).is_dir() else []:
            if p.is_file() and p.name[len(category):][:1] in (".", "_"):
                out.append(p.relative_to(root))
    return out


def install(root: Path, out: Path, category: str, link: bool) -> list[Path]:
    """Copy (or symlink) the category's files from ``root`` into ``out``, each via a temp name + rename."""
    files = category_files(root, category)
    if root.resolve() == out.resolve():
        return files
    for rel in files:
        src, dst = (root / rel).resolve(), out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()
        os.symlink(src, tmp) if link else shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    return files


def verify(out: Path, category: str, suffix: str) -> bool:
    from sidreasoner.data.stats import compute_stats, render_stats
    from sidreasoner.data.validate import ValidationReport, check_release, load_release
    report = ValidationReport()
    data = load_release(ReleasePaths(out, category, split_suffix=suffix), report)
    check_release(data, report)
    if data.index is not None:
        print(render_stats(compute_stats(data.splits, data.index, 10, category)))
    print(report.format())
    return report.ok


def fetch(args, cache: Path) -> tuple[Path, str]:
    """The folder holding the downloaded release, and a description of the source."""
    if args.from_local is not None:
        src = args.from_local.expanduser()
        if not src.exists():
            raise FetchError(f"--from_local {src}: no such file or folder")
        return (src, f"local folder {src}") if src.is_dir() else (unpack(src, cache / "unpacked"), f"archive {src}")
    if args.repo_id:
        return fetch_hf(args, cache / "hf" / args.repo_id.replace("/", "__")), f"hf {args.repo_type} {args.repo_id}"
    return unpack(fetch_url(args.url, cache, args.sha256), cache / "unpacked"), f"url {args.url}"


def manual_url(args) -> str:
    if args.from_local is None and args.repo_id:
        from huggingface_hub import constants
        kind = "datasets/" if args.repo_type == "dataset" else ""
        return f"{constants.ENDPOINT}/{kind}{args.repo_id}/tree/{args.revision or 'main'}"
    return DRIVE_VIEW_URL if args.url == DEFAULT_URL else args.url


def installed(args, category: str) -> bool:
    p = ReleasePaths(args.output_dir, category, split_suffix=args.split_suffix)
    return all(f.is_file() for f in (p.index_json, p.item_json, p.info, *(p.split(s) for s in SPLITS)))


def main(argv=None) -> int:
    args = parse_args(argv)
    cache = args.cache_dir or args.output_dir / ".download"
    todo = [c for c in args.category if args.force or not installed(args, c)]
    try:
        if todo:
            tree, source = fetch(args, cache)
            for cat in todo:
                root = find_release_root(tree, cat)
                link = args.link and args.from_local is not None and args.from_local.is_dir()
                files = install(root, args.output_dir, cat, link)
                print(f"installed {len(files)} file(s) of {cat} from {source} into {args.output_dir}")
    except Unreachable as e:
        print(f"download_data.py: error: cannot reach the data source ({e}).\n{manual_help(args, manual_url(args))}",
              file=sys.stderr)
        return 2
    except (FetchError, DataError, OSError) as e:
        print(f"download_data.py: error: {e}\n{manual_help(args, manual_url(args))}", file=sys.stderr)
        return 2
    ok = True
    for cat in args.category:
        print(f"== {cat} ==" + ("" if cat in todo else " (already installed; --force to fetch again)"))
        ok = verify(args.output_dir, cat, args.split_suffix) and ok
        files = category_files(args.output_dir, cat)
        record = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                  "files": {str(f): {"bytes": (args.output_dir / f).stat().st_size,
                                     "sha256": sha256_of(args.output_dir / f)} for f in files}}
        atomic_write_text(args.output_dir / f"download_{cat}.json", json.dumps(record, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
