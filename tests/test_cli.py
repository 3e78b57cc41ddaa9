"""The commands, run exactly as a user types them (a subprocess from the repository root).

``fit`` trains every model from its YAML config for one batch. ``pipeline``, ``evaluate`` and
``push`` share one bundle trained once per session by ``pipeline --profile quick`` under
tests/configs/pipeline.yaml: the same steps and configs as configs/pipeline.yaml, a smaller
quick profile (one or two batches per step) and a context config with one value changed, so
the tests can see the context config reach the bundle. ``push`` goes through the real
huggingface_hub client to a loopback server of the Hub's write API (tests/hub_server.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from contextflix.bundle import export_bundle, load_bundle
from contextflix.data import load_dataset
from contextflix.data.context import DeviceSimulation, load_context_config
from contextflix.data.licences import data_licence
from tests.hub_server import running_hub

ROOT = Path(__file__).resolve().parents[1]
TEST_PLAN = "tests/configs/pipeline.yaml"
TEST_CONTEXT = "tests/configs/context.yaml"
SECRET = "hf_SECRETtoken0123456789"
MODELS = ("popularity", "collaborative", "content", "sequential", "hybrid_no_context", "hybrid")


def run(args: list[str], env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    """``python -m training ARGS`` from the repository root, as typed in a shell."""
    command = [sys.executable, "-m", "training", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The user's environment, with this checkout importable and private caches."""
    home = tmp_path_factory.mktemp("cli-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "XDG_CACHE_HOME": str(home / "cache"),  # the prepared-data cache (platformdirs)
        "HF_HOME": str(home / "hf"),  # no saved token, no shared Hub cache
    }


