"""Download MovieLens zips from GroupLens and verify them against pinned checksums.

Provenance of the pins (all for ``https://files.grouplens.org/datasets/movielens/NAME.zip``):

* sha256 and size of ml-latest-small, ml-100k, ml-1m and ml-25m: tensorflow-datasets'
  ``url_checksums/movielens.txt`` (its ml-latest-small and ml-1m values equal the ones this
  project verified independently).
* sha256 of ml-32m: two independent public manifests (both 238,950,008 bytes).
* md5 values: the ``NAME.zip.md5`` files GroupLens publishes beside each zip, as pinned by
  several public projects. Both digests are checked when both are known.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlparse

import httpx
from tqdm import tqdm

from shared.contracts.errors import ConfigError, DownloadError

log = logging.getLogger(__name__)

_BASE = "https://files.grouplens.org/datasets/movielens"
_LICENCE = ("GroupLens MovieLens usage licence (README in the zip): research use only, cite "
            "Harper & Konstan 2015 (ACM TiiS), no commercial use without permission.")


class DatasetSource(TypedDict):
    """Where a release comes from and what it must hash to."""

    url: str
    sha256: str
    md5: str | None
    size: int | None
    licence: str


DATASETS: dict[str, DatasetSource] = {
    "ml-latest-small": DatasetSource(
        url=f"{_BASE}/ml-latest-small.zip", size=978_202, md5=None,
        sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        licence=_LICENCE + " Redistribution allowed under the same terms (bundled here)."),
    "ml-100k": DatasetSource(
        url=f"{_BASE}/ml-100k.zip", size=4_924_029, md5="0e33842e24a9c977be4e0107933c0723",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        licence=_LICENCE + " No redistribution without permission: never commit it."),
    "ml-1m": DatasetSource(
        url=f"{_BASE}/ml-1m.zip", size=5_917_549, md5="c4d9eecfca2ab87c1945afe126590906",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        licence=_LICENCE + " No redistribution without permission: never commit it."),
    "ml-25m": DatasetSource(
        url=f"{_BASE}/ml-25m.zip", size=261_978_986, md5="6b51fb2759a8657d3bfcbfc42b592ada",
        sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
        licence=_LICENCE + " Read its README before sharing a copy."),
    "ml-32m": DatasetSource(
        url=f"{_BASE}/ml-32m.zip", size=238_950_008, md5="d472be332d4daa821edc399621853b57",
        sha256="e4a68655d7386b8f95f2f2424b2ff975dfdd15ffd59e0d864a14dca43e99d6ee",
        licence=_LICENCE + " Read its README before sharing a copy."),
}
"""Downloadable releases: url, pinned sha256 (and GroupLens md5), size in bytes, licence."""

_CHUNK = 1 << 20


def _digests(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def _mismatch(spec: DatasetSource, sha256: str, md5: str) -> str | None:
    """Describe how the digests differ from the pins, or None when they match."""
    if sha256 != spec["sha256"]:
        return f"expected sha256 {spec['sha256']}, got {sha256}"
    if spec["md5"] is not None and md5 != spec["md5"]:
        return f"expected md5 {spec['md5']}, got {md5}"
    return None


def download_dataset(name: str, dest_dir: str | Path, *, force: bool = False) -> Path:
    """Download ``NAME.zip`` into ``dest_dir`` and verify its pinned checksum.

    The file is streamed into a temporary ``.part`` file beside the target (with a tqdm
    progress bar on stderr), verified, then renamed into place, so a failed or interrupted
    download never leaves a file that looks complete.

    Args:
        name: A key of :data:`DATASETS`, for example ``"ml-1m"``.
        dest_dir: Folder to write ``NAME.zip`` into (created if needed).
        force: Download even when a verified copy already exists.

    Returns:
        Path of the verified zip.

    Raises:
        ConfigError: ``name`` is not a known release.
        DownloadError: The server could not be reached or answered with an error, or the
            downloaded bytes do not match the pinned checksum (the file is removed).
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{name}.zip"
    if target.is_file() and not force:
        problem = _mismatch(spec, *_digests(target))
        if problem is None:
            log.info("%s already present and verified", target)
            return target
        log.warning("%s exists but fails its checksum (%s); downloading it again", target, problem)

    url, host = spec["url"], urlparse(spec["url"]).hostname or spec["url"]
    by_hand = f"download {name}.zip by hand from {url} and pass --data PATH"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".zip.part", dir=dest)
    tmp = Path(tmp_name)
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out, httpx.stream(
                "GET", url, follow_redirects=True,
                timeout=httpx.Timeout(60.0, connect=15.0)) as resp:
            if resp.status_code != 200:
                raise DownloadError(f"{url} answered HTTP {resp.status_code}; {by_hand}")
            total = int(resp.headers.get("content-length") or spec["size"] or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=f"{name}.zip", file=sys.stderr) as bar:
                for chunk in resp.iter_bytes(_CHUNK):
                    out.write(chunk)
                    sha.update(chunk)
                    md5.update(chunk)
                    bar.update(len(chunk))
    except httpx.TransportError as exc:
        tmp.unlink(missing_ok=True)
        raise DownloadError(f"could not reach {host}; {by_hand} "
                            f"({type(exc).__name__}: {exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    problem = _mismatch(spec, sha.hexdigest(), md5.hexdigest())
    if problem is not None:
        tmp.unlink(missing_ok=True)
        raise DownloadError(f"{url}: checksum mismatch, {problem}; the downloaded file was "
                            f"removed. Retry later, or {by_hand}")
    os.replace(tmp, target)
    log.info("downloaded %s (%s bytes, sha256 %s)", target, target.stat().st_size,
             spec["sha256"])
    return target
