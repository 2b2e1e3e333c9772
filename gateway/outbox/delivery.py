"""One HTTP attempt: sign, POST over the pooled client, and describe what came back."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from gateway import __version__, models, signing
from gateway.clock import Clock

MAX_RESPONSE_BYTES = 8192
USER_AGENT = f"hookgate/{__version__}"
MAX_TIMEOUT = 300.0
"""The longest one request may take. A delivery's lease is renewed while its request is in
flight, so a slow receiver is never sent it a second time meanwhile; this bound keeps a hung
receiver from holding the delivery, and a slot of its endpoint, for ever."""


def check_timeout(seconds: float) -> None:
    """The rule for ``delivery_timeout`` and an endpoint's ``timeout``: ``ValueError`` unless
    it is above 0 and at most ``MAX_TIMEOUT``."""
    if not 0 < seconds <= MAX_TIMEOUT:
        raise ValueError(
            f"must be above 0 and at most {MAX_TIMEOUT:g} seconds, so that a hung receiver "
            "cannot hold a delivery for ever"
        )


class Sender:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        timeout: float,
        connect_timeout: float,
    ) -> None:
        self.session = session
        self.clock = clock
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_timeout = MAX_TIMEOUT  # whatever a row stored before this rule says

    async def send(
        self, delivery: models.Delivery, secrets: tuple[str, ...], timeout: float | None = None
    ) -> models.AttemptResult:
        """POST the payload once; never raises for what the network or the receiver did.

        ``secrets`` are the destination's current secret and, during a rotation, its previous
        one: the body carries a signature for each, and the URL a query token for each.
        """
        body = delivery.payload
        now = int(self.clock.now())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **delivery.headers,  # a raw relay's Content-Type and the sender's headers
            **signing.webhook_headers(secrets, delivery.delivery_id, now, body),
        }
        url = signing.with_callback_tokens(
            delivery.url, secrets, delivery.delivery_id, delivery.run_id, body, now
        )
        total = min(self.timeout if timeout is None else timeout, self.max_timeout)
        client_timeout = aiohttp.ClientTimeout(
            total=total, connect=min(total, self.connect_timeout)
        )
        started_at = self.clock.now()
        start = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - start) * 1000

        error = "no attempt was made"
        try:
            # A pooled keep-alive connection the receiver already closed fails at once with
            # ServerDisconnectedError; one immediate retry on a fresh connection is not a new try.
            # Both share one deadline, so the attempt as a whole ends within its timeout.
            async with asyncio.timeout(total):
                for last_try in (False, True):
                    try:
                        async with self.session.post(
                            url,
                            data=body,
                            headers=headers,
                            allow_redirects=False,
                            timeout=client_timeout,
                        ) as response:
                            content = await response.content.read(MAX_RESPONSE_BYTES)
                            return models.AttemptResult(
                                started_at=started_at,
                                duration_ms=elapsed(),
                                status_code=response.status,
                                response_headers=dict(response.headers),
                                response_body=content,
                            )
                    except aiohttp.ServerDisconnectedError:
                        if last_try:
                            raise
        except TimeoutError:
            error = f"timed out after {total:g} s"
            return models.AttemptResult(
                started_at=started_at, duration_ms=elapsed(), error=error, timed_out=True
            )
        except aiohttp.ClientConnectorError as exc:
            error = f"connection failed: {exc.os_error or exc}"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        return models.AttemptResult(started_at=started_at, duration_ms=elapsed(), error=error)
