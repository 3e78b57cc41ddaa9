"""Push a bundle to the Hugging Face Hub and pull it back, with one error type and clear messages.

A bundle folder is already laid out as a model repo (docs/architecture.md), so pushing is one
``upload_folder`` commit and pulling one ``snapshot_download`` restricted to the bundle's
files. A push publishes what the data licence allows: a bundle of a data set that may not be
redistributed goes without its data tables (contextflix.bundle_data), which ``load_bundle``
rebuilds on the other side. Every failure the user can fix (no token, wrong repo, wrong
revision, no network) becomes a ``HubError`` whose message says what to do; the token is
never printed.
"""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import HfApi, get_token, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from contextflix.bundle_data import withheld_files

# Everything a bundle holds, and nothing else a repo might (e.g. .gitattributes, notebooks).
BUNDLE_PATTERNS = [
    "config.json",
    "manifest.json",
    "metrics.json",
    "README.md",
    "*.safetensors",
    "*.parquet",
    "reports/*",
    "docs/*",
]
NO_TOKEN = "no Hugging Face token: set HF_TOKEN or run `hf auth login`"


class HubError(Exception):
    """A push or pull that failed for a reason the user can act on (the message says which)."""


def parse_repo_spec(spec: str) -> tuple[str, str | None]:
    """``"owner/name@revision"`` -> ``("owner/name", "revision")``; no ``@`` -> revision None."""
    repo_id, at, revision = spec.strip().partition("@")
    owner, _, name = repo_id.partition("/")
    if not owner or not name or "/" in name:
        raise HubError(f"{spec!r} is not a Hub repo id: expected OWNER/NAME or OWNER/NAME@REVISION")
    if at and not revision:
        raise HubError(f"{spec!r} has an empty revision after '@'")
    return repo_id, revision or None


def push_bundle(
    path: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
) -> str:
    """Upload the bundle folder ``path`` to the model repo ``repo_id`` in one commit.

    Creates the repo (``exist_ok``) and, when ``revision`` is given, that branch. Only the
    files ``publishable_files`` returns are uploaded, and remote bundle files that are not
    among them (a dropped model, data tables a licence withholds) are deleted in the same
    commit, so the repo is exactly what may be published of this bundle. Returns the commit
    URL. The token comes from ``token``, else ``HF_TOKEN``, else the saved ``hf auth login``.
    """
    path = Path(path)
    config, files, _ = publishable_files(path)
    token = token or get_token()
    if not token:
        raise HubError(NO_TOKEN)
    api = HfApi(token=token)
    message = (
        f"Upload ContextFlix bundle {config.get('name')} "
        f"({config.get('dataset')}, format {config.get('format_version')})"
    )
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=path,
            repo_type="model",
            revision=revision,
            commit_message=message,
            allow_patterns=files,
            delete_patterns=BUNDLE_PATTERNS,
        )
    except (HTTPError, OSError) as error:
        raise _hub_error(error, repo_id, revision) from None
    return str(commit.commit_url)


def pull_bundle(
    repo_id: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    *,
    endpoint: str | None = None,
) -> Path:
    """Download (or reuse from the cache) a bundle repo; returns the local folder.

    ``repo_id`` may carry ``@revision``. Only the bundle's files are fetched. Offline, a
    bundle already in the cache is returned; otherwise a ``HubError`` says what is wrong.
    ``endpoint`` overrides HF_ENDPOINT (a mirror).
    """
    if "@" in repo_id:
        repo_id, spec_revision = parse_repo_spec(repo_id)
        revision = revision or spec_revision
    try:
        folder = snapshot_download(
            repo_id,
            repo_type="model",
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=BUNDLE_PATTERNS,
            endpoint=endpoint,
        )
    except (HTTPError, OSError) as error:
        raise _hub_error(error, repo_id, revision) from None
    return Path(folder)


def publishable_files(path: str | Path) -> tuple[dict, list[str], list[str]]:
    """(config, files to upload, files the data licence withholds) of a bundle folder.

    The files to upload are the manifest's and the manifest itself, less the withheld ones.
    A bundle that records no data licence (exported by an older ContextFlix) is refused: what
    it may publish is unknown until it is re-exported.
    """
    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise HubError(f"{path} is not a bundle folder ({error})") from None
    if "data_licence" not in config:
        raise HubError(
            f"{path} records no data licence (an older export), so what it may publish is "
            f"unknown: re-export it first (python -m training evaluate --bundle {path} "
            "--update-bundle)"
        )
    withheld = withheld_files(config)
    files = [name for name in manifest.get("files", {}) if name not in withheld]
    return config, [*files, "manifest.json"], withheld


def _hub_error(error: Exception, repo_id: str, revision: str | None) -> HubError:
    """Translate huggingface_hub / transport errors into one actionable message."""
    where = f"{repo_id}@{revision}" if revision else repo_id
    if isinstance(error, RevisionNotFoundError):
        return HubError(f"revision {revision!r} not found in Hub repo {repo_id}")
    if isinstance(error, RepositoryNotFoundError | GatedRepoError):
        return HubError(
            f"Hub repo {repo_id} not found (or private/gated and your token cannot see it; "
            "set HF_TOKEN or run `hf auth login`)"
        )
    if isinstance(error, OfflineModeIsEnabled | LocalEntryNotFoundError) or (
        isinstance(error, HTTPError) and not isinstance(error, HfHubHTTPError)
    ):
        return HubError(
            f"cannot reach the Hugging Face Hub for {where} (offline, HF_HUB_OFFLINE=1, or a "
            "connection error) and it is not in the local cache"
        )
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            return HubError(f"the Hub rejected the token (401) for {where}: {NO_TOKEN}")
        if status == 403:
            return HubError(f"the token has no write access to {repo_id} (403)")
        return HubError(f"Hub error for {where} (HTTP {status}): {str(error).splitlines()[0]}")
    return HubError(f"Hub operation on {where} failed: {type(error).__name__}: {error}")
