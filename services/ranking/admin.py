"""Ranking's internal admin routes: the active bundle and hot reload (the gateway calls them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from services.ranking.deps import AdminKeyDep, ReloaderDep
from shared.admin_deps import ADMIN_ERRORS, RELOAD_EXAMPLES
from shared.schemas.admin_v1 import BundleStatus, ReloadRequest, ReloadResult

router = APIRouter(
    prefix="/v1/admin", tags=["admin"], dependencies=[AdminKeyDep], responses=ADMIN_ERRORS
)


@router.post(
    "/reload",
    response_model=ReloadResult,
    summary="Verify and activate a bundle",
    operation_id="ranking_admin_reload",
)
async def reload(
    reloader: ReloaderDep,
    body: Annotated[ReloadRequest, Body(openapi_examples=RELOAD_EXAMPLES)],
) -> ReloadResult:
    """Load a bundle aside, verify it and swap it in; a refused bundle leaves the old one (422)."""
    return await reloader.reload(body.bundle, dry_run=body.dry_run)


@router.get(
    "/bundle",
    response_model=BundleStatus,
    summary="The active bundle",
    operation_id="ranking_admin_bundle",
)
async def bundle(reloader: ReloaderDep) -> BundleStatus:
    """The version, folder and load time of the bundle served now, and the last refusal."""
    return reloader.status()
