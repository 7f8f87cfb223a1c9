"""The versioned artifact bundle: the only interface between training and serving.

Layout: ``ROOT/<version>/`` (``manifest.json`` plus every file it lists),
``ROOT/latest`` (symlink) and ``ROOT/LATEST`` (text) naming the current bundle.
:class:`BundleWriter` fills ``ROOT/.tmp-<version>/``; ``finalize`` checksums
every file, writes the manifest, renames the folder into place and switches
``latest`` atomically. :func:`load_bundle` refuses a bundle whose manifest is
missing, unreadable or of another schema, or whose files are missing, changed
or unlisted. Hashing streams 1 MiB chunks (bounded memory for multi-GB files).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from shared.contracts.errors import BundleError, ConfigError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
LATEST_LINK = "latest"
LATEST_FILE = "LATEST"
CHUNK = 1 << 20
LIBRARIES = ("tensorflow", "tensorflow-cpu", "keras", "annoy", "numpy", "sentence-transformers")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RESERVED = {LATEST_LINK, LATEST_FILE, MANIFEST}


def sha256_file(path: str | os.PathLike[str], chunk_size: int = CHUNK) -> str:
    """Hex sha256 of a file, read in ``chunk_size`` pieces (bounded memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


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

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    with contextlib.suppress(OSError, KeyError, ValueError):
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
    return "0+unknown"  # pragma: no cover - source tree without pyproject


def _check_rel(rel: str | os.PathLike[str]) -> str:
    """Validate a bundle-relative path and return it in POSIX form."""
    text = str(rel).replace("\\", "/")
    pure = PurePosixPath(text)
    if (
        not text
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in text.split("/"))
        or re.match(r"^[A-Za-z]:", text)
    ):
        raise ConfigError(
            f"bundle file names must be relative paths inside the bundle, got {str(rel)!r}"
        )
    if text == MANIFEST:
        raise ConfigError(f"{MANIFEST} is written by finalize(); choose another file name")
    return pure.as_posix()


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


def _latest_version(root: Path) -> str | None:
    link = root / LATEST_LINK
    if link.is_symlink():
        return Path(os.readlink(link)).name
    marker = root / LATEST_FILE
    text = marker.read_text(encoding="utf-8").strip() if marker.is_file() else ""
    return text or None


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
        target = self.tmp_dir / _check_rel(rel)
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


def resolve_bundle(path: str | os.PathLike[str]) -> Path:
    """The concrete ``ROOT/<version>`` folder designated by ``path``.

    Args:
        path: A bundle folder (has ``manifest.json``), its manifest, or an
            artifacts root (follows ``latest``, then ``LATEST``).

    Raises:
        BundleError: ``path`` is neither a bundle nor a root with a latest bundle.
    """
    p = Path(path)
    if p.name == MANIFEST and p.is_file():
        return p.parent
    if not p.exists():
        raise BundleError(
            f"no artifact bundle at {p}: the path does not exist; train one with "
            "`hybridrec train` or pass the right --artifacts folder"
        )
    if (p / MANIFEST).is_file():
        return p
    if p.is_dir():
        version = _latest_version(p)
        if version is not None:
            target = p / version
            if not (target / MANIFEST).is_file():
                raise BundleError(
                    f"{p} says the latest bundle is {version!r}, but {target} has no {MANIFEST}; "
                    "retrain or point latest at an existing bundle"
                )
            return target
        found = [b.name for b in list_bundles(p)]
        hint = f" (bundles found: {', '.join(found)})" if found else ""
        raise BundleError(
            f"{p} is neither a bundle (no {MANIFEST}) nor an artifacts root with a "
            f"`{LATEST_LINK}` link or {LATEST_FILE} file{hint}; train with `hybridrec train`"
        )
    raise BundleError(f"{p} is a file, expected a bundle folder or an artifacts root")


