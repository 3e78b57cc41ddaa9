"""Real posters from a fake TMDB on 127.0.0.1: hit, miss, timeout, 401 and malformed answers
all end with a poster on the page (TMDB's or the generated one), never with an error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from contextflix.web.posters import PosterCache
from contextflix.web.tmdb import TmdbPosters
from tests.fake_tmdb import SLOW_S, fake_tmdb


@pytest.fixture(scope="module")
def tmdb_url() -> Iterator[str]:
    with fake_tmdb() as url:
        yield url


def client(url: str, folder: Path, key: str = "good-key", timeout: float = 1.0) -> TmdbPosters:
    ids = {1: 100, 2: 404, 3: 408, 4: 500, 5: 666, 6: 777}  # MovieLens id -> tmdb id
    return TmdbPosters(
        key, folder, ids, api_url=f"{url}/3", image_url=f"{url}/img", timeout=timeout
    )


def movie(item_id: int, title: str = "Some Movie (1999)") -> dict:
    return {"item_id": item_id, "title": title, "year": 1999, "genres": ["Drama"]}


def test_hit_by_tmdb_id_is_cached_on_disk_and_served_by_the_poster_cache(tmdb_url, tmp_path):
    tmdb = client(tmdb_url, tmp_path / "tmdb")
    posters = PosterCache(tmp_path, tmdb=tmdb)
    first = posters.for_item(movie(1))
    assert first == tmp_path / "1.png"  # generated now: the page never waits for TMDB
    tmdb.wait()
    real = posters.for_item(movie(1))
    assert real == tmp_path / "tmdb" / "1.jpg"
    assert Image.open(real).size == (60, 90)
    again = client(tmdb_url, tmp_path / "tmdb", key="bad-key")  # a new process: from disk
    assert again.poster(movie(1)) == real


def test_search_by_title_and_year_where_the_catalogue_has_no_tmdb_id(tmdb_url, tmp_path):
    tmdb = client(tmdb_url, tmp_path)
    assert tmdb.fetch(movie(50, "Toy Story (1995)")) == tmp_path / "50.jpg"
    assert tmdb.fetch(movie(51, "Nothing Like It (1995)")) is None  # no result: cached miss
    assert tmdb.poster(movie(51)) is None and (tmp_path / "51.none").exists()


@pytest.mark.parametrize(
    ("item_id", "cached_miss"),
    [(2, True), (4, False), (5, False), (6, False)],
    ids=["miss", "server-error", "malformed-json", "not-an-image"],
)
def test_failures_leave_the_generated_poster(tmdb_url, tmp_path, item_id, cached_miss):
    tmdb = client(tmdb_url, tmp_path / "tmdb")
    posters = PosterCache(tmp_path, tmdb=tmdb)
    posters.for_item(movie(item_id))
    tmdb.wait()
    assert posters.for_item(movie(item_id)) == tmp_path / f"{item_id}.png"
    assert (tmp_path / "tmdb" / f"{item_id}.none").exists() == cached_miss
    assert tmdb.enabled


def test_a_slow_tmdb_never_slows_the_page(tmdb_url, tmp_path):
    tmdb = client(tmdb_url, tmp_path / "tmdb", timeout=0.5)
    posters = PosterCache(tmp_path, tmdb=tmdb)
    start = time.perf_counter()
    assert posters.for_item(movie(3)) == tmp_path / "3.png"
    assert time.perf_counter() - start < SLOW_S / 2
    tmdb.wait()
    assert posters.for_item(movie(3)) == tmp_path / "3.png"  # timed out: generated


def test_a_refused_key_turns_tmdb_off(tmdb_url, tmp_path):
    tmdb = client(tmdb_url, tmp_path / "tmdb", key="bad-key")
    posters = PosterCache(tmp_path, tmdb=tmdb)
    posters.for_item(movie(1))
    tmdb.wait()
    assert not tmdb.enabled
    assert posters.for_item(movie(1)) == tmp_path / "1.png"
    assert not any((tmp_path / "tmdb").iterdir())
