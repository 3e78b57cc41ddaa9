"""Real posters from TMDB when a key is set (``TMDB_API_KEY``), fetched off the request path.

A page never waits for TMDB: ``poster(item)`` returns a poster already on disk or None (the
page then shows the generated one) and queues the movie for a background thread, which asks
TMDB for the poster path (by ``tmdb_id`` from links.csv where the catalogue has one, else by
title and year through TMDB search), downloads the image and caches it on disk. "TMDB has no
poster" is cached too; a timeout, a bad answer or a server error leaves the generated poster
and is retried in a later process. A 401 (bad key) turns the client off, with one log line.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx
from PIL import Image

from contextflix.web.posters import clean_title

log = logging.getLogger(__name__)

API_URL = "https://api.themoviedb.org/3"
IMAGE_URL = "https://image.tmdb.org/t/p/w342"
ATTRIBUTION = "This product uses the TMDB API but is not endorsed or certified by TMDB."


class TmdbUnauthorized(Exception):
    """TMDB refused the key (HTTP 401)."""


class TmdbPosters:
    """Poster files by MovieLens movie id, fetched from TMDB by one background thread."""

    def __init__(
        self,
        api_key: str,
        folder: str | Path,
        tmdb_ids: Mapping[int, int] | None = None,
        api_url: str = API_URL,
        image_url: str = IMAGE_URL,
        timeout: float = 4.0,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tmdb_ids = dict(tmdb_ids or {})
        self.api_url, self.image_url = api_url.rstrip("/"), image_url.rstrip("/")
        # v4 read access tokens are JWTs (sent as a bearer token); v3 keys go in the query.
        bearer = api_key.startswith("eyJ")
        self._client = httpx.Client(
            timeout=timeout,
            headers={"Authorization": f"Bearer {api_key}"} if bearer else {},
            params={} if bearer else {"api_key": api_key},
            follow_redirects=True,
        )
        self.enabled = True
        # what is on disk: movie id -> its poster file, or None when TMDB has none
        self._known: dict[int, Path | None] = {}
        for path in self.folder.iterdir():
            if path.stem.isdigit() and path.suffix != ".tmp":
                self._known[int(path.stem)] = None if path.suffix == ".none" else path
        self._queue: queue.Queue[dict] = queue.Queue()
        self._queued: set[int] = set()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    # --- the request path: disk lookups and a queue, nothing else --------------------------

    def poster(self, item: dict) -> Path | None:
        """The cached real poster of ``item`` (API JSON), else None and a fetch is queued."""
        item_id = int(item["item_id"])
        if item_id in self._known:
            return self._known[item_id]
        self.prefetch([item])
        return None

    def prefetch(self, items: Iterable[dict]) -> None:
        """Queue movies whose posters are not on disk yet (each once per process)."""
        if not self.enabled:
            return
        with self._lock:
            for item in items:
                item_id = int(item["item_id"])
                if item_id not in self._queued and item_id not in self._known:
                    self._queued.add(item_id)
                    self._queue.put(dict(item))
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="tmdb", daemon=True)
                self._worker.start()

    def wait(self, timeout: float = 30.0) -> None:
        """Block until the queue is empty (tests and warm-up)."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        done.wait(timeout)

    # --- the background thread ---------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if self.enabled:
                    self.fetch(item)
            except TmdbUnauthorized:
                self.enabled = False
                log.warning("TMDB refused the key (401): showing generated posters")
            except Exception as error:  # timeout, 5xx, malformed answer: generated poster
                log.debug("no TMDB poster for movie %s now: %s", item.get("item_id"), error)
            finally:
                self._queue.task_done()

    def fetch(self, item: dict) -> Path | None:
        """Ask TMDB and cache the answer: the image file, or a ``.none`` marker if it has none."""
        item_id = int(item["item_id"])
        path = self._poster_path(item)
        if not path:
            (self.folder / f"{item_id}.none").touch()
            self._known[item_id] = None
            return None
        response = self._get(f"{self.image_url}/{path.lstrip('/')}")
        image = Image.open(io.BytesIO(response.content))
        image.verify()  # a truncated or non-image body raises here
        target = (
            self.folder / f"{item_id}.{(image.format or 'jpeg').lower().replace('jpeg', 'jpg')}"
        )
        tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(response.content)
        tmp.replace(target)  # atomic: a page never reads a half-written file
        self._known[item_id] = target
        return target

    def _poster_path(self, item: dict) -> str | None:
        tmdb_id = item.get("tmdb_id") or self.tmdb_ids.get(int(item["item_id"]))
        if tmdb_id:
            response = self._get(f"{self.api_url}/movie/{int(tmdb_id)}", missing_ok=True)
            return None if response is None else _poster_field(response.json())
        params = {"query": clean_title(str(item.get("title", "")))}
        if item.get("year"):
            params["year"] = str(item["year"])
        results = self._get(f"{self.api_url}/search/movie", params=params).json()
        if not isinstance(results, dict) or not isinstance(results.get("results"), list):
            raise ValueError("malformed TMDB search answer")
        first = next((r for r in results["results"] if isinstance(r, dict)), None)
        return _poster_field(first) if first else None

    def _get(
        self, url: str, params: dict | None = None, missing_ok: bool = False
    ) -> httpx.Response | None:
        response = self._client.get(url, params=params)
        if response.status_code == 401:
            raise TmdbUnauthorized(url)
        if response.status_code == 404 and missing_ok:
            return None
        response.raise_for_status()
        return response


def _poster_field(answer: object) -> str | None:
    if not isinstance(answer, dict):
        raise ValueError("malformed TMDB answer")
    path = answer.get("poster_path")
    if path is not None and not isinstance(path, str):
        raise ValueError("malformed poster_path")
    return path or None
