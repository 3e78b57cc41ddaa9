"""The MovieLens releases ContextFlix can load, with the digests that pin their exact bytes.

A digest is listed only where it was found published in public material (source in the
comment next to it); ``None`` means no published value was found, and that file is then
trusted through the zip's digest when downloaded, or not checked at all when supplied by hand.
GroupLens itself publishes only MD5 sums (``<name>.zip.md5``); each SHA-256 below is from a
public project that cross-checked its zip against those MD5 sums or pinned the value itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from contextflix.data.errors import UnknownDatasetError

_BASE_URL = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class Release:
    """One GroupLens archive: where it lives, what is inside it and how to check it.

    ``folder`` is the folder inside the zip; ``files`` maps every file the loaders read to
    its SHA-256 (``None`` where no published value exists); ``format`` selects the parser:
    "csv", "100k" or "dat".
    """

    name: str
    url: str
    zip_sha256: str | None
    folder: str
    files: dict[str, str | None]
    format: str


RELEASES: dict[str, Release] = {
    "ml-latest-small": Release(
        name="ml-latest-small",
        url=f"{_BASE_URL}/ml-latest-small.zip",
        # zip: omnirec data loader (MovieLensLatestSmall), the rust/pooch-style downloaders
        # of several MovieLens projects and dataset cards that list it as the archive digest.
        zip_sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        folder="ml-latest-small",
        # files: /work/shared/data/SOURCES.md (September 2018 release), each corroborated by
        # public manifests that list all four CSV digests.
        files={
            "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
            "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
            "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
            "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
        },
        format="csv",
    ),
    "ml-100k": Release(
        name="ml-100k",
        url=f"{_BASE_URL}/ml-100k.zip",
        # zip: omnirec MovieLens100K loader and several benchmark scripts, which also give the
        # GroupLens MD5 0e33842e24a9c977be4e0107933c0723 and size 4,924,029 bytes.
        zip_sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        folder="ml-100k",
        # files: /work/shared/data/SOURCES.md (u.data, u.item, u.user also published elsewhere).
        files={
            "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
            "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
            "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
        },
        format="100k",
    ),
    "ml-1m": Release(
        name="ml-1m",
        url=f"{_BASE_URL}/ml-1m.zip",
        # zip: a TensorFlow/absl ml-1m preprocessing script (MOVIELENS_ZIP_HASH), a keras_rs
        # SASRec example, secretflow's ml-1m loader, and research repos whose zip also matched
        # the GroupLens MD5 c4d9eecfca2ab87c1945afe126590906.
        zip_sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        folder="ml-1m",
        # files: /work/shared/data/SOURCES.md; ratings.dat from three independent public sources.
        files={
            "ratings.dat": "506d64ca44484487c11dc2d9a28de5c54948213e6b96285e298afe28d6ea4e0f",
            "movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
            "users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
        },
        format="dat",
    ),
    "ml-25m": Release(
        name="ml-25m",
        url=f"{_BASE_URL}/ml-25m.zip",
        # zip: omnirec MovieLens25M loader, a Rust MovieLens downloader and an ml-25m fetch
        # script that cross-checks it against the GroupLens MD5 6b51fb2759a8657d3bfcbfc42b592ada.
        zip_sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
        folder="ml-25m",
        # files: no published per-file SHA-256 found.
        files={"ratings.csv": None, "movies.csv": None, "tags.csv": None, "links.csv": None},
        format="csv",
    ),
    "ml-32m": Release(
        name="ml-32m",
        url=f"{_BASE_URL}/ml-32m.zip",
        # zip: a Rust MovieLens downloader and several research repos (238,950,008 bytes).
        zip_sha256="e4a68655d7386b8f95f2f2424b2ff975dfdd15ffd59e0d864a14dca43e99d6ee",
        folder="ml-32m",
        # files: ratings.csv and movies.csv in several public repos; tags.csv in one public
        # ML-32M data manifest; links.csv: none found.
        files={
            "ratings.csv": "91159850e41ee59c86231165a688709647e2726cab2e7ba9faf04001bd5261ee",
            "movies.csv": "b37ca1abc7798de741138ed252b62f69f7e37c84b8a8fab1b82d409b4c6c5cc2",
            "tags.csv": "c52e458a89b9deee410f50813e7a64491fbe92a6f07b5c4b58e64c0b3cc95b89",
            "links.csv": None,
        },
        format="csv",
    ),
    "ml-latest": Release(
        name="ml-latest",
        url=f"{_BASE_URL}/ml-latest.zip",
        # zip: omnirec MovieLensLatest loader, a Rust MovieLens downloader and a dataset
        # registry noting the snapshot's README is dated 2023-07-20. "latest" is a rolling
        # release: if GroupLens replaces it, the download fails with ChecksumError on purpose.
        zip_sha256="66a9e518c747d76b241d9a859b001a2619d3ed1672ceef599eb50daf73a7b4a3",
        folder="ml-latest",
        # files: no published per-file SHA-256 found.
        files={"ratings.csv": None, "movies.csv": None, "tags.csv": None, "links.csv": None},
        format="csv",
    ),
}


def get_release(name: str) -> Release:
    """Look a release up by name, so that a typo fails with the list of valid names.

    ``synthetic-<release>[-x<scale>]`` names a SYNTHETIC data set in that release's format
    (``contextflix.data.synthetic``), generated on first use instead of downloaded.
    """
    from contextflix.data.synthetic import synthetic_release  # it builds on Release

    release = RELEASES.get(name) or synthetic_release(name)
    if release is None:
        valid = ", ".join(sorted(RELEASES))
        raise UnknownDatasetError(
            f"unknown MovieLens data set {name!r}; valid names: {valid}, or "
            f"synthetic-ml-1m, synthetic-ml-25m, synthetic-ml-32m (add -x0.2 for a 20% copy)"
        )
    return release
