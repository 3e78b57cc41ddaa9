"""The online A/B test's event log: impressions and reactions of app visitors, one SQLite file.

SQLite (stdlib) because the app is one process with a few threads: appends are cheap, the file
survives restarts, and ``ctr_by_arm`` reads it back whole. Optionally the folder holding the
file is pushed to a Hugging Face dataset every few minutes with ``CommitScheduler`` (off by
default: it needs a token and network), so a Space's events outlive the Space's disk.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from contextflix.evaluation.ab import Event, ctr_by_arm

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    kind TEXT NOT NULL, arm TEXT NOT NULL, visitor_id TEXT NOT NULL, item_id INTEGER NOT NULL,
    rank INTEGER NOT NULL, time_of_day TEXT NOT NULL, device TEXT NOT NULL,
    timestamp REAL NOT NULL
)
"""
COLUMNS = ("kind", "arm", "visitor_id", "item_id", "rank", "time_of_day", "device", "timestamp")


class EventLog:
    """Append-only event store; thread-safe (one connection per call, a lock around writes)."""

    def __init__(self, path: str | Path, hub_repo: str | None = None, every_minutes: float = 10):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(SCHEMA)
        self.scheduler = self._scheduler(hub_repo, every_minutes) if hub_repo else None

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def _scheduler(self, repo_id: str, every: float) -> Any:
        """Push the event folder to a Hub dataset; a failure here must not stop the app."""
        try:
            from huggingface_hub import CommitScheduler

            return CommitScheduler(
                repo_id=repo_id,
                repo_type="dataset",
                folder_path=self.path.parent,
                path_in_repo="events",
                allow_patterns=[self.path.name],
                every=every,
            )
        except Exception as error:  # no token, no network: keep logging locally
            log.warning("event sync to %s disabled: %s", repo_id, error)
            return None

    def log(self, events: Iterable[Event]) -> int:
        """Append events; returns how many were written."""
        rows = [tuple(getattr(e, c) for c in COLUMNS) for e in events]
        if not rows:
            return 0
        lock = self.scheduler.lock if self.scheduler is not None else self._lock
        with lock, self._connect() as db:
            db.executemany(f"INSERT INTO events VALUES ({','.join('?' * len(COLUMNS))})", rows)
        return len(rows)

    def record(
        self,
        kind: str,
        arm: str,
        visitor_id: str,
        items: Iterable[tuple[int, int]],
        time_of_day: str,
        device: str,
    ) -> int:
        """Log one kind of event for (item_id, rank) pairs; invalid events are logged, not raised."""
        now = time.time()
        try:
            events = [
                Event(kind, arm, visitor_id, int(item), int(rank), time_of_day, device, now)
                for item, rank in items
            ]
        except ValueError as error:
            log.warning("event not logged: %s", error)
            return 0
        return self.log(events)

    def events(self) -> list[Event]:
        with self._connect() as db:
            rows = db.execute(f"SELECT {','.join(COLUMNS)} FROM events").fetchall()
        return [Event.from_dict(dict(zip(COLUMNS, row, strict=True))) for row in rows]

    def summary(self) -> dict[str, Any]:
        """Live per-arm CTR with intervals (``ctr_by_arm``), JSON-ready."""
        return ctr_by_arm(self.events(), n_resamples=2000)
