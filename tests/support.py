"""Test support: a demo bundle built in seconds, fake metrics, an app launcher, a stand-in for
the training command (first-start tests) and the headless Chromium + axe-core helpers.

The demo bundle has the real ml-latest-small catalogue, users, interactions and context popularity, so titles,
histories, genres and "popular in the evening" are real; the learned models are small and
untrained (random weights), so their rankings mean nothing. That is enough to drive every
screen and endpoint end to end through the real ``Recommender`` without training for minutes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import torch

from contextflix.bundle import Bundle, export_bundle
from contextflix.data import TIMES_OF_DAY, load_dataset
from contextflix.models.collaborative import MatrixFactorization
from contextflix.models.content import ContentModel
from contextflix.models.hybrid import ContextHybrid
from contextflix.models.popularity import ContextPopularity
from contextflix.models.scoring import (
    SOURCES,
    BaseModels,
    Requests,
    one_thread,
    sequential_length,
    sequential_state,
)
from contextflix.models.sequential import SequentialRecommender
from contextflix.service.explain import OCCLUSION_CANDIDATES, occlusion_drops

DEMO_NDCG = {"popularity": 0.025, "collaborative": 0.035, "content": 0.015, "sequential": 0.04,
             "hybrid_no_context": 0.045, "hybrid": 0.05}  # fmt: skip
DEMO_METRICS = {
    "dataset": "ml-latest-small",
    "note": "demo bundle: untrained models, illustrative numbers",
    "protocols": {
        "S": {
            "n_users": 610,
            "models": {
                name: {"hr@10": hr, "ndcg@10": hr / 2, "ndcg@10_ci": [hr / 2 - 0.01, hr / 2 + 0.01]}
                for name, hr in (
                    ("popularity", 0.05),
                    ("collaborative", 0.07),
                    ("content", 0.03),
                    ("sequential", 0.08),
                    ("hybrid_no_context", 0.09),
                    ("hybrid", 0.10),
                )
            },
            "by_context": {
                name: {
                    "time_of_day": {
                        t: {"ndcg@10": ndcg * (1 + 0.1 * n), "n": 100}
                        for n, t in enumerate(TIMES_OF_DAY)
                    }
                }
                for name, ndcg in DEMO_NDCG.items()
            },
        },
        "R": {"n_test": 10084, "models": {"collaborative": {"rmse": 0.87}}},
    },
}


def _random(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point() and tensor.dim() > 0:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
    return model.eval()


def build_demo_bundle(path: str | Path, dataset: str = "ml-latest-small") -> Path:
    """Export the demo bundle to ``path`` (reused when it is already there)."""
    path = Path(path)
    if (path / "manifest.json").exists():
        return path
    data = load_dataset(dataset)
    served = data.served_interactions()
    popularity = ContextPopularity.from_frame(served, data.n_items)
    global_mean = float(served["rating"].mean())
    models = BaseModels(
        popularity=popularity,
        collaborative=_random(MatrixFactorization(data.n_users, data.n_items, 8, global_mean), 1),
        content=_random(ContentModel.from_movies(data.movies, n_tags=0, dim=8, hidden=16), 2),
        sequential=_random(
            SequentialRecommender(data.n_items, dim=8, heads=2, layers=1, item_bias=True), 3
        ),
    )
    bundle = Bundle(
        config={"name": f"contextflix-demo-{dataset}", "dataset": dataset},
        models=models,
        hybrid=_random(ContextHybrid(SOURCES, hidden=8), 4),
        hybrid_no_context=_random(ContextHybrid(SOURCES, hidden=8, use_context=False), 5),
        # float years (NaN when unknown): the service of this writing cannot read pd.NA years
        catalog=data.movies.assign(year=data.movies["year"].astype("float64")),
        interactions=served,
        users=data.users,
        metrics=DEMO_METRICS,
    )
    return export_bundle(bundle, path)


TINY_SEQUENTIAL_FIT = [
    "--config=configs/sequential.yaml",
    "--model.init_args.dim=16",
    "--model.init_args.max_len=20",
    "--data.init_args.max_len=20",
    "--trainer.accelerator=cpu",
    "--trainer.logger=false",
]
"""LightningCLI arguments of an ml-latest-small sequential fit small enough for a test."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def running_app(
    bundle: Path | None,
    app_dir: Path,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> Iterator[str]:
    """``python app.py`` in a subprocess on a free port; yields its base URL, stops it after.

    Every visitor lands in arm B (context on) unless ``env`` sets CONTEXTFLIX_AB_SPLIT, so the
    page's context controls have an effect. ``bundle=None`` is a first start.
    """
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if k != "TMDB_API_KEY"}  # only if asked
    env = {
        **inherited,
        "CONTEXTFLIX_APP_DIR": str(app_dir),
        "CONTEXTFLIX_AB_SPLIT": "1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        **({"CONTEXTFLIX_BUNDLE": str(bundle)} if bundle is not None else {}),
        **(env or {}),
    }
    root = ROOT
    app_dir.mkdir(parents=True, exist_ok=True)
    log_file = (app_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(root / "app.py")],
        cwd=cwd,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited: {(app_dir / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py did not start in {timeout} s")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log_file.close()


FAKE_PIPELINE = '''"""A stand-in for ``python -m training pipeline``: prints the stage lines, copies a bundle."""
import argparse, shutil, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("command"); parser.add_argument("--config"); parser.add_argument("--dataset")
parser.add_argument("--profile"); parser.add_argument("--output")
args = parser.parse_args()
print("Lightning noise the console must not show", flush=True)
for n, name in enumerate(("collaborative", "sequential", "evaluate and export"), 1):
    print(f"stage {n}/3: {name}", flush=True)
    time.sleep(SECONDS)
shutil.copytree(BUNDLE, args.output)
'''


def fake_training_package(folder: Path, bundle: Path, seconds_per_stage: float = 2.0) -> Path:
    """A folder holding a fake ``training`` package, for a first start without the real one:
    run the app with this folder as working directory and ``python -m training`` finds it."""
    package = folder / "training"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        FAKE_PIPELINE.replace("SECONDS", repr(seconds_per_stage)).replace(
            "BUNDLE", repr(str(bundle))
        )
    )
    return folder


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
BROKEN_IMAGES_JS = (
    "() => [...document.images].filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)"
)
AXE_JS = """async () => (await axe.run(document, {runOnly: {type: 'tag',
  values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})).violations.map(v =>
  `${v.id} (${v.impact}): ${v.help}; ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`)"""


def axe_violations(page) -> list[str]:
    """WCAG 2.1 A and AA violations axe-core finds on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    return page.evaluate(AXE_JS)


def sequential_occlusion(
    model: SequentialRecommender, request: Requests, items: list[int]
) -> list[tuple[int | None, float]]:
    """The sequential reasons of ``items`` for a one-row ``request``, from ``model`` alone and
    written plainly: the oracle for the served reasons (computed in the Scorer's shared
    passes, every request's variants at once).

    Candidates: the OCCLUSION_CANDIDATES history items of most attention (all of a shorter
    history); each is removed in turn, older items sliding into the window.
    """
    n = int(request.history_length[0])
    length = sequential_length(n, model.max_len)
    width = max(request.items.shape[1], length)
    history = {name: getattr(request, name)[0][request.items[0] > 0] for name in
               ("items", "ratings", "time_of_day", "device")}  # fmt: skip
    with torch.inference_mode(), one_thread():
        state, attention = sequential_state(model, request, length, return_attention=True)
        scores = model.scores_of(state)
        kept = min(n, attention.shape[1])
        if n <= OCCLUSION_CANDIDATES:
            positions = list(range(n))
        else:
            best = attention[0, -kept:].topk(OCCLUSION_CANDIDATES).indices
            positions = sorted((best + n - kept).tolist())
        if not positions:
            return [(None, 0.0)] * len(items)
        variants = [
            Requests(
                user=request.user,
                **{name: torch.cat([v[:p], v[p + 1 :]])[None] for name, v in history.items()},
                target_time_of_day=request.target_time_of_day,
                target_device=request.target_device,
            ).padded(1, width)
            for p in positions
        ]
        variant_scores = model.scores_of(
            sequential_state(model, Requests.concat(variants), length)[0]
        )
    removed = [int(history["items"][p]) - 1 for p in positions]
    return occlusion_drops(scores[0], variant_scores, removed, items)
