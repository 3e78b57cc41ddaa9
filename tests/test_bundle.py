"""Bundle export/load: exact round trip, no pickle, and each kind of damage refused by name."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file

from contextflix import bundle as bundle_module
from contextflix import bundle_data
from contextflix.bundle import (
    FORMAT_VERSION,
    REQUIRED_COLUMNS,
    Bundle,
    BundleError,
    export_bundle,
    load_bundle,
)
from contextflix.bundle_data import table_digest, withheld_files
from contextflix.card import TAGS
from contextflix.data import DownloadError, load_dataset
from contextflix.data.licences import data_licence
from contextflix.data.splits import chronological_order
from contextflix.hub import BUNDLE_PATTERNS, publishable_files
from contextflix.models.collaborative import MatrixFactorization
from contextflix.models.content import ContentModel
from contextflix.models.hybrid import ContextHybrid, standardise
from contextflix.models.popularity import ContextPopularity
from contextflix.models.scoring import SOURCES, BaseModels, Requests
from contextflix.models.sequential import SequentialRecommender
from tests.conftest import requires_ml100k

N_USERS, N_ITEMS = 7, 12
GENRES = ["Action", "Comedy", "Drama", "Romance"]
METRICS = {
    "dataset": "tiny",
    "protocols": {
        "S": {
            "n_users": N_USERS,
            "models": {
                "popularity": {"hr@10": 0.5, "ndcg@10": 0.25, "ndcg@10_ci": [0.1, 0.4]},
                "hybrid": {"hr@10": 0.75, "ndcg@10": 0.375, "ndcg@10_ci": [0.2, 0.5]},
            },
        },
        "R": {"n_test": 9, "models": {"collaborative": {"rmse": 0.93}}},
    },
}


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random values in every tensor, so a round trip that drops or mixes one is caught."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
    return model.eval()


def tiny_bundle(*, content: bool = True, metrics: dict | None = METRICS) -> Bundle:
    """7 users, 12 items, every model small and random (a few milliseconds to build)."""
    rng = np.random.default_rng(0)
    catalog = pd.DataFrame(
        {
            "item_id": np.arange(N_ITEMS) * 10 + 1,
            "title": [f"Movie {i}" for i in range(N_ITEMS)],
            "year": rng.integers(1950, 2020, N_ITEMS),
            "genres": [
                list(rng.choice(GENRES, size=1 + i % 2, replace=False)) for i in range(N_ITEMS)
            ],
            "n_ratings": rng.integers(1, 50, N_ITEMS),
            "imdb_id": rng.integers(100000, 999999, N_ITEMS),
        }
    )
    rows = [
        (
            u,
            int(i),
            float(rng.integers(1, 6)),
            1_000_000 + 3600 * k,
            int(rng.integers(4)),
            int(rng.integers(4)),
        )
        for u in range(N_USERS)
        for k, i in enumerate(rng.choice(N_ITEMS, size=3 + u % 3, replace=False))
    ]
    columns = ["user_idx", "item_idx", "rating", "timestamp", "time_of_day", "device"]
    interactions = pd.DataFrame(rows, columns=columns)
    users = pd.DataFrame(
        {
            "user_id": np.arange(N_USERS) + 100,
            "n_ratings": interactions.groupby("user_idx").size().to_numpy(),
            "timezone": "America/Chicago",
        }
    )
    popularity = ContextPopularity.from_frame(interactions, N_ITEMS)
    models = BaseModels(
        popularity=popularity,
        collaborative=_randomise(MatrixFactorization(N_USERS, N_ITEMS, 4, global_mean=3.5), 1),
        content=(
            _randomise(ContentModel.from_movies(catalog, n_tags=0, dim=4, hidden=8), 2)
            if content
            else None
        ),
        sequential=_randomise(
            SequentialRecommender(N_ITEMS, dim=8, heads=2, layers=1, max_len=4), 3
        ),
    )
    return Bundle(
        config={"name": "tiny-test", "dataset": "tiny", "training": {"epochs": 1, "seed": 0}},
        models=models,
        hybrid=_randomise(ContextHybrid(SOURCES, hidden=4), 4),
        hybrid_no_context=_randomise(ContextHybrid(SOURCES, hidden=4, use_context=False), 5),
        catalog=catalog,
        interactions=interactions,
        users=users,
        metrics=metrics,
    )


def _requests(bundle: Bundle) -> Requests:
    """Every data-set user plus a new visitor (-1, folded in), every context value appearing."""
    visitor = bundle.interactions.head(3).assign(user_idx=-1)
    histories = pd.concat([bundle.interactions, visitor], ignore_index=True)
    users = np.r_[np.arange(N_USERS), -1]
    return Requests.from_frames(histories, users, np.arange(8) % 5, (np.arange(8) + 2) % 5)


def _hybrid_outputs(bundle: Bundle, requests: Requests) -> list[torch.Tensor]:
    scores = bundle.models.scores(requests)
    out = []
    for hybrid in (bundle.hybrid, bundle.hybrid_no_context):
        stacked = torch.stack([standardise(scores[s]) for s in hybrid.sources], 1)
        with torch.no_grad():
            mixed, weights = hybrid(
                stacked,
                requests.target_time_of_day,
                requests.target_device,
                requests.history_length,
            )
        out += [mixed, weights]
    return out


def _rewrite_manifest(folder: Path, name: str) -> None:
    """Make the manifest agree with a file changed on purpose, so a later check must catch it."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = bundle_module._sha256(folder / name)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Bundle, Path]:
    original = tiny_bundle()
    return original, export_bundle(original, tmp_path / "bundle")


