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
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, glibc's malloc.h
M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Serve every allocation from the heap and never trim it (glibc); False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # absent from musl
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
