"""``python -m contextflix.data prepare|synthesize``.

prepare: fetch, verify, add context, split, cache, summarise. synthesize: write a SYNTHETIC
data set shaped like a MovieLens release (see contextflix.data.synthetic).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from contextflix.data.context import DeviceSimulation
from contextflix.data.dataset import load_dataset, summary
from contextflix.data.errors import DataError
from contextflix.data.fetch import cache_dir
from contextflix.data.releases import get_release
from contextflix.data.splits import write_split_tsv
from contextflix.data.synthetic import LIKE, synthetic_name, write_release


def device_simulation_from_yaml(path: Path) -> DeviceSimulation:
    """The ``device`` section of a context config (see configs/context.yaml)."""
    section = (yaml.safe_load(path.read_text()) or {}).get("device", {})
    if "alpha" in section:
        section["alpha"] = tuple(section["alpha"])
    if "device_genres" in section:
        section["device_genres"] = {d: tuple(g) for d, g in section["device_genres"].items()}
    return DeviceSimulation(**section)


def export_splits(dataset, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    parts = {
        "R.train": dataset.r.train,
        "R.test": dataset.r.test,
        "S.train": dataset.s.train,
        "S.valid": dataset.s.valid,
        "S.test": dataset.s.test,
    }
    for name, rows in parts.items():
        write_split_tsv(dataset.ratings, rows, folder / f"{name}.tsv")


def print_summary(info: dict, seconds: float) -> None:
    print(
        f"{info['dataset']}: {info['users']:,} users, {info['items']:,} movies "
        f"({info['rated_items']:,} rated), {info['ratings']:,} ratings {info['rating_range']}"
    )
    r, s = info["split_R"], info["split_S"]
    print(f"protocol R: train {r['train']:,}, test {r['test']:,}")
    print(f"protocol S: train {s['train']:,}, valid {s['valid']:,}, test {s['test']:,}")
    zones = ", ".join(f"{zone} {n}" for zone, n in info["timezones"].items())
    print(f"time zones (users): {zones}")
    print("time of day: " + ", ".join(f"{k} {v:.1%}" for k, v in info["time_of_day"].items()))
    effect = info["device_simulation"]["genre_effect"]
    print(
        f"device (SIMULATED, genre effect {effect}): "
        + ", ".join(f"{k} {v:.1%}" for k, v in info["device_simulated"].items())
    )
    print(f"prepared in {seconds:.2f} s")


def synthesize_command(like: str, seed: int, scale: float, output: Path | None) -> int:
    try:
        folder = (output or cache_dir()) / synthetic_name(like, scale)
        start = time.perf_counter()
        info = write_release(folder, like, seed, scale)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    oracle = info["oracle_test"]
    print(
        f"SYNTHETIC {info['name']} (seed {seed}): {info['users']:,} users, "
        f"{info['items']:,} movies, {info['ratings']:,} ratings in {folder} "
        f"({time.perf_counter() - start:.1f} s); oracle test NDCG@10 {oracle['ndcg@10']:.4f}, "
        f"HR@10 {oracle['hr@10']:.4f} over {oracle['users']:,} users"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contextflix.data")
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="load, verify, add context and split a data set")
    prepare.add_argument(
        "--dataset", required=True, help="a release (ml-100k, ml-1m, ...) or synthetic-ml-1m etc."
    )
    prepare.add_argument("--data-dir", type=Path, help="folder holding the release's files")
    prepare.add_argument(
        "--export-splits", type=Path, help="write the protocol split TSV files here"
    )
    prepare.add_argument("--context-config", type=Path, help="YAML with the device simulation")
    prepare.add_argument(
        "--no-cache", action="store_true", help="ignore and do not write the cache"
    )
    synthesize = commands.add_parser(
        "synthesize", help="write a SYNTHETIC data set with a MovieLens release's shape"
    )
    synthesize.add_argument("--like", required=True, choices=sorted(LIKE))
    synthesize.add_argument("--seed", type=int, default=0)
    synthesize.add_argument("--scale", type=float, default=1.0, help="fraction of the size")
    synthesize.add_argument(
        "--output", type=Path, help="parent folder (default: $CONTEXTFLIX_DATA_DIR or the cache)"
    )
    args = parser.parse_args(argv)
    if args.command == "synthesize":
        return synthesize_command(args.like, args.seed, args.scale, args.output)
    try:
        get_release(args.dataset)
        device = device_simulation_from_yaml(args.context_config) if args.context_config else None
        start = time.perf_counter()
        dataset = load_dataset(args.dataset, args.data_dir, device, use_cache=not args.no_cache)
        seconds = time.perf_counter() - start
        if args.export_splits:
            export_splits(dataset, args.export_splits)
    except (DataError, ValueError, TypeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print_summary(summary(dataset), seconds)
    if args.export_splits:
        print(f"split files written to {args.export_splits}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
