"""Context features: time zones, local time of day, sessions, simulated device; the context config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from contextflix.data import load_dataset
from contextflix.data.context import (
    DEVICES,
    DeviceSimulation,
    load_context_config,
    local_hours,
    sessions,
    simulate_devices,
    time_of_day,
    timezone_of_zip,
    user_timezones,
)
from training.data import RatingsDataModule, SequenceDataModule
from training.hybrid import HybridDataModule


def test_timezone_from_zip_with_chicago_fallback() -> None:
    assert timezone_of_zip("10001") == "America/New_York"
    assert timezone_of_zip("94043") == "America/Los_Angeles"
    assert timezone_of_zip("70072-1234") == "America/Chicago"
    for unknown in ("L9G2B", "T8H1N", "", None, "00000"):
        assert timezone_of_zip(unknown) == "America/Chicago"
    users = pd.DataFrame({"user_id": [1, 2], "zip": ["85711", "V3N4P"]})
    assert user_timezones(users).tolist() == ["America/Phoenix", "America/Chicago"]
    assert user_timezones(pd.DataFrame({"user_id": [7]})).tolist() == ["America/Chicago"]


def test_local_time_uses_each_users_zone() -> None:
    noon_utc = 1_000_000_800 - (1_000_000_800 % 86400) + 12 * 3600
    hours = local_hours(
        np.array([noon_utc] * 3), np.array(["UTC", "America/New_York", "Asia/Tokyo"])
    )
    assert hours.tolist() == [12, 8, 21]


def test_time_of_day_buckets() -> None:
    hours = np.arange(24)
    buckets = time_of_day(hours)
    expected = [3] * 5 + [0] * 7 + [1] * 5 + [2] * 5 + [3] * 2
    assert buckets.tolist() == expected


def test_sessions_split_on_30_minute_gaps_per_user_in_time_order() -> None:
    users = np.array([1, 1, 1, 1, 2, 1])
    times = np.array([0, 1799, 3600, 100, 50, 3600 + 1800])
    # user 1 in time order: 0, 100, 1799 | 3600 | 5400 (gap exactly 30 min starts a session)
    assert sessions(users, times).tolist() == [0, 0, 1, 0, 0, 2]


def test_device_is_deterministic_per_session_and_independent_of_row_order() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(1, 50, 2000)
    session_ids = rng.integers(0, 20, 2000)
    genres = pd.Series([["Drama"]] * 2000)
    times = np.arange(2000)
    config = DeviceSimulation()
    devices = simulate_devices(users, session_ids, times, genres, config)
    assert set(np.unique(devices)) <= set(range(len(DEVICES)))
    assert np.array_equal(devices, simulate_devices(users, session_ids, times, genres, config))
    key = pd.DataFrame({"u": users, "s": session_ids, "d": devices})
    assert (key.groupby(["u", "s"])["d"].nunique() == 1).all()
    order = rng.permutation(2000)
    shuffled = simulate_devices(users[order], session_ids[order], times[order], genres, config)
    assert np.array_equal(shuffled, devices[order])
    other_seed = simulate_devices(users, session_ids, times, genres, DeviceSimulation(seed=1))
    assert not np.array_equal(other_seed, devices)


def test_device_mix_follows_dirichlet_prior_and_genre_effect() -> None:
    n = 60_000
    users = np.arange(n) % 3000
    session_ids = np.arange(n) // 3000
    times = np.arange(n)
    action = pd.Series([["Action"]] * n)
    off = simulate_devices(users, session_ids, times, action, DeviceSimulation())
    alpha = np.array(DeviceSimulation().alpha)
    share = np.bincount(off, minlength=4) / n
    assert np.allclose(share, alpha / alpha.sum(), atol=0.03)
    on = simulate_devices(users, session_ids, times, action, DeviceSimulation(genre_effect=2.0))
    assert (on == DEVICES.index("tv")).mean() > (off == DEVICES.index("tv")).mean() + 0.15


def test_device_config_is_validated() -> None:
    with pytest.raises(ValueError, match="alpha"):
        DeviceSimulation(alpha=(1.0, 1.0))
    with pytest.raises(ValueError, match="genre_effect"):
        DeviceSimulation(genre_effect=-1)
    with pytest.raises(ValueError, match="unknown devices"):
        DeviceSimulation(device_genres={"fridge": ("Drama",)})


# --- the context config: configs/context.yaml is the context --------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _write_config(folder: Path, **device: object) -> Path:
    values = {**DeviceSimulation().as_dict(), **device}
    path = folder / "context.yaml"
    path.write_text(yaml.safe_dump({"device": values}))
    return path


def test_the_shipped_context_config_holds_the_defaults() -> None:
    """So a DataModule without a context config and one given configs/context.yaml agree."""
    assert load_context_config(ROOT / "configs" / "context.yaml") == DeviceSimulation()
    assert load_context_config(None) == DeviceSimulation()
    plan = yaml.safe_load((ROOT / "configs" / "pipeline.yaml").read_text())
    assert plan["context"] == "configs/context.yaml"


def test_a_changed_context_config_changes_the_prepared_context(tmp_path: Path) -> None:
    changed = load_context_config(_write_config(tmp_path, seed=7, genre_effect=2.0))
    assert changed.seed == 7 and changed.genre_effect == 2.0
    default = load_dataset("ml-latest-small")
    other = load_dataset("ml-latest-small", device_simulation=changed)
    assert other.device_simulation == changed
    assert not np.array_equal(other.ratings["device"], default.ratings["device"])
    assert np.array_equal(other.ratings["time_of_day"], default.ratings["time_of_day"])  # real


@pytest.mark.parametrize("module", [RatingsDataModule, SequenceDataModule, HybridDataModule])
def test_every_datamodule_builds_the_context_of_its_context_config(
    module: type, tmp_path: Path
) -> None:
    path = _write_config(tmp_path, seed=11)
    data = module(dataset="ml-latest-small", context_config=str(path)).data
    expected = load_dataset("ml-latest-small", device_simulation=load_context_config(path))
    assert data.device_simulation.seed == 11
    assert np.array_equal(data.ratings["device"], expected.ratings["device"])
    assert module(dataset="ml-latest-small").data.device_simulation == DeviceSimulation()


def test_a_bad_context_config_names_the_file_and_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"context\.yaml: unknown device simulation .*'colour'"):
        load_context_config(_write_config(tmp_path, colour="red"))
    with pytest.raises(ValueError, match=r"context\.yaml: alpha needs 4 positive values"):
        load_context_config(_write_config(tmp_path, alpha=[1, 1]))
    with pytest.raises(ValueError, match=r"cannot read the context config .*missing\.yaml"):
        load_context_config(tmp_path / "missing.yaml")
    assert DeviceSimulation.from_dict(DeviceSimulation().as_dict()) == DeviceSimulation()
