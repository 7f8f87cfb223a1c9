"""Hot reload of a service's artifact bundle: load aside, verify, swap in one assignment.

A :class:`BundleReloader` owns how one service moves to another bundle. The new
bundle is verified (manifest, sizes, sha256) and its engine built in a worker
thread while the old engine keeps serving; then one ``swap`` call (one attribute
assignment) makes it current. Handlers take the engine reference once per
request, so a request in flight finishes on the engine it started with. A
bundle that fails (missing, half-written, truncated, bad checksum or manifest,
unloadable) is refused: the old engine stays, one ERROR line names the bundle
and the reason, and the caller gets :class:`BundleRefusedError` (422). One
reload runs at a time; another gets :class:`ReloadInProgressError` (409).

:meth:`BundleReloader.watch` optionally polls the root's ``latest`` pointer and
reloads when it changes; a refused bundle is not retried until it changes again.
User vectors are cached under the engine's model version, so a vector of the
old bundle is never used with the new index.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, TypeVar

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.contracts.admin_v1 import BUNDLE_NAME_PATTERN, BundleStatus, ReloadResult
from shared.contracts.bundle import (
    LATEST_FILE,
    LATEST_LINK,
    MANIFEST,
    Bundle,
    list_bundles,
    load_bundle,
)
from shared.contracts.errors import HybridrecError, NotFoundError, NotReadyError, ValidationError

log = logging.getLogger("hybridrec.reload")
E = TypeVar("E")
_NAME_RE = re.compile(BUNDLE_NAME_PATTERN)
_RESERVED = {LATEST_LINK, LATEST_FILE, MANIFEST}
_MAX_REASON = 2000


class BundleRefusedError(HybridrecError):
    """A bundle failed verification or loading; the service keeps the one it had."""

    http_status = 422
    code = "bundle_refused"


class ReloadInProgressError(HybridrecError):
    """Another reload is running; only one runs at a time."""

    http_status = 409
    code = "reload_in_progress"


@dataclass(frozen=True)
class ActiveBundle:
    """The bundle a service serves."""

    version: str
    path: Path
    loaded_at: datetime


class ReloadMetrics:
    """Prometheus series of a service's reloads, registered once per app registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.reloads = Counter(
            "hybridrec_bundle_reloads_total",
            "Bundle reloads by outcome (ok, failed)",
            ["service", "outcome"],
            registry=registry,
        )
        self.info = Gauge(
            "hybridrec_bundle_info",
            "1 for the bundle version a service serves",
            ["service", "version"],
            registry=registry,
        )
        self.loaded_at = Gauge(
            "hybridrec_bundle_loaded_timestamp_seconds",
            "When the served bundle was loaded (Unix time)",
            ["service"],
            registry=registry,
        )


def reload_metrics(app: FastAPI) -> ReloadMetrics:
    """The app's :class:`ReloadMetrics`, created on first use (lifespans may run twice)."""
    metrics: ReloadMetrics | None = getattr(app.state, "reload_metrics", None)
    if metrics is None:
        metrics = ReloadMetrics(app.state.metrics_registry)
        app.state.reload_metrics = metrics
    return metrics


def artifacts_root(artifacts: str | os.PathLike[str]) -> Path:
    """The folder bundles are named in: ``artifacts`` itself, or its parent for a bundle."""
    path = Path(artifacts)
    return path.parent if (path / MANIFEST).is_file() else path


def latest_name(root: Path) -> str | None:
    """The bundle ``root/latest`` (symlink, else ``LATEST`` text) names, or None."""
    link = root / LATEST_LINK
    if link.is_symlink():
        return Path(os.readlink(link)).name
    marker = root / LATEST_FILE
    try:
        text = marker.read_text(encoding="utf-8").strip() if marker.is_file() else ""
    except OSError:
        return None
    return text or None


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, HybridrecError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


