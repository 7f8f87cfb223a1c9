"""The gateway's admin routes: the bundle every service serves, and hot reload of all three."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from services.gateway.deps import AdminKeyDep, StackReloadDep
from shared.contracts.admin_v1 import ReloadRequest, StackBundles, StackReloadResult
from shared.contracts.public_v1 import ErrorResponse
from shared.serving.admin_deps import RELOAD_EXAMPLES
from shared.serving.app_factory import ERROR_RESPONSES, request_id_of

ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    401: {
        "model": ErrorResponse,
        "description": "The admin key is missing or wrong (or HYBRIDREC_ADMIN_KEY is unset).",
    },
    404: {"model": ErrorResponse, "description": "No bundle of that name under the root."},
    409: {"model": ErrorResponse, "description": "Another reload is running."},
    422: {
        "model": ErrorResponse,
        "description": "A service refused the bundle (code bundle_refused; details.service says "
        "which and the message why; nothing was switched) or the body breaks the schema.",
    },
    503: {
        "model": ErrorResponse,
        "description": "Not ready, or retrieval or ranking did not answer the reload.",
    },
}
router = APIRouter(
    prefix="/v1/admin", tags=["admin"], dependencies=[AdminKeyDep], responses=ADMIN_ERRORS
)


@router.post(
    "/reload",
    response_model=StackReloadResult,
    summary="Hot-reload a bundle on every service",
    operation_id="admin_reload_bundle",
)
async def reload(
    request: Request,
    stack: StackReloadDep,
    body: Annotated[ReloadRequest, Body(openapi_examples=RELOAD_EXAMPLES)],
) -> StackReloadResult:
    """Verify the bundle on all services, then switch retrieval, ranking and the gateway."""
    return await stack.reload(body, request_id_of(request))


@router.get(
    "/bundle",
    response_model=StackBundles,
    summary="The bundle each service serves",
    operation_id="admin_get_bundle",
)
async def bundle(request: Request, stack: StackReloadDep) -> StackBundles:
    """The version, folder and load time of the gateway's, retrieval's and ranking's bundle."""
    return await stack.bundles(request_id_of(request))
