"""Helper processes that answer a share of every large batch, so a batch uses every core.

Threads cannot: about 70% of an answer's work holds the GIL (the explanations' Python, the
dispatch of many small torch operations). Each helper is a spawned process (no fork of a
threaded server) that loads the bundle itself, so nothing crosses but the resolved requests
(a few numbers each) and their answers (plain JSON types). Its answers are the main
process's: every process scores on one thread with the same libraries (models/scoring.py).

Helpers start with the first batch that needs them and answer once loaded; until then, and
whenever one fails, the main process answers alone. They leave when their Recommender is
closed, or when the process that started them is gone.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger("contextflix.workers")

_service: Any = None  # the helper's own Recommender


def _load(bundle: str, parent: int) -> None:
    global _service
    from contextflix.service.recommender import Recommender

    _service = Recommender.from_bundle(bundle, cache_size=0)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    """A helper whose server was killed (no chance to close its pool) ends too."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _ready() -> int:
    return os.getpid()


def _answer(queries: Sequence[Any]) -> list[dict]:
    return _service._answer_here(list(queries))


class BatchWorkers:
    """``processes`` helpers serving the bundle at ``bundle``; see the module docstring."""

    def __init__(self, bundle: str | os.PathLike, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        self.bundle, self.processes = Path(bundle), processes
        self._pool: ProcessPoolExecutor | None = None
        self._loading: list[Future] = []
        self._closed = False
        self._lock = threading.RLock()
        self.answered = 0  # requests sent to the helpers (tests)

    @property
    def state(self) -> str:
        """ "waiting" (for a first large batch), "loading", "ready" or "closed"."""
        if self._closed:
            return "closed"
        if self._pool is None:
            return "waiting"
        return "ready" if all(f.done() for f in self._loading) else "loading"

    def ready(self) -> bool:
        """Whether the helpers have loaded the bundle; the first call starts them."""
        with self._lock:
            if self._pool is None and not self._closed:
                self._start()
            if self.state != "ready":
                return False
            failed = next((f.exception() for f in self._loading if f.exception()), None)
            if failed is not None:  # e.g. out of memory: said once, then answered alone
                log.warning("batch helpers unavailable, answering alone: %s", failed)
                self.close()
            return failed is None

    def _start(self) -> None:
        self._pool = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load,
            initargs=(str(self.bundle), os.getpid()),
        )
        self._loading = [self._pool.submit(_ready) for _ in range(self.processes)]

    def submit(self, queries: Sequence[Any]) -> Future:
        """Answers of ``queries`` (resolved requests) from a helper, in order."""
        self.answered += len(queries)
        return self._pool.submit(_answer, list(queries))

    def close(self) -> None:
        """Let the helpers finish what they hold, then end them."""
        with self._lock:
            self._closed = True
            if self._pool is not None:
                self._pool.shutdown(wait=False)
