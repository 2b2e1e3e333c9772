"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient


@pytest.fixture
async def client(gateway: Any) -> AsyncIterator[LangGraphClient]:
    """The official langgraph-sdk client, pointed at the gateway under test."""
    lg = get_client(url=str(gateway.make_url("")).rstrip("/"), api_key=None)
    try:
        yield lg
    finally:
        await lg.aclose()
