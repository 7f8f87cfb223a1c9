"""What every service's admin routes share: the admin-key guard and the reloader.

One guard, two policies for an unset ``HYBRIDREC_ADMIN_KEY``. Retrieval and ranking sit
on a private network: their admin routes are open without a key and need it
(``X-API-Key``) once it is set; the gateway forwards its admin key, so setting the
variable on every service closes them all. The gateway is public: its admin routes are
disabled until an admin key is set.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
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


def keys_match(given: str | None, keys: Iterable[str]) -> bool:
    """True when ``given`` is one of ``keys`` (constant-time comparison)."""
    if not given:
        return False
    return any(hmac.compare_digest(given.encode(), k.encode()) for k in keys)


def admin_key_guard(*, open_when_unset: bool) -> Callable[..., Awaitable[None]]:
    """A dependency: 401 unless ``X-API-Key`` is the app's admin key.

    Without an admin key (``app.state.admin_key`` unset) the routes are open when
    ``open_when_unset`` (internal services), otherwise disabled with a 401 saying how to
    enable them (the public gateway).
    """

    async def require_admin_key(
        request: Request, key: Annotated[str | None, Security(admin_key_header)] = None
    ) -> None:
        admin: str | None = getattr(request.app.state, "admin_key", None)
        if not admin:
            if open_when_unset:
                return
            raise UnauthorizedError(
                "admin endpoints are disabled: set HYBRIDREC_ADMIN_KEY to enable them"
            )
        if not keys_match(key, (admin,)):
            raise UnauthorizedError(
                "the admin key is required in the X-API-Key header"
                + (" (the key sent is not it)" if key else " (none was sent)")
            )

    return require_admin_key


#: Retrieval's and ranking's admin routes: open until HYBRIDREC_ADMIN_KEY is set.
require_internal_admin = admin_key_guard(open_when_unset=True)
#: The gateway's admin routes: disabled until HYBRIDREC_ADMIN_KEY is set.
require_public_admin = admin_key_guard(open_when_unset=False)


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
