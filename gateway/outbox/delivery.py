"""One HTTP attempt: sign, POST over the pooled client, and describe what came back."""

from __future__ import annotations

import time

import aiohttp
import tenacity

from gateway import __version__, models, signing
from gateway.clock import Clock

MAX_RESPONSE_BYTES = 8192
USER_AGENT = f"hookgate/{__version__}"


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
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)

    async def send(
        self, delivery: models.Delivery, secrets: tuple[str, ...], timeout: float | None = None
    ) -> models.AttemptResult:
        """POST the payload once; never raises for what the network or the receiver did.

        ``secrets`` are the endpoint's current secret and, during a rotation, its previous
        one: the body carries a signature for each, the query token uses the current one.
        """
        body = delivery.payload
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **signing.webhook_headers(secrets, delivery.delivery_id, int(self.clock.now()), body),
        }
        url = signing.with_callback_token(
            delivery.url, secrets[0], delivery.delivery_id, delivery.run_id
        )
        client_timeout = self.timeout
        if timeout is not None:
            client_timeout = aiohttp.ClientTimeout(
                total=timeout, connect=min(timeout, self.timeout.connect or timeout)
            )
        started_at = self.clock.now()
        start = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - start) * 1000

        error = "no attempt was made"
        try:
            # A pooled keep-alive connection the receiver already closed fails at once with
            # ServerDisconnectedError; one immediate retry on a fresh connection is not a new try.
            async for attempt in tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception_type(aiohttp.ServerDisconnectedError),
                stop=tenacity.stop_after_attempt(2),
                reraise=True,
            ):
                with attempt:
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
        except TimeoutError:
            error = f"timed out after {client_timeout.total:g} s"
            return models.AttemptResult(
                started_at=started_at, duration_ms=elapsed(), error=error, timed_out=True
            )
        except aiohttp.ClientConnectorError as exc:
            error = f"connection failed: {exc.os_error or exc}"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        return models.AttemptResult(started_at=started_at, duration_ms=elapsed(), error=error)
