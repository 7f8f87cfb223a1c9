"""Settings common to every service (pydantic-settings, ``HYBRIDREC_*`` env vars).

Each service subclasses :class:`ServiceSettings` once and reaches it through a
cached ``get_settings()``; nothing reads the environment at import time.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every hybridrec service reads from ``HYBRIDREC_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="HYBRIDREC_", extra="ignore")

    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(8000, ge=1, le=65535, description="Listen port.")
    artifacts: str = Field("artifacts", description="Bundle root (follows latest) or one bundle.")
    redis_url: str | None = Field(
        None,
        description="Redis URL (redis+cluster://host:port for Redis Cluster); unset = "
        "in-process cache and files in state_dir.",
    )
    redis_prefix: str = Field("hybridrec", description="Prefix of every Redis key.")
    state_dir: str = Field("state", description="Folder for durable local state without Redis.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Request body limit (413 above).")
    log_level: str = Field("info", description="Logging level.")
    redis_timeout_s: float = Field(0.25, gt=0, description="Per-command Redis timeout.")
    admin_key: str | None = Field(
        None, description="Key of the admin endpoints (open on internal services when unset)."
    )
    watch_latest_s: float = Field(
        0.0, ge=0, description="Poll the root's `latest` and hot-reload on change (0 = off)."
    )
    compute_threads: int = Field(
        1,
        ge=1,
        le=256,
        description="Threads of each numeric library (BLAS, TensorFlow, PyTorch) per process; "
        "1 suits services that share a machine (idle pool threads spin and steal CPU).",
    )