@dataclass
class Bundle:
    """A loaded (and normally verified) bundle."""

    root: Path
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        """The bundle's version string."""
        return str(self.manifest["version"])

    def path(self, rel: str) -> Path:
        """Absolute path of a file the manifest lists."""
        key = _check_rel(rel)
        if key not in self.manifest["files"]:
            raise BundleError(
                f"bundle {self.version} has no file {key!r}; it has "
                f"{sorted(self.manifest['files'])}"
            )
        return self.root / key

    def load_npy(self, rel: str, mmap: bool = True) -> np.ndarray:
        """Load an array (memory-mapped read-only by default, never unpickled)."""
        return np.load(self.path(rel), mmap_mode="r" if mmap else None, allow_pickle=False)

    def load_json(self, rel: str) -> Any:
        """Parse a JSON file of the bundle."""
        return json.loads(self.path(rel).read_text(encoding="utf-8"))

    def load_parquet(self, rel: str) -> pd.DataFrame:
        """Read a parquet file of the bundle."""
        return pd.read_parquet(self.path(rel))


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    """Parse and schema-check ``bundle_dir/manifest.json`` (BundleError when unusable)."""
    file = bundle_dir / MANIFEST
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BundleError(f"{file} is missing; the bundle is incomplete, retrain") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot read {file}: {exc}") from exc
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(
            f"{file} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "the manifest is truncated or corrupted: retrain or restore the bundle"
        ) from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{file} must hold a JSON object, found {type(manifest).__name__}")
    found = manifest.get("schema_version")
    if found != SCHEMA_VERSION:
        raise BundleError(
            f"{file}: unsupported schema_version: expected {SCHEMA_VERSION}, found {found!r}; "
            "retrain with this version of hybridrec (`hybridrec train`)",
            expected=SCHEMA_VERSION,
            found=found,
        )
    missing = [k for k in ("version", "created_at", "files") if k not in manifest]
    if missing or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{file} lacks required keys {missing or ['files (object)']}; retrain")
    return manifest


def verify_files(bundle_dir: Path, manifest: dict[str, Any], *, hashes: bool = True) -> None:
    """Check every listed file's size (and sha256) and that no unlisted file exists.

    Raises:
        BundleError: Naming every problem (file, expected vs actual).
    """
    problems: list[str] = []
    listed = manifest["files"]
    for rel, meta in sorted(listed.items()):
        try:
            key = _check_rel(rel)
        except ConfigError:
            problems.append(f"{rel!r}: not a relative path inside the bundle")
            continue
        file = bundle_dir / key
        if not file.is_file():
            problems.append(f"{key}: missing file")
            continue
        size = file.stat().st_size
        if size != meta.get("bytes"):
            problems.append(f"{key}: size mismatch, expected {meta.get('bytes')} bytes, got {size}")
            continue
        if hashes:
            actual = sha256_file(file)
            if actual != meta.get("sha256"):
                problems.append(
                    f"{key}: sha256 mismatch (file changed or tampered with), expected "
                    f"{meta.get('sha256')}, found {actual}"
                )
    if hashes:
        for file in sorted(bundle_dir.rglob("*")):
            rel = file.relative_to(bundle_dir).as_posix()
            if (file.is_file() or file.is_symlink()) and rel != MANIFEST and rel not in listed:
                problems.append(f"{rel}: file not listed in the manifest")
    if problems:
        raise BundleError(
            f"bundle {bundle_dir} failed verification: "
            + "; ".join(problems)
            + ". Retrain or restore the bundle; do not edit bundle files by hand",
            problems=problems,
        )


def load_bundle(path: str | os.PathLike[str], *, verify: bool = True) -> Bundle:
    """Resolve, read and (by default) fully verify a bundle.

    Args:
        path: Artifacts root or one bundle folder (see :func:`resolve_bundle`).
        verify: Hash every file and refuse unlisted files. When False only
            existence and sizes are checked.

    Raises:
        BundleError: With a message naming the problem and how to fix it.
    """
    bundle_dir = resolve_bundle(path)
    manifest = read_manifest(bundle_dir)
    verify_files(bundle_dir, manifest, hashes=verify)
    return Bundle(root=bundle_dir, manifest=manifest)


def list_bundles(root: str | os.PathLike[str]) -> list[Path]:
    """Published bundles under ``root``, oldest first (by manifest ``created_at``)."""
    base = Path(root)
    if not base.is_dir():
        return []
    found: list[tuple[str, str, Path]] = []
    for child in base.iterdir():
        if child.name.startswith(".") or child.is_symlink() or not child.is_dir():
            continue
        manifest = child / MANIFEST
        if not manifest.is_file():
            continue
        try:
            created = str(json.loads(manifest.read_text(encoding="utf-8")).get("created_at", ""))
        except (OSError, ValueError, AttributeError):
            created = ""
        found.append((created, child.name, child))
    return [p for _, _, p in sorted(found)]


def prune(root: str | os.PathLike[str], keep: int = 3) -> list[Path]:
    """Delete all but the newest ``keep`` bundles (never ``latest``'s); returns those removed."""
    if keep < 1:
        raise ConfigError(f"prune(keep=...) must keep at least 1 bundle, got {keep}")
    base = Path(root)
    bundles = list_bundles(base)
    latest = _latest_version(base)
    removed = []
    for bundle in bundles[: max(0, len(bundles) - keep)]:
        if bundle.name == latest:
            continue
        shutil.rmtree(bundle)
        removed.append(bundle)
    return removed