def test_round_trip_gives_identical_weights_scores_and_tables(exported) -> None:
    original, path = exported
    loaded = load_bundle(path)

    assert loaded.name == "tiny-test" and loaded.path == path
    for name, model in original.named_models().items():
        reloaded = loaded.named_models()[name]
        assert not reloaded.training, name
        before, after = model.state_dict(), reloaded.state_dict()
        assert before.keys() == after.keys(), name
        for key in before:
            assert torch.equal(before[key], after[key]), f"{name}.{key}"

    requests = _requests(original)
    before, after = original.models.scores(requests), loaded.models.scores(requests)
    assert before.keys() == after.keys() == set(SOURCES)
    for source in SOURCES:
        assert torch.equal(before[source], after[source]), source
    for a, b in zip(
        _hybrid_outputs(original, requests), _hybrid_outputs(loaded, requests), strict=True
    ):
        assert torch.equal(a, b)

    pd.testing.assert_frame_equal(loaded.interactions, original.interactions)
    pd.testing.assert_frame_equal(loaded.users, original.users, check_dtype=False)
    assert loaded.catalog["genres"].tolist() == original.catalog["genres"].tolist()
    assert all(isinstance(g, list) for g in loaded.catalog["genres"])
    assert loaded.catalog["imdb_id"].tolist() == original.catalog["imdb_id"].tolist()
    assert loaded.metrics == METRICS


def test_config_records_ids_vocabulary_models_and_provenance(exported) -> None:
    original, path = exported
    config = load_bundle(path).config
    assert config["format_version"] == FORMAT_VERSION
    assert config["dataset"] == "tiny" and config["training"] == {"epochs": 1, "seed": 0}
    assert config["item_ids"] == original.catalog["item_id"].tolist()
    assert config["user_ids"] == original.users["user_id"].tolist()
    context = config["context"]
    assert context["times_of_day"] == ["morning", "afternoon", "evening", "night"]
    assert context["devices"] == ["mobile", "tablet", "desktop", "tv"]
    assert context["unknown_index"] == 4 and context["device_simulation"]["genre_effect"] == 0.0
    assert config["models"]["collaborative"] == {"n_users": 7, "n_items": 12, "n_factors": 4}
    assert config["models"]["sequential"]["max_len"] == 4
    assert config["models"]["hybrid_no_context"]["use_context"] is False
    assert config["versions"]["torch"] == torch.__version__
    assert config["hardware"]["cpu_count"] >= 1 and config["created"]


