"""Freed tensor memory reused from one training step to the next (training/memory.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TINY_SEQUENTIAL_FIT

ROOT = Path(__file__).resolve().parents[1]

# Page faults of the last 5 of 20 training-like steps, each allocating a 64 MB and a 32 MB
# tensor and freeing them. With the setting the heap grows over the first few steps (aligned
# allocations leave gaps) and then holds every step.
SCRIPT = """
import resource, sys, torch
from training.memory import keep_freed_memory
if sys.argv[1] == "on":
    assert keep_freed_memory()
faults = []
for _ in range(20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x, y = torch.ones(2**24), torch.ones(2**23)
    del x, y
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[-5:]))
"""


def faults(setting: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, setting],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_large_tensors_are_reused_without_page_faults() -> None:
    assert faults("on") < 100  # the freed pages, reused
    if Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().startswith("[always]"):
        pytest.skip("huge pages fault 2 MB at a time: the default cannot be told apart")
    assert faults("off") > 50_000  # 5 x 24,576 pages of 4 kB faulted in again by the default


def test_the_training_cli_reuses_freed_memory(monkeypatch) -> None:
    import training.cli

    calls = []
    monkeypatch.setattr(training.cli, "keep_freed_memory", lambda: calls.append(1))
    monkeypatch.setattr(training.cli, "ContextFlixCLI", lambda **kwargs: kwargs)
    training.cli.fit_cli(["fit"], run=False)
    assert calls == [1]


def test_every_process_of_a_fit_keeps_freed_memory(monkeypatch) -> None:
    """A process that ``ddp_spawn`` starts runs no CLI: the callback sets the heap up there."""
    import training.memory

    calls = []
    monkeypatch.setattr(training.memory, "keep_freed_memory", lambda: calls.append(1))
    training.memory.ReleaseFreedMemory().setup(None, None, "fit")
    assert calls == [1]


# Resident memory after freeing every other 32 MB tensor of 24 (holes in the middle of the
# heap, which trimming its top cannot return), then after release_free_pages().
HOLES = """
import sys, torch
from training.memory import keep_freed_memory, release_free_pages
def rss_mb():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
assert keep_freed_memory()
tensors = [torch.ones(2**23) for _ in range(24)]
del tensors[::2]
before = rss_mb()
assert release_free_pages()
print(before, rss_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_free_pages_in_the_middle_of_the_heap_are_released() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HOLES],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    before, after = map(int, done.stdout.split())
    assert before - after > 300  # 12 x 32 MB freed, kept resident until released


def test_every_fit_releases_free_pages_once_an_epoch(monkeypatch, tmp_path: Path) -> None:
    import training.cli
    import training.memory

    released = []
    monkeypatch.setattr(training.memory, "release_free_pages", lambda: released.append(1))
    cli = training.cli.fit_cli(
        [
            *TINY_SEQUENTIAL_FIT,
            "--trainer.max_epochs=2",
            "--trainer.limit_train_batches=1",
            "--trainer.limit_val_batches=1",
            "--trainer.precision=32-true",
            "--trainer.default_root_dir=" + str(tmp_path),
            "--trainer.callbacks.dirpath=" + str(tmp_path),
        ],
        run=False,
    )
    assert any(type(c).__name__ == "EarlyStopping" for c in cli.trainer.callbacks)  # the config's
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert released == [1, 1]
