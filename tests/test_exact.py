"""Products whose bits do not depend on the batch (contextflix/models/exact.py)."""

from __future__ import annotations

import pytest
import torch

from contextflix.models.exact import MIN_ROWS, at_least_rows, in_fours, row_by_row


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


@pytest.mark.parametrize("width", [32, 50, 64])
def test_in_fours_a_row_has_the_same_bits_alone_in_any_place_and_beside_any_rows(
    width, one_torch_thread
):
    generator = torch.Generator().manual_seed(width)
    table = torch.randn(3_001, width, generator=generator)
    rows = torch.randn(7, width, generator=generator)
    together = in_fours(rows, table)
    torch.testing.assert_close(together, rows @ table.T, rtol=1e-5, atol=1e-5)
    others = torch.randn(MIN_ROWS, width, generator=generator)
    for i in range(len(rows)):
        assert torch.equal(in_fours(rows[i : i + 1], table)[0], together[i])
        for place in range(MIN_ROWS):
            beside = others.clone()
            beside[place] = rows[i]
            assert torch.equal(in_fours(beside, table)[place], together[i])
    assert in_fours(rows[:0], table).shape == (0, 3_001)
