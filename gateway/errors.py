"""The domain's exception family, with no HTTP in it: each adapter maps it to its own answer in
one place (``gateway.api.problems`` for the APIs and ``/inspect``, ``gateway.cli.errors`` for
the command line)."""

from __future__ import annotations


class GatewayError(Exception):
    """Something went wrong in hookgate."""

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or (self.__doc__ or "error").strip()
        super().__init__(self.detail)


class ConfigError(GatewayError):
    """The configuration is invalid."""


class BadRequest(GatewayError):
    """The request is malformed."""


class Unauthorized(GatewayError):
    """The request's signature could not be verified."""


class Forbidden(GatewayError):
    """A valid API key is required."""


class NotFound(GatewayError):
    """Not found."""


class Conflict(GatewayError):
    """The request conflicts with the current state."""


class PayloadTooLarge(GatewayError):
    """The request body is too large."""


class Unprocessable(GatewayError):
    """The request is well-formed but its content is invalid."""


class Unavailable(GatewayError):
    """The gateway cannot take this request right now."""


class StoreError(GatewayError):
    """The store failed."""


class StoreUnavailable(StoreError):
    """The store cannot write right now (disk full, I/O error, read-only); retry later."""
