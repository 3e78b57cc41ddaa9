"""bench/scale.py: a stage that fails says why in its table cell."""

from __future__ import annotations

import subprocess

import bench.scale


def _stage_ending(monkeypatch, returncode: int, stderr: str) -> dict:
    done = subprocess.CompletedProcess([], returncode, stdout="", stderr=stderr)
    monkeypatch.setattr(bench.scale.subprocess, "run", lambda *args, **kwargs: done)
    return bench.scale.run_stage("sequential", "synthetic-ml-25m", "cpu", 5)


def test_a_stage_the_kernel_killed_is_reported_as_killed(monkeypatch) -> None:
    result = _stage_ending(monkeypatch, -9, "UserWarning: an unrelated warning\n")
    assert result == {"error": "killed by signal 9"}


def test_a_stage_that_failed_reports_its_last_error_line(monkeypatch) -> None:
    result = _stage_ending(monkeypatch, 1, "Traceback ...\nValueError: no such data set\n")
    assert result == {"error": "ValueError: no such data set"}
