"""Context of every rating: local time of day (real) and device (simulated).

Time of day is derived from the real timestamps, converted to the user's own time zone (from
the US zip code where the release has one, else America/Chicago, MovieLens' home zone).

MovieLens records no device, so the device is SIMULATED, and everything downstream labels it
so. The model, with every parameter in ``DeviceSimulation``:

1. each user u has a device mix ``p_u ~ Dirichlet(alpha)``, drawn from ``default_rng([seed, u])``;
2. each session s of u (ratings less than 30 minutes apart) draws one device from ``p_u``,
   with a uniform number derived from a hash of (seed, u, s);
3. optionally (``genre_effect`` > 0, default 0 = off) the session's first movie tilts the
   mix: device d gets weight ``p_u[d] * exp(genre_effect * f_d)`` where ``f_d`` is the share
   of the movie's genres in ``DEVICE_GENRES[d]``. With the default the device carries no
   information about what is watched, so any gain a model gets from it is noise.

The parameters live in a context config (``configs/context.yaml``, its ``device`` section):
``load_context_config`` reads it, the pipeline passes it to every training step, and a bundle
records the values it was trained with, so evaluation and serving rebuild the same context.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
import zipcodes

from contextflix.data.splits import chronological_order

TIMES_OF_DAY = ("morning", "afternoon", "evening", "night")
DEVICES = ("mobile", "tablet", "desktop", "tv")
UNKNOWN = 4  # the index models use for a context value that is not given (either dimension)
DEFAULT_TIMEZONE = "America/Chicago"
SESSION_GAP_SECONDS = 30 * 60

DEVICE_GENRES: dict[str, tuple[str, ...]] = {
    "mobile": ("Comedy", "Romance"),
    "tablet": ("Animation", "Children", "Children's", "Fantasy", "Musical"),
    "desktop": ("Documentary", "Drama", "Film-Noir"),
    "tv": ("Action", "Adventure", "Sci-Fi", "Thriller", "War"),
}


@dataclass(frozen=True)
class DeviceSimulation:
    """Parameters of the simulated device (see the module docstring)."""

    seed: int = 20240601
    alpha: tuple[float, ...] = (1.0, 0.5, 1.0, 0.8)
    genre_effect: float = 0.0
    device_genres: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEVICE_GENRES)
    )

    def __post_init__(self) -> None:
        if len(self.alpha) != len(DEVICES) or min(self.alpha) <= 0:
            raise ValueError(f"alpha needs {len(DEVICES)} positive values ({', '.join(DEVICES)})")
        if self.genre_effect < 0:
            raise ValueError("genre_effect must be >= 0 (0 turns the genre effect off)")
        unknown = set(self.device_genres) - set(DEVICES)
        if unknown:
            raise ValueError(f"device_genres has unknown devices {sorted(unknown)}; use {DEVICES}")

    def as_dict(self) -> dict:
        return {
            "seed": self.seed,
            "alpha": list(self.alpha),
            "genre_effect": self.genre_effect,
            "device_genres": {d: list(g) for d, g in self.device_genres.items()},
        }

    @classmethod
    def from_dict(cls, values: Mapping) -> DeviceSimulation:
        """The inverse of ``as_dict`` (JSON or YAML lists become tuples); unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown device simulation parameters {unknown}; use {sorted(known)}")
        values = dict(values)
        if "alpha" in values:
            values["alpha"] = tuple(float(a) for a in values["alpha"])
        if "device_genres" in values:
            values["device_genres"] = {d: tuple(g) for d, g in values["device_genres"].items()}
        return cls(**values)


def load_context_config(path: str | os.PathLike | None) -> DeviceSimulation:
    """The device simulation of a context config file (see configs/context.yaml).

    ``None`` means the defaults, which are also the values configs/context.yaml ships with.
    A missing file or a bad value is a ``ValueError`` naming the file.
    """
    if path is None:
        return DeviceSimulation()
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"cannot read the context config {path}: {error}") from error
    if not isinstance(config, dict) or not isinstance(config.get("device", {}), dict):
        raise ValueError(f"{path}: expected a mapping with a 'device' section")
    try:
        return DeviceSimulation.from_dict(config.get("device") or {})
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error


def timezone_of_zip(zip_code: object) -> str:
    """IANA zone of a US zip code; America/Chicago for unknown, foreign or missing codes."""
    digits = str(zip_code).strip()[:5] if zip_code is not None else ""
    if len(digits) != 5 or not digits.isdigit():
        return DEFAULT_TIMEZONE
    try:
        found = zipcodes.matching(digits)
    except (ValueError, TypeError):
        return DEFAULT_TIMEZONE
    zone = found[0].get("timezone") if found else None
    return zone or DEFAULT_TIMEZONE


