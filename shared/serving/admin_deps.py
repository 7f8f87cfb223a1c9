"""What the internal services' admin routes share: the admin-key guard and the reloader.

Retrieval and ranking sit on a private network. Their admin routes need the admin
key (``X-API-Key``) when ``HYBRIDREC_ADMIN_KEY`` is set on them, and are open when
it is not; the gateway forwards its admin key, so setting the variable on every
service closes them all.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from shared.contracts.errors import NotReadyError, UnauthorizedError
from shared.contracts.public_v1 import ErrorResponse
from shared.serving.app_factory import ERROR_RESPONSES
from shared.serving.reload import BundleReloader

admin_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Admin key")

#: The documented answers of an internal admin route.
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    401: {"model": ErrorResponse, "description": "The admin key is required and was not sent."},
    404: {"model": ErrorResponse, "description": "No bundle of that name under the root."},
    409: {"model": ErrorResponse, "description": "Another reload is running."},
    422: {
        "model": ErrorResponse,
        "description": "The bundle was refused (code bundle_refused: missing, half-written, "
        "truncated, bad checksum or manifest) or the body breaks the schema.",
    },
}


async def require_admin_key(
    request: Request, key: Annotated[str | None, Security(admin_key_header)] = None
) -> None:
    """401 unless ``X-API-Key`` is the admin key; open when no admin key is set."""
    admin: str | None = getattr(request.app.state, "admin_key", None)
    if not admin:
        return
    if not key or not hmac.compare_digest(key.encode(), admin.encode()):
        raise UnauthorizedError(
            "the admin key is required in the X-API-Key header"
            + (" (the key sent is not it)" if key else " (none was sent)")
        )


async def reloader_of(request: Request) -> BundleReloader[Any]:
    """The app's reloader (created in its lifespan); 503 before that."""
    reloader: BundleReloader[Any] | None = getattr(request.app.state, "reloader", None)
    if reloader is None:
        raise NotReadyError("the service is still starting; retry in a moment")
    return reloader


#: Request examples of ``POST /v1/admin/reload`` (every service).
RELOAD_EXAMPLES: dict[str, Any] = {
    "latest": {
        "summary": "Follow latest",
        "description": "Activate whatever the artifacts root's `latest` names now.",
        "value": {},
    },
    "named": {
        "summary": "A named bundle",
        "description": "Activate one version (also a rollback to an older one).",
        "value": {"bundle": "20260102-030405-9f8e7d6c"},
    },
    "dry_run": {
        "summary": "Verify only",
        "description": "Check the manifest, sizes and sha256 without switching.",
        "value": {"bundle": "20260102-030405-9f8e7d6c", "dry_run": True},
    },
}
