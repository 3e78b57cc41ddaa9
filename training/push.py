"""``python -m training push --bundle DIR --repo-id OWNER/NAME [--private] [--revision TAG]``.

The bundle is loaded (every checksum and tensor shape verified) before anything is sent, so
a broken bundle never reaches the Hub. What is sent follows the data licence: the data tables
of a data set that may not be redistributed stay home (contextflix.hub.publishable_files), and
the output says so. Failures are one line on stderr and exit code 1.
"""

from __future__ import annotations

import sys

from contextflix.bundle import BundleError, load_bundle
from contextflix.hub import HubError, publishable_files, push_bundle


def push(*, bundle: str, repo_id: str, private: bool = False, revision: str | None = None) -> None:
    """Validate a bundle folder and push it to a Hugging Face model repo in one commit.

    Args:
        bundle: the bundle folder (e.g. artifacts/<name>).
        repo_id: the Hub model repo, OWNER/NAME (created if missing).
        private: create the repo as private (an existing repo keeps its visibility).
        revision: a branch to push to (created if missing); default the main branch.

    The token comes from HF_TOKEN or the saved `hf auth login`; it is never printed.
    Keyword-only, so jsonargparse.CLI exposes ``--bundle`` and ``--repo_id`` as options.
    """
    try:
        loaded = load_bundle(bundle)
        _, _, withheld = publishable_files(bundle)
        url = push_bundle(bundle, repo_id, private=private, revision=revision)
    except (BundleError, HubError) as error:
        print(f"push failed: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    where = f"{repo_id}@{revision}" if revision else repo_id
    print(f"pushed bundle {loaded.name} to {where}: {url}")
    if withheld:
        licence = loaded.config["data_licence"]["name"]
        print(
            f"not published: {', '.join(withheld)} ({licence} forbids redistribution); "
            f"load_bundle rebuilds them from {loaded.config['dataset']} on the other side"
        )
