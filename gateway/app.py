"""``create_app``: wires store, flows, run worker, dispatcher and routes.

Background work lives in ``cleanup_ctx``, so tests start and stop it exactly as production does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import structlog
from aiohttp import web

from gateway import api, errors, flows, inspect, keys, log, netguard, signing
from gateway.clock import Clock, SystemClock
from gateway.heartbeat import Heartbeat
from gateway.inspect.feed import republish
from gateway.metrics import Metrics
from gateway.outbox.admin import Admin
from gateway.outbox.delivery import Sender
from gateway.outbox.dispatcher import Dispatcher, DispatchLimits
from gateway.outbox.retry import RetryPolicy
from gateway.pruner import Pruner
from gateway.runs.events import EventHub
from gateway.runs.ingest import Ingest
from gateway.runs.relay import relay_changes
from gateway.runs.service import RunService
from gateway.runs.worker import RunWorker
from gateway.settings import Settings
from gateway.store import Store, base, store_from_url
from gateway.store.changes import ChangeSource

logger = structlog.get_logger(__name__)


def create_app(
    settings: Settings, *, store: Store | None = None, clock: Clock | None = None
) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[log.request_context, *api.middlewares],
    )
    app[keys.settings_key] = settings
    app[keys.clock_key] = clock or SystemClock()
    app[keys.store_key] = store or store_from_url(settings.database_url, settings.secret_key)
    app[keys.flows_key] = flows.load_flows(settings)
    app[keys.metrics_key] = Metrics()
    app.cleanup_ctx.extend([_store_ctx, _http_ctx, _workers_ctx, _pruner_ctx])
    api.setup_routes(app)
    inspect.setup(app)  # /inspect pages and bins; their live feed observes the store's writes
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[keys.store_key]
    await store.open()
    try:
        await store.take_over(app[keys.clock_key].now())
    except BaseException:
        await store.close()
        raise
    yield
    await store.close()


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.settings_key]
    connector = netguard.GuardedConnector(
        netguard.Policy.for_settings(settings),
        limit=settings.delivery_concurrency,
        limit_per_host=settings.delivery_concurrency,
    )
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        app[keys.http_key] = session
        yield


async def _workers_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.settings_key]
    store, clock = app[keys.store_key], app[keys.clock_key]
    signing_secret = settings.signing_secret
    if not signing_secret:
        signing_secret = signing.new_secret()
        logger.warning(
            "signing_secret_generated",
            detail="GATEWAY_SIGNING_SECRET is not set: per-run webhook signatures use a random "
            "secret that changes at every start",
        )
    service = RunService(
        store=store,
        flows=app[keys.flows_key],
        clock=clock,
        metrics=app[keys.metrics_key],
        events=EventHub(store, clock, idle_check=settings.poll_interval),
        max_write_backlog=settings.max_write_backlog,
    )
    worker = RunWorker(
        service,
        store,
        clock,
        concurrency=settings.run_concurrency,
        lease_seconds=settings.lease_seconds,
        poll_interval=settings.poll_interval,
    )
    service.handoff = worker
    dispatcher = Dispatcher(
        store,
        Sender(
            app[keys.http_key],
            clock,
            timeout=settings.delivery_timeout,
            connect_timeout=settings.delivery_connect_timeout,
        ),
        RetryPolicy(settings.retry_schedule, settings.retry_jitter, settings.throttle_min_delay),
        clock,
        signing_secret=signing_secret,
        ready=service.deliveries_ready,
        metrics=app[keys.metrics_key],
        limits=DispatchLimits(
            concurrency=settings.delivery_concurrency,
            lease_seconds=settings.lease_seconds,
            poll_interval=settings.poll_interval,
            claim=base.ClaimPolicy(
                max_concurrency=settings.endpoint_max_concurrency,
                circuit_failure_threshold=settings.circuit_failure_threshold,
            ),
            health=base.HealthPolicy(
                circuit_failure_threshold=settings.circuit_failure_threshold,
                circuit_cooldown_seconds=settings.circuit_cooldown_seconds,
                disable_after_seconds=settings.disable_after_seconds,
            ),
        ),
    )
    service.dispatcher = dispatcher
    app[keys.runs_key] = service
    app[keys.ingest_key] = Ingest(service, settings)
    app[keys.worker_key] = worker
    app[keys.dispatcher_key] = dispatcher
    app[keys.admin_key] = Admin(
        store, clock, settings, app[keys.flows_key].keys(), dispatcher.ready.set
    )
    heartbeat = Heartbeat(
        store,
        clock,
        lease_seconds=settings.lease_seconds,
        interval=settings.heartbeat_seconds,
        runs=worker,
        deliveries=dispatcher,
    )
    tasks = [
        _background(worker.run_forever, "run-worker"),
        _background(dispatcher.run_forever, "dispatcher"),
        _background(heartbeat.run_forever, "heartbeat"),
    ]
    if isinstance(store, ChangeSource):  # every store is; a test may hand in a bare one
        # Other processes' commits (PostgreSQL) wake this one; every commit reaches /inspect.
        tasks.append(_background(functools.partial(relay_changes, store, service, worker), "relay"))
        if keys.inspect_notifier_key in app:
            notifier = app[keys.inspect_notifier_key]
            tasks.append(_background(functools.partial(republish, store, notifier), "inspect"))
    yield
    await worker.stop()
    await dispatcher.stop()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _pruner_ctx(app: web.Application) -> AsyncIterator[None]:
    """Retention: the pruner deletes what has expired, by the app's clock."""
    pruner = Pruner.for_settings(
        app[keys.settings_key], app[keys.store_key], app[keys.clock_key], app[keys.metrics_key]
    )
    app[keys.pruner_key] = pruner
    task = _background(pruner.run_forever, "pruner")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _background(loop: Callable[[], Awaitable[None]], name: str) -> asyncio.Task[None]:
    """Run a loop that logs and restarts after a failure, instead of dying silently."""

    async def supervised() -> None:
        while True:
            try:
                await loop()
                return
            except errors.StoreUnavailable as exc:  # disk full: a line per retry, no traceback
                logger.warning("background_task_waiting_for_store", task=name, detail=exc.detail)
                await asyncio.sleep(1)
            except Exception:
                logger.exception("background_task_failed", task=name)
                await asyncio.sleep(1)

    return asyncio.create_task(supervised(), name=name)
