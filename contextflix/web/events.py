"""The online A/B test's event log: impressions and reactions of app visitors, one SQLite file.

The log is written by anyone who can load the page, so it is built to be safe to expose:

- **Bounded**: visitor ids are the server-issued, fixed-size ids of ``identity.py`` (anything
  longer than ``MAX_VISITOR_ID`` is refused), each write holds at most ``max_items_per_write``
  rows, and past ``max_rows`` rows the oldest tenth is deleted (SQLite reuses the freed pages),
  so the file cannot fill the disk.
- **Rate-limited**: per visitor and globally (token buckets); refused writes are counted.
- **Incremental**: besides the raw ``events`` table, ``pairs`` (one row per shown visitor-movie
  pair) and ``visitors`` (per-visitor impressions and clicks) are updated on each write, so the
  live summary reads one row per visitor, never the whole event table, and is cached for
  ``summary_ttl_seconds``.
- **Bot-aware**: a visitor who reacts before any impression, or sends more than
  ``burst_clicks`` reactions within ``burst_seconds``, is flagged; flagged visitors are left
  out of the per-arm figures and counted under "discounted".

Optionally the folder holding the file is pushed to a Hugging Face dataset every few minutes
with ``CommitScheduler`` (off by default: it needs a token and network).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from contextflix.evaluation.ab import ARMS, POSITIVE_KINDS, Event, summarise_arms
from contextflix.web.limits import EventLimits, RateLimiter

log = logging.getLogger(__name__)

MAX_VISITOR_ID = 64
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    kind TEXT NOT NULL, arm TEXT NOT NULL, visitor_id TEXT NOT NULL, item_id INTEGER NOT NULL,
    rank INTEGER NOT NULL, time_of_day TEXT NOT NULL, device TEXT NOT NULL,
    timestamp REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pairs (
    visitor_id TEXT NOT NULL, arm TEXT NOT NULL, item_id INTEGER NOT NULL,
    positive INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (visitor_id, arm, item_id)
);
CREATE TABLE IF NOT EXISTS visitors (
    visitor_id TEXT NOT NULL, arm TEXT NOT NULL, first_seen REAL NOT NULL,
    impressions INTEGER NOT NULL DEFAULT 0, clicks INTEGER NOT NULL DEFAULT 0, flag TEXT,
    PRIMARY KEY (visitor_id, arm)
);
CREATE INDEX IF NOT EXISTS visitors_by_age ON visitors (first_seen);
"""
COLUMNS = ("kind", "arm", "visitor_id", "item_id", "rank", "time_of_day", "device", "timestamp")
FLAGS = ("reaction_before_impression", "click_burst")
N_RESAMPLES = 2000


