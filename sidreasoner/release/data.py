"""The released SIDReasoner / MiniOneRec data: fetch it (a local folder or archive, a Hugging Face repository or an
archive URL), install one category's files into the release layout, validate and record them.

Functions taking ``args`` read the flags of ``scripts/download_data.py`` from it (its DownloadDataFlags)."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Iterator, Optional

from sidreasoner.data.formats import atomic_write_text
from sidreasoner.data.records import SPLITS, ReleasePaths

from .common import FetchError, Unreachable, hub_snapshot, hub_tree_url, place_file, require_online, write_record

#: the dataset link of the SIDReasoner README (HappyPointer/SIDReasoner, "Dataset" section)
DRIVE_FILE_ID = "1S92QvaEs7aAhCwWOUovyb4y5P-pXwUhH"
DRIVE_VIEW_URL = f"https://drive.google.com/file/d/{DRIVE_FILE_ID}/view?usp=sharing"
DEFAULT_URL = f"https://drive.usercontent.google.com/download?id={DRIVE_FILE_ID}&export=download&confirm=t"
LAYOUT_DIRS = ("train", "valid", "test", "index", "info")
CHUNK = 1 << 20  # bytes per read of an HTTP download


def manual_help(args) -> str:
    """What to download by hand and the exact files and folders it must end up as."""
    out = args.output_dir
    lines = [f"Download the release by hand from {manual_url(args)}", "then install it with",
             f"    python scripts/download_data.py --from_local PATH_TO_DOWNLOAD --output_dir {out} "
             f"--category {' '.join(args.category)}",
             "or put the files in this layout yourself:"]
    for cat in args.category:
        p = ReleasePaths(out, cat, split_suffix=args.split_suffix)
        lines += [f"    {p.split(s)}" for s in SPLITS] + [f"    {p.index_json}", f"    {p.item_json}", f"    {p.info}"]
    lines.append(f"and check them with: python scripts/check_data.py --data_dir {out} --category {args.category[0]}")
    return "\n".join(lines)


def manual_url(args) -> str:
    if args.from_local is None and args.repo_id:
        return hub_tree_url(args.repo_id, args.revision, args.repo_type)
    # the direct-download URL needs a confirmation token; a person wants the Drive page instead
    return DRIVE_VIEW_URL if args.url == DEFAULT_URL else args.url


def hf_patterns(categories) -> list[str]:
    return [pat for c in categories for pat in (f"*{c}.*", f"*{c}_*")]


def fetch_url(url: str, dest: Path, sha256: Optional[str], force: bool = False) -> Path:
    """Download ``url`` to ``dest/release_archive``, resuming ``release_archive.part`` with an HTTP Range
    request. Each file records the URL it came from (``<file>.source``): an archive or a partial file of
    another URL is discarded, not reused or spliced; ``force`` downloads again whatever is there."""
    require_online()
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / "release_archive"
    part = final.with_name(final.name + ".part")
    for f in (final, part):
        if f.exists() and (force or _source_of(f) != url):
            f.unlink()
    if not final.exists():
        _set_source(part, url)
        _http_to_part(url, part)
        os.replace(part, final)
        os.replace(_source_path(part), _source_path(final))
    if sha256:
        got = sha256_of(final)
        if got != sha256.lower():
            final.rename(final.with_name(final.name + ".bad"))
            raise FetchError(f"{url}: sha256 {got} differs from the expected {sha256} (file kept as {final}.bad)")
    return final


def _source_path(f: Path) -> Path:
    return f.with_name(f.name + ".source")


def _source_of(f: Path) -> Optional[str]:
    p = _source_path(f)
    return p.read_text(encoding="utf-8") if p.is_file() else None


def _set_source(f: Path, url: str) -> None:
    atomic_write_text(_source_path(f), url)


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


def _archive_key(archive: Path) -> str:
    """Which archive an unpacked tree came from: its path, size and modification time (a new archive at
    the same path unpacks again)."""
    st = archive.stat()
    return f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def unpack(archive: Path, dest: Path) -> Path:
    """Extract a .zip / .tar(.gz) into ``dest`` (members may not leave it); done once per archive (marker)."""
    marker = dest / ".unpacked"
    if marker.is_file() and marker.read_text(encoding="utf-8") == _archive_key(archive):
        return dest
    if dest.exists():
        shutil.rmtree(dest)  # another archive's files must not mix with this one's
    dest.mkdir(parents=True, exist_ok=True)
    try:
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
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        # a truncated archive, or a member the safety filter refuses (path traversal, links out of dest)
        raise FetchError(f"{archive}: cannot unpack: {type(e).__name__}: {e}") from None
    marker.write_text(_archive_key(archive), encoding="utf-8")
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
        place_file((root / rel).resolve(), out / rel, link)
    return files


def installed(out: Path, category: str, split_suffix: str) -> bool:
    """Whether every file of ``category``'s release layout is already in ``out``."""
    p = ReleasePaths(out, category, split_suffix=split_suffix)
    return all(f.is_file() for f in (p.index_json, p.item_json, p.info, *(p.split(s) for s in SPLITS)))


