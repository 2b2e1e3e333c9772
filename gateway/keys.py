"""Every typed application key in one place."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from aiohttp import web

from gateway import clock, flows, settings, store
from gateway.metrics import Metrics
from gateway.outbox.admin import Admin
from gateway.outbox.dispatcher import Dispatcher
from gateway.pruner import Pruner
from gateway.runs.ingest import Ingest
from gateway.runs.service import RunService
from gateway.runs.worker import RunWorker

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
