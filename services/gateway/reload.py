"""The gateway's side of hot reload: its popular fallback, and the whole stack's switch.

``POST /v1/admin/reload`` first verifies the bundle everywhere (a dry run on
retrieval, which also resolves ``latest`` to one concrete version, then on
ranking and on the gateway), so a bundle that any service refuses switches
nothing. Then it switches retrieval, ranking and the gateway's popular fallback
in that order, each loading aside and swapping in one assignment. While
retrieval already serves the new version and ranking the old one, requests still
succeed: ranking keeps unknown candidate ids at their retrieval position, like
fresh items. A failure in the switch phase (a bundle that verifies but does not
load) switches the services already moved back to their previous version.

Retrieval and ranking are called over HTTP with the gateway's admin key in
``X-API-Key`` (the key is never logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from services.gateway.core import GatewayCore, PopularFallback
from services.gateway.settings import GatewaySettings
from shared.contracts import bundle_layout as L
from shared.contracts.admin_v1 import (
    BundleStatus,
    ReloadRequest,
    ReloadResult,
    StackBundles,
    StackReloadResult,
)
from shared.contracts.bundle import Bundle, load_bundle, resolve_bundle, sha256_file
from shared.contracts.errors import BundleError, DependencyUnavailableError, HybridrecError
from shared.contracts.ranker_config import RankerConfig
from shared.serving.clients import ServiceClient
from shared.serving.reload import BundleReloader, ReloadInProgressError, ReloadMetrics

log = logging.getLogger("hybridrec.gateway")
ADMIN_TIMEOUT_S = 600.0  # a reload hashes and loads a whole bundle
STATUS_TIMEOUT_S = 5.0
INTERNAL = ("retrieval", "ranking")
T = TypeVar("T")


class AdminCallError(HybridrecError):
    """A reload step failed; keeps the status and code of the service that said no."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.http_status = status
        self.code = code


def popular_from_bundle(bundle: Bundle) -> PopularFallback:
    """The popular fallback of a bundle, with ``popular.json``'s sha256 checked."""
    meta = bundle.manifest["files"].get(L.POPULAR)
    if not isinstance(meta, dict):
        raise BundleError(f"bundle {bundle.version} lists no {L.POPULAR}; retrain")
    actual = sha256_file(bundle.path(L.POPULAR))
    if actual != meta.get("sha256"):
        raise BundleError(
            f"bundle {bundle.root} failed verification: {L.POPULAR}: sha256 mismatch "
            f"(file changed or tampered with), expected {meta.get('sha256')}, found {actual}"
        )
    items = bundle.load_json(L.POPULAR)
    if not isinstance(items, list):
        raise BundleError(f"{bundle.path(L.POPULAR)} must hold a JSON list")
    return PopularFallback(
        version=bundle.version, items=items, max_candidates=_trained_candidates(bundle),
        hidden=_hidden_by_user(bundle),
    )


def _hidden_by_user(bundle: Bundle) -> dict[str, set[str]]:
    """Per user, the item ids they hid or disliked in the training data (none when the
    bundle predates ``bundle_layout.HIDDEN_ITEMS``)."""
    if L.HIDDEN_INDPTR not in bundle.manifest.get("files", {}):
        return {}
    import numpy as np
    import pyarrow.parquet as pq

    indptr = np.asarray(bundle.load_npy(L.HIDDEN_INDPTR, mmap=False), np.int64)
    if not len(indptr) or indptr[-1] == 0:
        return {}
    hidden = np.asarray(bundle.load_npy(L.HIDDEN_ITEMS, mmap=False), np.int64)
    users = pq.read_table(bundle.path(L.USERS), columns=["user_id"]).column(0).to_pylist()
    items = pq.read_table(bundle.path(L.ITEMS), columns=["item_id"]).column(0).to_pylist()
    if len(indptr) != len(users) + 1 or (len(hidden) and hidden.max() >= len(items)):
        raise BundleError(f"bundle {bundle.version}: {L.HIDDEN_INDPTR} does not match "
                          f"{L.USERS} / {L.ITEMS}; the bundle is inconsistent, retrain")
    return {
        str(users[u]): {str(items[i]) for i in hidden[indptr[u] : indptr[u + 1]]}
        for u in np.flatnonzero(np.diff(indptr))
    }


def _trained_candidates(bundle: Bundle) -> int:
    """How many merged candidates the bundle's ranker was trained and evaluated with."""
    return RankerConfig.of(bundle).config.max_candidates


def load_popular(artifacts: str) -> tuple[PopularFallback, Path]:
    """The start-up load: the popular fallback of the bundle ``artifacts`` designates."""
    bundle_dir = resolve_bundle(artifacts)
    return popular_from_bundle(load_bundle(bundle_dir, verify=False)), bundle_dir


def popular_reloader(
    settings: GatewaySettings, core: GatewayCore, metrics: ReloadMetrics
) -> BundleReloader[PopularFallback]:
    """Reloads ``core.popular`` (sizes of every file and popular.json's sha256 checked)."""

    def swap(popular: PopularFallback) -> None:
        core.popular = popular  # one assignment

    return BundleReloader(
        service="gateway",
        artifacts=settings.artifacts,
        build=popular_from_bundle,
        swap=swap,
        verify=False,
        metrics=metrics,
    )


