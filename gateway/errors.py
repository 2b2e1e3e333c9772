"""One exception family, and the one JSON error shape ``{"detail": ...}`` the API answers with."""

from __future__ import annotations

from typing import ClassVar


class GatewayError(Exception):
    """Something went wrong in hookgate."""

    status: ClassVar[int] = 500
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or (self.__doc__ or "error").strip()
        super().__init__(self.detail)

    def body(self) -> dict[str, str]:
        return {"detail": self.detail}


class ConfigError(GatewayError):
    """The configuration is invalid."""


class BadRequest(GatewayError):
    """The request is malformed."""

    status = 400


class Unauthorized(GatewayError):
    """The request's signature could not be verified."""

    status = 401


class Forbidden(GatewayError):
    """A valid API key is required."""

    status = 403


class NotFound(GatewayError):
    """Not found."""

    status = 404


class Conflict(GatewayError):
    """The request conflicts with the current state."""

    status = 409


class PayloadTooLarge(GatewayError):
    """The request body is too large."""

    status = 413


class Unprocessable(GatewayError):
    """The request is well-formed but its content is invalid."""

    status = 422


class Unavailable(GatewayError):
    """The gateway cannot take this request right now."""

    status = 503
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}


class StoreError(GatewayError):
    """The store failed."""


class StoreUnavailable(StoreError):
    """The store cannot write right now (disk full, I/O error, read-only); retry later."""

    status = 503
    headers: ClassVar[dict[str, str]] = {"Retry-After": "5"}