@pytest.fixture(scope="session")
def trained(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("pipeline") / "bundle"
    args = ["pipeline", "--config", TEST_PLAN, "--profile", "quick", "--output", str(output)]
    result = run(args, cli_env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"bundle written to {output}" in result.stdout
    return output


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    """(URL, storage folder) of a loopback Hub that accepts SECRET."""
    root = tmp_path_factory.mktemp("hub")
    with running_hub(root, SECRET) as url:
        yield url, root


# --- fit ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    ["collaborative.yaml", "collaborative_s.yaml", "content.yaml", "sequential.yaml"],
)
def test_fit_from_config(config: str, tmp_path: Path, cli_env: dict[str, str]) -> None:
    args = [
        "fit",
        "--config", str(ROOT / "configs" / config),
        "--trainer.fast_dev_run=true",
        f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip
    result = run(args, cli_env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


# --- pipeline -------------------------------------------------------------------------------


def test_pipeline_exports_an_evaluated_bundle_of_every_model(trained: Path) -> None:
    bundle = load_bundle(trained)
    assert set(bundle.named_models()) == set(MODELS)
    assert set(bundle.metrics["protocols"]["S"]["models"]) == set(MODELS)
    assert bundle.config["training"]["profile"] == "quick"
    assert (trained / "reports" / "ab_test.json").is_file()
    impact = json.loads((trained / "reports" / "context_impact.json").read_text())
    assert impact["dataset"] == "ml-latest-small"  # written by a worker while the models train


def test_pipeline_builds_the_context_its_context_config_describes(trained: Path) -> None:
    context = load_context_config(ROOT / TEST_CONTEXT)
    assert context != DeviceSimulation()  # the test config changes a value...
    bundle = load_bundle(trained)
    assert bundle.config["context"]["config"] == TEST_CONTEXT
    assert bundle.config["context"]["device_simulation"] == context.as_dict()

    served = load_dataset("ml-latest-small", device_simulation=context).served_interactions()
    default = load_dataset("ml-latest-small").served_interactions()
    assert bundle.interactions["device"].tolist() == served["device"].tolist()
    assert bundle.interactions["device"].tolist() != default["device"].tolist()  # ...that counts


# --- evaluate -------------------------------------------------------------------------------


def test_evaluate_writes_the_reports_with_the_pipelines_figures(
    trained: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    reports = tmp_path / "reports"
    result = run(["evaluate", "--bundle", str(trained), "--output", str(reports)], cli_env)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("metrics.json", "metrics.md", "ab_test.json", "context_impact.json"):
        assert (reports / name).is_file(), name
    evaluated = json.loads((reports / "metrics.json").read_text())["protocols"]["S"]["models"]
    recorded = load_bundle(trained).metrics["protocols"]["S"]["models"]
    for model in MODELS:
        assert evaluated[model]["ndcg@10"] == pytest.approx(recorded[model]["ndcg@10"], abs=1e-9)


def test_evaluate_of_a_missing_bundle_is_one_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    result = run(["evaluate", "--bundle", str(tmp_path / "nothing")], cli_env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "is not a bundle folder" in result.stderr


# --- push -----------------------------------------------------------------------------------


def _push_env(cli_env: dict[str, str], url: str) -> dict[str, str]:
    return {**cli_env, "HF_ENDPOINT": url, "HF_TOKEN": SECRET}


def _published(root: Path, repo: str, revision: str) -> set[str]:
    folder = root / repo / revision
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_push_publishes_a_redistributable_bundle_whole(
    trained: Path, hub: tuple[str, Path], cli_env: dict[str, str]
) -> None:
    url, root = hub
    args = ["push", "--bundle", str(trained), "--repo-id", "owner/contextflix"]
    result = run(args, _push_env(cli_env, url))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"pushed bundle contextflix-ml-latest-small to owner/contextflix: {url}" in result.stdout
    assert "not published" not in result.stdout
    assert SECRET not in result.stdout + result.stderr

    manifest = json.loads((trained / "manifest.json").read_text())["files"]
    assert _published(root, "owner/contextflix", "main") == {*manifest, "manifest.json"}
    pulled = load_bundle(root / "owner/contextflix/main")
    assert pulled.config == load_bundle(trained).config


def test_push_of_a_non_redistributable_bundle_leaves_the_data_home(
    trained: Path, hub: tuple[str, Path], cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The trained bundle under ml-100k's licence: pushed without data, rebuilt on load."""
    bundle = load_bundle(trained)
    bundle.config["data_licence"] = data_licence("ml-100k").as_dict()
    restricted = export_bundle(bundle, tmp_path / "restricted")
    args = [
        "push", "--bundle", str(restricted), "--repo-id", "owner/restricted",
        "--private", "--revision", "v1",
    ]  # fmt: skip
    result = run(args, _push_env(cli_env, url=hub[0]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "not published: interactions.parquet, users.parquet" in result.stdout
    assert SECRET not in result.stdout + result.stderr

    root = hub[1]
    published = _published(root, "owner/restricted", "v1")
    assert "interactions.parquet" not in published and "users.parquet" not in published
    assert {"config.json", "catalog.parquet", "metrics.json", "hybrid.safetensors"} <= published
    assert (root / "owner/restricted/visibility").read_text() == "private"
    card = (root / "owner/restricted/v1/README.md").read_text()
    assert "MovieLens ml-100k usage licence" in card and "forbids redistribution" in card

    pulled = load_bundle(root / "owner/restricted/v1")
    pd.testing.assert_frame_equal(pulled.interactions, bundle.interactions)
    pd.testing.assert_frame_equal(pulled.users, bundle.users)


def test_push_without_a_token_says_how_to_get_one(
    trained: Path, hub: tuple[str, Path], cli_env: dict[str, str]
) -> None:
    env = {**cli_env, "HF_ENDPOINT": hub[0]}  # no HF_TOKEN, and HF_HOME holds no saved token
    result = run(["push", "--bundle", str(trained), "--repo-id", "owner/other"], env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "set HF_TOKEN or run `hf auth login`" in result.stderr
    assert not (hub[1] / "owner" / "other").exists()


def test_push_with_a_rejected_token_is_one_line_without_the_token(
    trained: Path, hub: tuple[str, Path], cli_env: dict[str, str]
) -> None:
    wrong = "hf_WRONGtoken9876543210"
    env = {**cli_env, "HF_ENDPOINT": hub[0], "HF_TOKEN": wrong}
    result = run(["push", "--bundle", str(trained), "--repo-id", "owner/other"], env)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "rejected the token (401)" in result.stderr
    assert wrong not in result.stdout + result.stderr
