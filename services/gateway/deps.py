"""The gateway's dependencies, as ``Annotated`` aliases for handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from services.gateway.core import GatewayCore
from services.gateway.reload import StackReload
from shared.contracts.errors import NotReadyError, UnauthorizedError
from shared.serving.admin_deps import keys_match, require_public_admin

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")

async def get_core(request: Request) -> GatewayCore:
    """The orchestration object created in the lifespan."""
    core = getattr(request.app.state, "core", None)
    if core is None:
        raise NotReadyError("the gateway is still starting; retry in a moment")
    return core


async def require_api_key(
    request: Request, key: Annotated[str | None, Security(api_key_header)] = None
) -> None:
    """401 unless a configured API key (or the admin key) is sent in X-API-Key."""
    keys: frozenset[str] = request.app.state.api_keys
    if not keys:
        return
    admin = request.app.state.admin_key
    if keys_match(key, keys) or (admin and keys_match(key, (admin,))):
        return
    raise UnauthorizedError(
        "a valid API key is required: send it in the X-API-Key header"
        + (" (the key sent is not configured)" if key else " (none was sent)")
    )


CoreDep = Annotated[GatewayCore, Depends(get_core)]
ApiKeyDep = Depends(require_api_key)
AdminKeyDep = Depends(require_public_admin)


async def get_stack_reload(request: Request) -> StackReload:
    """The hot-reload orchestration created in the lifespan."""
    stack: StackReload | None = getattr(request.app.state, "stack_reload", None)
    if stack is None:
        raise NotReadyError("the gateway is still starting; retry in a moment")
    return stack


StackReloadDep = Annotated[StackReload, Depends(get_stack_reload)]