def test_loading_never_unpickles(exported, monkeypatch: pytest.MonkeyPatch) -> None:
    _, path = exported
    files = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert not [f for f in files if f.endswith((".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"))]
    assert files == {
        "config.json",
        "manifest.json",
        "metrics.json",
        "README.md",
        "catalog.parquet",
        "interactions.parquet",
        "users.parquet",
        "docs/protocols.md",
        "docs/architecture.md",
        *(f"{m}.safetensors" for m in (*SOURCES, "hybrid", "hybrid_no_context")),
    }

    def refuse(*args, **kwargs):
        raise AssertionError("a bundle must never be unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    assert load_bundle(path).models.available == SOURCES


def test_missing_optional_model_loads_as_none(tmp_path: Path) -> None:
    path = export_bundle(tiny_bundle(content=False, metrics=None), tmp_path / "b")
    loaded = load_bundle(path)
    assert loaded.models.content is None and loaded.metrics is None
    assert loaded.models.available == ("collaborative", "sequential", "popularity")
    assert not (path / "content.safetensors").exists()


def test_corrupted_file_is_refused_naming_it_and_both_digests(exported) -> None:
    _, path = exported
    file = path / "collaborative.safetensors"
    expected = bundle_module._sha256(file)
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="corrupted") as caught:
        load_bundle(path)
    message = str(caught.value)
    assert "collaborative.safetensors" in message
    assert expected in message and bundle_module._sha256(file) in message


def test_missing_file_is_refused_naming_it(exported) -> None:
    _, path = exported
    (path / "sequential.safetensors").unlink()
    with pytest.raises(BundleError, match=r"missing file sequential\.safetensors"):
        load_bundle(path)


def test_other_format_version_is_refused_naming_both(exported) -> None:
    _, path = exported
    config = json.loads((path / "config.json").read_text())
    config["format_version"] = 99
    (path / "config.json").write_text(json.dumps(config))
    _rewrite_manifest(path, "config.json")
    with pytest.raises(BundleError, match=rf"format_version 99 .*format_version {FORMAT_VERSION}"):
        load_bundle(path)


def test_shape_mismatch_is_refused_naming_model_tensor_and_shapes(exported) -> None:
    _, path = exported
    file = path / "collaborative.safetensors"
    tensors = load_file(str(file))
    tensors["user_factors.weight"] = torch.zeros(N_USERS, 5)
    save_file(tensors, str(file))
    _rewrite_manifest(path, "collaborative.safetensors")  # only the shape check can catch it
    with pytest.raises(BundleError) as caught:
        load_bundle(path)
    message = str(caught.value)
    assert "'collaborative'" in message and "'user_factors.weight'" in message
    assert "(7, 5)" in message and "expected (7, 4)" in message


def test_failed_export_leaves_the_previous_bundle_and_no_debris(
    exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    original, path = exported
    before = sorted(p.name for p in path.parent.iterdir())

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bundle_module, "save_file", fail)
    with pytest.raises(OSError, match="disk full"):
        export_bundle(original, path)
    with pytest.raises(OSError, match="disk full"):
        export_bundle(original, path.parent / "new")
    assert sorted(p.name for p in path.parent.iterdir()) == before
    load_bundle(path)


def test_reports_are_copied_and_covered_by_the_manifest(tmp_path: Path) -> None:
    reports = tmp_path / "reports_src"
    reports.mkdir()
    (reports / "metrics.md").write_text("| model |\n")
    path = export_bundle(tiny_bundle(), tmp_path / "b", reports_dir=reports)
    manifest = json.loads((path / "manifest.json").read_text())["files"]
    assert "reports/metrics.md" in manifest
    (path / "reports" / "metrics.md").write_text("tampered")
    with pytest.raises(BundleError, match=r"reports/metrics\.md: corrupted"):
        load_bundle(path)


