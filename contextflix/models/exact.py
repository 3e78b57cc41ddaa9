"""Products whose bits do not depend on the batch a row is computed in.

CPU matrix kernels choose their summation order by the shape of a product: a user's scores
computed alone and in a batch of 100 could differ in the last bits, enough to swap two
near-equal items, and what is served would no longer be exactly what was evaluated
(models/scoring.py). Two ways out, each where it is cheaper:

- ``at_least_rows``: pad the input of a product to MIN_ROWS rows; from 4 rows on, every row
  gets the same bits wherever it sits (small products: the Transformer's layers, the gate).
- ``row_by_row``: one matrix-vector product per row, for the products with the whole
  catalogue. A lone request then reads the item table once instead of padding to four rows:
  at 59,047 movies 0.5 ms against 3.4 ms, and each of a request's catalogue products is one.
- ``in_fours``: the catalogue table times exactly MIN_ROWS vectors, for rows that always come
  together (a request's occlusion variants): one read of the table for four rows, each row's
  bits independent of the others and of its place (tests/test_exact.py).
"""

from __future__ import annotations

import torch

MIN_ROWS = 4
"""Rows below which CPU matrix kernels take another summation order (1 to 3 rows give other
last bits than 4 or more, on one thread): what makes a score depend on its batch."""


def at_least_rows(values: torch.Tensor) -> torch.Tensor:
    """``values`` with zero rows appended up to MIN_ROWS: a matrix product of them then has
    the same bits for each row however few requests share it."""
    missing = MIN_ROWS - len(values)
    if missing <= 0:
        return values
    return torch.cat([values, values.new_zeros((missing, *values.shape[1:]))])


def row_by_row(vectors: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """[B, N] scores ``vectors`` [B, D] @ ``table`` [N, D].T, one matrix-vector product per
    row, each on a fresh copy of its row (the same memory alignment wherever it sat)."""
    if not len(vectors):
        return vectors.new_zeros((0, len(table)))
    return torch.stack([torch.mv(table, row.clone()) for row in vectors])


def in_fours(vectors: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """[B, N] scores ``vectors`` [B, D] @ ``table`` [N, D].T, as products of the table with
    exactly MIN_ROWS vectors (the last zero-padded)."""
    out = [table @ at_least_rows(vectors[start : start + MIN_ROWS]).T
           for start in range(0, len(vectors), MIN_ROWS)]  # fmt: skip
    return torch.cat(out, 1).T[: len(vectors)] if out else vectors.new_zeros((0, len(table)))
