"""Lightning DDP (2 CPU processes, gloo): sharding without repeats, and the same validation."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from contextflix.data.synthetic import write_release
from training.data import TensorBatches, batches
from training.hybrid import HybridDataModule

ROOT = Path(__file__).resolve().parents[1]
DATASET = "synthetic-ml-1m-x0.02"


def test_evaluation_rows_are_split_without_repeats() -> None:
    data = TensorBatches(row=torch.arange(103))
    shards = [
        torch.cat([b["row"] for b in batches(data, 10, shuffle=False, shard=(rank, 2))])
        for rank in range(2)
    ]
    assert sorted(torch.cat(shards).tolist()) == list(range(103))


def test_training_batches_are_dealt_out_equally() -> None:
    data = TensorBatches(row=torch.arange(105))
    per_rank = [list(batches(data, 10, shuffle=True, seed=1, shard=(r, 2))) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1]) == 5  # 11 batches: one left out, equal steps
    rows = torch.cat([b["row"] for batches_ in per_rank for b in batches_]).tolist()
    assert len(rows) == len(set(rows))


def _fit(args: list[str], env: dict) -> None:
    command = [sys.executable, "-m", "training", *args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def _val_ndcg(log_dir: Path) -> float:
    rows = [
        row
        for path in log_dir.rglob("metrics.csv")
        for row in csv.DictReader(path.open())
        if row.get("val_ndcg@10")
    ]
    return float(rows[-1]["val_ndcg@10"])


def test_two_process_ddp_fit_validates_each_user_once(tmp_path: Path) -> None:
    write_release(tmp_path / "data" / DATASET, "ml-1m", seed=0, scale=0.02)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "CONTEXTFLIX_DATA_DIR": str(tmp_path / "data"),
    }
    common = [
        "--config", str(ROOT / "configs" / "ml-1m" / "sequential.yaml"),
        f"--data.init_args.dataset={DATASET}",
        "--model.init_args.dim=16", "--model.init_args.max_len=20", "--data.init_args.max_len=20",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
    ]  # fmt: skip
    ddp = tmp_path / "ddp"
    _fit(
        [
            "fit", *common, "--trainer.strategy=ddp", "--trainer.devices=2",
            "--trainer.max_epochs=1",
            f"--trainer.logger.init_args.save_dir={ddp}", f"--trainer.callbacks.dirpath={ddp}",
        ],
        env,
    )  # fmt: skip
    checkpoint = ddp / "best.ckpt"
    assert checkpoint.exists()
    single = tmp_path / "single"
    _fit(
        [
            "validate", *common, "--trainer.devices=1", f"--ckpt_path={checkpoint}",
            f"--trainer.logger.init_args.save_dir={single}",
        ],
        env,
    )  # fmt: skip
    # the 2-process validation of the last epoch saw every user once: the same figure as
    # one process validating the same weights
    assert _val_ndcg(ddp) == pytest.approx(_val_ndcg(single), abs=1e-6)


def test_hybrid_users_are_split_without_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    data = HybridDataModule("ml-latest-small")
    data.setup("fit")
    seen = {}
    for rank in range(2):
        monkeypatch.setattr(data, "shard", lambda rank=rank: (rank, 2))
        seen[rank] = torch.cat([b["row"] for b in data.val_dataloader()]).tolist()
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(data.user_rows()["val"].tolist())
