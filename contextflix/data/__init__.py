"""MovieLens data: fetching, parsing, context features and the evaluation protocols."""

from contextflix.data.context import DEVICES, TIMES_OF_DAY, DeviceSimulation
from contextflix.data.dataset import Dataset, load_dataset
from contextflix.data.errors import (
    ChecksumError,
    DataError,
    DownloadError,
    MalformedFileError,
    UnknownDatasetError,
)
from contextflix.data.movielens import MovieLens, load_movielens

__all__ = [
    "DEVICES",
    "TIMES_OF_DAY",
    "ChecksumError",
    "DataError",
    "Dataset",
    "DeviceSimulation",
    "DownloadError",
    "MalformedFileError",
    "MovieLens",
    "UnknownDatasetError",
    "load_dataset",
    "load_movielens",
]
