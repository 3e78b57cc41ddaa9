"""``python -m training evaluate --bundle DIR``: reports for an exported bundle.

Loads the bundle and the data set it was trained on (with the context config it recorded),
scores protocol S, runs the offline A/B test and the context impact analysis, writes the
reports and prints the table. Failures a person can fix (no bundle there, data not available)
end in one line on stderr and exit code 1, not a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

from contextflix.bundle import BundleError, export_bundle, load_bundle
from contextflix.data import DataError, DeviceSimulation, load_dataset
from contextflix.evaluation.context_impact import context_impact
from contextflix.evaluation.report import evaluate_bundle, print_table


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def _device_simulation(config: dict) -> DeviceSimulation:
    """The context the bundle's data set was built with (defaults when not recorded)."""
    recorded = (config.get("context") or {}).get("device_simulation")
    return DeviceSimulation.from_dict(recorded) if recorded else DeviceSimulation()


def evaluate(
    bundle: str,
    output: str = "reports",
    update_bundle: bool = False,
    data_dir: str | None = None,
    genre_effect: float | None = 1.0,
) -> None:
    """Evaluate a bundle: protocols S and R, offline A/B test, context impact; write reports.

    Args:
        bundle: the bundle folder (as written by ``python -m training pipeline``).
        output: folder for the reports (markdown, JSON, PNG).
        update_bundle: also write the new metrics.json and reports into the bundle (a
            re-export, so its manifest stays valid).
        data_dir: where the MovieLens release lives (default: the usual look-up).
        genre_effect: the simulated device's genre effect to compare against in the context
            impact report (the device is analysed as loaded and under this setting); None
            skips the comparison.
    """
    try:
        loaded = load_bundle(bundle, data_dir)
    except BundleError as error:
        _fail(f"cannot load bundle: {error}")
    name = loaded.config.get("dataset")
    if not name:
        _fail(f"{bundle}: config.json names no dataset")
    try:
        dataset = load_dataset(name, data_dir, _device_simulation(loaded.config))
    except (DataError, OSError) as error:
        _fail(f"data set {name!r} not available: {error}")
    reports = Path(output)
    metrics = evaluate_bundle(loaded, dataset, reports)
    context_impact(dataset, reports, compare_genre_effect=genre_effect)
    print_table(metrics)
    if update_bundle:
        loaded.metrics = metrics
        export_bundle(loaded, Path(bundle), reports_dir=reports)
        print(f"bundle {bundle} updated")
    print(f"reports written to {reports}")
