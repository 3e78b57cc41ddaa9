"""Products whose bits do not depend on the batch (contextflix/models/exact.py)."""

from __future__ import annotations

import pytest
import torch

from contextflix.models.exact import MIN_ROWS, at_least_rows, row_by_row


@pytest.mark.parametrize("width", [32, 50, 64])
def test_a_row_scores_the_same_bits_alone_and_anywhere_in_a_batch(width, one_torch_thread):
    generator = torch.Generator().manual_seed(width)
    table = torch.randn(3_001, width, generator=generator)
    batch = torch.randn(9, width, generator=generator)
    together = row_by_row(batch, table)
    torch.testing.assert_close(together, batch @ table.T, rtol=1e-5, atol=1e-5)
    for i in range(len(batch)):
        assert torch.equal(row_by_row(batch[i : i + 1], table)[0], together[i])
        assert torch.equal(row_by_row(batch[i:], table)[0], together[i])
    assert row_by_row(batch[:0], table).shape == (0, 3_001)


def test_small_inputs_are_padded_to_min_rows():
    values = torch.arange(6.0).reshape(2, 3)
    padded = at_least_rows(values)
    assert padded.shape == (MIN_ROWS, 3) and torch.equal(padded[:2], values)
    assert not padded[2:].any()
    many = torch.ones(MIN_ROWS + 1, 3)
    assert at_least_rows(many) is many
