"""``python -m contextflix.data prepare``: fetch, verify, add context, split, cache, summarise."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from contextflix.data.context import DeviceSimulation
from contextflix.data.dataset import load_dataset, summary
from contextflix.data.errors import DataError
from contextflix.data.releases import RELEASES
from contextflix.data.splits import write_split_tsv


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contextflix.data")
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="load, verify, add context and split a data set")
    prepare.add_argument("--dataset", required=True, choices=sorted(RELEASES))
    prepare.add_argument("--data-dir", type=Path, help="folder holding the release's files")
    prepare.add_argument(
        "--export-splits", type=Path, help="write the protocol split TSV files here"
    )
    prepare.add_argument("--context-config", type=Path, help="YAML with the device simulation")
    prepare.add_argument(
        "--no-cache", action="store_true", help="ignore and do not write the cache"
    )
    args = parser.parse_args(argv)
    try:
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
