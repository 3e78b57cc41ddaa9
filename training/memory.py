"""Freed tensor memory kept for the next training step, not handed back to the kernel.

glibc maps every allocation of more than 32 MB afresh (mmap) and unmaps it when it is freed.
A training step's largest tensors are exactly that size class: the full softmax's logits and
their gradient are [predictions, catalogue] floats, 0.5 GB a step for the sequential model on
ml-latest-small. So every step the kernel page-faults and zeroes them again, a fifth of that
fit's time (`bench/scale.py --stage sequential --datasets ml-latest-small`: 2.5-2.7 s a step,
5.1-5.4 s of it system time, against 2.0-2.1 s with the setting below). Serving them from the
heap and never trimming it lets the next steps reuse the same pages (the heap grows over the
first few steps, since aligned allocations leave gaps, then holds). The results do not change
(PyTorch aligns every tensor to 64 bytes either way); the peak RSS grows by what the heap
cannot coalesce (ml-latest-small's sequential fit: 2.3 GB to 2.8-3.1 GB).

Freed chunks the heap cannot coalesce add up over an epoch when the large tensors change size
from step to step in more than one way: in a bf16 fit (training/precision.py) the logits come
in bf16 and float32 copies, and the ml-latest-small sequential fit grew to 6.4 GB after 20
epochs and 15 GB by its 97th. So once an epoch every training command hands the pages of the
heap's free chunks back to the kernel (``malloc_trim``, ``ReleaseFreedMemory``); the next steps
fault in only what they use. Measured over 12 bf16 epochs: peak RSS 4.6 GB, flat after the
third; 14-15 s an epoch without it, 15-16 s with it (ml-100k, float32: no difference seen).
"""

from __future__ import annotations

import ctypes
import sys

import lightning as L

M_TRIM_THRESHOLD = -1  # mallopt parameters, glibc's malloc.h
M_MMAP_MAX = -4


def _glibc(name: str):
    """A glibc malloc function, or None (another platform, or musl)."""
    if not sys.platform.startswith("linux"):
        return None
    return getattr(ctypes.CDLL(None), name, None)


def keep_freed_memory() -> bool:
    """Serve every allocation from the heap and never trim it (glibc); False elsewhere."""
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def release_free_pages() -> bool:
    """Hand the whole pages of every free heap chunk back to the kernel (glibc's malloc_trim,
    which also advises away the middle of the heap); False where there is nothing to call."""
    malloc_trim = _glibc("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True


class ReleaseFreedMemory(L.Callback):
    """Keeps freed memory in the heap in every process of a fit, and releases the heap's free
    pages at the end of every training epoch (module docstring).

    The training CLI keeps freed memory in its own process; the processes that
    ``--trainer.strategy=ddp_spawn`` starts run no CLI: without this, each of their steps
    faulted its logits in afresh (ml-latest-small's sequential model as 2 such processes: 13.6 s
    an epoch, 8.5-9 s with it).
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        keep_freed_memory()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        release_free_pages()
