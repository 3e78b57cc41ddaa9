"""The first start without a bundle: answer at once with popularity, train in a separate
process, swap the trained bundle in when it is ready.

Serving never imports training: the models are trained by the very command a user would type
(``python -m training pipeline ...``) in a child process. Its output goes to a log file; the
console gets one line per stage ("stage 3/7: content"), which is also what the page's banner
shows, with an estimate of the time left.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contextflix.bundle import Bundle
from contextflix.data import load_dataset
from contextflix.models.scoring import BaseModels, fit_popularity

log = logging.getLogger("contextflix.app")

STAGE = re.compile(r"^stage (\d+)/(\d+): (.+)$")
LEARNED = ("collaborative", "content", "sequential")


def popularity_bundle(dataset: str) -> Bundle:
    """A bundle with context popularity only, from the data set itself (seconds, no training):
    what the app serves while the personalised models train."""
    data = load_dataset(dataset)
    return Bundle(
        config={"name": f"contextflix-{dataset}-popularity", "dataset": dataset},
        models=BaseModels(popularity=fit_popularity(data)),
        hybrid=None,
        hybrid_no_context=None,
        catalog=data.movies,
        interactions=data.served_interactions(),
        users=data.users,
        metrics=None,
    )


def pipeline_command(config: str, dataset: str, profile: str, output: Path) -> list[str]:
    """The command line a user would type to train the bundle the app wants."""
    return [
        sys.executable,
        "-m",
        "training",
        "pipeline",
        "--config",
        config,
        "--dataset",
        dataset,
        "--profile",
        profile,
        "--output",
        str(output),
    ]


def eta_text(stage: int, n_stages: int, stage_started: float, now: float) -> str:
    """ "about 40 s left": the finished stages' mean time for each stage not finished yet, less
    the time already spent in the current one; nothing to go on before the first finishes."""
    if stage <= 1 or stage_started <= 0:
        return "estimating the time left"
    per_stage = stage_started / (stage - 1)
    left = per_stage * (n_stages - stage + 1) - (now - stage_started)
    if left < 5:
        return "almost done"
    return f"about {left:.0f} s left" if left < 120 else f"about {left / 60:.0f} min left"


class Training:
    """Runs ``command`` in a child process; ``on_ready(output)`` when it succeeds."""

    def __init__(
        self,
        command: list[str],
        output: Path,
        log_path: Path,
        on_ready: Callable[[Path], Any],
        cwd: Path | None = None,
    ) -> None:
        self.command, self.output, self.log_path = command, Path(output), Path(log_path)
        self.on_ready, self.cwd = on_ready, cwd
        self.stage, self.n_stages, self.stage_name = 0, 0, ""
        self.started = self.stage_started = 0.0  # monotonic start; seconds in at this stage
        self.done = False
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Training:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="first-start-training", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}
        log.info("training the personalised models: %s", " ".join(self.command))
        with self.log_path.open("w") as log_file:
            process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            assert process.stdout is not None
            for line in process.stdout:
                log_file.write(line)
                match = STAGE.match(line.strip())
                if match:
                    self.stage, self.n_stages = int(match[1]), int(match[2])
                    self.stage_name, self.stage_started = match[3], self.elapsed
                    log.info("%s (%s)", line.strip(), self.eta())
            code = process.wait()
        if code != 0 or not (self.output / "manifest.json").exists():
            self.error = f"training failed (exit code {code}); its log: {self.log_path}"
            log.error(self.error)
            return
        try:
            self.on_ready(self.output)
        except Exception as error:  # a bundle that does not load: keep serving popularity
            self.error = f"the trained bundle could not be loaded: {error}"
            log.exception("swapping in %s failed", self.output)
            return
        self.done = True
        log.info("personalised models ready after %.0f s: serving %s", self.elapsed, self.output)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started if self.started else 0.0

    def eta(self) -> str:
        return eta_text(self.stage, self.n_stages, self.stage_started, self.elapsed)

    def banner(self) -> str | None:
        """What the page says while it serves popularity; None once the models are in."""
        if self.done:
            return None
        if self.error:
            return (
                "The personalised models could not be trained, so these rows are the most "
                "popular movies; the server log says why."
            )
        if not self.stage:
            return "The personalised models are training (starting up); meanwhile, the most popular movies."
        return (
            f"The personalised models are training: stage {self.stage} of {self.n_stages} "
            f"({self.stage_name}), {self.eta()}. Meanwhile, the most popular movies."
        )


class Serving:
    """What the page serves now: the API (whose service may be swapped), the bundle folder, and
    the first-start training, if one runs. ``version`` changes on every swap."""

    def __init__(self, api: Any, bundle_dir: Path | None, training: Training | None = None):
        self.api, self.bundle_dir, self.training = api, bundle_dir, training
        self.version = 0
        self._lock = threading.Lock()

    @property
    def personalised(self) -> bool:
        """Whether a learned model is loaded (else every row is popularity)."""
        models = self.api.health().get("models") or {}
        return any(models.get(name) for name in LEARNED)

    def banner(self) -> str | None:
        return self.training.banner() if self.training is not None else None

    def swap(self, bundle_dir: Path, service: Any) -> None:
        """Serve ``service`` (loaded from ``bundle_dir``) from now on, without a restart; the
        old one's helper processes end once they have answered what they hold."""
        with self._lock:
            old, self.api.service = self.api.service, service
            self.bundle_dir = Path(bundle_dir)
            self.version += 1
        old.close()
