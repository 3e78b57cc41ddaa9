"""Context impact on ml-latest-small: no device dependence unless one is planted."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from contextflix.data import load_dataset
from contextflix.evaluation.context_impact import context_impact, resimulate_devices

FAST = {"n_permutations": 99, "n_resamples": 200}


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("ml-latest-small")


@pytest.fixture(scope="module")
def report(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("impact")
    return context_impact(dataset, out, compare_genre_effect=3.0, **FAST), out


def _runs(report: dict) -> dict[float, dict]:
    return {run["genre_effect"]: run for run in report["device"]["runs"]}


def test_resimulation_reproduces_the_loaded_devices(dataset) -> None:
    devices = resimulate_devices(dataset, dataset.device_simulation)
    assert np.array_equal(devices, dataset.ratings["device"].to_numpy())


def test_no_device_dependence_without_genre_effect(report) -> None:
    off = _runs(report[0])[0.0]
    assert off["as_loaded"]
    assert off["test"]["permutation_p_value"] > 0.05
    assert not off["test"]["dependent"]
    assert "NO real dependence" in off["verdict"]
    # The naive pooled test is fooled by users differing in device mix and taste.
    assert off["test"]["pooled_p_value"] < 0.05


def test_planted_genre_effect_is_found_the_planted_way(report) -> None:
    on = _runs(report[0])[3.0]
    assert not on["as_loaded"]
    assert on["test"]["permutation_p_value"] <= 0.02  # no permutation reached the statistic
    assert on["test"]["dependent"]
    for device, genre in (
        ("tv", "Action"),
        ("mobile", "Comedy"),
        ("mobile", "Romance"),
        ("desktop", "Drama"),
        ("tablet", "Children"),
    ):
        assert on["lift"][device][genre] > 1.0, (device, genre)
        assert on["lift_ci"][device][genre][0] > 1.0, (device, genre)
    assert on["lift"]["tv"]["Drama"] < 1.0


def test_time_of_day_results_and_files(report) -> None:
    data, out = report
    time = data["time_of_day"]
    assert time["levels"] == ["morning", "afternoon", "evening", "night"]
    assert 0 < time["test"]["permutation_p_value"] <= 1
    for level in time["levels"]:
        assert sum(time["share"][level].values()) == pytest.approx(1.0)
        for genre in time["top_genres"]:
            lo, hi = time["lift_ci"][level][genre]
            assert lo <= time["lift"][level][genre] <= hi
    assert json.loads((out / "context_impact.json").read_text()) == data
    text = (out / "context_impact.md").read_text()
    assert "SIMULATED" in text and "genre_effect = 3" in text and "genre_effect = 0" in text
    for name in (
        "context_impact_time_of_day.png",
        "context_impact_device_genre_effect_0.png",
        "context_impact_device_genre_effect_3.png",
    ):
        assert (out / name).stat().st_size > 1000


def test_loaded_with_an_effect_compares_against_off(dataset, tmp_path) -> None:
    simulation = replace(dataset.device_simulation, genre_effect=3.0)
    ratings = dataset.ratings.assign(device=resimulate_devices(dataset, simulation))
    planted = replace(dataset, ratings=ratings, device_simulation=simulation)
    runs = _runs(context_impact(planted, tmp_path, n_permutations=19, n_resamples=50))
    assert runs[3.0]["as_loaded"] and not runs[0.0]["as_loaded"]
