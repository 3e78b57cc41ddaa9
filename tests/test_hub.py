"""Hub push/pull: the push side at the huggingface_hub boundary, the pull side through the real
client against an olah mirror serving a local git repo on 127.0.0.1, and the error messages.
The push through the real client and the command line is in tests/test_cli.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import (
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from contextflix import hub
from contextflix.bundle import FORMAT_VERSION, export_bundle, load_bundle
from contextflix.hub import BUNDLE_PATTERNS, HubError, parse_repo_spec, pull_bundle, push_bundle
from tests.test_bundle import tiny_bundle
from training.push import push

SECRET = "hf_SECRETtoken0123456789"
OLAH = shutil.which("olah-cli", path=str(Path(sys.executable).parent)) or shutil.which("olah-cli")
GIT = shutil.which("git")


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_bundle(tiny_bundle(), tmp_path_factory.mktemp("hub") / "bundle")


@pytest.fixture
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hub, "get_token", lambda: None)


class Recorder:
    """Stands in for the HfApi calls that would reach the network, recording each call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.tokens: list[str | None] = []
        for name in ("create_repo", "create_branch", "upload_folder"):
            monkeypatch.setattr(HfApi, name, self._method(name))

    def _method(self, name: str):
        def method(api: HfApi, *args, **kwargs):
            self.calls.append((name, args, kwargs))
            self.tokens.append(api.token)
            if name == "upload_folder":
                return type("CommitInfo", (), {"commit_url": "https://hub/commit/abc123"})()
            return None

        return method

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]


