"""/docs in a real browser, offline: Swagger UI renders hookgate's document from files the
gateway serves itself; every request to another host is refused, so a CDN would show."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp.test_utils import TestServer

from tests import needs

needs.browser()

from playwright.async_api import Page, Route, expect  # noqa: E402


async def test_docs_render_with_no_other_host(page: Page, served: TestServer) -> None:
    own = f"{served.host}:{served.port}"
    elsewhere: list[str] = []

    async def offline(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    await page.route("**/*", offline)
    await page.goto(str(served.make_url("/docs")))
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("hookgate")
    await expect(page.locator(".opblock-summary-path", has_text="/threads/search")).to_be_visible()
    await expect(page.locator(".errors-wrapper")).to_have_count(0)
    assert elsewhere == []
