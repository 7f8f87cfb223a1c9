"""One exception hierarchy for the whole project.

Every error carries a message that says what was expected, what arrived and how
to fix it. Services map these classes to HTTP status codes in one handler
(``http_status``); the CLI prints ``str(error)`` and exits non-zero.
"""

from __future__ import annotations

from typing import Any


class HybridrecError(Exception):
    """Base class of every error hybridrec raises on purpose."""

    http_status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the services' error model."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out


class DataError(HybridrecError):
    """Input data is missing, malformed or inconsistent (names file, line and problem)."""

    http_status = 422
    code = "data_error"

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        **details: Any,
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message, path=path, line=line, **details)
        self.path = path
        self.line = line


class DownloadError(HybridrecError):
    """A dataset could not be downloaded or failed its checksum."""

    code = "download_error"


class ConfigError(HybridrecError):
    """A setting or argument has a value that cannot work."""

    http_status = 422
    code = "config_error"


class BundleError(HybridrecError):
    """An artifact bundle is missing, corrupted, tampered with or of the wrong schema."""

    http_status = 503
    code = "bundle_error"


class NotFoundError(HybridrecError):
    """A user, item or resource that the request names does not exist."""

    http_status = 404
    code = "not_found"


class ConflictError(HybridrecError):
    """The request names something that exists already (e.g. a new item's id is taken)."""

    http_status = 409
    code = "conflict"


class ValidationError(HybridrecError):
    """A request is well-formed JSON but asks for something impossible."""

    http_status = 422
    code = "invalid_request"


class UnauthorizedError(HybridrecError):
    """A request lacks a valid API key."""

    http_status = 401
    code = "unauthorized"


class PayloadTooLargeError(HybridrecError):
    """A request body is larger than the configured limit."""

    http_status = 413
    code = "payload_too_large"


class DependencyUnavailableError(HybridrecError):
    """A service this one needs (Redis, retrieval, ranking) did not answer in time."""

    http_status = 503
    code = "dependency_unavailable"


class NotReadyError(HybridrecError):
    """The service has not loaded its artifacts yet."""

    http_status = 503
    code = "not_ready"