class EventLog:
    """Append-only event store with per-visitor aggregates; thread-safe (one lock, one
    connection)."""

    def __init__(
        self,
        path: str | Path,
        hub_repo: str | None = None,
        every_minutes: float = 10,
        limits: EventLimits | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.limits = limits or EventLimits()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        # write-ahead log, no fsync per page view: a crash can lose the last few events,
        # never the file
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._rows = self._db.execute("SELECT count(*) FROM events").fetchone()[0]
        per_minute = self.limits.visitor_writes_per_minute
        self._per_visitor = RateLimiter(per_minute, burst=max(1.0, per_minute / 2))
        total = self.limits.global_writes_per_minute
        self._global = RateLimiter(total, burst=max(1.0, total / 10))
        self._reactions: OrderedDict[str, deque[float]] = OrderedDict()
        self.refused_writes = 0
        self._summary: tuple[float, dict] | None = None
        self.scheduler = self._scheduler(hub_repo, every_minutes) if hub_repo else None

    def _scheduler(self, repo_id: str, every: float) -> Any:
        """Push the event folder to a Hub dataset; a failure here must not stop the app."""
        try:
            from huggingface_hub import CommitScheduler

            return CommitScheduler(
                repo_id=repo_id,
                repo_type="dataset",
                folder_path=self.path.parent,
                path_in_repo="events",
                allow_patterns=[self.path.name, f"{self.path.name}-wal"],  # under one lock
                every=every,
            )
        except Exception as error:  # no token, no network: keep logging locally
            log.warning("event sync to %s disabled: %s", repo_id, error)
            return None

    # --- writing ---------------------------------------------------------------------------

    def log(self, events: Iterable[Event]) -> int:
        """Append events (one visitor's page view or reaction); returns how many were written."""
        rows = list(events)[: self.limits.max_items_per_write]
        if not rows:
            return 0
        # the scheduler's lock keeps a Hub upload from reading a half-written file
        uploading = self.scheduler.lock if self.scheduler is not None else nullcontext()
        with uploading, self._lock, self._db:
            self._db.executemany(
                f"INSERT INTO events VALUES ({','.join('?' * len(COLUMNS))})",
                [tuple(getattr(e, c) for c in COLUMNS) for e in rows],
            )
            for event in rows:
                self._aggregate(event)
            self._rows += len(rows)
            if self._rows > self.limits.max_rows:
                self._rotate()
        return len(rows)

    def _aggregate(self, event: Event) -> None:
        """Update ``pairs`` and ``visitors`` for one event (inside the write transaction)."""
        db, key = self._db, (event.visitor_id, event.arm)
        db.execute(
            "INSERT OR IGNORE INTO visitors (visitor_id, arm, first_seen) VALUES (?, ?, ?)",
            (*key, event.timestamp),
        )
        if event.kind == "impression":
            added = db.execute(
                "INSERT OR IGNORE INTO pairs (visitor_id, arm, item_id) VALUES (?, ?, ?)",
                (*key, event.item_id),
            ).rowcount
            if added:
                db.execute(
                    "UPDATE visitors SET impressions = impressions + 1"
                    " WHERE visitor_id = ? AND arm = ?",
                    key,
                )
            return
        if event.kind not in POSITIVE_KINDS:
            return
        flag = self._bot_flag(event)
        if flag:
            db.execute(
                "UPDATE visitors SET flag = coalesce(flag, ?) WHERE visitor_id = ? AND arm = ?",
                (flag, *key),
            )
        # reactions to movies this arm never showed the visitor are not clicks (CTR <= 1)
        if db.execute(
            "UPDATE pairs SET positive = 1"
            " WHERE visitor_id = ? AND arm = ? AND item_id = ? AND positive = 0",
            (*key, event.item_id),
        ).rowcount:
            db.execute(
                "UPDATE visitors SET clicks = clicks + 1 WHERE visitor_id = ? AND arm = ?", key
            )

    def _bot_flag(self, event: Event) -> str | None:
        """Why this reaction looks scripted, or None."""
        shown = self._db.execute(
            "SELECT impressions FROM visitors WHERE visitor_id = ? AND arm = ?",
            (event.visitor_id, event.arm),
        ).fetchone()
        recent = self._reactions.pop(event.visitor_id, None) or deque()
        recent.append(event.timestamp)
        while recent and recent[0] < event.timestamp - self.limits.burst_seconds:
            recent.popleft()
        self._reactions[event.visitor_id] = recent
        if len(self._reactions) > 10_000:
            self._reactions.popitem(last=False)
        if not shown or not shown[0]:
            return "reaction_before_impression"
        if len(recent) > self.limits.burst_clicks:
            return "click_burst"
        return None

    def _rotate(self) -> None:
        """Keep the newest nine tenths of ``max_rows`` events, and as many pairs and visitors
        (the oldest visitors go first, with their pairs)."""
        keep = int(self.limits.max_rows * 0.9)
        db = self._db
        db.execute("DELETE FROM events WHERE rowid <= (SELECT max(rowid) FROM events) - ?", (keep,))
        self._rows = db.execute("SELECT count(*) FROM events").fetchone()[0]
        while True:
            n_pairs, n_visitors = (
                db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("pairs", "visitors")
            )
            if n_pairs <= keep and n_visitors <= keep:
                break
            oldest = "SELECT visitor_id, arm FROM visitors ORDER BY first_seen LIMIT ?"
            n = max(1, n_visitors // 10)
            db.execute(f"DELETE FROM pairs WHERE (visitor_id, arm) IN ({oldest})", (n,))
            db.execute(f"DELETE FROM visitors WHERE (visitor_id, arm) IN ({oldest})", (n,))
        log.info("event log rotated: %d events kept", self._rows)

    def record(
        self,
        kind: str,
        arm: str,
        visitor_id: str,
        items: Iterable[tuple[int, int]],
        time_of_day: str,
        device: str,
    ) -> int:
        """Log one kind of event for (item_id, rank) pairs; returns the rows written.

        Invalid events, over-long visitor ids and writes over a rate limit are logged and
        dropped, never raised: the visitor's page must not fail because of the log.
        """
        if not isinstance(visitor_id, str) or not 0 < len(visitor_id) <= MAX_VISITOR_ID:
            log.warning("event not logged: visitor id missing or longer than %d", MAX_VISITOR_ID)
            return 0
        if not (self._per_visitor.allow(visitor_id) and self._global.allow("all")):
            self.refused_writes += 1
            return 0
        now = time.time()
        try:
            events = [
                Event(kind, arm, visitor_id, int(item), int(rank), time_of_day, device, now)
                for item, rank in items
            ]
        except (TypeError, ValueError) as error:
            log.warning("event not logged: %s", str(error)[:200])
            return 0
        return self.log(events)

    # --- reading ---------------------------------------------------------------------------

    def events(self) -> list[Event]:
        """Every stored event (for exports and tests; the summary never reads this)."""
        with self._lock:
            rows = self._db.execute(f"SELECT {','.join(COLUMNS)} FROM events").fetchall()
        return [Event.from_dict(dict(zip(COLUMNS, row, strict=True))) for row in rows]

    def summary(self) -> dict[str, Any]:
        """Live per-arm CTR with intervals, JSON-ready; recomputed at most every
        ``summary_ttl_seconds``. Unit: a shown (visitor, movie) pair; positive: a click or a
        like on it. Per arm a Wilson 95% interval; B - A by a percentile bootstrap over
        visitors (the randomisation unit), as ``contextflix.evaluation.ab.ctr_by_arm``."""
        now = time.monotonic()
        cached = self._summary
        if cached is not None and now - cached[0] < self.limits.summary_ttl_seconds:
            return cached[1]
        with self._lock:
            rows = self._db.execute(
                "SELECT arm, impressions, clicks, flag FROM visitors WHERE impressions > 0"
                " OR flag IS NOT NULL"
            ).fetchall()
        result = _summary(rows, self.refused_writes)
        self._summary = (now, result)
        return result


def _summary(rows: list[tuple[str, int, int, str | None]], refused: int) -> dict[str, Any]:
    counted = {arm: [(i, c) for a, i, c, flag in rows if a == arm and not flag] for arm in ARMS}
    counts = {
        arm: {
            "clicks": np.array([c for _, c in pairs], dtype=np.int64),
            "impressions": np.array([i for i, _ in pairs], dtype=np.int64),
        }
        for arm, pairs in counted.items()
    }
    out: dict[str, Any] = summarise_arms(counts, N_RESAMPLES, seed=0)
    flags = [flag for *_, flag in rows if flag]
    out["discounted"] = {
        "visitors": len(flags),
        **{name: flags.count(name) for name in FLAGS},
        "refused_writes": refused,
        "rule": "visitors who react before any impression or send bursts of reactions "
        "are left out of the figures above",
    }
    return out
