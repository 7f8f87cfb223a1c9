"""Writing and publishing a bundle (:mod:`shared.contracts.bundle` reads them).

:class:`BundleWriter` fills ``ROOT/.tmp-<version>/``; ``finalize`` checksums
every file, writes the manifest, renames the folder into place and switches
``latest`` atomically (:func:`switch_latest`). The manifest records the versions of
hybridrec and the libraries a bundle depends on.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from shared.contracts.bundle import (
    LATEST_FILE,
    LATEST_LINK,
    MANIFEST,
    SCHEMA_VERSION,
    check_rel,
    sha256_file,
)
from shared.contracts.errors import BundleError, ConfigError

LIBRARIES = ("tensorflow", "tensorflow-cpu", "keras", "annoy", "numpy", "sentence-transformers")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RESERVED = {LATEST_LINK, LATEST_FILE, MANIFEST}


def new_version(now: datetime | None = None) -> str:
    """A fresh bundle version: ``YYYYmmdd-HHMMSS-<8 hex>`` (UTC)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(4)}"


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a bundle depends on (None: not installed)."""
    return {name: _package_version(name) for name in LIBRARIES}


def hybridrec_version() -> str:
    """The installed hybridrec version, or the source tree's when not installed."""
    found = _package_version("hybridrec")
    if found:
        return found
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    with contextlib.suppress(OSError, KeyError, ValueError):
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
    return "0+unknown"  # pragma: no cover - source tree without pyproject


def _jsonable(value: Any) -> Any:
    """Convert numpy/pandas scalars, paths and non-finite floats to strict JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        items = sorted(value, key=str) if isinstance(value, set) else value
        return [_jsonable(v) for v in items]
    if isinstance(value, (np.ndarray, np.generic)):
        return _jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (Path, PurePosixPath, datetime)):
        return value.isoformat() if isinstance(value, datetime) else str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise ConfigError(f"cannot store a {type(value).__name__} in JSON: {value!r}")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    """Make a new or renamed directory entry durable (where the platform supports it)."""
    with contextlib.suppress(OSError):  # not supported on every platform
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def switch_latest(root: str | os.PathLike[str], version: str) -> None:
    """Point ``ROOT/latest`` (symlink) and ``ROOT/LATEST`` (text) at ``version`` atomically."""
    base = Path(root)
    if not (base / version / MANIFEST).is_file():
        raise BundleError(f"cannot point latest at {base / version}: it has no {MANIFEST}")
    link = base / LATEST_LINK
    if link.exists() and not link.is_symlink():
        raise BundleError(f"{link} is not a symlink; move it away so `latest` can be switched")
    tmp_link = base / f".latest-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.symlink(version, tmp_link, target_is_directory=True)
        os.replace(tmp_link, link)
    except (OSError, NotImplementedError):  # pragma: no cover - no symlinks on this platform
        tmp_link.unlink(missing_ok=True)
    _write_atomic(base / LATEST_FILE, (version + "\n").encode())
    fsync_dir(base)


class BundleWriter:
    """Writes one bundle into ``ROOT/.tmp-<version>`` and publishes it on finalize.

    Use as a context manager to discard the temp folder when an exception
    escapes before :meth:`finalize`.

    Args:
        root: Artifacts root folder (created if missing).
        version: Bundle version; default :func:`new_version`.
    """

    def __init__(self, root: str | os.PathLike[str], version: str | None = None) -> None:
        self.root = Path(root)
        self.version = version or new_version()
        if not _VERSION_RE.match(self.version) or self.version in _RESERVED:
            raise ConfigError(
                f"bundle version {self.version!r} must be letters, digits, '.', '_' or '-' "
                f"and not one of {sorted(_RESERVED)}"
            )
        self.final_dir = self.root / self.version
        if self.final_dir.exists():
            raise BundleError(f"bundle {self.final_dir} already exists; pick another version")
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp_dir = self.root / f".tmp-{self.version}"
        if self.tmp_dir.exists():
            shutil.rmtree(self.tmp_dir)
        self.tmp_dir.mkdir()
        self._done = False

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()

    def _require_open(self) -> None:
        if self._done:
            raise BundleError(f"bundle {self.version} is already finalized or aborted")

    def path(self, rel: str | os.PathLike[str]) -> Path:
        """Where to write the bundle file ``rel`` (parent folders are created)."""
        self._require_open()
        target = self.tmp_dir / check_rel(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def save_npy(self, rel: str, array: np.ndarray) -> Path:
        """Save an array as ``.npy`` (no pickle: object arrays are refused)."""
        target = self.path(rel)
        arr = np.asarray(array)
        if arr.dtype.hasobject:
            raise ConfigError(f"{rel}: object arrays need pickle; convert to a numeric/str dtype")
        with open(target, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        return target

    def save_json(self, rel: str, obj: Any) -> Path:
        """Save strict JSON (numpy scalars converted, NaN/inf stored as null)."""
        target = self.path(rel)
        text = json.dumps(_jsonable(obj), indent=2, sort_keys=True, allow_nan=False)
        target.write_text(text + "\n", encoding="utf-8")
        return target

    def save_parquet(self, rel: str, df: pd.DataFrame) -> Path:
        """Save a DataFrame as parquet (index dropped)."""
        df.to_parquet(target := self.path(rel), index=False)
        return target

    def abort(self) -> None:
        """Discard everything written so far."""
        if not self._done:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self._done = True

    def finalize(
        self,
        *,
        dataset: dict[str, Any],
        config: dict[str, Any],
        metrics: dict[str, Any],
        components: dict[str, Any],
        set_latest: bool = True,
    ) -> Path:
        """Checksum every file, write the manifest and publish the bundle.

        Args:
            dataset: At least ``name`` and ``sha256`` of the training data.
            config: The training configuration.
            metrics: Evaluation results.
            components: Free description of the parts (annoy params, dims, ...).
            set_latest: Switch ``ROOT/latest`` to this bundle.

        Returns:
            The published bundle folder ``ROOT/<version>``.
        """
        self._require_open()
        missing = [key for key in ("name", "sha256") if key not in dataset]
        if missing:
            raise ConfigError(f"finalize(dataset=...) needs the keys {missing}")
        files: dict[str, dict[str, Any]] = {}
        for file in sorted(self.tmp_dir.rglob("*")):
            if file.is_symlink():
                raise BundleError(f"{file} is a symlink; bundles hold regular files only")
            if file.is_file():
                rel = file.relative_to(self.tmp_dir).as_posix()
                files[rel] = {"sha256": sha256_file(file), "bytes": file.stat().st_size}
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "version": self.version,
            "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "dataset": dataset,
            "config": config,
            "metrics": metrics,
            "components": components,
            "files": files,
            "hybridrec_version": hybridrec_version(),
            "libraries": library_versions(),
        }
        text = json.dumps(_jsonable(manifest), indent=2, sort_keys=True, allow_nan=False)
        _write_atomic(self.tmp_dir / MANIFEST, (text + "\n").encode())
        fsync_dir(self.tmp_dir)
        os.rename(self.tmp_dir, self.final_dir)
        fsync_dir(self.root)
        self._done = True
        if set_latest:
            switch_latest(self.root, self.version)
        return self.final_dir

