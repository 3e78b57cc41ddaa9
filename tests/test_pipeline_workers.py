"""The pipeline's step runner: steps in this process (workers: 1) or in worker processes that
share the thread budget (workers: 2)."""

import os

import pytest
import torch

from training.pipeline import step_runner


def where_and_threads(tag: str) -> tuple[str, int, int]:
    return tag, os.getpid(), torch.get_num_threads()


def test_one_worker_runs_each_step_here_at_once() -> None:
    with step_runner(1, 1) as runner:
        future = runner.submit(where_and_threads, "a")
        assert future.done()
    assert future.result() == ("a", os.getpid(), torch.get_num_threads())


def test_two_workers_run_steps_in_other_processes_with_their_thread_share() -> None:
    with step_runner(2, 1) as runner:
        results = [runner.submit(where_and_threads, tag).result() for tag in "ab"]
    assert [tag for tag, _, _ in results] == ["a", "b"]
    assert all(pid != os.getpid() and threads == 1 for _, pid, threads in results)


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers"):
        step_runner(0, 1)
