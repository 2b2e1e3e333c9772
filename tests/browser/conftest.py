"""Headless Chromium (Debian's ``chromium``) driven by Playwright, against the real app on 127.0.0.1.

``./scripts/test`` installs both (``apt-get install chromium``, the ``playwright`` package from
the ``test`` extra); Playwright's own browser download is never used. Without them these
tests skip, saying why, or fail the run under ``CI=true`` (``tests/needs.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.settings import Settings
from gateway.testing import CHROMIUM, CHROMIUM_ARGS

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

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
