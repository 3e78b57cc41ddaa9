"""bf16 mixed precision where the processor computes in bf16, float32 where it would emulate it.

The sequential model's step is mostly products with the catalogue (its full softmax) and the
Transformer's layers. On a CPU with bf16 instructions (AVX512-BF16 or AMX) autocast runs them
in bf16 at twice the speed or more (`bench/scale.py --stage sequential --datasets
ml-latest-small --steps 6 --train-arg=--trainer.precision=bf16-mixed`: 1.92 -> 1.18 s a step,
2 cores' AMD EPYC); on one without, each product is converted and emulated, slower than
float32. So a config asks for ``bf16-mixed`` and a CPU fit that cannot run it natively trains
in ``32-true``, saying so. The flags are a guide, not a guarantee: an Intel Xeon with
AVX512-BF16 but no AMX took 2.1-2.9 s a step in bf16 against 1.5 s in float32
(configs/sequential.yaml says what to pass there). GPUs are left to Lightning, which checks
bf16 support itself. Weights stay float32 either way (autocast keeps float32 master weights),
and every score a model is evaluated or served with is computed in float32.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch

BF16 = ("bf16-mixed", "bf16")
NATIVE_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16_cpu(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when this CPU has bf16 arithmetic instructions (Linux: /proc/cpuinfo flags)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return any(flag in flags.split() for flag in NATIVE_FLAGS)


def runs_on_cpu(accelerator: object) -> bool:
    """Whether a Trainer given ``accelerator`` trains on the CPU."""
    if accelerator == "cpu":
        return True
    if accelerator not in (None, "auto"):
        return False
    return not torch.cuda.is_available() and not torch.backends.mps.is_available()


def fitting_precision(precision: object, accelerator: object) -> object:
    """``precision`` as asked, or "32-true" for bf16 on a CPU without bf16 instructions."""
    if str(precision) in BF16 and runs_on_cpu(accelerator) and not native_bf16_cpu():
        print(
            f"precision {precision}: this CPU has no bf16 instructions, training in 32-true",
            flush=True,
        )
        return "32-true"
    return precision


def in_float32(step):
    """A validation or test step that scores in float32 whatever the fit's precision, so the
    figures a fit logs (and picks its best epoch by) are those its bundle is evaluated and
    served with."""

    @functools.wraps(step)
    def wrapped(self, *args, **kwargs):
        with torch.autocast(self.device.type, enabled=False):
            return step(self, *args, **kwargs)

    return wrapped