def test_every_bundle_file_matches_the_hub_patterns(exported) -> None:
    """pull_bundle fetches only BUNDLE_PATTERNS: a file outside them would be lost."""
    from fnmatch import fnmatch

    _, path = exported
    for file in json.loads((path / "manifest.json").read_text())["files"]:
        assert any(fnmatch(file, pattern) for pattern in BUNDLE_PATTERNS), file


def test_model_card_is_a_hub_card_with_metrics_licence_and_docs(exported, tmp_path: Path) -> None:
    _, path = exported
    card = ModelCard.load(path / "README.md")
    assert card.data.library_name == "pytorch" and card.data.license == "other"
    assert set(TAGS) <= set(card.data.tags) and card.data.datasets == ["tiny"]
    values = {(r.metric_name, r.metric_value) for r in card.data.eval_results}
    assert values == {  # only what metrics.json holds: no invented numbers
        ("hr@10 (protocol S, popularity)", 0.5),
        ("ndcg@10 (protocol S, popularity)", 0.25),
        ("hr@10 (protocol S, hybrid)", 0.75),
        ("ndcg@10 (protocol S, hybrid)", 0.375),
        ("rmse (protocol R, collaborative)", 0.93),
    }
    body = card.text
    assert "0.3750 [0.2000, 0.5000]" in body and "| hybrid |" in body
    assert "10.1145/2827872" in body and "unknown licence of tiny" in body
    assert "forbids redistribution" in body and "`interactions.parquet`" in body
    assert "genre_effect" in body and "defaults to 0.0" in body and "simulated" in body
    assert "from contextflix.bundle import load_bundle" in body and "pull_bundle" in body
    for doc in ("docs/protocols.md", "docs/architecture.md"):
        assert f"]({doc})" in body and (path / doc).is_file(), doc

    bare = export_bundle(tiny_bundle(metrics=None), tmp_path / "bare")
    bare_card = ModelCard.load(bare / "README.md")
    assert "Not evaluated" in bare_card.text and bare_card.data.eval_results is None


# --- licence-aware publishing ---------------------------------------------------------------


def test_each_data_set_has_its_licence() -> None:
    assert data_licence("ml-latest-small").redistributable
    for name in ("ml-100k", "ml-1m", "ml-25m", "ml-32m", "ml-latest"):
        licence = data_licence(name)
        assert not licence.redistributable and "may not be redistributed" in licence.terms, name
        assert "no commercial" in licence.terms and name in licence.name
    assert data_licence("synthetic-ml-1m").redistributable
    assert not data_licence("someone-elses-data").redistributable  # unknown: the safe side


def test_bundle_records_licence_and_table_digests(exported) -> None:
    original, path = exported
    config = load_bundle(path).config
    assert config["data_licence"] == data_licence("tiny").as_dict()
    assert config["data_tables"]["interactions"] == {
        "rows": len(original.interactions),
        "sha256": table_digest(original.interactions),
    }
    assert withheld_files(config) == ["interactions.parquet", "users.parquet"]
    assert (
        withheld_files({**config, "data_licence": data_licence("ml-latest-small").as_dict()}) == []
    )


def real_bundle(dataset: str, licence: dict | None = None) -> Bundle:
    """A bundle of a real data set with small untrained models: the data side is what counts."""
    data = load_dataset(dataset)
    served = data.served_interactions()
    popularity = ContextPopularity.from_frame(served, data.n_items)
    mf = MatrixFactorization(data.n_users, data.n_items, 2, global_mean=3.5)
    config = {
        "name": f"test-{dataset}",
        "dataset": dataset,
        "context": {"device_simulation": data.device_simulation.as_dict()},
    }
    if licence is not None:
        config["data_licence"] = licence
    return Bundle(
        config=config,
        models=BaseModels(popularity=popularity, collaborative=_randomise(mf, 0)),
        hybrid=None,
        hybrid_no_context=None,
        catalog=data.movies,
        interactions=served,
        users=data.users,
        metrics=None,
    )


