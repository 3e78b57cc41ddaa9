"""Lightning DDP (2 CPU processes, gloo): sharding without repeats, and the same validation.

Every fit the pipeline runs (collaborative R and S, content, sequential, hybrid) is fitted
once as 2 processes on a tiny SYNTHETIC set; its last validation must equal one process
validating the same weights, which fails if a user is dropped, repeated (Lightning's padding
sampler) or counted on one process only (no reduction).
"""

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
from training.distributed import OwnRandomStream
from training.hybrid import HybridDataModule

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "ml-1m"
DATASET = "synthetic-ml-1m-x0.02"
BASE_STEPS = ("collaborative", "collaborative_s", "content", "sequential")
# small and fast: one epoch, tiny sequential model; the metric each fit validates on
SMALL = {
    "collaborative": ["--model.init_args.n_factors=8"],
    "collaborative_s": ["--model.init_args.n_factors=8"],
    "content": ["--model.init_args.dim=16", "--model.init_args.hidden=32"],
    "sequential": [
        "--model.init_args.dim=16", "--model.init_args.max_len=20", "--data.init_args.max_len=20",
    ],
    "hybrid": [],
}  # fmt: skip
METRIC = {"collaborative": "val_rmse"}


def test_evaluation_rows_are_split_without_repeats() -> None:
    data = TensorBatches(row=torch.arange(103))
    shards = [
        torch.cat([b["row"] for b in batches(data, 10, shuffle=False, shard=(rank, 2))])
        for rank in range(2)
    ]
    assert sorted(torch.cat(shards).tolist()) == list(range(103))


def _draws_after_setup(rank: int, world: int) -> torch.Tensor:
    """What a process draws once a fit is set up, seeded as LightningCLI seeds every process."""
    torch.manual_seed(0)
    trainer = type("Trainer", (), {"global_rank": rank, "world_size": world})()
    OwnRandomStream().setup(trainer, None, "fit")
    return torch.rand(16)


def test_each_process_of_a_distributed_fit_draws_its_own_random_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")
    draws = [_draws_after_setup(rank, 2) for rank in range(2)]
    assert not torch.equal(draws[0], draws[1])  # own dropout masks, own negatives
    assert torch.equal(_draws_after_setup(1, 2), draws[1])  # still reproducible
    torch.manual_seed(0)
    seeded = torch.rand(16)
    assert torch.equal(_draws_after_setup(0, 1), seeded)  # one process: its stream unchanged


def test_every_fit_gives_its_processes_their_own_random_streams(monkeypatch) -> None:
    import training.cli

    monkeypatch.setattr(training.cli, "ContextFlixCLI", lambda **kwargs: kwargs)
    defaults = training.cli.fit_cli(["fit"], run=False)["trainer_defaults"]
    assert any(isinstance(c, OwnRandomStream) for c in defaults["callbacks"])


def test_training_batches_are_dealt_out_equally() -> None:
    data = TensorBatches(row=torch.arange(105))
    per_rank = [list(batches(data, 10, shuffle=True, seed=1, shard=(r, 2))) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1]) == 5  # 11 batches: one left out, equal steps
    rows = torch.cat([b["row"] for batches_ in per_rank for b in batches_]).tolist()
    assert len(rows) == len(set(rows))


def test_hybrid_users_are_split_without_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    data = HybridDataModule("ml-latest-small")
    data.setup("fit")
    seen = {}
    for rank in range(2):
        monkeypatch.setattr(data, "shard", lambda rank=rank: (rank, 2))
        seen[rank] = torch.cat([b["row"] for b in data.val_dataloader()]).tolist()
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(data.user_rows()["val"].tolist())


def _run(args: list[str], env: dict) -> None:
    command = [sys.executable, "-m", "training", *args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def _last(log_dir: Path, metric: str) -> float:
    rows = [
        row
        for path in log_dir.rglob("metrics.csv")
        for row in csv.DictReader(path.open())
        if row.get(metric)
    ]
    return float(rows[-1][metric])


def _common(step: str, checkpoints: dict[str, Path]) -> list[str]:
    args = [
        "--config", str(CONFIGS / f"{step}.yaml"),
        f"--data.init_args.dataset={DATASET}",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
        *SMALL[step],
    ]  # fmt: skip
    if step == "hybrid":
        args += [
            f"--model.init_args.{name}_checkpoint={checkpoints[base]}"
            for name, base in (
                ("collaborative", "collaborative_s"),
                ("content", "content"),
                ("sequential", "sequential"),
            )
        ]
    return args


@pytest.fixture(scope="module")
def ddp_fits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict[str, Path]]:
    """Each step fitted for one epoch as 2 processes; the hybrid mixes the DDP-fitted bases."""
    root = tmp_path_factory.mktemp("ddp")
    write_release(root / "data" / DATASET, "ml-1m", seed=0, scale=0.02)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "CONTEXTFLIX_DATA_DIR": str(root / "data"),
    }
    checkpoints: dict[str, Path] = {}
    for step in (*BASE_STEPS, "hybrid"):
        folder = root / step / "ddp"
        _run(
            [
                "fit", *_common(step, checkpoints),
                "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.max_epochs=1",
                f"--trainer.logger.init_args.save_dir={folder}",
                f"--trainer.callbacks.dirpath={folder}",
            ],
            env,
        )  # fmt: skip
        checkpoints[step] = folder / "best.ckpt"
        assert checkpoints[step].exists(), step
    return root, env, checkpoints


@pytest.mark.parametrize("step", [*BASE_STEPS, "hybrid"])
def test_two_process_fit_validates_each_user_once(step: str, ddp_fits) -> None:
    root, env, checkpoints = ddp_fits
    single = root / step / "single"
    _run(
        [
            "validate", *_common(step, checkpoints), "--trainer.devices=1",
            f"--ckpt_path={checkpoints[step]}", f"--trainer.logger.init_args.save_dir={single}",
        ],
        env,
    )  # fmt: skip
    metric = METRIC.get(step, "val_ndcg@10")
    # the 2-process validation of the last epoch saw every user once: the same figure as
    # one process validating the same weights
    assert _last(root / step / "ddp", metric) == pytest.approx(_last(single, metric), abs=1e-6)


def test_two_processes_take_the_steps_of_one_process_with_the_whole_batch(ddp_fits) -> None:
    """Without dropout, 2 processes with half the batch each train the weights one process
    with the whole batch trains (float rounding aside), although their halves hold different
    numbers of positions: each process's mean loss counts as its share of the batch's mean."""
    root, env, _ = ddp_fits
    states = {}
    for processes in (1, 2):
        folder = root / "exact" / str(processes)
        _run(
            [
                "fit", *_common("sequential", {}), "--trainer.max_epochs=1",
                "--trainer.limit_train_batches=4", "--trainer.limit_val_batches=1",
                "--model.init_args.dropout=0", "--model.init_args.context_dropout=0",
                f"--trainer.devices={processes}", f"--data.init_args.batch_size={128 // processes}",
                *(["--trainer.strategy=ddp"] if processes > 1 else []),
                f"--trainer.logger.init_args.save_dir={folder}",
                f"--trainer.callbacks.dirpath={folder}",
            ],
            env,
        )  # fmt: skip
        states[processes] = torch.load(folder / "best.ckpt", map_location="cpu")["state_dict"]
    assert states[1].keys() == states[2].keys()
    for name, weights in states[1].items():
        assert torch.allclose(weights, states[2][name], atol=1e-5, rtol=0), name
