"""Version 1 of the admin models: which bundle each service serves, and hot reload.

The same request model is used by the gateway's public ``POST /v1/admin/reload``
and by the internal ``POST /v1/admin/reload`` of retrieval and ranking.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.public_v1 import StrictModel

#: A bundle's folder name under the artifacts root (what ``BundleWriter`` accepts).
BUNDLE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_VERSION_EXAMPLE = "20260102-030405-9f8e7d6c"
_OLD_EXAMPLE = "20260101-000000-1a2b3c4d"
_PATH_EXAMPLE = f"/srv/artifacts/{_VERSION_EXAMPLE}"
_TIME_EXAMPLE = "2026-01-02T03:10:00.123456Z"

BundleName = Annotated[
    str,
    Field(
        pattern=BUNDLE_NAME_PATTERN,
        description="A bundle version: its folder name under the artifacts root.",
    ),
]


class ReloadRequest(StrictModel):
    """Which bundle to activate; nothing = whatever ``latest`` points to now."""

    bundle: BundleName | None = Field(
        None, description="Version to activate; omit to follow the artifacts root's `latest`."
    )
    dry_run: bool = Field(
        False, description="Only verify the bundle (manifest, sizes, sha256); switch nothing."
    )

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"bundle": _VERSION_EXAMPLE}}
    )


class ReloadResult(BaseModel):
    """What one service did with a reload request."""

    service: str
    previous_version: str | None = Field(description="The version served before the call.")
    version: str = Field(description="The version verified (dry run) or now served.")
    path: str = Field(description="The bundle folder.")
    changed: bool = Field(description="True when the service switched to another bundle.")
    dry_run: bool = False
    loaded_at: datetime | None = Field(
        None, description="When the version now served was loaded (null for a dry run)."
    )
    seconds: float = Field(0.0, description="Time spent verifying and loading.")

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "service": "retrieval",
                "previous_version": _OLD_EXAMPLE,
                "version": _VERSION_EXAMPLE,
                "path": _PATH_EXAMPLE,
                "changed": True,
                "dry_run": False,
                "loaded_at": _TIME_EXAMPLE,
                "seconds": 3.2,
            }
        }
    )


class BundleStatus(BaseModel):
    """The bundle one service serves."""

    service: str
    version: str | None = Field(None, description="Null while loading or when none loads.")
    path: str | None = None
    loaded_at: datetime | None = None
    watch_latest_s: float = Field(0.0, description="Polling period of `latest` (0 = off).")
    last_refused: str | None = Field(
        None, description="Why the last refused bundle was refused (cleared by a success)."
    )
    error: str | None = Field(None, description="Why the version is unknown, if it is.")

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "service": "ranking",
                "version": _VERSION_EXAMPLE,
                "path": _PATH_EXAMPLE,
                "loaded_at": _TIME_EXAMPLE,
                "watch_latest_s": 0.0,
                "last_refused": None,
                "error": None,
            }
        }
    )


class StackReloadResult(BaseModel):
    """The gateway's reload: what retrieval, ranking and the gateway each did."""

    bundle: str = Field(description="The version every service now serves (or verified).")
    dry_run: bool = False
    services: list[ReloadResult]
    request_id: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "bundle": _VERSION_EXAMPLE,
                "dry_run": False,
                "services": [
                    {
                        "service": name,
                        "previous_version": _OLD_EXAMPLE,
                        "version": _VERSION_EXAMPLE,
                        "path": _PATH_EXAMPLE,
                        "changed": True,
                        "dry_run": False,
                        "loaded_at": _TIME_EXAMPLE,
                        "seconds": secs,
                    }
                    for name, secs in (("retrieval", 3.2), ("ranking", 1.1), ("gateway", 0.01))
                ],
                "request_id": "3f2c9a0e6b1d4c57",
            }
        }
    )


class StackBundles(BaseModel):
    """The bundle each service serves, and whether they agree."""

    services: list[BundleStatus]
    consistent: bool = Field(description="True when all three serve the same version.")
    request_id: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "services": [
                    {
                        "service": name,
                        "version": _VERSION_EXAMPLE,
                        "path": _PATH_EXAMPLE,
                        "loaded_at": _TIME_EXAMPLE,
                        "watch_latest_s": 0.0,
                        "last_refused": None,
                        "error": None,
                    }
                    for name in ("gateway", "retrieval", "ranking")
                ],
                "consistent": True,
                "request_id": "3f2c9a0e6b1d4c57",
            }
        }
    )
