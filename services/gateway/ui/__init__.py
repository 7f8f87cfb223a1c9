"""The dashboard: a static web UI served by the gateway at ``/ui``.

Plain HTML, CSS and JavaScript modules shipped as package data (no build step, no
CDN); the page talks only to the public ``/v1`` API. The HTML is served with a
Content-Security-Policy that allows nothing but this origin, so the browser itself
refuses any request that would leave the host.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@router.get("/ui")
async def ui_root(request: Request) -> RedirectResponse:
    """``/ui`` -> ``/ui/`` so the page's relative URLs resolve under it."""
    return RedirectResponse(f"{request.scope.get('root_path', '')}/ui/", status_code=308)


@router.get("/ui/")
async def ui_index() -> FileResponse:
    """The single page; every view is a ``#/`` route of it."""
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


class _StaticWithCsp(StaticFiles):
    """Static files with the dashboard's security headers."""

    async def get_response(self, path, scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def install(app: FastAPI) -> None:
    """Serve the dashboard at ``/ui`` (its assets under ``/ui/static``)."""
    app.include_router(router)
    app.mount("/ui/static", _StaticWithCsp(directory=STATIC), name="ui-static")
