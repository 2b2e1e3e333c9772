"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from tests import needs

if TYPE_CHECKING:
    from langgraph_sdk.client import LangGraphClient


@pytest.fixture
async def client(gateway: Any) -> AsyncIterator[LangGraphClient]:
    """The official langgraph-sdk client, pointed at the gateway under test (imported here, so
    that the tests which do not drive it run without it installed)."""
    sdk = needs.module("langgraph_sdk")
    lg: LangGraphClient = sdk.get_client(url=str(gateway.make_url("")).rstrip("/"), api_key=None)
    try:
        yield lg
    finally:
        await lg.aclose()