class BundleReloader(Generic[E]):
    """Moves one service to another bundle without dropping a request.

    Args:
        service: The service's name (logs, metrics, answers).
        artifacts: The service's ``HYBRIDREC_ARTIFACTS``: a root (follows ``latest``)
            or one bundle folder (bundles are then named in its parent).
        build: Builds the engine from a loaded bundle (runs in a worker thread).
        swap: Makes an engine current: one assignment, e.g. ``app.state.engine = e``.
        prepare: Optional async step on the new engine before the swap.
        verify: Hash every file (``load_bundle(verify=...)``); sizes are always checked.
        metrics: Where reloads are counted.
    """

    def __init__(
        self,
        *,
        service: str,
        artifacts: str | os.PathLike[str],
        build: Callable[[Bundle], E],
        swap: Callable[[E], None],
        prepare: Callable[[E], Awaitable[None]] | None = None,
        verify: bool = True,
        metrics: ReloadMetrics | None = None,
    ) -> None:
        self.service = service
        self.artifacts = Path(artifacts)
        self.root = artifacts_root(self.artifacts)
        self.follows_latest = self.root == self.artifacts
        self.build = build
        self.swap = swap
        self.prepare = prepare
        self.verify = verify
        self.metrics = metrics
        self.active: ActiveBundle | None = None
        self.starting = True
        self.last_refused: str | None = None
        self.watch_s = 0.0
        self._busy = False
        self._seen_latest: str | None = None

    # ------------------------------------------------------------------ state
    def adopt(self, engine: E, version: str, path: str | os.PathLike[str]) -> None:
        """Make the engine loaded at start-up current and record it."""
        self.swap(engine)
        self._record(version, Path(path))
        self.starting = False

    def startup_failed(self) -> None:
        """The start-up load failed: a reload may now install the first bundle."""
        self.starting = False

    def _record(self, version: str, path: Path) -> None:
        previous = self.active
        self.active = ActiveBundle(version, path, datetime.now(UTC))
        if self.metrics is not None:
            if previous is not None:
                self.metrics.info.remove(self.service, previous.version)
            self.metrics.info.labels(self.service, version).set(1)
            self.metrics.loaded_at.labels(self.service).set(self.active.loaded_at.timestamp())

    def status(self) -> BundleStatus:
        """The served bundle, as the admin endpoints show it."""
        active = self.active
        error = None
        if active is None:
            error = "still loading the first bundle" if self.starting else "no bundle loaded"
        return BundleStatus(
            service=self.service,
            version=active.version if active else None,
            path=str(active.path) if active else None,
            loaded_at=active.loaded_at if active else None,
            watch_latest_s=self.watch_s,
            last_refused=self.last_refused,
            error=error,
        )

    # ------------------------------------------------------------------ target
    def target(self, bundle: str | None) -> Path:
        """The bundle folder a request names (``None``: what ``latest`` names now).

        Raises:
            ValidationError: ``bundle`` is not a bundle name.
            NotFoundError: No folder of that name under the root.
            BundleRefusedError: ``latest`` is missing or names nothing usable.
        """
        if bundle is None:
            if not self.follows_latest:
                return self.artifacts
            name = latest_name(self.root)
            if name is None:
                raise self._refuse(
                    str(self.root),
                    f"{self.root} has no `{LATEST_LINK}` link or {LATEST_FILE} file; "
                    "name the bundle to load",
                )
            bundle = name
        if not _NAME_RE.match(bundle) or bundle in _RESERVED:
            raise ValidationError(
                f"bundle {bundle!r} is not a bundle name: letters, digits, '.', '_' or '-', "
                f"not {sorted(_RESERVED)}; omit it to follow `{LATEST_LINK}`"
            )
        path = self.root / bundle
        if not path.is_dir():
            found = [b.name for b in list_bundles(self.root)][-10:]
            raise NotFoundError(
                f"no bundle {bundle!r} under {self.root}"
                + (f"; bundles there: {', '.join(found)}" if found else "; the root has none")
            )
        return path

    def _refuse(self, what: str, reason: str) -> BundleRefusedError:
        serving = self.active.version if self.active else "nothing"
        log.error("%s refused bundle %s: %s; still serving %s", self.service, what, reason, serving)
        self.last_refused = f"{what}: {reason}"
        if self.metrics is not None:
            self.metrics.reloads.labels(self.service, "failed").inc()
        return BundleRefusedError(
            f"{self.service} refused bundle {what}: {reason}; it still serves {serving}",
            service=self.service,
            bundle=what,
            reason=reason,
            serving=self.active.version if self.active else None,
        )

    def _load(self, path: Path, build: bool) -> tuple[Bundle, E | None]:
        """Verify (and build) the bundle at ``path``; runs in a worker thread."""
        if not (path / MANIFEST).is_file():
            raise BundleRefusedError(
                f"{path} has no {MANIFEST}: the bundle is half-written or not a bundle; "
                "wait for training to publish it or pick another"
            )
        bundle = load_bundle(path, verify=self.verify)
        if path != self.artifacts and bundle.version != path.name:
            raise BundleRefusedError(
                f"its manifest says version {bundle.version!r} but the folder is {path.name!r}; "
                "bundles are published as ROOT/<version> (the user-vector cache is keyed by it)"
            )
        return bundle, (self.build(bundle) if build else None)

    # ------------------------------------------------------------------ reload
    async def reload(self, bundle: str | None = None, *, dry_run: bool = False) -> ReloadResult:
        """Verify and activate a bundle (or only verify it when ``dry_run``).

        Raises:
            NotReadyError: The start-up load has not finished yet.
            ReloadInProgressError: Another reload is running.
            BundleRefusedError: The bundle failed; the old one is still served.
            NotFoundError, ValidationError: No such bundle / not a bundle name.
        """
        if self.starting:
            raise NotReadyError(
                f"{self.service} is still loading its first bundle; retry the reload later"
            )
        if self._busy:
            raise ReloadInProgressError(
                f"{self.service} is already reloading a bundle; retry when it has finished"
            )
        self._busy = True  # set before any await: a concurrent call sees it
        # Shielded: a caller that hangs up must not abandon a half-done switch.
        return await asyncio.shield(asyncio.ensure_future(self._run(bundle, dry_run)))

    async def _run(self, bundle: str | None, dry_run: bool) -> ReloadResult:
        try:
            return await self._reload_locked(bundle, dry_run)
        finally:
            self._busy = False

    async def _reload_locked(self, bundle: str | None, dry_run: bool) -> ReloadResult:
        path = self.target(bundle)
        previous = self.active
        if not dry_run and previous is not None and _same(previous.path, path):
            return self._result(
                previous.version, path, previous, changed=False, dry_run=False, seconds=0.0
            )
        start = time.perf_counter()
        try:
            loaded, engine = await asyncio.to_thread(self._load, path, not dry_run)
            if engine is not None and self.prepare is not None:
                await self.prepare(engine)
        except Exception as exc:  # any failure keeps the old engine
            log.debug("loading %s failed", path, exc_info=True)
            raise self._refuse(f"{path.name} ({path})", _one_line(exc)) from exc
        seconds = time.perf_counter() - start
        if engine is None:
            return self._result(
                loaded.version, path, previous, changed=False, dry_run=True, seconds=seconds
            )
        self.swap(engine)  # one assignment: new requests take the new engine
        self._record(loaded.version, path)
        self.last_refused = None
        if self.metrics is not None:
            self.metrics.reloads.labels(self.service, "ok").inc()
        log.info(
            "%s switched bundle %s -> %s (%s) in %.1f s",
            self.service,
            previous.version if previous else None,
            loaded.version,
            path,
            seconds,
        )
        return self._result(
            loaded.version, path, previous, changed=True, dry_run=False, seconds=seconds
        )

    def _result(
        self,
        version: str,
        path: Path,
        previous: ActiveBundle | None,
        *,
        changed: bool,
        dry_run: bool,
        seconds: float,
    ) -> ReloadResult:
        return ReloadResult(
            service=self.service,
            previous_version=previous.version if previous else None,
            version=version,
            path=str(path),
            changed=changed,
            dry_run=dry_run,
            loaded_at=None if dry_run or self.active is None else self.active.loaded_at,
            seconds=round(seconds, 3),
        )

    # ------------------------------------------------------------------ watching
    async def check_latest(self) -> ReloadResult | None:
        """Reload when ``latest`` names another bundle than last seen; None if nothing to do."""
        if self.starting or not self.follows_latest or self._busy:
            return None
        name = latest_name(self.root)
        seen = self._seen_latest or (self.active.path.name if self.active else None)
        if name is None or name == seen:
            return None
        self._seen_latest = name
        try:
            return await self.reload(name)
        except ReloadInProgressError:
            self._seen_latest = seen  # try again on the next tick
        except HybridrecError:
            pass  # refused and logged; not retried until `latest` changes again
        return None

    async def watch(self, every_s: float) -> None:
        """Poll ``latest`` every ``every_s`` seconds, forever (run it as a task)."""
        if not self.follows_latest:
            log.warning(
                "%s: HYBRIDREC_WATCH_LATEST_S is set but %s is one bundle, not an artifacts "
                "root with `latest`; not watching",
                self.service,
                self.artifacts,
            )
            return
        self.watch_s = every_s
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.check_latest()
            except Exception:  # a background loop must not die
                log.exception("%s: checking `latest` failed", self.service)

    def start_watching(self, every_s: float) -> asyncio.Task[None] | None:
        """The :meth:`watch` task, or None when ``every_s`` is 0 (off)."""
        if every_s <= 0:
            return None
        return asyncio.create_task(self.watch(every_s))


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b
