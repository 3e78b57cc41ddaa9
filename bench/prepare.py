"""Cold-cache ``prepare`` time (load, verify, context, splits, cache write) per data set.

    CONTEXTFLIX_DATA_DIR=../shared/data python bench/prepare.py

Each data set is prepared in a fresh process-local cache, so nothing is reused between
runs; the interpreter start and imports are excluded. A warm (cached) load is timed too.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from unittest import mock

from contextflix.data import DataError, load_dataset


def main() -> None:
    print("| data set | ratings | cold prepare (s) | warm load (s) |\n|---|---:|---:|---:|")
    for name in ("ml-latest-small", "ml-100k"):
        with (
            tempfile.TemporaryDirectory() as cache,
            mock.patch("platformdirs.user_cache_dir", lambda *a, cache=cache, **k: cache),
        ):
            data_dir = os.environ.get("CONTEXTFLIX_DATA_DIR")
            env = {"CONTEXTFLIX_DATA_DIR": cache}
            try:
                with mock.patch.dict(os.environ, env):
                    source = data_dir if name != "ml-latest-small" else None
                    start = time.perf_counter()
                    data = load_dataset(name, Path(source) if source else None)
                    cold = time.perf_counter() - start
                    start = time.perf_counter()
                    load_dataset(name, Path(source) if source else None)
                    warm = time.perf_counter() - start
            except DataError as error:
                print(f"| {name} | - | skipped: {str(error).splitlines()[0][:60]} | - |")
                continue
            print(f"| {name} | {len(data.ratings):,} | {cold:.2f} | {warm:.2f} |")


if __name__ == "__main__":
    main()
