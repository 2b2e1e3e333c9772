"""Every typed application (and request) key in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from gateway import clock, flows, settings, store
from gateway.metrics import Metrics
from gateway.outbox.admin import Admin
from gateway.outbox.dispatcher import Dispatcher
from gateway.outbox.pull import PullService
from gateway.pruner import Pruner
from gateway.runs.ingest import Ingest
from gateway.runs.service import RunService
from gateway.runs.threads import Threads
from gateway.runs.worker import RunWorker

if TYPE_CHECKING:  # /inspect's modules read these keys themselves
    from gateway.inspect import DefaultBin
    from gateway.inspect.access import LoginThrottle, Session
    from gateway.inspect.feed import Notifier

settings_key = web.AppKey("settings", settings.Settings)
clock_key = web.AppKey("clock", clock.Clock)
store_key = web.AppKey("store", store.Store)
flows_key = web.AppKey("flows", Mapping[str, flows.Flow])
http_key = web.AppKey("http", aiohttp.ClientSession)
runs_key = web.AppKey("runs", RunService)
ingest_key = web.AppKey("ingest", Ingest)
worker_key = web.AppKey("worker", RunWorker)
dispatcher_key = web.AppKey("dispatcher", Dispatcher)
metrics_key = web.AppKey("metrics", Metrics)
admin_key = web.AppKey("admin", Admin)
pruner_key = web.AppKey("pruner", Pruner)

# the APIs
langgraph_threads_key = web.AppKey("langgraph_threads", Threads)
langgraph_started_key = web.AppKey("langgraph_started_at", float)
langflow_polls_key: web.AppKey[dict[str, int]] = web.AppKey("langflow_polls")
pull_key = web.AppKey("pull", PullService)

# /inspect
inspect_notifier_key: web.AppKey[Notifier] = web.AppKey("inspect_notifier")
inspect_default_bin_key: web.AppKey[DefaultBin] = web.AppKey("inspect_default_bin")
inspect_session_secret_key = web.AppKey("inspect_session_secret", str)
inspect_login_throttle_key: web.AppKey[LoginThrottle] = web.AppKey("inspect_login_throttle")
inspect_session_key: web.RequestKey[Session] = web.RequestKey("inspect_session")
