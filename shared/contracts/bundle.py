"""The versioned artifact bundle: the only interface between training and serving.

Layout: ``ROOT/<version>/`` (``manifest.json`` plus every file it lists),
``ROOT/latest`` (symlink) and ``ROOT/LATEST`` (text) naming the current bundle.
:class:`shared.contracts.bundle_writer.BundleWriter` writes and publishes one; this module
finds, verifies and loads them. :func:`load_bundle` refuses a bundle whose manifest is
missing, unreadable or of another schema, or whose files are missing, changed
or unlisted. Hashing streams 1 MiB chunks (bounded memory for multi-GB files).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
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


def sha256_file(path: str | os.PathLike[str], chunk_size: int = CHUNK) -> str:
    """Hex sha256 of a file, read in ``chunk_size`` pieces (bounded memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def check_rel(rel: str | os.PathLike[str]) -> str:
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


def latest_version(root: Path) -> str | None:
    """The version ``ROOT/latest`` (or else ``ROOT/LATEST``) names, None when neither does."""
    link = root / LATEST_LINK
    if link.is_symlink():
        return Path(os.readlink(link)).name
    marker = root / LATEST_FILE
    text = marker.read_text(encoding="utf-8").strip() if marker.is_file() else ""
    return text or None


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
        version = latest_version(p)
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
        key = check_rel(rel)
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
            key = check_rel(rel)
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
    latest = latest_version(base)
    removed = []
    for bundle in bundles[: max(0, len(bundles) - keep)]:
        if bundle.name == latest:
            continue
        shutil.rmtree(bundle)
        removed.append(bundle)
    return removed
