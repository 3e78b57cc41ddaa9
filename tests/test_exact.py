"""Products whose bits do not depend on the batch (contextflix/models/exact.py)."""

from __future__ import annotations

import pytest
import torch

from contextflix.models.exact import FOUR, MIN_ROWS, at_least_rows, columns_of, in_fours


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
    columns = columns_of(table)
    together = in_fours(rows, columns)
    torch.testing.assert_close(together, rows @ table.T, rtol=1e-5, atol=1e-5)
    others = torch.randn(FOUR, width, generator=generator)
    for i in range(len(rows)):
        assert torch.equal(in_fours(rows[i : i + 1], columns)[0], together[i])
        for place in range(FOUR):
            beside = others.clone()
            beside[place] = rows[i]
            assert torch.equal(in_fours(beside, columns)[place], together[i])
    assert in_fours(rows[:0], columns).shape == (0, 3_001)


@pytest.mark.parametrize("width", [32, 50, 64, 128, 200, 256, 512, 1024])
def test_from_min_rows_on_a_rows_bits_do_not_depend_on_the_product(width, one_torch_thread):
    """What at_least_rows relies on, on this machine's kernels: a layer's input of any width
    the models use (dim, 4 x dim) gives each row the same bits in a product of MIN_ROWS rows
    or more, wherever the row sits."""
    generator = torch.Generator().manual_seed(width)
    layer = torch.nn.Linear(width, 64)
    rows = torch.randn(600, width, generator=generator)
    row = rows[0].clone()
    expected = layer(at_least_rows(row[None]))[0]
    with torch.inference_mode():
        for count in (MIN_ROWS, MIN_ROWS + 1, 31, 64, 200, 600):
            for place in (0, count // 2, count - 1):
                batch = rows[:count].clone()
                batch[place] = row
                assert torch.equal(layer(batch)[place], expected), (count, place)
