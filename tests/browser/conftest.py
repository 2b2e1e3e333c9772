"""Headless Chromium (Debian's ``chromium``) driven by Playwright, against the real app on 127.0.0.1.

``./scripts/test`` installs both (``apt-get install chromium``, the ``playwright`` package from
the ``test`` extra); Playwright's own browser download is never used. Without them these
tests skip, saying why.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.settings import Settings
from gateway.testing import CHROMIUM, CHROMIUM_ARGS

try:
    from playwright.async_api import Browser, Page, async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None  # type: ignore[assignment]


def _why_not() -> str | None:
    if async_playwright is None:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (./scripts/test installs Debian's chromium package)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _why_not()
    if reason is None:
        return
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=f"browser tests skipped: {reason}"))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert async_playwright is not None
    async with async_playwright() as playwright:
        # Playwright gives every launch a fresh, empty --user-data-dir of its own.
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    opened = await context.new_page()
    try:
        yield opened
    finally:
        await context.close()


@pytest.fixture
async def served(aiohttp_server: Callable[..., Any], settings: Settings) -> TestServer:
    """The real app (worker, dispatcher, /inspect) on a free port of 127.0.0.1."""
    server: TestServer = await aiohttp_server(create_app(settings), host="127.0.0.1")
    return server
