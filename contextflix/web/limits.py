"""Limits on what a public client can make the app do: settings and a rate limiter.

The values live in ``configs/app.yaml`` (blocks ``api`` and ``events``); ``ApiConfig.load``
reads them with the defaults below, which are what a small public Space needs.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class EventLimits:
    """Bounds of the online A/B event log (see ``contextflix.web.events``)."""

    max_rows: int = 500_000  # then the oldest tenth is dropped: the file never outgrows this
    max_items_per_write: int = 100  # impressions of one page view
    visitor_writes_per_minute: float = 30  # page views + reactions of one visitor
    global_writes_per_minute: float = 3000
    burst_clicks: int = 8  # more positive reactions than this ...
    burst_seconds: float = 10  # ... within this many seconds: a bot-like session
    summary_ttl_seconds: float = 10  # the live summary is recomputed at most this often


@dataclass(frozen=True)
class ApiConfig:
    """The ``api`` block of configs/app.yaml, plus the event limits from ``events``."""

    max_body_bytes: int = 1_048_576
    gradio_max_body_bytes: int = 32_768  # Gradio keeps each session's last inputs in memory
    cors_origins: tuple[str, ...] = ("*",)
    mcp_server: bool = True
    gradio_sessions: int = 500  # Gradio keeps each session's last inputs; at most this many
    gradio_queue: int = 256  # calls waiting in Gradio's queue; more are refused ("queue full")
    batch_processes: int = 1  # helper processes answering shares of large batches (0: none)
    events: EventLimits = field(default_factory=EventLimits)

    @classmethod
    def load(cls, path: str | Path = "configs/app.yaml") -> ApiConfig:
        raw: dict[str, Any] = {}
        if Path(path).exists():
            raw = yaml.safe_load(Path(path).read_text()) or {}
        api, events = raw.get("api") or {}, raw.get("events") or {}
        known = {f.name for f in fields(EventLimits)}
        return cls(
            max_body_bytes=int(api.get("max_body_bytes", cls.max_body_bytes)),
            gradio_max_body_bytes=int(api.get("gradio_max_body_bytes", cls.gradio_max_body_bytes)),
            cors_origins=tuple(api.get("cors_origins") or cls.cors_origins),
            mcp_server=bool(api.get("mcp_server", cls.mcp_server)),
            gradio_sessions=int(api.get("gradio_sessions", cls.gradio_sessions)),
            gradio_queue=int(api.get("gradio_queue", cls.gradio_queue)),
            batch_processes=int(api.get("batch_processes", cls.batch_processes)),
            events=EventLimits(**{k: v for k, v in events.items() if k in known}),
        )


class RateLimiter:
    """Token buckets per key: ``rate_per_minute`` sustained, up to ``burst`` at once.

    Thread-safe; remembers at most ``max_keys`` keys (least recently seen forgotten first), so
    a flood of new keys cannot grow it without bound.
    """

    def __init__(self, rate_per_minute: float, burst: float, max_keys: int = 100_000) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise ValueError("rate_per_minute must be positive and burst at least 1")
        self.rate, self.burst, self.max_keys = rate_per_minute / 60.0, burst, max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= 1
            self._buckets[key] = (tokens - 1 if allowed else tokens, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return allowed
