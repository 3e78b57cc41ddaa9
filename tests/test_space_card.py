"""The README's front matter is a Space card Hugging Face can build as it is: the Python the code
requires (the Spaces default, 3.10, is too old), the gradio the requirements pin, this app."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from huggingface_hub import SpaceCard

ROOT = Path(__file__).resolve().parents[1]


def test_space_card_matches_the_project() -> None:
    card = SpaceCard.load(ROOT / "README.md", repo_type="space")
    data = card.data
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.search(r">=\s*(\d+\.\d+)", requires)[1]
    assert str(data.python_version) == minimum
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert data.sdk == "gradio"
    assert data.sdk_version == pins["gradio"].strip()
    assert (ROOT / data.app_file).is_file()
    assert data.license == "mit"