def test_push_is_exposed_by_jsonargparse(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    jsonargparse = pytest.importorskip("jsonargparse")
    monkeypatch.setenv("HF_TOKEN", SECRET)
    recorder = Recorder(monkeypatch)
    args = ["--bundle", str(bundle_dir), "--repo_id", "owner/n", "--private", "true"]
    jsonargparse.CLI(push, args=args)
    assert recorder.calls[0][2]["private"] is True
    assert SECRET not in "".join(capsys.readouterr())


# --- repo specs -----------------------------------------------------------------------------


def test_parse_repo_spec() -> None:
    assert parse_repo_spec("owner/name") == ("owner/name", None)
    assert parse_repo_spec("owner/name@v1") == ("owner/name", "v1")
    assert parse_repo_spec(" owner/name@refs/pr/1 ") == ("owner/name", "refs/pr/1")
    for bad in ("name", "/name", "owner/", "a/b/c", "owner/name@"):
        with pytest.raises(HubError, match=r"OWNER/NAME|empty revision"):
            parse_repo_spec(bad)


# --- push -----------------------------------------------------------------------------------


def test_push_is_one_commit_with_the_exact_arguments(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    recorder = Recorder(monkeypatch)
    push(bundle=str(bundle_dir), repo_id="owner/contextflix", private=True, revision="v1")

    assert recorder.names() == ["create_repo", "create_branch", "upload_folder"]
    assert set(recorder.tokens) == {SECRET}
    (_, args, kwargs) = recorder.calls[0]
    assert args == ("owner/contextflix",)
    assert kwargs == {"repo_type": "model", "private": True, "exist_ok": True}
    (_, args, kwargs) = recorder.calls[1]
    assert args == ("owner/contextflix",)
    assert kwargs == {"branch": "v1", "repo_type": "model", "exist_ok": True}
    (_, args, kwargs) = recorder.calls[2]
    assert kwargs["repo_id"] == "owner/contextflix" and kwargs["repo_type"] == "model"
    assert Path(kwargs["folder_path"]) == bundle_dir and kwargs["revision"] == "v1"
    assert (
        kwargs["commit_message"]
        == f"Upload ContextFlix bundle tiny-test (tiny, format {FORMAT_VERSION})"
    )
    files = {p.relative_to(bundle_dir).as_posix() for p in bundle_dir.rglob("*") if p.is_file()}
    withheld = {"interactions.parquet", "users.parquet"}  # "tiny" has no known licence
    assert set(kwargs["allow_patterns"]) == files - withheld
    assert kwargs["delete_patterns"] == BUNDLE_PATTERNS  # so an earlier copy of them goes too

    out, err = capsys.readouterr()
    assert "owner/contextflix@v1" in out and "https://hub/commit/abc123" in out
    assert "not published: interactions.parquet, users.parquet" in out
    assert SECRET not in out + err


def test_push_of_a_bundle_without_a_recorded_licence_is_refused(
    bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older export does not say what it may publish: nothing leaves until it is re-exported."""
    recorder = Recorder(monkeypatch)
    old = shutil.copytree(bundle_dir, tmp_path / "old")
    config = json.loads((old / "config.json").read_text())
    del config["data_licence"]
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(HubError, match=r"records no data licence.*--update-bundle"):
        push_bundle(old, "owner/name", token=SECRET)
    assert recorder.calls == []


def test_push_to_main_creates_no_branch_and_uses_the_token_argument(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, no_token: None
) -> None:
    recorder = Recorder(monkeypatch)
    url = push_bundle(bundle_dir, "owner/name", token=SECRET)
    assert url == "https://hub/commit/abc123"
    assert recorder.names() == ["create_repo", "upload_folder"]
    assert recorder.calls[0][2]["private"] is False
    assert recorder.calls[1][2]["revision"] is None and set(recorder.tokens) == {SECRET}


def test_push_without_token_says_how_to_get_one(
    bundle_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_token: None,
    capsys: pytest.CaptureFixture,
) -> None:
    recorder = Recorder(monkeypatch)
    with pytest.raises(HubError, match=r"set HF_TOKEN or run `hf auth login`"):
        push_bundle(bundle_dir, "owner/name")
    with pytest.raises(SystemExit) as caught:
        push(bundle=str(bundle_dir), repo_id="owner/name")
    assert caught.value.code == 1 and recorder.calls == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HF_TOKEN" in err


def test_push_refuses_a_broken_bundle_before_contacting_the_hub(
    bundle_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    recorder = Recorder(monkeypatch)
    broken = shutil.copytree(bundle_dir, tmp_path / "broken")
    (broken / "catalog.parquet").unlink()
    with pytest.raises(SystemExit) as caught:
        push(bundle=str(broken), repo_id="owner/name")
    assert caught.value.code == 1 and recorder.calls == []
    assert "missing file catalog.parquet" in capsys.readouterr().err


def test_push_offline_is_a_clear_error(
    bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def offline(*args, **kwargs):
        raise OfflineModeIsEnabled("offline")

    monkeypatch.setattr(HfApi, "create_repo", offline)
    with pytest.raises(HubError, match="cannot reach the Hugging Face Hub") as caught:
        push_bundle(bundle_dir, "owner/name", token=SECRET)
    assert SECRET not in str(caught.value) + "".join(capsys.readouterr())


def _http_error(kind: type[HfHubHTTPError], status: int) -> HfHubHTTPError:
    """An error as huggingface_hub raises it, with a response of the given status."""
    transport = sys.modules[hub.HTTPError.__module__]  # the HTTP library huggingface_hub uses
    request = transport.Request("GET", "https://huggingface.co/api/models/owner/name")
    return kind("failed", response=transport.Response(status, request=request))


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (_http_error(RevisionNotFoundError, 404), "revision 'v9' not found in Hub repo owner/name"),
        (_http_error(RepositoryNotFoundError, 404), "Hub repo owner/name not found"),
        (_http_error(HfHubHTTPError, 401), r"rejected the token \(401\).*hf auth login"),
        (_http_error(HfHubHTTPError, 403), r"no write access to owner/name \(403\)"),
        (_http_error(HfHubHTTPError, 500), r"Hub error for owner/name@v9 \(HTTP 500\)"),
    ],
)
def test_hub_errors_become_one_clear_message(
    error: Exception, message: str, monkeypatch: pytest.MonkeyPatch, bundle_dir: Path
) -> None:
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(hub, "snapshot_download", fail)
    with pytest.raises(HubError, match=message):
        pull_bundle("owner/name", revision="v9")
    monkeypatch.setattr(HfApi, "upload_folder", fail)
    monkeypatch.setattr(HfApi, "create_repo", lambda *a, **k: None)
    monkeypatch.setattr(HfApi, "create_branch", lambda *a, **k: None)
    with pytest.raises(HubError, match=message):
        push_bundle(bundle_dir, "owner/name", revision="v9", token=SECRET)


# --- pull: arguments, offline, unreachable --------------------------------------------------


def test_pull_passes_the_bundle_patterns_and_revision(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = {}

    def fake(repo_id, **kwargs):
        seen.update(kwargs, repo_id=repo_id)
        return str(tmp_path)

    monkeypatch.setattr(hub, "snapshot_download", fake)
    assert pull_bundle("owner/name@v2", cache_dir=tmp_path / "c") == tmp_path
    assert seen == {
        "repo_id": "owner/name",
        "repo_type": "model",
        "revision": "v2",
        "cache_dir": tmp_path / "c",
        "allow_patterns": BUNDLE_PATTERNS,
        "endpoint": None,
    }


def test_pull_with_hub_offline_mode_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    with pytest.raises(HubError, match=r"cannot reach the Hugging Face Hub .*HF_HUB_OFFLINE"):
        pull_bundle("owner/name", cache_dir=tmp_path)


def test_pull_from_an_unreachable_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HubError, match="connection error"):
        pull_bundle("owner/name", cache_dir=tmp_path, endpoint=f"http://127.0.0.1:{_free_port()}")


# --- pull through the real client, from an olah mirror of a local git repo -------------------


def _free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _git(folder: Path, *args: str) -> None:
    identity = ("-c", "user.name=test", "-c", "user.email=test@example.com")
    subprocess.run([GIT, *identity, *args], cwd=folder, check=True, capture_output=True)


@pytest.fixture(scope="module")
def mirror(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """olah serving the bundle as the git repo owner/contextflix (tag v1) on 127.0.0.1."""
    if OLAH is None or GIT is None:
        pytest.skip("needs olah (pip install olah==0.5.4) and git to serve a local Hub mirror")
    root = tmp_path_factory.mktemp("olah")
    repo = root / "mirrors" / "models" / "owner" / "contextflix"
    shutil.copytree(bundle_dir, repo)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "bundle")
    _git(repo, "tag", "v1")
    port = _free_port()
    (root / "olah.toml").write_text(
        "[basic]\n"
        f'host = "127.0.0.1"\nport = {port}\n'
        f'repos-path = "{root / "cache"}"\nmirrors-path = ["{root / "mirrors"}"]\n'
        "[accessibility]\noffline = true\n"
    )
    log = (root / "olah.log").open("w")
    server = subprocess.Popen(
        [OLAH, "-c", "olah.toml", "--log-path", str(root / "logs")],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/api/models/owner/contextflix/revision/main", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"olah did not start: {(root / 'olah.log').read_text()[-2000:]}")
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_pull_through_the_real_client_round_trips_the_bundle(
    mirror: str, bundle_dir: Path, tmp_path: Path
) -> None:
    for spec in ("owner/contextflix", "owner/contextflix@v1"):
        folder = pull_bundle(spec, cache_dir=tmp_path / "cache", endpoint=mirror)
        pulled, original = load_bundle(folder), load_bundle(bundle_dir)
        for name, model in original.named_models().items():
            after = pulled.named_models()[name].state_dict()
            for key, tensor in model.state_dict().items():
                assert torch.equal(tensor, after[key]), f"{name}.{key}"
        assert pulled.config == original.config


def test_pull_of_a_missing_repo_is_a_clear_error(mirror: str, tmp_path: Path) -> None:
    with pytest.raises(HubError, match="Hub repo owner/nothing-here not found"):
        pull_bundle("owner/nothing-here", cache_dir=tmp_path, endpoint=mirror)


def test_pull_offline_reuses_the_cache(mirror: str, tmp_path: Path, monkeypatch) -> None:
    folder = pull_bundle("owner/contextflix", cache_dir=tmp_path, endpoint=mirror)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert pull_bundle("owner/contextflix", cache_dir=tmp_path, endpoint=mirror) == folder


# --- live (opt-in) --------------------------------------------------------------------------


@pytest.mark.skipif(
    not (os.environ.get("HF_TOKEN") and os.environ.get("CONTEXTFLIX_TEST_REPO")),
    reason="live Hub round trip: set HF_TOKEN and CONTEXTFLIX_TEST_REPO (OWNER/NAME, a scratch repo)",
)
def test_live_push_and_pull_round_trip(bundle_dir: Path, tmp_path: Path) -> None:
    repo_id = os.environ["CONTEXTFLIX_TEST_REPO"]
    push_bundle(bundle_dir, repo_id, private=True)
    pulled = load_bundle(pull_bundle(repo_id, cache_dir=tmp_path))
    assert pulled.config == load_bundle(bundle_dir).config
