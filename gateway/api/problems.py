"""Domain errors as HTTP answers, in one place for the APIs and ``/inspect``: which status and
headers each error family gets. The errors themselves (``gateway.errors``) know no HTTP."""

from __future__ import annotations

from gateway import errors


class MisdirectedRequest(errors.GatewayError):
    """This gateway does not serve that host name."""


class UnsupportedMediaType(errors.GatewayError):
    """The request body must be JSON."""


STATUSES: dict[type[errors.GatewayError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    MisdirectedRequest: 421,
    errors.Unprocessable: 422,
    errors.Unavailable: 503,
    errors.StoreUnavailable: 503,
}
HEADERS: dict[type[errors.GatewayError], dict[str, str]] = {
    errors.Unavailable: {"Retry-After": "1"},
    errors.StoreUnavailable: {"Retry-After": "5"},
}


def status_of(error: errors.GatewayError) -> int:
    """The status of the nearest family the error belongs to; 500 for any other."""
    for family in type(error).__mro__:
        if family in STATUSES:
            return STATUSES[family]
    return 500


def headers_of(error: errors.GatewayError) -> dict[str, str]:
    for family in type(error).__mro__:
        if family in HEADERS:
            return HEADERS[family]
    return {}
