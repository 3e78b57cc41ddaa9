"""The project documents itself: its protocols and architecture are in docs/, linked, and
nothing points at documents the repository does not contain."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("docs/protocols.md", "docs/architecture.md")
MISSING_DOCUMENTS = re.compile(r"\b(DESIGN|PROTOCOLS)\.md\b")


def test_the_docs_exist_and_the_readme_links_them() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in DOCS:
        assert (ROOT / doc).is_file(), doc
        assert f"]({doc})" in readme, doc


def test_nothing_points_at_documents_the_repository_lacks() -> None:
    sources = [
        p
        for pattern in ("*.py", "*.md", "*.yaml", "*.toml")
        for p in ROOT.rglob(pattern)
        if not {".venv", "runs", "artifacts", ".git"} & set(p.relative_to(ROOT).parts)
    ]
    pointing = {
        p.relative_to(ROOT).as_posix()
        for p in sources
        if MISSING_DOCUMENTS.search(p.read_text(encoding="utf-8", errors="replace"))
    }
    pointing.discard("tests/test_docs.py")
    assert pointing == set(), sorted(pointing)
