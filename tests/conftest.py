"""Shared fixtures: settings on a temporary SQLite file, the real app on a real port, receivers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.settings import Settings, load_settings
from gateway.testing import Receiver

pytest_plugins = ["tests.pg"]  # postgres_url, gateway_database_url

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "gateway.toml"


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def make_settings(gateway_database_url: str) -> Callable[..., Settings]:
    """Settings from the shipped config, on a fresh database, with a compressed retry schedule."""

    def make(**overrides: Any) -> Settings:
        environ = {
            "GATEWAY_DATABASE_URL": gateway_database_url,
            "GATEWAY_RETRY_SCHEDULE": "0.05,0.1",
            "GATEWAY_RETRY_JITTER": "0",
            "GATEWAY_DELIVERY_TIMEOUT": "1",
            "GATEWAY_POLL_INTERVAL": "0.05",
            "GATEWAY_THROTTLE_MIN_DELAY": "0.1",
            # a fixed, public secret the tests sign with (the shipped config holds none)
            "GATEWAY_SIGNING_SECRET": "whsec_ZGV2ZWxvcG1lbnQtb25seS1zaWduaW5nLXNlY3JldA==",
        }
        return load_settings(CONFIG, environ).replace(**overrides)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def gateway(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> TestClient[web.Request, web.Application]:
    """The real app, served on a free loopback port, with its worker and dispatcher running."""
    client: TestClient[web.Request, web.Application] = await aiohttp_client(create_app(settings))
    return client


@pytest.fixture
async def receiver(aiohttp_server: Callable[..., Any]) -> Receiver:
    """A real HTTP receiver on 127.0.0.1 that records callbacks; ``receiver.url`` is its base."""
    recorder = Receiver()
    server: TestServer = await aiohttp_server(recorder.app(), host="127.0.0.1")
    recorder.url = str(server.make_url("/hook"))
    return recorder
