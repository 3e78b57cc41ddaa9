"""A bundle: everything serving needs, in one folder that is also a Hugging Face model repo.

Layout (docs/architecture.md, "The bundle"): ``config.json`` (id maps, context vocabulary and
the context config's values, each model's constructor arguments, the data licence, training
info, versions), one ``<model>.safetensors`` per present model, ``catalog.parquet``,
``interactions.parquet``, ``users.parquet``, ``metrics.json`` (once evaluated), ``reports/``,
``docs/`` (the protocols and architecture the card links to), a generated ``README.md`` model
card and ``manifest.json`` (SHA-256 of every other file).

Licence-aware publishing: interactions and users are copies of the data set. When its licence
forbids redistribution (contextflix.data.licences), a push leaves them out (contextflix.hub)
and ``load_bundle`` rebuilds them from the data set itself (a local copy or the checksummed
download), checking them against the content digests config.json recorded
(contextflix.bundle_data).

Loading never unpickles: JSON, safetensors and parquet only. A model is rebuilt from its
config, then every tensor's shape is checked against what that model expects before the
weights go in, so a bundle that does not match the code is refused with a message naming the
tensor, not with a cryptic ``load_state_dict`` error. A missing optional model (absent from
the config) is fine: serving degrades. A model the config names whose file is missing or
broken is an error.

Export and load share this one file (a little over 400 lines) on purpose: what the writer puts
in a bundle and what the reader checks stay side by side, so the format cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from contextflix.bundle_data import (
    DATA_TABLES,
    SERVED_INTERACTION_COLUMNS,
    rebuild_data_tables,
    table_records,
    withheld_files,
)
from contextflix.card import model_card
from contextflix.data import DataError
from contextflix.data.context import DEVICES, TIMES_OF_DAY, DeviceSimulation
from contextflix.data.licences import data_licence
from contextflix.models.collaborative import MatrixFactorization
from contextflix.models.content import ContentModel
from contextflix.models.hybrid import ContextHybrid
from contextflix.models.popularity import UNKNOWN, ContextPopularity
from contextflix.models.scoring import BaseModels
from contextflix.models.sequential import SequentialRecommender

FORMAT_VERSION = 2
"""2: the hybrid has no rating head; bundles also record their data licence."""
MODEL_CLASSES: dict[str, type[nn.Module]] = {
    "popularity": ContextPopularity,
    "collaborative": MatrixFactorization,
    "content": ContentModel,
    "sequential": SequentialRecommender,
    "hybrid": ContextHybrid,
    "hybrid_no_context": ContextHybrid,
}
TABLES = ("catalog", "interactions", "users")
REQUIRED_COLUMNS = {
    "catalog": ("item_id", "title", "year", "genres", "n_ratings"),
    "interactions": SERVED_INTERACTION_COLUMNS,
    "users": ("user_id", "n_ratings", "timezone"),
}
MANIFEST = "manifest.json"
CONFIG = "config.json"
METRICS = "metrics.json"
CARD = "README.md"
REPORTS = "reports"
DOCS = "docs"
DOCS_SOURCE = Path(__file__).resolve().parents[1] / DOCS  # the source tree's docs/
DOC_FILES = ("protocols.md", "architecture.md")


class BundleError(Exception):
    """A bundle that cannot be exported or loaded; the message says which file and why."""


@dataclass
class Bundle:
    config: dict  # the parsed config.json
    models: BaseModels  # popularity + whichever base models are present
    hybrid: ContextHybrid | None
    hybrid_no_context: ContextHybrid | None
    catalog: pd.DataFrame  # one row per item_idx, in order: item_id, title, year, genres (list[str]), n_ratings, and tmdb_id/imdb_id where present
    interactions: pd.DataFrame  # what serving needs: protocol S train + validation interactions: user_idx, item_idx, rating, timestamp, time_of_day, device
    users: pd.DataFrame  # one row per user_idx, in order: user_id, n_ratings, timezone (+ gender, age, occupation where present)
    metrics: dict | None  # metrics.json (None when not evaluated yet)
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.config["name"]

    def named_models(self) -> dict[str, nn.Module]:
        """{file stem: module} of every present model, in a fixed order."""
        found = {
            "popularity": self.models.popularity,
            "collaborative": self.models.collaborative,
            "content": self.models.content,
            "sequential": self.models.sequential,
            "hybrid": self.hybrid,
            "hybrid_no_context": self.hybrid_no_context,
        }
        return {name: model for name, model in found.items() if model is not None}


# --- export ---------------------------------------------------------------------------------


def export_bundle(
    bundle: Bundle,
    path: str | Path,
    *,
    card_extra: dict | None = None,
    reports_dir: str | Path | None = None,
) -> Path:
    """Write ``bundle`` to the folder ``path`` (replacing it) and return that path.

    ``bundle.config`` supplies what only the caller knows: ``name``, ``dataset``, ``training``
    (hyper-parameters, epochs, seeds...) and optionally ``context`` (``config``: the context
    config file, ``device_simulation``: the parameters the data set was built with;
    DeviceSimulation() defaults if absent) and ``data_licence`` (default: the data set's, from
    contextflix.data.licences). Everything derivable (id maps, vocabulary, model configs, the
    data tables' content digests, versions, date, hardware) is filled in here. ``card_extra``
    entries are merged into the model card's front matter. ``reports_dir`` (default: the
    loaded bundle's own ``reports/``) is copied to ``reports/``.

    Everything is written to a temporary sibling folder first and renamed into place, so a
    failed export never leaves a half-written bundle where a good one is expected.
    """
    path = Path(path)
    if "name" not in bundle.config:
        raise BundleError("bundle.config needs a 'name'")
    if reports_dir is None and bundle.path is not None and (bundle.path / REPORTS).is_dir():
        reports_dir = bundle.path / REPORTS
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        config = _full_config(bundle)
        _write_json(tmp / CONFIG, config)
        for name, model in bundle.named_models().items():
            tensors = {
                k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()
            }
            save_file(
                tensors, str(tmp / f"{name}.safetensors"), metadata={"format": "pt", "model": name}
            )
        for table in TABLES:
            _frame(bundle, table).to_parquet(tmp / f"{table}.parquet", index=False)
        if bundle.metrics is not None:
            _write_json(tmp / METRICS, bundle.metrics)
        if reports_dir is not None:
            shutil.copytree(reports_dir, tmp / REPORTS)
        _copy_docs(tmp / DOCS)
        card = model_card(config, bundle.metrics, withheld_files(config), card_extra)
        card.save(tmp / CARD)
        _write_json(tmp / MANIFEST, {"algorithm": "sha256", "files": _digests(tmp)})
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _frame(bundle: Bundle, table: str) -> pd.DataFrame:
    frame = getattr(bundle, table)
    missing = [c for c in REQUIRED_COLUMNS[table] if c not in frame.columns]
    if missing:
        raise BundleError(f"{table} lacks the columns {missing}")
    return frame.reset_index(drop=True)


def _copy_docs(target: Path) -> None:
    """The documents the model card links to, when ContextFlix runs from its source tree."""
    for name in DOC_FILES:
        if (DOCS_SOURCE / name).is_file():
            target.mkdir(exist_ok=True)
            shutil.copyfile(DOCS_SOURCE / name, target / name)


def _model_config(model: nn.Module) -> dict:
    """Constructor arguments (SequentialRecommender keeps them as a dict, the others a method)."""
    config = model.config
    return dict(config() if callable(config) else config)


def _full_config(bundle: Bundle) -> dict:
    given = json.loads(json.dumps(bundle.config))  # a deep, JSON-able copy
    context = given.get("context", {})
    config = {"format_version": FORMAT_VERSION, **given}
    config["format_version"] = FORMAT_VERSION
    config.setdefault("dataset", None)
    config["data_licence"] = (
        given.get("data_licence") or data_licence(str(config["dataset"])).as_dict()
    )
    config["data_tables"] = table_records({t: _frame(bundle, t) for t in DATA_TABLES})
    config["item_ids"] = [int(i) for i in bundle.catalog["item_id"]]
    config["user_ids"] = [int(u) for u in bundle.users["user_id"]]
    config["context"] = {
        "times_of_day": list(TIMES_OF_DAY),
        "devices": list(DEVICES),
        "unknown_index": UNKNOWN,
        "device_simulated": True,
        "config": context.get("config"),
        "device_simulation": context.get("device_simulation", DeviceSimulation().as_dict()),
    }
    config["models"] = {name: _model_config(m) for name, m in bundle.named_models().items()}
    config.setdefault("training", {})
    config["versions"] = _versions()
    config["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    config["hardware"] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return config


def _versions() -> dict:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "lightning": version("lightning"),
        "contextflix": version("contextflix"),
        "safetensors": version("safetensors"),
        "pandas": pd.__version__,
    }


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digests(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {p.relative_to(folder).as_posix(): _sha256(p) for p in files}


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path``; an existing bundle there is moved aside, then removed."""
    if path.exists() and not path.is_dir():
        raise BundleError(f"{path} exists and is not a folder")
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        path.rename(old)
    try:
        tmp.rename(path)
    except BaseException:
        if old is not None:
            old.rename(path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --- load -----------------------------------------------------------------------------------


def load_bundle(path: str | Path, data_dir: str | Path | None = None) -> Bundle:
    """Read and verify a bundle folder; every problem is a ``BundleError`` naming the file.

    Checks, in order: the format version, that every file the config and manifest name is
    there, every file's SHA-256 against the manifest, and every tensor's shape against the
    model its config builds. Models come back in eval mode.

    A bundle published without its data tables (its data set may not be redistributed) gets
    them rebuilt from the data set (``load_dataset`` with ``data_dir``, then
    $CONTEXTFLIX_DATA_DIR, the cache or a checksummed download) and checked against the
    digests config.json recorded.
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path} is not a bundle folder")
    config = _read_json(path, CONFIG)
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path / CONFIG}: bundle format_version {version!r} is not supported "
            f"(this contextflix reads format_version {FORMAT_VERSION}); re-export it with "
            "`python -m training pipeline`"
        )
    models_config = config.get("models", {})
    unknown = sorted(set(models_config) - set(MODEL_CLASSES))
    if unknown:
        raise BundleError(f"{path / CONFIG}: unknown models {unknown}")
    if "popularity" not in models_config:
        raise BundleError(f"{path / CONFIG}: the popularity model is required (the fallback)")
    rebuild = [
        table
        for table in DATA_TABLES
        if f"{table}.parquet" in withheld_files(config) and not (path / f"{table}.parquet").exists()
    ]
    _verify_files(path, [f"{name}.safetensors" for name in models_config], rebuild)

    models = {name: _load_model(path, name, cfg) for name, cfg in models_config.items()}
    tables = {t: _read_table(path, t) for t in TABLES if t not in rebuild}
    if rebuild:
        tables.update(_rebuild(path, config, rebuild, data_dir))
    catalog, interactions, users = (tables[t] for t in TABLES)
    interactions = interactions[list(REQUIRED_COLUMNS["interactions"])]  # what serving reads
    catalog["genres"] = catalog["genres"].map(list)
    _check_ids(path, config, catalog, users)
    return Bundle(
        config=config,
        models=BaseModels(
            popularity=models["popularity"],
            collaborative=models.get("collaborative"),
            content=models.get("content"),
            sequential=models.get("sequential"),
        ),
        hybrid=models.get("hybrid"),
        hybrid_no_context=models.get("hybrid_no_context"),
        catalog=catalog,
        interactions=interactions,
        users=users,
        metrics=_read_json(path, METRICS) if (path / METRICS).exists() else None,
        path=path,
    )


def _read_json(folder: Path, name: str) -> dict:
    file = folder / name
    if not file.is_file():
        raise BundleError(f"{folder}: missing file {name}")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"{file}: not valid JSON ({error})") from error


def _verify_files(folder: Path, model_files: list[str], rebuild: list[str]) -> None:
    manifest = _read_json(folder, MANIFEST).get("files", {})
    absent = {f"{t}.parquet" for t in rebuild}  # rebuilt from the data set, checked there
    required = [CONFIG, *model_files, *(f"{t}.parquet" for t in TABLES)]
    for name in required:
        if name in absent:
            continue
        if not (folder / name).is_file():
            raise BundleError(f"{folder}: missing file {name}")
        if name not in manifest:
            raise BundleError(f"{folder}: {name} is not listed in {MANIFEST}")
    for name, expected in manifest.items():
        if name in absent:
            continue
        file = folder / name
        if not file.is_file():
            raise BundleError(f"{folder}: missing file {name} (listed in {MANIFEST})")
        found = _sha256(file)
        if found != expected:
            raise BundleError(
                f"{file}: corrupted, SHA-256 is {found} but {MANIFEST} says {expected}"
            )


def _load_model(folder: Path, name: str, config: dict) -> nn.Module:
    file = folder / f"{name}.safetensors"
    try:
        model = MODEL_CLASSES[name](**config)
    except (TypeError, ValueError) as error:
        raise BundleError(f"{folder / CONFIG}: cannot build model {name!r}: {error}") from error
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError) as error:
        raise BundleError(f"{file}: not a readable safetensors file ({error})") from error
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in tensors:
            raise BundleError(f"{file}: model {name!r} lacks tensor {key!r}")
        if tuple(tensors[key].shape) != tuple(tensor.shape):
            raise BundleError(
                f"{file}: model {name!r} tensor {key!r} has shape {tuple(tensors[key].shape)}, "
                f"expected {tuple(tensor.shape)} from its config"
            )
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise BundleError(f"{file}: model {name!r} has unexpected tensors {extra}")
    model.load_state_dict(tensors)
    return model.eval()


def _rebuild(
    folder: Path, config: dict, tables: list[str], data_dir: str | Path | None
) -> dict[str, pd.DataFrame]:
    name = config.get("dataset")
    try:
        return rebuild_data_tables(config, tables, data_dir)
    except (DataError, OSError) as error:
        raise BundleError(
            f"{folder}: this bundle ships without the {name} data ({', '.join(tables)}): its "
            f"licence forbids redistribution, so it is rebuilt from your own copy of {name}, "
            f"which is not available. Put the {name} files in $CONTEXTFLIX_DATA_DIR/{name}/ "
            f"(or pass data_dir), or allow the download from GroupLens. ({error})"
        ) from None
    except (KeyError, ValueError) as error:
        raise BundleError(f"{folder}: cannot rebuild the {name} data: {error}") from None


def _read_table(folder: Path, table: str) -> pd.DataFrame:
    """The table; of the interactions only the columns serving reads (at 25M ratings, reading
    the other columns is most of a load)."""
    file = folder / f"{table}.parquet"
    try:
        names = pq.read_schema(file).names
        missing = [c for c in REQUIRED_COLUMNS[table] if c not in names]
        if missing:
            raise BundleError(f"{file}: lacks the columns {missing}")
        columns = list(REQUIRED_COLUMNS[table]) if table == "interactions" else None
        return pd.read_parquet(file, columns=columns)
    except BundleError:
        raise
    except Exception as error:  # pyarrow raises several types for a broken file
        raise BundleError(f"{file}: not a readable parquet file ({error})") from error


def _check_ids(folder: Path, config: dict, catalog: pd.DataFrame, users: pd.DataFrame) -> None:
    """The id maps are the tables' row order; the config's lists must agree with them."""
    if catalog["item_id"].tolist() != config.get("item_ids"):
        raise BundleError(f"{folder}: catalog.parquet item ids differ from config.json item_ids")
    if users["user_id"].tolist() != config.get("user_ids"):
        raise BundleError(f"{folder}: users.parquet user ids differ from config.json user_ids")
    for name, model_config in config["models"].items():
        n_items = model_config.get("n_items")
        if n_items is not None and n_items != len(catalog):
            raise BundleError(
                f"{folder}: model {name!r} has n_items={n_items} but the catalog {len(catalog)} rows"
            )
