"""Errors of the data layer: each one carries a message a person can act on."""


class DataError(Exception):
    """Base class: anything wrong with finding, fetching or reading MovieLens data."""


class UnknownDatasetError(DataError, ValueError):
    """A data set name that is not one of the supported releases."""


class MalformedFileError(DataError):
    """A data file whose content does not match its release's format (names file and line)."""


class ChecksumError(DataError):
    """A file whose SHA-256 differs from the published one (gives both digests)."""


class DownloadError(DataError):
    """A release that is not on disk and could not be downloaded (says what to put where)."""
