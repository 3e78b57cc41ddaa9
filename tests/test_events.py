"""The online A/B event log: bounded, rate-limited, bot-aware, and its incremental summary
agrees with ``ctr_by_arm`` over the raw events."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from contextflix.evaluation.ab import ctr_by_arm
from contextflix.web.events import EventLog
from contextflix.web.limits import ApiConfig, EventLimits, RateLimiter

GENEROUS = EventLimits(
    visitor_writes_per_minute=1e6,
    global_writes_per_minute=1e7,
    burst_clicks=1000,
    summary_ttl_seconds=0,
)


def visitor(n: int) -> str:
    return f"{n:032x}"


def test_summary_equals_ctr_by_arm_over_the_raw_events(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.sqlite", limits=GENEROUS)
    rng = random.Random(0)
    for n in range(40):
        arm = "AB"[n % 2]
        shown = rng.sample(range(1, 60), 12)
        log.record("impression", arm, visitor(n), [(i, r) for r, i in enumerate(shown, 1)],
                   "evening", "tv")  # fmt: skip
        log.record("impression", arm, visitor(n), [(shown[0], 1)], "evening", "tv")  # again
        for item in [*rng.sample(shown, rng.randint(0, 3)), 999]:  # 999: never shown
            log.record(rng.choice(["click", "like", "dismiss"]), arm, visitor(n), [(item, 1)],
                       "evening", "tv")  # fmt: skip
    live, offline = log.summary(), ctr_by_arm(log.events(), n_resamples=2000)
    for arm in "AB":
        for key in ("visitors", "impressions", "clicks", "ctr", "ctr_ci"):
            assert live[arm][key] == pytest.approx(offline[arm][key]), (arm, key)
    assert live["difference"]["b_minus_a"] == pytest.approx(offline["difference"]["b_minus_a"])
    assert live["discounted"]["visitors"] == 0


def test_invalid_and_oversized_visitor_ids_are_not_logged(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.sqlite", limits=GENEROUS)
    assert log.record("impression", "A", "x" * 1_000_000, [(1, 1)], "evening", "tv") == 0
    assert log.record("impression", "A", "", [(1, 1)], "evening", "tv") == 0
    assert log.record("click", "B", visitor(1), [(3, 2)], "brunch", "tv") == 0
    assert log.record("click", "C", visitor(1), [(3, 2)], "evening", "tv") == 0
    assert log.events() == []


def test_the_store_is_bounded_by_rotation(tmp_path: Path) -> None:
    limits = EventLimits(**{**GENEROUS.__dict__, "max_rows": 1000})
    log = EventLog(tmp_path / "events.sqlite", limits=limits)
    for n in range(200):
        log.record("impression", "A", visitor(n), [(i, i) for i in range(1, 51)], "night", "tv")
    assert len(log.events()) <= 1000
    size = (tmp_path / "events.sqlite").stat().st_size
    for n in range(200, 400):
        log.record("impression", "A", visitor(n), [(i, i) for i in range(1, 51)], "night", "tv")
    assert len(log.events()) <= 1000
    assert (tmp_path / "events.sqlite").stat().st_size <= 1.5 * size  # freed pages reused
    assert log.summary()["A"]["impressions"] <= 1000


def test_one_write_holds_at_most_max_items(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.sqlite", limits=GENEROUS)
    written = log.record("impression", "A", visitor(1), [(i, 1) for i in range(1, 10_001)],
                         "night", "tv")  # fmt: skip
    assert written == GENEROUS.max_items_per_write


def test_a_burst_of_scripted_clicks_is_rate_limited(tmp_path: Path) -> None:
    limits = EventLimits(visitor_writes_per_minute=30, summary_ttl_seconds=0)
    log = EventLog(tmp_path / "events.sqlite", limits=limits)
    log.record("impression", "B", visitor(7), [(1, 1), (2, 2)], "evening", "tv")
    written = sum(
        log.record("click", "B", visitor(7), [(1, 1)], "evening", "tv") for _ in range(500)
    )
    assert written <= 15  # the bucket holds half a minute's allowance
    assert log.refused_writes >= 485
    assert log.summary()["discounted"]["refused_writes"] >= 485
    # another visitor is not blocked by the first one's burst
    assert log.record("impression", "A", visitor(8), [(1, 1)], "evening", "tv") == 1


def test_bot_like_visitors_are_discounted_and_counted(tmp_path: Path) -> None:
    limits = EventLimits(**{**GENEROUS.__dict__, "burst_clicks": 5, "burst_seconds": 60})
    log = EventLog(tmp_path / "events.sqlite", limits=limits)
    log.record("impression", "A", visitor(1), [(1, 1), (2, 2)], "evening", "tv")
    log.record("click", "A", visitor(1), [(1, 1)], "evening", "tv")  # a person
    log.record("click", "B", visitor(2), [(1, 1)], "evening", "tv")  # reacts, never shown
    log.record("impression", "B", visitor(2), [(1, 1)], "evening", "tv")
    log.record("impression", "B", visitor(3), [(i, i) for i in range(1, 21)], "evening", "tv")
    for item in range(1, 21):  # twenty clicks in a row
        log.record("click", "B", visitor(3), [(item, item)], "evening", "tv")
    summary = log.summary()
    assert summary["A"]["visitors"] == 1 and summary["A"]["ctr"] == pytest.approx(0.5)
    assert summary["B"]["visitors"] == 0 and summary["B"]["ctr"] is None
    discounted = summary["discounted"]
    assert discounted["visitors"] == 2
    assert discounted["reaction_before_impression"] == 1 and discounted["click_burst"] == 1


def test_the_summary_is_cached_for_its_ttl(tmp_path: Path) -> None:
    limits = EventLimits(**{**GENEROUS.__dict__, "summary_ttl_seconds": 3600})
    log = EventLog(tmp_path / "events.sqlite", limits=limits)
    log.record("impression", "A", visitor(1), [(1, 1)], "evening", "tv")
    first = log.summary()
    log.record("impression", "A", visitor(2), [(1, 1)], "evening", "tv")
    assert log.summary() is first  # no rescan within the TTL


def test_rate_limiter_refills_and_forgets_old_keys() -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=2, max_keys=3)
    assert [limiter.allow("a", now=0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("a", now=1.0)  # one token per second
    for key in "bcde":
        limiter.allow(key, now=1.0)
    assert len(limiter._buckets) == 3


def test_limits_come_from_the_app_config(tmp_path: Path) -> None:
    config = tmp_path / "app.yaml"
    config.write_text(
        "events:\n  max_rows: 1234\n  hub_dataset: null\n"
        "api:\n  max_body_bytes: 2048\n  cors_origins: [https://a.example]\n  mcp_server: false\n"
    )
    loaded = ApiConfig.load(config)
    assert loaded.events.max_rows == 1234 and loaded.max_body_bytes == 2048
    assert loaded.cors_origins == ("https://a.example",) and loaded.mcp_server is False
    assert ApiConfig.load(tmp_path / "missing.yaml") == ApiConfig()
    shipped = ApiConfig.load(Path(__file__).resolve().parents[1] / "configs" / "app.yaml")
    assert shipped == ApiConfig()  # the file states the defaults
