"""A bundle: everything serving needs, in one folder that is also a Hugging Face model repo.

Layout (DESIGN.md, "Bundle"): ``config.json`` (id maps, context vocabulary, each model's
constructor arguments, training info, versions), one ``<model>.safetensors`` per present model,
``catalog.parquet``, ``interactions.parquet``, ``users.parquet``, ``metrics.json`` (once
evaluated), ``reports/``, a generated ``README.md`` model card and ``manifest.json`` (SHA-256 of
every other file).

Loading never unpickles: JSON, safetensors and parquet only. A model is rebuilt from its
config, then every tensor's shape is checked against what that model expects before the
weights go in, so a bundle that does not match the code is refused with a message naming the
tensor, not with a cryptic ``load_state_dict`` error. A missing optional model (absent from
the config) is fine: serving degrades. A model the config names whose file is missing or
broken is an error.
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
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from contextflix.data.context import DEVICES, TIMES_OF_DAY, DeviceSimulation
from contextflix.models.collaborative import MatrixFactorization
from contextflix.models.content import ContentModel
from contextflix.models.hybrid import ContextHybrid
from contextflix.models.popularity import UNKNOWN, ContextPopularity
from contextflix.models.scoring import BaseModels
from contextflix.models.sequential import SequentialRecommender

FORMAT_VERSION = 1
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
    "interactions": ("user_idx", "item_idx", "rating", "timestamp", "time_of_day", "device"),
    "users": ("user_id", "n_ratings", "timezone"),
}
MANIFEST = "manifest.json"
CONFIG = "config.json"
METRICS = "metrics.json"
CARD = "README.md"
REPORTS = "reports"


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
    (hyper-parameters, epochs, seeds...) and optionally ``context.device_simulation`` (the
    parameters the data set was built with; DeviceSimulation() defaults if absent). Everything
    derivable (id maps, vocabulary, model configs, versions, date, hardware) is filled in here.
    ``card_extra`` entries are merged into the model card's front matter. ``reports_dir``
    (default: the loaded bundle's own ``reports/``) is copied to ``reports/``.

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
        (tmp / CARD).write_text(model_card(config, bundle.metrics, card_extra), encoding="utf-8")
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
    config["item_ids"] = [int(i) for i in bundle.catalog["item_id"]]
    config["user_ids"] = [int(u) for u in bundle.users["user_id"]]
    config["context"] = {
        "times_of_day": list(TIMES_OF_DAY),
        "devices": list(DEVICES),
        "unknown_index": UNKNOWN,
        "device_simulated": True,
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


def load_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle folder; every problem is a ``BundleError`` naming the file.

    Checks, in order: the format version, that every file the config and manifest name is
    there, every file's SHA-256 against the manifest, and every tensor's shape against the
    model its config builds. Models come back in eval mode.
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path} is not a bundle folder")
    config = _read_json(path, CONFIG)
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path / CONFIG}: bundle format_version {version!r} is not supported "
            f"(this contextflix reads format_version {FORMAT_VERSION})"
        )
    models_config = config.get("models", {})
    unknown = sorted(set(models_config) - set(MODEL_CLASSES))
    if unknown:
        raise BundleError(f"{path / CONFIG}: unknown models {unknown}")
    if "popularity" not in models_config:
        raise BundleError(f"{path / CONFIG}: the popularity model is required (the fallback)")
    _verify_files(path, [f"{name}.safetensors" for name in models_config])

    models = {name: _load_model(path, name, cfg) for name, cfg in models_config.items()}
    catalog, interactions, users = (_read_table(path, table) for table in TABLES)
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


def _verify_files(folder: Path, model_files: list[str]) -> None:
    manifest = _read_json(folder, MANIFEST).get("files", {})
    required = [CONFIG, *model_files, *(f"{t}.parquet" for t in TABLES)]
    for name in required:
        if not (folder / name).is_file():
            raise BundleError(f"{folder}: missing file {name}")
        if name not in manifest:
            raise BundleError(f"{folder}: {name} is not listed in {MANIFEST}")
    for name, expected in manifest.items():
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


def _read_table(folder: Path, table: str) -> pd.DataFrame:
    file = folder / f"{table}.parquet"
    try:
        frame = pd.read_parquet(file)
    except Exception as error:  # pyarrow raises several types for a broken file
        raise BundleError(f"{file}: not a readable parquet file ({error})") from error
    missing = [c for c in REQUIRED_COLUMNS[table] if c not in frame.columns]
    if missing:
        raise BundleError(f"{file}: lacks the columns {missing}")
    return frame


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


# --- model card -----------------------------------------------------------------------------

GROUPLENS_CITATION = """@article{harper2015movielens,
  author  = {Harper, F. Maxwell and Konstan, Joseph A.},
  title   = {The MovieLens Datasets: History and Context},
  journal = {ACM Transactions on Interactive Intelligent Systems (TiiS)},
  volume  = {5},
  number  = {4},
  pages   = {19:1--19:19},
  year    = {2015},
  doi     = {10.1145/2827872}
}"""
METRIC_ORDER = ("hr@10", "ndcg@10", "mrr@10", "precision@10", "recall@10", "rmse")
MODEL_ORDER = (
    "popularity",
    "collaborative",
    "content",
    "sequential",
    "hybrid_no_context",
    "hybrid",
)


def model_card(config: dict, metrics: dict | None, extra: dict | None = None) -> str:
    """The README.md: Hub front matter, then what it is, metrics, protocols, data, licence."""
    dataset = config.get("dataset") or "MovieLens"
    simulation = config["context"]["device_simulation"]
    front = {
        "library_name": "pytorch",
        "tags": ["recommender-system", "movielens", "context-aware", "pytorch-lightning"],
        "datasets": [dataset],
        "license": "other",
        "license_name": "grouplens-movielens",
        "license_link": "https://grouplens.org/datasets/movielens/",
        "model-index": _model_index(config["name"], dataset, metrics),
        **(extra or {}),
    }
    if not front["model-index"]:
        del front["model-index"]  # the Hub rejects an empty one; no metrics, no index
    models = ", ".join(config["models"])
    default_effect = DeviceSimulation().genre_effect
    sections = [
        f"# {config['name']}",
        "## What it is",
        f"A context-aware movie recommender trained on MovieLens `{dataset}` by ContextFlix: "
        "context-aware popularity, biased matrix factorisation, a content model over genres, "
        "year and tags, and a SASRec-style sequential Transformer, mixed by a hybrid whose "
        "weights depend on the time of day, the device and the history length "
        f"(`hybrid_no_context` is the same hybrid blind to context). Models in this bundle: {models}.",
        "## Metrics",
        _metrics_table(metrics),
        "## Protocols",
        "Defined in ContextFlix's PROTOCOLS.md.\n\n"
        "- **S (top-N):** per user, ratings sorted by time; the last is the test target, the "
        "second-last the validation target, earlier ones train. Full ranking over every rated "
        "item minus the user's history, no sampled negatives; HR, NDCG, MRR, precision and "
        "recall at 10 with 95% bootstrap intervals over users (1,000 resamples, seed 0). The "
        "models here are the ones trained on S's train part; `interactions.parquet` holds the "
        "train and validation interactions, so serving a data-set user reproduces the test ranking.\n"
        "- **R (rating prediction):** a seeded 90/10 random split of the ratings "
        "(`default_rng(42)`), RMSE on the test part with predictions clipped to the rating "
        "range; its figures come from a separate fit on R's train part.",
        "## What is simulated",
        "Time of day is real (each rating's timestamp in the user's time zone). **The device "
        "is simulated** (MovieLens records none): each user gets a device mix from a Dirichlet "
        "prior seeded by the user id, each session (ratings < 30 minutes apart) draws one "
        f"device. Parameters used: `{json.dumps(simulation)}`. `genre_effect` (how much a "
        f"session's first movie tilts the device) defaults to {default_effect} (off: the device "
        "then carries no information about what is watched); this bundle used "
        f"{simulation.get('genre_effect')}.",
        "## Data licence",
        "The MovieLens data are provided by GroupLens Research (University of Minnesota) under "
        "their terms of use: research use; **no commercial use** without permission; no "
        "redistribution without permission; cite the paper below. This bundle contains derived "
        "data (the catalogue, training interactions and weights fitted to them) and falls under "
        "the same terms. See https://grouplens.org/datasets/movielens/.",
        "## Citation",
        f"```bibtex\n{GROUPLENS_CITATION}\n```",
        "## How to load",
        "```python\nfrom contextflix.bundle import load_bundle\n\n"
        'bundle = load_bundle("path/to/bundle")  # verifies checksums and tensor shapes\n'
        "scores = bundle.models.scores(requests)  # contextflix.models.scoring.Requests\n```",
        "## How to pull from the Hub",
        "```python\nfrom contextflix.bundle import load_bundle\nfrom contextflix.hub import pull_bundle\n\n"
        'bundle = load_bundle(pull_bundle("OWNER/NAME"))  # or "OWNER/NAME@revision"\n```\n\n'
        "or `hf download OWNER/NAME --local-dir bundle`, or run the app with "
        "`CONTEXTFLIX_BUNDLE=OWNER/NAME python app.py`.",
    ]
    return f"---\n{_yaml(front)}---\n\n" + "\n\n".join(sections) + "\n"


def _model_index(name: str, dataset: str, metrics: dict | None) -> list[dict]:
    """Hub ``model-index`` results: only values that metrics.json holds, one per model/protocol."""
    results = []
    for protocol, block in ((metrics or {}).get("protocols") or {}).items():
        for model, values in (block.get("models") or {}).items():
            entries = [
                {"type": key, "value": value, "name": f"{key} (protocol {protocol}, {model})"}
                for key, value in values.items()
                if isinstance(value, int | float) and not isinstance(value, bool)
            ]
            if entries:
                task = "top-n recommendation" if protocol == "S" else "rating prediction"
                results.append(
                    {
                        "task": {"type": "recommendation", "name": f"{task} ({model})"},
                        "dataset": {"type": dataset, "name": f"MovieLens {dataset}"},
                        "metrics": entries,
                    }
                )
    return [{"name": name, "results": results}] if results else []


def _metrics_table(metrics: dict | None) -> str:
    protocols = (metrics or {}).get("protocols") or {}
    if not protocols:
        return "Not evaluated: this bundle has no metrics.json yet."
    parts = []
    for protocol, block in protocols.items():
        models = block.get("models") or {}
        keys = {k for v in models.values() for k, x in v.items() if not k.endswith("_ci")}
        columns = [k for k in METRIC_ORDER if k in keys] + sorted(keys - set(METRIC_ORDER))
        order = [m for m in MODEL_ORDER if m in models] + sorted(set(models) - set(MODEL_ORDER))
        size = {k: v for k, v in block.items() if k.startswith("n_")}
        lines = [
            f"Protocol {protocol} ({', '.join(f'{k} = {v}' for k, v in size.items())}); "
            "95% intervals in brackets where computed.",
            "",
            "| model | " + " | ".join(columns) + " |",
            "|---" * (len(columns) + 1) + "|",
        ]
        for model in order:
            cells = [_cell(models[model], key) for key in columns]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _cell(values: dict, key: str) -> str:
    value = values.get(key)
    if not isinstance(value, int | float):
        return "-"
    interval = values.get(f"{key}_ci")
    if isinstance(interval, list | tuple) and len(interval) == 2:
        return f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"
    return f"{value:.4f}"


def _yaml(value: object, indent: int = 0) -> str:
    """Block YAML for dicts/lists of JSON scalars (JSON scalars are valid YAML scalars)."""
    pad = " " * indent
    out = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{key}:\n{_yaml(item, indent + 2)}")
            else:
                out.append(f"{pad}{key}: {json.dumps(item)}\n")
    else:
        for item in value:
            if isinstance(item, dict | list) and item:
                nested = _yaml(item, indent + 2)
                out.append(f"{pad}- {nested[indent + 2 :]}")
            else:
                out.append(f"{pad}- {json.dumps(item)}\n")
    return "".join(out)
