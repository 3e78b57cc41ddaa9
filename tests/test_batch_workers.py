"""Helper processes answering shares of a batch (contextflix/service/workers.py): the same
answers as alone, a fallback when they cannot start, and no helper outliving its server."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.serve import quick_bundle
from contextflix.bundle import export_bundle
from contextflix.service import Recommender
from contextflix.service.workers import BatchWorkers
from contextflix.web.startup import Serving

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    bundle = quick_bundle(seq_steps=3, use_cache=False)
    return export_bundle(bundle, tmp_path_factory.mktemp("workers") / "bundle")


def wait_until_ready(workers: BatchWorkers, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not workers.ready():
        assert time.monotonic() < deadline, "the helper did not load the bundle"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


ASKS = [
    {"user_id": 1, "time_of_day": "evening", "device": "tv"},
    {"user_id": 7, "model": "sequential", "k": 5},
    {"history": [1, 2355, 3114], "model": "hybrid_no_context"},
    {"user_id": 999_999},
    {"user_id": 42, "genres": ["Comedy"], "time_of_day": "night"},
    *({"user_id": user, "device": "mobile"} for user in range(100, 120)),
]


def test_a_shared_batch_is_answered_as_each_request_alone(bundle_dir: Path) -> None:
    service = Recommender.from_bundle(bundle_dir, cache_size=0, batch_processes=1)
    try:
        wait_until_ready(service.workers)
        batch = service.recommend_batch(ASKS)
        assert service.workers.answered >= len(ASKS) // 2 - 1  # the helper took its share
        assert batch[3] == {"error": batch[3]["error"]} and "Unknown user" in batch[3]["error"]
        alone = [service.recommend(cache=False, **ask) for n, ask in enumerate(ASKS) if n != 3]
        assert [a for n, a in enumerate(batch) if n != 3] == alone
    finally:
        service.close()
    assert not service.workers.ready()  # closed: answered here from now on
    assert service.recommend_batch(ASKS[:1]) == batch[:1]


def test_helpers_that_cannot_load_leave_the_batch_to_the_server(bundle_dir, caplog) -> None:
    service = Recommender.from_bundle(bundle_dir, cache_size=0)
    service.workers = BatchWorkers(bundle_dir / "missing", processes=1)
    with caplog.at_level(logging.WARNING, logger="contextflix.workers"):
        deadline = time.monotonic() + 120
        while service.workers.state != "closed":  # their load fails, once
            assert time.monotonic() < deadline
            service.workers.ready()
            time.sleep(0.1)
        answers = service.recommend_batch(ASKS)
    assert service.workers.answered == 0 and len(answers) == len(ASKS)
    assert sum("answering alone" in r.message for r in caplog.records) == 1


def test_a_killed_helper_leaves_its_share_to_the_server(bundle_dir: Path) -> None:
    service = Recommender.from_bundle(bundle_dir, cache_size=0, batch_processes=1)
    try:
        wait_until_ready(service.workers)
        (pid,) = [f.result() for f in service.workers._loading]
        os.kill(pid, 9)
        while alive(pid):
            time.sleep(0.1)
        answers = service.recommend_batch(ASKS[:12])  # 11 valid: shared
        assert answers == [service.recommend(cache=False, **ask) for ask in ASKS[:3]] + [
            answers[3],
            *(service.recommend(cache=False, **ask) for ask in ASKS[4:12]),
        ]
        assert service.health()["batch_helpers"] == "closed"
    finally:
        service.close()


def test_a_swapped_out_bundle_ends_its_helpers(bundle_dir: Path) -> None:
    old = Recommender.from_bundle(bundle_dir, cache_size=0, batch_processes=1)
    wait_until_ready(old.workers)
    (pid,) = [f.result() for f in old.workers._loading]
    serving = Serving(type("Api", (), {"service": old})(), bundle_dir)
    serving.swap(bundle_dir, Recommender.from_bundle(bundle_dir, cache_size=0))
    deadline = time.monotonic() + 30
    while alive(pid):
        assert time.monotonic() < deadline, "the old bundle's helper kept running"
        time.sleep(0.1)


def test_helpers_end_with_a_killed_server(bundle_dir: Path) -> None:
    """A Space stopped with SIGKILL never closes its pool: the helper notices on its own."""
    script = (
        "import os, sys, time\n"
        "from contextflix.service import Recommender\n"
        "if __name__ == '__main__':\n"
        "    service = Recommender.from_bundle(sys.argv[1], batch_processes=1)\n"
        "    while not service.workers.ready():\n"
        "        time.sleep(0.1)\n"
        "    print(service.workers._loading[0].result(), flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    server = subprocess.run(
        [sys.executable, "-c", script, str(bundle_dir)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    pid = int(server.stdout.split()[0])
    deadline = time.monotonic() + 30
    while alive(pid):
        assert time.monotonic() < deadline, "the helper outlived its server"
        time.sleep(0.1)