class StackReload:
    """Verify everywhere, then switch retrieval, ranking and the gateway."""

    def __init__(
        self,
        settings: GatewaySettings,
        reloader: BundleReloader[PopularFallback],
        clients: dict[str, ServiceClient],
    ):
        self.clients = clients  # retrieval and ranking: every instance is switched
        self.admin_key = settings.admin_key
        self.reloader = reloader
        self._busy = False

    async def reload(self, req: ReloadRequest, request_id: str | None) -> StackReloadResult:
        """Verify the bundle on every service, then switch them (unless ``dry_run``)."""
        if self._busy:
            raise ReloadInProgressError("a reload is already running; retry when it has finished")
        self._busy = True
        task = asyncio.ensure_future(self._reload(req, request_id))
        return await asyncio.shield(task)  # a caller that hangs up does not stop a switch

    async def _reload(self, req: ReloadRequest, request_id: str | None) -> StackReloadResult:
        try:
            checked = []
            name = req.bundle
            for service in ("retrieval", "ranking", "gateway"):
                try:
                    res = await self._one(service, name, True, request_id)
                except HybridrecError as exc:
                    raise _failed(service, name, exc, "verify", "nothing was switched") from exc
                checked.append(res)
                name = name or Path(res.path).name  # every service gets the same version
            assert name is not None
            if req.dry_run:
                return StackReloadResult(
                    bundle=name, dry_run=True, services=checked, request_id=request_id
                )
            done: list[ReloadResult] = []
            for service in ("retrieval", "ranking", "gateway"):
                try:
                    res = await self._one(service, name, False, request_id)
                except HybridrecError as exc:
                    back = await self._roll_back(done, request_id)
                    raise _failed(service, name, exc, "switch", back) from exc
                done.append(res)
            return StackReloadResult(bundle=name, services=done, request_id=request_id)
        finally:
            self._busy = False

    async def _one(
        self, service: str, bundle: str | None, dry_run: bool, request_id: str | None
    ) -> ReloadResult:
        if service == "gateway":
            return await self.reloader.reload(bundle, dry_run=dry_run)
        client = self.clients[service]
        await client._refresh_instances()
        results = []
        for inst in list(client.instances):  # every copy verifies, then every copy switches
            results.append(
                await self._admin(
                    service,
                    client.reload(
                        inst.url,
                        ReloadRequest(bundle=bundle, dry_run=dry_run),
                        admin_key=self.admin_key,
                        timeout_s=ADMIN_TIMEOUT_S,
                        request_id=request_id,
                    ),
                )
            )
        return results[0]

    async def _roll_back(self, done: list[ReloadResult], request_id: str | None) -> str:
        """Switch the services already moved back; says what happened."""
        notes = []
        for res in reversed(done):
            if not res.changed or res.previous_version is None:
                continue
            try:
                await self._one(res.service, res.previous_version, False, request_id)
                notes.append(f"{res.service} switched back to {res.previous_version}")
            except HybridrecError as exc:
                log.error(
                    "%s could not switch back to %s: %s", res.service, res.previous_version, exc
                )
                notes.append(f"{res.service} could NOT switch back ({exc})")
        return "; ".join(notes) or "nothing had been switched"

    async def bundles(self, request_id: str | None) -> StackBundles:
        """The bundle each service serves."""

        async def status(service: str, instance: str) -> BundleStatus:
            client = self.clients[service]
            try:
                return await self._admin(
                    service,
                    client.bundle_status(
                        instance,
                        admin_key=self.admin_key,
                        timeout_s=STATUS_TIMEOUT_S,
                        request_id=request_id,
                    ),
                )
            except HybridrecError as exc:
                name = service if len(client.instances) == 1 else f"{service}@{instance}"
                return BundleStatus(service=name, error=exc.message)

        for client in self.clients.values():
            await client._refresh_instances()
        calls = [
            status(service, inst.url)
            for service in INTERNAL
            for inst in list(self.clients[service].instances)
        ]
        found = [self.reloader.status(), *await asyncio.gather(*calls)]
        versions = {s.version for s in found}
        return StackBundles(
            services=found,
            consistent=len(versions) == 1 and None not in versions,
            request_id=request_id,
        )

    async def _admin(self, service: str, call: Awaitable[T]) -> T:
        """One admin call to an internal service; a refused admin key says how to fix it."""
        try:
            return await call
        except HybridrecError as exc:
            upstream = getattr(exc, "upstream", None)
            if upstream is None:  # unreachable or timed out: said as it is
                raise
            status, code, message = upstream
            if status == 401:
                raise DependencyUnavailableError(
                    f"{service} refused the gateway's admin key: set the same "
                    "HYBRIDREC_ADMIN_KEY on every service",
                    dependency=service,
                ) from exc
            raise AdminCallError(
                status if status < 500 else 503, code, message, service=service
            ) from exc


def _failed(
    service: str, bundle: str | None, exc: HybridrecError, phase: str, outcome: str
) -> AdminCallError:
    """The gateway's answer when one service said no: which, why, and what was switched."""
    message = exc.message if exc.message.startswith(service) else f"{service}: {exc.message}"
    return AdminCallError(
        exc.http_status,
        exc.code,
        f"{message}; {outcome}",
        service=service,
        bundle=bundle or "latest",
        phase=phase,
        outcome=outcome,
    )
