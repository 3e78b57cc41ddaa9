"""Load test of the served app: N client processes for T seconds against REST /api/recommend,
the Gradio /recommend endpoint and a trivial Gradio endpoint (/movie_genres, the floor of the
queue and transport cost). Prints throughput, p50/p95/p99 latency and errors per target.

    python bench/load.py                          # starts app.py on a demo bundle itself
    python bench/load.py --url http://host:7860   # an app that is already running
    python bench/load.py --clients 8 --seconds 20
    python bench/load.py --targets rest --hostile 4   # REST under a hostile mix
    python bench/load.py --sessions 1000              # memory of many large Gradio sessions

``--hostile H`` adds H clients that send (``--hostile-rate`` a second each), in turn, 5 MB bodies (declared and chunked), a 1 MB
value in a body just under the limit, 8 KB search queries and 900 KB histories to the Gradio
endpoint under a fresh session id each time; the table then shows the normal requests' latency
while that runs, and the server's memory (RSS) before and after. Requests vary user and
context so the service's LRU cache does not answer everything.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TIMES = ("morning", "afternoon", "evening", "night")
DEVICES = ("mobile", "tablet", "desktop", "tv")


def _params(rng: random.Random) -> dict:
    return {
        "user_id": rng.randint(1, 610),
        "time_of_day": rng.choice(TIMES),
        "device": rng.choice(DEVICES),
        "k": 10,
    }


def _worker(target: str, url: str, seconds: float, seed: int, out: mp.Queue) -> None:
    """One client: sequential requests until the deadline; reports latencies and errors."""
    import httpx

    rng = random.Random(seed)
    latencies, errors = [], 0
    if target == "rest":
        http = httpx.Client(base_url=url, timeout=60)
        call = lambda: http.get("/api/recommend", params=_params(rng)).raise_for_status()  # noqa: E731
    else:
        from gradio_client import Client

        client = Client(url, verbose=False)
        if target == "gradio":
            call = lambda: client.predict(**_params(rng), api_name="/recommend")  # noqa: E731
        else:
            call = lambda: client.predict(api_name="/movie_genres")  # noqa: E731
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            call()
            latencies.append(time.perf_counter() - start)
        except Exception:
            errors += 1
    out.put((latencies, errors))


def _hostile(url: str, seconds: float, rate: float, seed: int, out: mp.Queue) -> None:
    """One hostile client cycling through the attacks, ``rate`` a second (paced: on a shared
    2-core machine an unpaced client would measure its own CPU use, not the server's); reports
    how many it sent and how many got an answer other than the expected refusal (4xx)."""
    import httpx

    rng = random.Random(seed)
    http = httpx.Client(base_url=url, timeout=60)
    json_type = {"content-type": "application/json"}
    config = http.get("/config").json()
    recommend = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "recommend")
    big = b'{"history": [' + b"1," * 2_500_000 + b"1]}"  # 5 MB

    def chunked():
        yield big

    # payloads built once: the hostile clients should spend the CPU they share with the
    # server on sending, not on building
    huge_value = json.dumps({"history": [1], "model": "x" * 1_000_000}).encode()
    query = {"query": " ".join(["matrix"] * 1150)}
    join = json.dumps(_gradio_join(rng, recommend)).encode()
    attacks = [
        lambda: http.post("/api/recommend", content=big, headers=json_type),
        lambda: http.post("/api/recommend", content=chunked(), headers=json_type),
        lambda: http.post("/api/recommend", content=huge_value, headers=json_type),
        lambda: http.get("/api/movies", params=query),
        lambda: http.post(
            "/gradio_api/queue/join",
            content=join.replace(b"SESSION", uuid.uuid4().hex.encode()),
            headers=json_type,
        ),
    ]
    sent = unexpected = 0
    begin = time.perf_counter()
    deadline = begin + seconds
    while time.perf_counter() < deadline:
        time.sleep(max(0.0, begin + sent / rate - time.perf_counter()))
        try:
            status = attacks[sent % len(attacks)]().status_code
            unexpected += status < 400 and sent % len(attacks) != 4  # the Gradio call queues
        except httpx.HTTPError:
            pass  # a refused upload may close the connection mid-send: that is the point
        sent += 1
    out.put((sent, unexpected))


def _gradio_join(rng: random.Random, fn_index: int, n_history: int = 5000) -> dict:
    """A Gradio recommend call with a long history (5,000 ids: just under Gradio's body
    limit) under a session id to fill in: what Gradio keeps per session is what this tries
    to pile up."""
    history = [rng.randint(1000, 9999) for _ in range(n_history)]
    return {
        "data": [None, history, None, None, None, 10, None, True, "hybrid"],
        "fn_index": fn_index,
        "session_hash": "SESSION",
        "event_data": None,
        "trigger_id": None,
    }


def _server_pid(url: str) -> int | None:
    """The pid listening on the URL's port (Linux /proc; None elsewhere or for remote URLs)."""
    port = urlparse(url).port
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            return None
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = {str(fd.readlink()) for fd in (proc / "fd").iterdir()}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            return int(proc.name)
    return None


def _rss_mb(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(
    target: str, url: str, clients: int, seconds: float, hostile: int = 0, rate: float = 10
) -> dict:
    queue: mp.Queue = mp.Queue()
    bad: mp.Queue = mp.Queue()
    procs = [
        mp.Process(target=_worker, args=(target, url, seconds, i, queue)) for i in range(clients)
    ]
    procs += [
        mp.Process(target=_hostile, args=(url, seconds, rate, 1000 + i, bad))
        for i in range(hostile)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in range(clients)]
    attacks = [bad.get() for _ in range(hostile)]
    for p in procs:
        p.join()
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    n = len(latencies)

    def pct(q: float) -> float:
        return 1000 * latencies[int(q * (n - 1))] if n else float("nan")

    return {
        "target": target + (f" + {hostile} hostile" if hostile else ""),
        "requests": n,
        "rps": n / seconds,
        "p50_ms": 1000 * statistics.median(latencies) if n else float("nan"),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "errors": errors,
        "hostile_sent": sum(s for s, _ in attacks),
        "hostile_unexpected": sum(u for _, u in attacks),
    }


def sessions(url: str, n: int) -> None:
    """``n`` Gradio calls, each under a new session id with the largest input Gradio's body
    limit lets through; prints the server's RSS before and after (Gradio keeps every session's
    last inputs, up to ``api.gradio_sessions`` sessions)."""
    import httpx

    pid = _server_pid(url)
    with httpx.Client(base_url=url, timeout=60) as http:
        config = http.get("/config").json()
        fn = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "recommend")
        join = json.dumps(_gradio_join(random.Random(0), fn)).encode()
        before = _rss_mb(pid)
        statuses: dict[int, int] = {}
        for _ in range(n):
            body = join.replace(b"SESSION", uuid.uuid4().hex.encode())
            status = http.post("/gradio_api/queue/join", content=body,
                               headers={"content-type": "application/json"}).status_code  # fmt: skip
            statuses[status] = statuses.get(status, 0) + 1
        time.sleep(5)  # let the queue finish
        after = _rss_mb(pid)
    print(f"{n} Gradio sessions with a {len(join) // 1024} KB input each: answers {statuses}")
    print(f"server RSS: {before:.0f} MB before, {after:.0f} MB after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running app (default: start app.py on a demo bundle)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument(
        "--targets", default="rest,gradio,gradio_trivial", help="comma-separated subset"
    )
    parser.add_argument("--hostile", type=int, default=0, help="hostile clients beside them")
    parser.add_argument("--hostile-rate", type=float, default=10, help="requests/s of each")
    parser.add_argument(
        "--sessions", type=int, default=0, help="instead: this many large Gradio sessions"
    )
    args = parser.parse_args()

    if args.url:
        server = nullcontext(args.url)
    else:
        from tests.support import build_demo_bundle, running_app

        root = Path(tempfile.mkdtemp(prefix="contextflix-bench-"))
        server = running_app(build_demo_bundle(root / "bundle"), root / "app")
    with server as url:
        if args.sessions:
            sessions(url, args.sessions)
            return
        pid = _server_pid(url)
        rss_before = _rss_mb(pid)
        rows = [
            run(t, url, args.clients, args.seconds, args.hostile, args.hostile_rate)
            for t in args.targets.split(",")
        ]
        rss_after = _rss_mb(pid)
    print(f"\n{args.clients} clients x {args.seconds:g} s each target ({url})")
    print(
        f"{'target':<24}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}"
    )
    for r in rows:
        print(
            f"{r['target']:<24}{r['requests']:>10}{r['rps']:>9.1f}{r['p50_ms']:>9.1f}"
            f"{r['p95_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8}"
        )
    if args.hostile:
        sent = sum(r["hostile_sent"] for r in rows)
        unexpected = sum(r["hostile_unexpected"] for r in rows)
        print(
            f"hostile requests sent: {sent} ({args.hostile} clients x {args.hostile_rate:g}/s;"
            f" answered other than 4xx: {unexpected})"
        )
    print(f"server RSS: {rss_before:.0f} MB before, {rss_after:.0f} MB after")


if __name__ == "__main__":
    main()
