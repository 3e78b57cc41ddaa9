"""The first start on a fresh clone: the server answers at once with popularity while the
models train in a child process (the command a user would type), then swaps them in."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from contextflix.service import Recommender
from contextflix.web.startup import Training, eta_text, pipeline_command, popularity_bundle
from tests.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    build_demo_bundle,
    fake_training_package,
    running_app,
)

ROOT = Path(__file__).resolve().parents[1]


def test_serving_never_imports_training() -> None:
    code = (
        "import sys, app, contextflix.web.server, contextflix.web.startup\n"
        "assert not any(m == 'training' or m.startswith('training.') for m in sys.modules), "
        "sorted(m for m in sys.modules if m.startswith('training'))\n"
        "assert 'lightning' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_popularity_service_answers_without_training() -> None:
    service = Recommender(popularity_bundle("ml-latest-small"))
    items = service.recommend(time_of_day="evening", device="tv", k=5, model="popularity")
    assert len(items["items"]) == 5
    assert service.health()["models"]["collaborative"] is False


def test_the_command_is_the_one_a_user_types() -> None:
    command = pipeline_command("configs/pipeline.yaml", "ml-latest-small", "quick", Path("out"))
    assert command[1:] == ["-m", "training", "pipeline", "--config", "configs/pipeline.yaml",
                           "--dataset", "ml-latest-small", "--profile", "quick",
                           "--output", "out"]  # fmt: skip


def test_progress_and_time_left_from_the_stage_lines(tmp_path: Path) -> None:
    script = "import time\nfor i in (1, 2, 3):\n    print(f'stage {i}/3: step{i}', flush=True)\n    time.sleep(0.3)\n"
    out = tmp_path / "bundle"
    ready: list[Path] = []
    training = Training([sys.executable, "-c", script + f"import os; os.makedirs({str(out)!r}); open({str(out / 'manifest.json')!r}, 'w').close()"],
                        out, tmp_path / "log.txt", ready.append)  # fmt: skip
    assert "starting up" in training.start().banner()
    training.join(30)
    assert ready == [out] and training.done and training.banner() is None
    assert "stage 3/3: step3" in (tmp_path / "log.txt").read_text()
    assert eta_text(1, 5, 0.0, 3.0) == "estimating the time left"
    assert eta_text(3, 5, 20.0, 20.0) == "about 30 s left"  # 10 s a stage, 3 stages to go
    assert eta_text(3, 5, 20.0, 30.0) == "about 20 s left"  # 10 s into this one
    assert eta_text(5, 5, 40.0, 48.0) == "almost done"


def test_a_failed_training_keeps_serving_popularity_and_says_so(tmp_path: Path) -> None:
    training = Training([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "none",
                        tmp_path / "log.txt", lambda _: None).start()  # fmt: skip
    training.join(30)
    assert not training.done and "exit code 3" in training.error
    assert "could not be trained" in training.banner()


def test_first_start_answers_at_once_then_swaps_in_the_trained_bundle(tmp_path: Path) -> None:
    bundle = build_demo_bundle(tmp_path / "demo")
    cwd = fake_training_package(tmp_path / "clone", bundle, seconds_per_stage=10.0)
    with running_app(None, tmp_path / "app", cwd=cwd) as url:
        health = httpx.get(f"{url}/api/health").json()
        assert health["models"]["hybrid"] is False  # popularity, served at once
        popular = httpx.get(f"{url}/api/recommend", params={"model": "popularity"}).json()
        assert len(popular["items"]) == 10
        if browser_available():
            banner_then_personalised_rows(url)
        deadline = time.monotonic() + 90
        while not httpx.get(f"{url}/api/health").json()["models"]["hybrid"]:
            assert time.monotonic() < deadline, "the trained bundle was never swapped in"
            time.sleep(1)
        assert (cwd / "artifacts" / "ml-latest-small" / "manifest.json").exists()
        log = (tmp_path / "app" / "server.log").read_text()
        assert "stage 2/3: sequential" in log
        assert "noise the console must not show" not in log
        assert "personalised models ready" in log


def browser_available() -> bool:
    return importlib.util.find_spec("playwright") is not None and Path(CHROMIUM).exists()


def banner_then_personalised_rows(url: str) -> None:
    """The page during training: popular rows under the banner; then, without a reload, the
    personalised rows replace them and the banner goes."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(90_000)
        page.goto(f"{url}/?user=5")
        page.wait_for_selector("#cf-row-0 img")
        assert "personalised models are training" in page.inner_text("#cf-banner")
        assert "Top picks for you" not in page.inner_text("body")
        page.wait_for_function("() => document.body.innerText.includes('Top picks for you')")
        page.wait_for_function("() => !document.querySelector('#cf-banner').innerText.trim()")
        browser.close()


def test_a_bundle_that_cannot_be_served_is_one_log_line_not_a_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "bundle"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    env = {**os.environ, "CONTEXTFLIX_BUNDLE": str(broken), "CONTEXTFLIX_APP_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert f"cannot serve {broken}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
