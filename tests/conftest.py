"""Shared fixtures: an isolated cache, and the real data sets where this machine has them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = os.environ.get("CONTEXTFLIX_DATA_DIR")


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point the user cache at a per-session temp folder so tests never touch the real one."""
    cache = tmp_path_factory.getbasetemp() / "user-cache"
    monkeypatch.setattr("platformdirs.user_cache_dir", lambda *args, **kwargs: str(cache))


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models on one thread: two spin-wait for each other's core on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def has_release(name: str, marker_file: str) -> bool:
    return bool(SHARED_DATA) and (Path(SHARED_DATA) / name / marker_file).exists()


requires_ml100k = pytest.mark.skipif(
    not has_release("ml-100k", "u.data"),
    reason="ml-100k is not redistributable: set CONTEXTFLIX_DATA_DIR to a folder holding ml-100k/",
)


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python app.py`` on a free port with a demo bundle and real posters from a fake TMDB on
    127.0.0.1, shared by the API and browser tests."""
    from tests.fake_tmdb import fake_tmdb
    from tests.support import build_demo_bundle, running_app

    root = tmp_path_factory.mktemp("app")
    bundle = build_demo_bundle(root / "bundle")
    with fake_tmdb() as tmdb:
        env = {"TMDB_API_KEY": "test-key", "TMDB_API_URL": f"{tmdb}/3",
               "TMDB_IMAGE_URL": f"{tmdb}/img"}  # fmt: skip
        with running_app(bundle, root / "app", env=env) as url:
            yield url


@pytest.fixture(scope="module")
def own_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A separate ``python app.py`` whose app folder (event log) a test can inspect: yields
    (base URL, app folder)."""
    from tests.support import build_demo_bundle, running_app

    root = tmp_path_factory.mktemp("own-app")
    bundle = build_demo_bundle(root / "bundle")
    with running_app(bundle, root / "app") as url:
        yield url, root / "app"
