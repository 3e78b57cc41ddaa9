"""Every model trains end to end from its YAML config through LightningCLI (one batch each)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "config",
    ["collaborative.yaml", "collaborative_s.yaml", "content.yaml", "sequential.yaml"],
)
def test_fit_from_config(config: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "training", "fit",
        "--config", str(ROOT / "configs" / config),
        "--trainer.fast_dev_run=true",
        f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