def fetch(args, cache: Path) -> tuple[Path, str]:
    """The folder holding the downloaded release, and a description of the source."""
    if args.from_local is not None:
        src = args.from_local.expanduser()
        if not src.exists():
            raise FetchError(f"--from_local {src}: no such file or folder")
        if src.is_dir():
            return src, f"local folder {src}"
        return unpack(src, cache / "unpacked"), f"archive {src} (sha256 {sha256_of(src)})"
    if args.repo_id:
        dest = cache / "hf" / args.repo_id.replace("/", "__")
        tree = hub_snapshot(args.repo_id, repo_type=args.repo_type, revision=args.revision, local_dir=dest,
                            allow_patterns=args.allow_patterns or hf_patterns(args.category))
        return tree, f"hf {args.repo_type} {args.repo_id}"
    archive = fetch_url(args.url, cache, args.sha256, force=getattr(args, "force", False))
    return unpack(archive, cache / "unpacked"), f"url {args.url} (sha256 {sha256_of(archive)})"


def fetch_and_install(args, cache: Path, categories: list[str]) -> Iterator[tuple[str, list[Path], str]]:
    """Fetch the release once (nothing when ``categories`` is empty) and install each category into
    ``args.output_dir``; yields (category, installed files, description of the source)."""
    if not categories:
        return
    tree, source = fetch(args, cache)
    for cat in categories:
        root = find_release_root(tree, cat)
        # --link applies to a --from_local folder only; unpacked archives and hub snapshots are copied out of the cache
        link = args.link and args.from_local is not None and args.from_local.expanduser().is_dir()
        yield cat, install(root, args.output_dir, cat, link), source


def verify(out: Path, category: str, suffix: str) -> tuple[bool, str]:
    """Validate the installed category; (valid, its statistics and validation report as text)."""
    from sidreasoner.data.stats import compute_stats, render_stats
    from sidreasoner.data.validate import ValidationReport, check_release, load_release
    report = ValidationReport()
    data = load_release(ReleasePaths(out, category, split_suffix=suffix), report)
    check_release(data, report)
    parts = [render_stats(compute_stats(data.splits, data.index, 10, category))] if data.index is not None else []
    return report.ok, "\n".join(parts + [report.format()])


def record_category(args, category: str, source: str) -> None:
    """Write ``OUTPUT_DIR/download_<category>.json``: the flags, the source the files were installed from
    (with the archive's sha256) and the size + sha256 of every installed file."""
    out = args.output_dir
    files = category_files(out, category)
    write_record(out / f"download_{category}.json", args, source=source,
                 files={str(f): {"bytes": (out / f).stat().st_size, "sha256": sha256_of(out / f)} for f in files})