def user_timezones(users: pd.DataFrame) -> pd.Series:
    """Zone per user_id, from the zip column where there is one."""
    if "zip" not in users.columns:
        return pd.Series(DEFAULT_TIMEZONE, index=users["user_id"].to_numpy(), name="timezone")
    zone_of = {code: timezone_of_zip(code) for code in users["zip"].unique()}
    return pd.Series(
        users["zip"].map(zone_of).to_numpy(), index=users["user_id"].to_numpy(), name="timezone"
    )


def local_hours(timestamps: np.ndarray, zones: np.ndarray) -> np.ndarray:
    """Local hour (0-23) of each UTC timestamp in its own zone, one vectorised pass per zone."""
    hours = np.empty(len(timestamps), dtype=np.int8)
    utc = pd.to_datetime(timestamps, unit="s", utc=True)
    codes, names = pd.factorize(zones)  # hashing, not sorting, millions of zone strings
    for code, zone in enumerate(names):
        rows = np.flatnonzero(codes == code)
        hours[rows] = utc[rows].tz_convert(zone).hour.to_numpy()
    return hours


def time_of_day(hours: np.ndarray) -> np.ndarray:
    """Bucket index into TIMES_OF_DAY: morning [5,12), afternoon [12,17), evening [17,22), night."""
    buckets = np.full(len(hours), TIMES_OF_DAY.index("night"), dtype=np.int8)
    buckets[(hours >= 5) & (hours < 12)] = 0
    buckets[(hours >= 12) & (hours < 17)] = 1
    buckets[(hours >= 17) & (hours < 22)] = 2
    return buckets


def sessions(user_ids: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """0-based session index within each user (ratings < 30 minutes apart share a session)."""
    order = chronological_order(user_ids, timestamps)
    users_sorted, times_sorted = user_ids[order], timestamps[order]
    new_user = np.r_[True, users_sorted[1:] != users_sorted[:-1]]
    new_session = new_user | np.r_[True, np.diff(times_sorted) >= SESSION_GAP_SECONDS]
    session_number = np.cumsum(new_session)
    first_of_user = session_number[new_user]
    user_start = first_of_user[np.cumsum(new_user) - 1]
    result = np.empty(len(user_ids), dtype=np.int32)
    result[order] = session_number - user_start
    return result


def _splitmix64(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def session_uniforms(seed: int, user_ids: np.ndarray, session_ids: np.ndarray) -> np.ndarray:
    """A reproducible uniform [0, 1) per (seed, user, session), independent of row order."""
    with np.errstate(over="ignore"):
        h = _splitmix64(np.full(len(user_ids), seed, dtype=np.uint64))
        h = _splitmix64(h ^ user_ids.astype(np.uint64))
        h = _splitmix64(h ^ session_ids.astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def device_mixes(user_ids: np.ndarray, config: DeviceSimulation) -> np.ndarray:
    """Each user's device mix, a Dirichlet draw seeded by (seed, user id)."""
    alpha = np.asarray(config.alpha)
    return np.stack(
        [np.random.default_rng([config.seed, int(u)]).dirichlet(alpha) for u in user_ids]
    )


def simulate_devices(
    user_ids: np.ndarray,
    session_ids: np.ndarray,
    timestamps: np.ndarray,
    item_genres: pd.Series,
    config: DeviceSimulation,
) -> np.ndarray:
    """Device index (into DEVICES) per rating: one draw per session from the user's mix.

    ``item_genres`` holds each rating's movie genres (list of str), used only when
    ``config.genre_effect`` > 0, and then only the session's first movie counts.
    """
    unique_users, user_pos = np.unique(user_ids, return_inverse=True)
    weights = device_mixes(unique_users, config)[user_pos]
    if config.genre_effect > 0:
        affinity = _genre_affinity(user_ids, session_ids, timestamps, item_genres, config)
        weights = weights * np.exp(config.genre_effect * affinity)
        weights /= weights.sum(axis=1, keepdims=True)
    draws = session_uniforms(config.seed, user_ids, session_ids)
    devices = (draws[:, None] >= np.cumsum(weights, axis=1)).sum(axis=1)
    return np.minimum(devices, len(DEVICES) - 1).astype(np.int8)


def _genre_affinity(
    user_ids: np.ndarray,
    session_ids: np.ndarray,
    timestamps: np.ndarray,
    item_genres: pd.Series,
    config: DeviceSimulation,
) -> np.ndarray:
    """Per rating, share of its session's first (earliest) movie's genres favouring each device."""
    share = np.zeros((len(user_ids), len(DEVICES)))
    genres = item_genres.to_numpy()
    for d, device in enumerate(DEVICES):
        favoured = set(config.device_genres.get(device, ()))
        share[:, d] = [len(favoured.intersection(g)) / len(g) if len(g) else 0.0 for g in genres]
    frame = pd.DataFrame({"u": user_ids, "s": session_ids, "t": timestamps})
    first_row = frame.groupby(["u", "s"])["t"].transform("idxmin").to_numpy()
    return share[first_row]
