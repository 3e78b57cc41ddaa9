"""Freed tensor memory reused from one training step to the next (training/memory.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Page faults of filling a 64 MB tensor allocated where an equal one was just freed.
SCRIPT = """
import resource, sys, torch
from training.memory import keep_freed_memory
if sys.argv[1] == "on":
    assert keep_freed_memory()
x = torch.ones(2**24)
del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
y = torch.ones(2**24)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
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
def test_a_freed_large_tensor_is_reused_without_page_faults() -> None:
    assert faults("on") < 100  # the freed pages, reused
    if Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().startswith("[always]"):
        pytest.skip("huge pages fault 2 MB at a time: the default cannot be told apart")
    assert faults("off") > 10_000  # 16,384 pages of 4 kB faulted in again by the default


def test_the_training_cli_reuses_freed_memory(monkeypatch) -> None:
    import training.cli

    calls = []
    monkeypatch.setattr(training.cli, "keep_freed_memory", lambda: calls.append(1))
    monkeypatch.setattr(training.cli, "ContextFlixCLI", lambda **kwargs: kwargs)
    training.cli.fit_cli(["fit"], run=False)
    assert calls == [1]
