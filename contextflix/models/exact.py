"""Products whose bits do not depend on the batch a row is computed in.

CPU matrix kernels choose their summation order by the shape of a product: a user's scores
computed alone and in a batch of 100 could differ in the last bits, enough to swap two
near-equal items, and what is served would no longer be exactly what was evaluated
(models/scoring.py). Two ways out, each where it is cheaper:

- ``at_least_rows``: pad the input of a product to MIN_ROWS rows; from there on, every row
  gets the same bits wherever it sits (small products: the Transformer's layers, the gate).
- ``in_fours``: the products with the whole catalogue, in products of exactly four rows
  (the last zero-padded). One shape, so a row's bits depend only on its place among the four,
  which they do not (tests/test_exact.py). It takes the table transposed ([D, N],
  contiguous), where four rows cost what one matrix-vector product does (59,047 x 64: 0.63 ms,
  against 1.23 ms for four rows in the [N, D] layout and 0.62 ms for one row): a lone request
  pays nothing for its padding, and an evaluation reads the table once per four users.
"""

from __future__ import annotations

import torch

MIN_ROWS = 16
"""Rows below which CPU matrix kernels take another summation order: what makes a score
depend on its batch. MKL on one thread has three regimes per input width K: one row, a few
rows, and from a threshold on one summation order for any number of rows (checked up to
4,096). The threshold grows with K and stops at 16: on an Intel Xeon with AVX-512, 3 rows at
K = 64, 6 at 128, 11 at 256, 16 at 512 and 1,024; on an AMD EPYC with AVX2, 4 at every width
used. tests/test_exact.py checks it on the machine it runs on."""

FOUR = 4
"""Rows of each ``in_fours`` product: up to four rows cost one read of the table (a request and
its three occlusion variants, or four users of an evaluation)."""


def columns_of(table: torch.Tensor) -> torch.Tensor:
    """The [D, N] layout ``in_fours`` reads, of a [N, D] catalogue table (a fresh copy)."""
    return table.detach().T.contiguous()


def at_least_rows(values: torch.Tensor, rows: int = MIN_ROWS) -> torch.Tensor:
    """``values`` with zero rows appended up to ``rows``: a matrix product of them then has
    the same bits for each row however few requests share it."""
    missing = rows - len(values)
    if missing <= 0:
        return values
    return torch.cat([values, values.new_zeros((missing, *values.shape[1:]))])


def in_fours(vectors: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """[B, N] scores ``vectors`` [B, D] @ ``columns`` [D, N] (a catalogue table transposed,
    contiguous, ``columns_of``), as products of exactly FOUR vectors (the last zero-padded)
    with it, each on a fresh copy of its rows (the same memory alignment wherever they sat)."""
    out = [at_least_rows(vectors[start : start + FOUR].clone(), FOUR) @ columns
           for start in range(0, len(vectors), FOUR)]  # fmt: skip
    return torch.cat(out)[: len(vectors)] if out else vectors.new_zeros((0, columns.shape[1]))
