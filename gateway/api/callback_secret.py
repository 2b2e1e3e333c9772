"""The secret a per-run ``webhook`` receiver verifies its callbacks with.

Per-run callbacks are signed with a secret derived for the destination's origin (see
``gateway.signing.callback_secret``); this route hands a receiver the one for its URL.
"""

from __future__ import annotations

from aiohttp import web

from gateway import errors, keys, signing
from gateway.api import schema
from gateway.api.schema.hookgate import WebhookSecretQuery


async def webhook_secret(request: web.Request) -> web.Response:
    """``GET /api/v1/webhook-secret?url=<receiver URL>`` → ``{"origin": …, "secret": "whsec_…"}``."""
    url = schema.query(request, WebhookSecretQuery).url.strip()
    signing_secret = request.app[keys.dispatcher_key].signing_secret
    try:
        origin = signing.callback_origin(url)
    except ValueError as exc:
        raise errors.Unprocessable(f"url: {exc}") from None
    return web.json_response(
        {"origin": origin, "secret": signing.callback_secret(signing_secret, origin)},
        headers={"Cache-Control": "no-store"},
    )
