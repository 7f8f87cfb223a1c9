"""The internal services' admin routes (active bundle, hot reload), built once for each service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from shared.contracts.admin_v1 import BundleStatus, ReloadRequest, ReloadResult
from shared.serving.admin_deps import (
    ADMIN_ERRORS,
    RELOAD_EXAMPLES,
    reloader_of,
    require_internal_admin,
)
from shared.serving.reload import BundleReloader

ReloaderDep = Annotated[BundleReloader[Any], Depends(reloader_of)]


def admin_router(service: str) -> APIRouter:
    """``/v1/admin/reload`` and ``/v1/admin/bundle`` with ``{service}_admin_*`` operation ids."""
    router = APIRouter(
        prefix="/v1/admin",
        tags=["admin"],
        dependencies=[Depends(require_internal_admin)],
        responses=ADMIN_ERRORS,
    )

    @router.post(
        "/reload",
        response_model=ReloadResult,
        summary="Verify and activate a bundle",
        operation_id=f"{service}_admin_reload",
    )
    async def reload(
        reloader: ReloaderDep,
        body: Annotated[ReloadRequest, Body(openapi_examples=RELOAD_EXAMPLES)],
    ) -> ReloadResult:
        """Load a bundle aside, verify it and swap it in; a refused bundle leaves the old one (422)."""  # noqa: E501
        return await reloader.reload(body.bundle, dry_run=body.dry_run)

    @router.get(
        "/bundle",
        response_model=BundleStatus,
        summary="The active bundle",
        operation_id=f"{service}_admin_bundle",
    )
    async def bundle(reloader: ReloaderDep) -> BundleStatus:
        """The version, folder and load time of the bundle served now, and the last refusal."""
        return reloader.status()

    return router