def published_copy(bundle_dir: Path, target: Path) -> Path:
    """What a pull of the pushed bundle gives: exactly the files a push publishes."""
    _, files, _ = publishable_files(bundle_dir)
    for name in files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle_dir / name, target / name)
    return target


def _check_rebuilt(bundle: Bundle, tmp_path: Path) -> None:
    path = export_bundle(bundle, tmp_path / "bundle")
    _, files, withheld = publishable_files(path)
    assert withheld == ["interactions.parquet", "users.parquet"]
    assert not set(withheld) & set(files) and "manifest.json" in files
    copy = published_copy(path, tmp_path / "published")
    assert not (copy / "interactions.parquet").exists() and not (copy / "users.parquet").exists()

    loaded = load_bundle(copy)
    pd.testing.assert_frame_equal(loaded.interactions, load_bundle(path).interactions)
    pd.testing.assert_frame_equal(loaded.users, load_bundle(path).users)
    served = bundle.interactions[list(REQUIRED_COLUMNS["interactions"])]  # what a load keeps
    pd.testing.assert_frame_equal(loaded.interactions, served.reset_index(drop=True))
    assert "forbids redistribution" in (copy / "README.md").read_text()


def test_a_non_redistributable_bundle_is_published_without_data_and_rebuilt_on_load(
    tmp_path: Path,
) -> None:
    """ml-latest-small under ml-100k's licence: the mechanism, on the data every machine has."""
    licence = data_licence("ml-100k").as_dict()
    _check_rebuilt(real_bundle("ml-latest-small", licence), tmp_path)


@requires_ml100k
def test_an_ml100k_bundle_is_published_without_data_and_rebuilt_on_load(tmp_path: Path) -> None:
    bundle = real_bundle("ml-100k")
    assert "zip" in bundle.users.columns  # the demographic columns come back too
    _check_rebuilt(bundle, tmp_path)


def test_a_redistributable_bundle_publishes_its_data(tmp_path: Path) -> None:
    path = export_bundle(real_bundle("ml-latest-small"), tmp_path / "bundle")
    _, files, withheld = publishable_files(path)
    assert withheld == [] and {"interactions.parquet", "users.parquet"} <= set(files)


def test_rebuild_without_the_data_set_says_which_and_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = real_bundle("ml-latest-small", data_licence("ml-100k").as_dict())
    copy = published_copy(export_bundle(bundle, tmp_path / "b"), tmp_path / "published")

    def unavailable(*args, **kwargs):
        raise DownloadError("cannot download ml-latest-small.zip (offline)")

    monkeypatch.setattr(bundle_data, "load_dataset", unavailable)
    with pytest.raises(BundleError) as caught:
        load_bundle(copy)
    message = str(caught.value)
    assert "ships without the ml-latest-small data" in message
    assert "$CONTEXTFLIX_DATA_DIR/ml-latest-small/" in message and "offline" in message


def test_rebuilt_data_that_differ_are_refused(tmp_path: Path) -> None:
    bundle = real_bundle("ml-latest-small", data_licence("ml-100k").as_dict())
    copy = published_copy(export_bundle(bundle, tmp_path / "b"), tmp_path / "published")
    config = json.loads((copy / "config.json").read_text())
    config["data_tables"]["interactions"]["sha256"] = "0" * 64
    (copy / "config.json").write_text(json.dumps(config))
    _rewrite_manifest(copy, "config.json")
    with pytest.raises(BundleError, match="differ from what the models were trained on"):
        load_bundle(copy)


def test_chronological_order_is_user_then_time_then_row() -> None:
    rng = np.random.default_rng(0)
    user = rng.integers(0, 50, 2_000)
    ts = rng.integers(10**9, 10**9 + 500, 2_000)  # many equal times: rows break the ties
    expected = np.lexsort((np.arange(2_000), ts, user))
    assert np.array_equal(chronological_order(user, ts), expected)
    huge = np.array([2**61, 0, 2**61])  # a combined key would overflow: lexsort instead
    assert np.array_equal(chronological_order(np.array([1, 0, 1]), huge), [1, 0, 2])
