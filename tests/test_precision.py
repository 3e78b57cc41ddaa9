"""bf16 fits where the CPU computes in bf16, float32 where it would emulate it; float32 scores."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import training.precision
import training.sequential
from tests.support import TINY_SEQUENTIAL_FIT
from training.cli import fit_cli
from training.precision import fitting_precision, in_float32, native_bf16_cpu

TINY_SEQUENTIAL = [
    *TINY_SEQUENTIAL_FIT,
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.callbacks=null",
    "--trainer.enable_checkpointing=false",
]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/cpuinfo")
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512vl\n")
    assert native_bf16_cpu(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert not native_bf16_cpu(cpuinfo)
    assert not native_bf16_cpu(tmp_path / "missing")


def test_bf16_falls_back_to_float32_only_on_a_cpu_without_bf16(monkeypatch, capsys) -> None:
    monkeypatch.setattr(training.precision, "native_bf16_cpu", lambda: False)
    assert fitting_precision("bf16-mixed", "cpu") == "32-true"
    assert "no bf16 instructions" in capsys.readouterr().out
    assert fitting_precision("32-true", "cpu") == "32-true"
    assert fitting_precision("bf16-mixed", "gpu") == "bf16-mixed"  # Lightning checks GPUs
    monkeypatch.setattr(training.precision, "native_bf16_cpu", lambda: True)
    assert fitting_precision("bf16-mixed", "cpu") == "bf16-mixed"


@pytest.mark.parametrize("native", [False, True])
def test_the_cli_fits_in_the_precision_the_cpu_can_run(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(training.precision, "native_bf16_cpu", lambda: native)
    cli = fit_cli([*TINY_SEQUENTIAL, "--trainer.precision=bf16-mixed"], run=False)
    assert cli.trainer.precision == ("bf16-mixed" if native else "32-true")


def test_a_step_in_float32_ignores_the_autocast_around_it() -> None:
    weight = torch.randn(3, 4)

    class Step:
        device = torch.device("cpu")

        @in_float32
        def validation_step(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.linear(x, weight)

    x = torch.randn(2, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.nn.functional.linear(x, weight).dtype == torch.bfloat16
        assert Step().validation_step(x).dtype == torch.float32


def test_a_bf16_fit_validates_with_float32_scores(monkeypatch) -> None:
    """The scores a bf16 fit validates (and picks its best epoch) by are the float32 ones
    its bundle is evaluated and served with."""
    monkeypatch.setattr(training.precision, "native_bf16_cpu", lambda: True)
    cli = fit_cli([*TINY_SEQUENTIAL, "--trainer.precision=bf16-mixed"], run=False)
    validated = []

    def ranks(scores: torch.Tensor, *args) -> torch.Tensor:
        validated.append(scores)
        return torch.ones(len(scores))

    monkeypatch.setattr(training.sequential, "target_ranks", ranks)
    cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    batch = next(iter(cli.datamodule.val_dataloader()))
    cli.model.eval()
    with torch.inference_mode():
        expected, _ = cli.model.score_batch(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast, _ = cli.model.score_batch(batch)
    assert not torch.equal(autocast, expected)  # what a bf16 validation would rank by
    assert torch.equal(validated[0], expected)
