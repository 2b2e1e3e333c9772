"""``hookgate listen``: deliver a pull endpoint's webhooks to a receiver that cannot be reached
from the gateway (a laptop, a host behind NAT), as ``stripe listen --forward-to`` does.

The listener connects out to the gateway and long-polls the endpoint (``POST
/api/v1/endpoints/{id}/pull``); the gateway never connects to it. Each delivery is POSTed to
``--forward-to`` with the body and headers (signature included) exactly as a push would send
them, then acknowledged with the receiver's answer, so only a 2xx counts as delivered and
anything else follows the endpoint's retry policy. A delivery is acknowledged only after the
receiver answered: one in hand when the listener dies comes back when its lease lapses, with
the same ``webhook-id``. A dropped connection to the gateway is retried with backoff
(tenacity), for ever; a refused API key or an unknown endpoint stops the listener.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import tenacity

from gateway import __version__, console
from gateway.outbox.delivery import MAX_RESPONSE_BYTES

EVENT_HEADERS = ("x-github-event", "x-gitlab-event", "x-shopify-topic", "linear-event")
"""The sender's event name, shown beside hookgate's event type when a raw relay forwards it."""
_NOT_FORWARDED = frozenset({"host", "content-length", "transfer-encoding", "connection"})
LEASE_MARGIN = 2.0  # seconds kept for the acknowledgement before a delivery's lease lapses
USER_AGENT = f"hookgate-listen/{__version__}"


class Stop(Exception):
    """The gateway refused the listener for good (API key, endpoint); the message says why."""


class Unavailable(Exception):
    """The gateway cannot answer now (5xx, 429): try again after a pause."""


@dataclasses.dataclass(frozen=True)
class Options:
    endpoint_id: str
    url: str
    api_key: str
    forward_to: str
    batch: int
    lease: float
    wait: float
    timeout: float


def add_command(commands: Any) -> None:
    listen = commands.add_parser(
        "listen",
        help="deliver a pull endpoint's webhooks to a local URL",
        description='Long-poll a pull endpoint (registered with "mode": "pull") and POST '
        "each delivery to --forward-to with its body and signature headers, acknowledging it "
        "with the receiver's answer: only 2xx counts as delivered. The gateway never connects "
        "to the listener; several listeners on one endpoint share its deliveries.",
    )
    listen.add_argument("endpoint_id", help="the pull endpoint")
    listen.add_argument(
        "--url",
        default=os.environ.get("HOOKGATE_URL", "http://127.0.0.1:8080"),
        help="the gateway's base URL (default: $HOOKGATE_URL or http://127.0.0.1:8080)",
    )
    listen.add_argument(
        "--api-key",
        default=os.environ.get("GATEWAY_API_KEY", ""),
        help="the gateway's API key (default: $GATEWAY_API_KEY)",
    )
    listen.add_argument(
        "--forward-to", required=True, help="the receiver, e.g. http://localhost:3000/hook"
    )
    listen.add_argument(
        "--batch", type=int, default=10, help="deliveries taken per poll (default: 10)"
    )
    listen.add_argument(
        "--lease",
        type=float,
        default=60.0,
        help="seconds a taken delivery stays this listener's; one not acknowledged by then is "
        "delivered again (default: 60)",
    )
    listen.add_argument(
        "--wait", type=float, default=25.0, help="seconds one poll waits (default: 25)"
    )
    listen.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds the receiver has to answer (default: 10)",
    )


def main(args: argparse.Namespace) -> int:
    options = Options(
        endpoint_id=args.endpoint_id,
        url=args.url.rstrip("/"),
        api_key=args.api_key,
        forward_to=args.forward_to,
        batch=args.batch,
        lease=args.lease,
        wait=args.wait,
        timeout=args.timeout,
    )
    problem = _check(options)
    if problem:
        print(f"hookgate: {problem}", file=sys.stderr)
        return 2
    try:
        asyncio.run(Listener(options).run())
    except Stop as exc:
        print(f"hookgate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hookgate: stopped; deliveries in hand come back when their lease lapses")
        return 130
    return 0


def _check(options: Options) -> str:
    if not options.forward_to.startswith(("http://", "https://")):
        return "--forward-to: expected an http(s) URL"
    if not options.url.startswith(("http://", "https://")):
        return "--url: expected the gateway's http(s) base URL"
    if not 1 <= options.batch <= 100:
        return "--batch: expected 1 to 100"
    if not 1 <= options.lease <= 900:
        return "--lease: expected 1 to 900 seconds"
    if not 0 <= options.wait <= 60:
        return "--wait: expected 0 to 60 seconds"
    if not 0 < options.timeout < options.lease - LEASE_MARGIN:
        return f"--timeout: expected above 0 and below --lease less {LEASE_MARGIN:g} s"
    return ""


class Listener:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.headers = {"User-Agent": USER_AGENT}
        if options.api_key:
            self.headers["x-api-key"] = options.api_key

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.options.wait + 30)
        async with (
            aiohttp.ClientSession(timeout=timeout, headers=self.headers) as gateway,
            aiohttp.ClientSession(auto_decompress=False) as local,
        ):
            _say(
                f"Ready. Forwarding endpoint {self.options.endpoint_id} from {self.options.url}"
                f" to {self.options.forward_to} (Ctrl-C to stop)"
            )
            state = "active"
            while True:
                batch, taken_at, now_state = await self._reconnecting(self._pull, gateway)
                if now_state != state:
                    _say(_state_line(now_state))
                    state = now_state
                # A delivery handed on after this could not be acknowledged within its lease:
                # the rest of the batch is left to come back, unchanged.
                last_start = taken_at + self.options.lease - self.options.timeout - LEASE_MARGIN
                for item in batch:
                    if time.monotonic() > last_start:
                        break
                    await self._deliver(gateway, local, item)

    async def _reconnecting(self, call: Any, *args: Any) -> Any:
        """``call`` until it gets through: network errors and 5xx wait and try again, longer
        each time (0.5 s up to 10 s), with one line saying so."""
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(
                (aiohttp.ClientError, OSError, TimeoutError, Unavailable)
            ),
            wait=tenacity.wait_exponential(multiplier=0.5, max=10),
            before_sleep=_report_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call(*args)
        raise AssertionError("unreachable: tenacity retries for ever")

    async def _pull(
        self, gateway: aiohttp.ClientSession
    ) -> tuple[list[dict[str, Any]], float, str]:
        url = f"{self.options.url}/api/v1/endpoints/{self.options.endpoint_id}/pull"
        params = {
            "wait": f"{self.options.wait:g}",
            "limit": str(self.options.batch),
            "lease": f"{self.options.lease:g}",
        }
        async with gateway.post(url, params=params) as response:
            taken_at = time.monotonic()
            data = await _answer(response)
        state = str(data.get("endpoint_state") or "active")
        return list(data.get("deliveries") or []), taken_at, state

    async def _deliver(
        self, gateway: aiohttp.ClientSession, local: aiohttp.ClientSession, item: dict[str, Any]
    ) -> None:
        result = await self._forward(local, item)
        _say(_line(item, result))
        acknowledged = await self._reconnecting(self._ack, gateway, item, result)
        if acknowledged is not None:
            _say(f"  {console.clip(acknowledged, 200)}")

    async def _forward(self, local: aiohttp.ClientSession, item: Mapping[str, Any]) -> Result:
        """POST the delivery to the receiver once; what it answered, or why it did not."""
        body = _body(item)
        headers = {
            name: value
            for name, value in dict(item.get("headers") or {}).items()
            if name.lower() not in _NOT_FORWARDED
        }
        start = time.perf_counter()
        try:
            async with local.post(
                self.options.forward_to,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.options.timeout),
            ) as response:
                content = await response.content.read(MAX_RESPONSE_BYTES)
                return Result(
                    _elapsed(start),
                    status_code=response.status,
                    headers=dict(response.headers),
                    body=content.decode("utf-8", errors="replace"),
                )
        except TimeoutError:
            return Result(_elapsed(start), error=f"timed out after {self.options.timeout:g} s")
        except aiohttp.ClientConnectorError as exc:
            return Result(_elapsed(start), error=f"connection failed: {exc.os_error or exc}")
        except (aiohttp.ClientError, OSError) as exc:
            return Result(_elapsed(start), error=f"{type(exc).__name__}: {exc}")

    async def _ack(
        self, gateway: aiohttp.ClientSession, item: Mapping[str, Any], result: Result
    ) -> str | None:
        """Tell the gateway what the receiver answered; a note when it no longer counts."""
        url = f"{self.options.url}/api/v1/deliveries/{item['delivery_id']}/ack"
        payload = {
            "attempt": item["attempt"],
            "status_code": result.status_code,
            "error": result.error,
            "duration_ms": round(result.duration_ms, 3),
            "timed_out": result.error is not None and result.error.startswith("timed out"),
            "response_headers": result.headers,
            "response_body": result.body,
        }
        async with gateway.post(url, json=payload) as response:
            if response.status == 409:
                detail = (await response.json(content_type=None)).get("detail", "")
                return f"not recorded: {detail}"
            await _answer(response)
        return None


@dataclasses.dataclass(frozen=True)
class Result:
    duration_ms: float
    status_code: int | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: str = ""
    error: str | None = None


async def _answer(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """The gateway's JSON answer; ``Unavailable`` for what a retry may fix, ``Stop`` for what
    it will not."""
    if response.status >= 500 or response.status == 429:
        raise Unavailable(f"the gateway answered {response.status}")
    try:
        data = await response.json(content_type=None)
    except ValueError:
        raise Unavailable(f"the gateway answered {response.status} without JSON") from None
    if response.status >= 400:
        detail = data.get("detail", "") if isinstance(data, dict) else ""
        raise Stop(f"the gateway refused ({response.status}): {console.clip(str(detail), 300)}")
    return data if isinstance(data, dict) else {}


def _body(item: Mapping[str, Any]) -> bytes:
    if "body_base64" in item:
        return base64.b64decode(item["body_base64"])
    return str(item.get("body", "")).encode()


def _elapsed(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _line(item: Mapping[str, Any], result: Result) -> str:
    """``12:00:01  run.success (push)  [200]  12 ms  <webhook-id>`` (retries say which)."""
    headers = {k.lower(): v for k, v in dict(item.get("headers") or {}).items()}
    event = str(item.get("event_type", ""))
    sender = next((headers[name] for name in EVENT_HEADERS if name in headers), None)
    if sender:
        event += f" ({sender})"
    outcome = f"[{result.status_code}]" if result.status_code is not None else f"[{result.error}]"
    attempt = int(item.get("attempt") or 1)
    retry = f"  try {attempt}" if attempt > 1 else ""
    moment = console.when(time.time()).split(" ")[1].rstrip("Z")
    return console.printable(
        f"{moment}  {event}  {outcome}  {result.duration_ms:.0f} ms  "
        f"{item.get('delivery_id', '')}{retry}"
    )


def _state_line(state: str) -> str:
    """What a change of the endpoint's state means for the deliveries."""
    if state == "active":
        return "The endpoint is active again."
    return console.printable(
        f"The endpoint is {state.replace('_', ' ')}: its deliveries wait (see /inspect/endpoints)."
    )


def _report_retry(state: tenacity.RetryCallState) -> None:
    outcome = state.outcome
    problem = outcome.exception() if outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0
    reason = console.clip(str(problem) or type(problem).__name__, 200)
    print(
        f"hookgate: gateway unreachable ({reason}); retrying in {wait:.1f} s",
        file=sys.stderr,
        flush=True,
    )


def _say(line: str) -> None:
    print(line, flush=True)
