"""Find a MovieLens release on disk, or download it once, and never hand out unverified bytes.

Look-up order: a folder the caller names, ``$CONTEXTFLIX_DATA_DIR/<name>/``, the copy of
ml-latest-small embedded in the repository, the cache, and only then the network. Results
are reproducible only if every run reads the same bytes, so each file with a published
SHA-256 is checked wherever it comes from. Hashing the large releases takes seconds, so a
verified file is remembered in a JSON stamp next to it, keyed by size and mtime.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import platformdirs
import pooch

from contextflix.data.errors import ChecksumError, DataError, DownloadError
from contextflix.data.releases import Release, get_release

ENV_VAR = "CONTEXTFLIX_DATA_DIR"
STAMP_NAME = ".contextflix-verified.json"
REPO_ROOT = Path(__file__).resolve().parents[2]
EMBEDDED_DIR = REPO_ROOT / "data"


def cache_dir() -> Path:
    """The writable root where downloads (and other derived data) are kept between runs."""
    env = os.environ.get(ENV_VAR)
    if env and _writable(Path(env)):
        return Path(env)
    return Path(platformdirs.user_cache_dir("contextflix"))


def dataset_path(
    name: str, data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> Path:
    """A folder with every file of release ``name``, so all runs read the same verified bytes.

    Raises UnknownDatasetError, ChecksumError (a file or download with the wrong bytes) or
    DownloadError (files missing and not downloadable); each message says what to do.
    """
    release = get_release(name)
    why_not = "download=False" if not download else ""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        candidates = [root / name, root]
        target = root / name
        if download and not _writable(root):
            why_not = f"{root} is not writable"
    else:
        env = os.environ.get(ENV_VAR)
        candidates = [Path(env) / name] if env else []
        if name == "ml-latest-small":
            candidates.append(EMBEDDED_DIR / name)
        target = cache_dir() / name
        candidates.append(target)
    candidates = list(dict.fromkeys(candidates))  # the cache may be $CONTEXTFLIX_DATA_DIR
    for folder in candidates:
        if not _missing(folder, release):
            _verify_folder(folder, release)
            return folder
    if why_not:
        raise _missing_error(release, candidates, target, f"nothing was downloaded ({why_not})")
    if not release.url:  # a SYNTHETIC data set: generated, never downloaded
        return _synthesize(release, target)
    return _download(release, target, candidates)


def _synthesize(release: Release, target: Path) -> Path:
    """Generate a synthetic data set (seed 0) into a temporary folder and rename it into place
    (a linked folder is replaced where the link points: the link stays)."""
    from contextflix.data.synthetic import parse_name, write_release

    like, scale = parse_name(release.name)
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{release.name}-", dir=target.parent))
    try:
        write_release(tmp / release.name, like, seed=0, scale=scale)
        shutil.rmtree(target, ignore_errors=True)
        (tmp / release.name).rename(target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _missing(folder: Path, release: Release) -> list[str]:
    return [f for f in release.files if not (folder / f).is_file()]


def _writable(path: Path) -> bool:
    """Whether we may create files under ``path`` (created later if it does not exist yet).

    root passes ``os.access`` everywhere, so the write bits are honoured too: a folder that
    nobody may write to (such as a shared, read-only data folder) is left alone.
    """
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _verify_folder(folder: Path, release: Release) -> None:
    """Check every file with a known digest, skipping files whose stamp is still valid.

    Stamps are not written into the repository's embedded copy (a source checkout should not
    gain generated files; it is small to hash) nor into folders we may not write to.
    """
    stamp_path = folder / STAMP_NAME
    try:
        stamps = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        stamps = {}
    fresh = {}
    for fname, expected in release.files.items():
        if expected is None:
            continue
        path = folder / fname
        st = path.stat()
        key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected}
        if stamps.get(fname) != key:
            actual = _sha256(path)
            if actual != expected:
                raise ChecksumError(
                    f"{release.name}: {path} has the wrong SHA-256: expected {expected}, "
                    f"got {actual}. The file is damaged or from another release: delete it "
                    f"and run again to re-download it (or replace it with the file from "
                    f"{release.url})."
                )
        fresh[fname] = key
    in_repo = folder.resolve().is_relative_to(REPO_ROOT)
    if fresh != stamps and not in_repo and _writable(folder):
        with contextlib.suppress(OSError):  # a stamp only saves time
            stamp_path.write_text(json.dumps(fresh, indent=1, sort_keys=True))


def _download(release: Release, target: Path, looked_in: list[Path]) -> Path:
    """Download into a temporary folder beside ``target`` and rename it into place.

    A failure at any step removes the temporary folder, so the cache never holds a partial
    or unverified release that a later run would mistake for a good one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{release.name}-download-", dir=target.parent))
    try:
        known = f"sha256:{release.zip_sha256}" if release.zip_sha256 else None
        try:
            archive = pooch.retrieve(
                release.url, known_hash=known, fname=f"{release.name}.zip", path=tmp / "zip"
            )
        except ValueError as exc:  # pooch's way of reporting a digest mismatch
            got = re.search(r"got ([0-9a-fA-F]{64})", str(exc))
            if got is None:
                raise _missing_error(release, looked_in, target, f"download failed: {exc}") from exc
            raise ChecksumError(
                f"{release.name}: the download from {release.url} has the wrong SHA-256: "
                f"expected {release.zip_sha256}, got {got.group(1)}. Nothing was saved in "
                f"{target}. Run again to re-download; if it keeps failing, the server sent "
                f"something else (an error page, or a new version of the archive)."
            ) from exc
        except OSError as exc:  # requests' connection and HTTP errors are OSErrors
            raise _missing_error(release, looked_in, target, f"download failed: {exc}") from exc
        staged = tmp / release.name
        staged.mkdir()
        with zipfile.ZipFile(archive) as zf:
            for fname in release.files:
                member = f"{release.folder}/{fname}"
                try:
                    with zf.open(member) as src, (staged / fname).open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                except KeyError:
                    raise DataError(
                        f"{release.name}: {release.url} has no {member}; the archive is not "
                        f"the expected release."
                    ) from None
        _verify_folder(staged, release)
        try:
            staged.rename(target)
        except OSError:  # target already exists (partly filled by hand, or a parallel run)
            target.mkdir(parents=True, exist_ok=True)
            for item in staged.iterdir():
                os.replace(item, target / item.name)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _missing_error(
    release: Release, looked_in: list[Path], target: Path, reason: str
) -> DownloadError:
    """One message with what is missing where, why it was not fetched, and how to fix it."""
    partial = next((p for p in looked_in if p.is_dir() and _missing(p, release)), target)
    missing = _missing(partial, release)
    files = ", ".join(release.files)
    return DownloadError(
        f"{release.name}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
        f"missing in {partial} (looked in: {', '.join(map(str, looked_in))}); {reason}. "
        f"To fix it by hand: download {release.url}, unzip it and put {files} from its "
        f"{release.folder}/ folder into {target}, or into <dir>/{release.name}/ and set "
        f"{ENV_VAR}=<dir>."
    )
