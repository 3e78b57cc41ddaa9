"""dataset_path: real files on disk, and downloads from a local HTTP server (no internet)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import socket
import threading
import zipfile
from pathlib import Path

import platformdirs
import pytest

from contextflix.data.errors import ChecksumError, DownloadError, UnknownDatasetError
from contextflix.data.fetch import EMBEDDED_DIR, ENV_VAR, STAMP_NAME, cache_dir, dataset_path
from contextflix.data.releases import RELEASES, Release, get_release

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared MovieLens folder {SHARED} is not present"
)

ML1M_FILES = {
    "ratings.dat": b"1::1193::5::978300760\n1::661::3::978302109\n2::3408::4::978300275\n",
    "movies.dat": "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
    "661::Café (1999)::Comedy\n3408::Erin Brockovich (2000)::Drama\n".encode("latin-1"),
    "users.dat": b"1::F::1::10::48067\n2::M::56::16::70072\n",
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-1m/README", "test release\n")
        for name, data in ML1M_FILES.items():
            zf.writestr(f"ml-1m/{name}", data)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test may read or write the real user cache or depend on the caller's environment."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda *a, **k: str(tmp_path / "user"))


@pytest.fixture
def server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving the test ml-1m.zip; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "ml-1m.zip").write_bytes(_zip_bytes())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _use_release(monkeypatch, base_url: str, **changes) -> Release:
    """Point the public registry's ml-1m entry at the local server and test digests."""
    fields = {
        "name": "ml-1m",
        "url": f"{base_url}/ml-1m.zip",
        "zip_sha256": _sha(_zip_bytes()),
        "folder": "ml-1m",
        "files": {name: _sha(data) for name, data in ML1M_FILES.items()},
        "format": "dat",
    }
    release = Release(**(fields | changes))
    monkeypatch.setitem(RELEASES, "ml-1m", release)
    return release


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(ENV_VAR, str(folder))
    return folder


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_embedded_ml_latest_small_resolves_and_verifies():
    path = dataset_path("ml-latest-small", download=False)
    assert path == EMBEDDED_DIR / "ml-latest-small"
    assert all((path / f).is_file() for f in get_release("ml-latest-small").files)
    assert not (path / STAMP_NAME).exists()  # the source checkout gains no generated files


@needs_shared
def test_shared_ml_100k_resolves_and_verifies(monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(SHARED))
    assert dataset_path("ml-100k", download=False) == SHARED / "ml-100k"
    assert not (SHARED / "ml-100k" / STAMP_NAME).exists()  # read-only folder left alone


@needs_shared
def test_shared_ml_1m_without_ratings_names_the_missing_file(monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(SHARED))
    with pytest.raises(DownloadError) as info:
        dataset_path("ml-1m", download=False)
    message = str(info.value)
    assert f"ml-1m: ratings.dat is missing in {SHARED / 'ml-1m'}" in message
    assert "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in message
    assert ENV_VAR in message


def test_download_verifies_and_caches(server, cache, monkeypatch):
    _use_release(monkeypatch, server)
    path = dataset_path("ml-1m")
    assert path == cache / "ml-1m" == cache_dir() / "ml-1m"
    for name, data in ML1M_FILES.items():
        assert (path / name).read_bytes() == data
    assert "Café (1999)" in (path / "movies.dat").read_text(encoding="latin-1")
    assert not (path / "README").exists()  # only the release's files are extracted
    assert sorted(p.name for p in cache.iterdir()) == ["ml-1m"]  # no temporary leftovers
    assert (path / STAMP_NAME).is_file()
    assert dataset_path("ml-1m", download=False) == path  # served from the cache now


def test_bad_zip_checksum_leaves_nothing_in_cache(server, cache, monkeypatch):
    wrong = "0" * 64
    _use_release(monkeypatch, server, zip_sha256=wrong)
    with pytest.raises(ChecksumError) as info:
        dataset_path("ml-1m")
    assert wrong in str(info.value) and _sha(_zip_bytes()) in str(info.value)
    assert list(cache.iterdir()) == []


def test_bad_file_checksum_leaves_nothing_in_cache(server, cache, monkeypatch):
    wrong = "f" * 64
    files = {name: _sha(data) for name, data in ML1M_FILES.items()} | {"ratings.dat": wrong}
    _use_release(monkeypatch, server, files=files)
    with pytest.raises(ChecksumError) as info:
        dataset_path("ml-1m")
    assert wrong in str(info.value) and _sha(ML1M_FILES["ratings.dat"]) in str(info.value)
    assert "ratings.dat" in str(info.value)
    assert list(cache.iterdir()) == []


def test_server_down_gives_a_clear_download_error(cache, monkeypatch):
    release = _use_release(monkeypatch, _closed_port_url())
    with pytest.raises(DownloadError) as info:
        dataset_path("ml-1m")
    message = str(info.value)
    assert "ratings.dat, movies.dat, users.dat are missing" in message
    assert release.url in message and str(cache / "ml-1m") in message and ENV_VAR in message
    assert "download failed" in message
    assert list(cache.iterdir()) == []


def test_data_dir_files_directly_inside_are_used(tmp_path, monkeypatch):
    _use_release(monkeypatch, _closed_port_url())
    for name, data in ML1M_FILES.items():
        (tmp_path / name).write_bytes(data)
    assert dataset_path("ml-1m", data_dir=tmp_path) == tmp_path


def test_read_only_data_dir_is_not_downloaded_into(tmp_path, monkeypatch):
    _use_release(monkeypatch, _closed_port_url())
    folder = tmp_path / "mine"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(DownloadError, match="is not writable"):
            dataset_path("ml-1m", data_dir=folder)
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownDatasetError) as info:
        dataset_path("ml-2m")
    for name in RELEASES:
        assert name in str(info.value)


def test_modified_file_is_caught_although_it_was_verified_before(tmp_path, monkeypatch):
    _use_release(monkeypatch, _closed_port_url())
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    for name, data in ML1M_FILES.items():
        (folder / name).write_bytes(data)
    calls = []
    real = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda f, d: calls.append(1) or real(f, d))

    assert dataset_path("ml-1m", data_dir=tmp_path) == folder
    assert len(calls) == 3 and (folder / STAMP_NAME).is_file()
    assert dataset_path("ml-1m", data_dir=tmp_path) == folder
    assert len(calls) == 3  # unchanged files are not hashed again

    with (folder / "ratings.dat").open("ab") as f:
        f.write(b"2::1::1::978300000\n")
    with pytest.raises(ChecksumError) as info:
        dataset_path("ml-1m", data_dir=tmp_path)
    assert str(folder / "ratings.dat") in str(info.value)
    assert _sha(ML1M_FILES["ratings.dat"]) in str(info.value)
    assert len(calls) == 4
