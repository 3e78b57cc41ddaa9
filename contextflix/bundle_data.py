"""A bundle's copies of the data set: their digests, and rebuilding them where not shipped.

``interactions.parquet`` (protocol S's train and validation rows, what serving knows of the
data-set users) and ``users.parquet`` are copies of the data set. When its licence forbids
redistribution (contextflix.data.licences), a published bundle leaves them out and whoever
loads it rebuilds them from their own copy of the data set: same release, same context
config, same split, so the same frames, which the recorded content digests confirm.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from contextflix.data import load_dataset
from contextflix.data.context import DeviceSimulation

DATA_TABLES = ("interactions", "users")
SERVED_INTERACTION_COLUMNS = (
    "user_idx",
    "item_idx",
    "rating",
    "timestamp",
    "time_of_day",
    "device",
)
"""What serving reads of the interactions: a loaded bundle keeps only these columns."""


def table_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's column names and values, whatever file format it was stored in."""
    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def table_records(frames: dict[str, pd.DataFrame]) -> dict[str, dict]:
    """What config.json records of each data table: its row count and content digest."""
    return {
        table: {"rows": len(frames[table]), "sha256": table_digest(frames[table])}
        for table in DATA_TABLES
    }


def withheld_files(config: dict) -> list[str]:
    """The data files a published copy leaves out: all of them where the licence forbids it.

    A bundle exported before licences were recorded has no ``data_licence`` and withholds
    nothing (it is loaded as it always was; publishing asks for a re-export).
    """
    licence = config.get("data_licence")
    if licence is None or licence["redistributable"]:
        return []
    return [f"{table}.parquet" for table in DATA_TABLES]


def rebuild_data_tables(
    config: dict, tables: list[str], data_dir: str | Path | None = None
) -> dict[str, pd.DataFrame]:
    """``tables`` rebuilt from the data set config.json names, checked against its digests.

    Raises ``DataError`` (or ``OSError``) when the data set is not available, and
    ``ValueError`` when a rebuilt table differs from the recorded one (another release of the
    data set, or another ContextFlix version), so serving never runs on other data than the
    models were trained on.
    """
    name = config["dataset"]
    simulation = DeviceSimulation.from_dict(config["context"]["device_simulation"])
    dataset = load_dataset(name, data_dir, simulation)
    frames = {"interactions": dataset.served_interactions(), "users": dataset.users}
    recorded = config.get("data_tables") or {}
    for table in tables:
        expected = (recorded.get(table) or {}).get("sha256")
        found = table_digest(frames[table])
        served = (  # a loaded bundle exported again records its served columns only
            table_digest(frames[table][list(SERVED_INTERACTION_COLUMNS)])
            if table == "interactions"
            else found
        )
        if expected not in (found, served):
            raise ValueError(
                f"{table} rebuilt from {name} differ from what the models were trained on "
                f"(content digest {found}, config.json records {expected})"
            )
    return {table: frames[table] for table in tables}
