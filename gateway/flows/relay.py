"""The upstream relay flow: the run calls an HTTP service and its JSON answer is the output.

Configured as ``[flows.<id>] kind = "relay"`` with ``url`` (a Langflow ``/api/v1/run/<id>``, a
LangGraph ``/runs/wait``, any JSON service), ``headers``, ``api_key_env``, ``timeout``, and
an optional ``body`` template. This is how hookgate's durable triggers and callbacks go in
front of an engine a team already runs.

One run makes at most ``retries`` attempts: tenacity retries connection errors and 5xx
answers with short exponential waits; a 4xx, a timeout or the last failure ends the run as
``error`` with the upstream's status and the start of its answer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from gateway.settings import FlowSettings

log = structlog.get_logger(__name__)
INPUT_PLACEHOLDER = "$input"
ERROR_BODY_CHARS = 500


class RelayError(Exception):
    """The upstream refused, failed or could not be reached."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, RelayError):
        return exc.retryable
    # A timeout may mean the upstream did the work: only connection failures are retried.
    return isinstance(exc, aiohttp.ClientConnectionError) and not isinstance(
        exc, aiohttp.ServerTimeoutError
    )


@dataclasses.dataclass(frozen=True)
class Relay:
    flow_id: str
    url: str
    headers: Mapping[str, str]
    timeout: float
    retries: int = 3
    body: Any = None
    wait_initial: float = 0.1
    wait_max: float = 2.0

    @classmethod
    def from_settings(cls, flow_id: str, spec: FlowSettings, timeout: float) -> Relay:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        headers.update(spec.headers)
        if spec.api_key:
            headers[spec.api_key_header] = spec.api_key
        return cls(
            flow_id=flow_id,
            url=spec.url,
            headers=headers,
            timeout=timeout,
            retries=spec.retries,
            body=spec.body,
        )

    def request_body(self, value: Any) -> Any:
        """The JSON sent upstream: the input, or the ``body`` template with ``"$input"`` filled in."""
        if self.body is None:
            return value
        return _fill(self.body, value)

    async def call(self, value: Any, context: Any) -> Any:
        """Relay one run upstream; the upstream's JSON answer is the output."""
        data = json.dumps(self.request_body(value)).encode()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries),
            wait=wait_exponential(multiplier=self.wait_initial, max=self.wait_max),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        # Its own session per run: relay flows are built before the app's pooled client exists,
        # and an upstream named in config is trusted (the callback guard does not apply).
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    return await self._attempt(session, data, context, number)
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    async def _attempt(
        self, session: aiohttp.ClientSession, data: bytes, context: Any, number: int
    ) -> Any:
        bound = log.bind(flow_id=self.flow_id, run_id=getattr(context, "run_id", None))
        try:
            async with session.post(self.url, data=data, headers=dict(self.headers)) as response:
                text = await response.text(errors="replace")
                status = response.status
        except TimeoutError:
            raise RelayError(f"upstream {self.url} timed out after {self.timeout:g} s") from None
        except aiohttp.ClientConnectionError as exc:
            bound.info("relay_attempt_failed", attempt=number, error=str(exc))
            raise RelayError(
                f"upstream {self.url} unreachable: {exc or type(exc).__name__}", retryable=True
            ) from exc
        bound.info("relay_attempted", attempt=number, status_code=status)
        if status >= 400:
            raise RelayError(
                f"upstream {self.url} answered {status}: {text[:ERROR_BODY_CHARS]}",
                retryable=status >= 500,
            )
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            return text


def _fill(template: Any, value: Any) -> Any:
    if template == INPUT_PLACEHOLDER:
        return value
    if isinstance(template, dict):
        return {key: _fill(item, value) for key, item in template.items()}
    if isinstance(template, list):
        return [_fill(item, value) for item in template]
    return template
