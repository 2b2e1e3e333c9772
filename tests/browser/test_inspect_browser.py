"""/inspect in a real browser: live overview, Retry on a failed delivery, bins with ✓ and ✗."""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestServer

from gateway import keys, models, signing
from tests import needs

needs.browser()

from playwright.async_api import Page, expect  # noqa: E402


def url(server: TestServer, path: str) -> str:
    return str(server.make_url(path))


async def test_a_new_run_appears_on_the_overview_without_a_reload(
    page: Page, served: TestServer
) -> None:
    await page.goto(url(served, "/inspect/"))
    await expect(page.locator("#live-state")).to_have_text("live")
    await page.evaluate("window.__notReloaded = true")

    async with aiohttp.ClientSession() as http:
        response = await http.post(url(served, "/api/v1/webhook/echo"), json={"hello": "live"})
        run_id = (await response.json())["run_id"]

    row = page.locator(f'#live-runs tr[data-run="{run_id}"]')
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("success")
    assert await page.evaluate("window.__notReloaded") is True


async def test_retry_on_a_failed_delivery_shows_the_new_attempt(
    page: Page, served: TestServer
) -> None:
    store = served.app[keys.store_key]
    await page.goto(url(served, "/inspect/bins"))
    await page.get_by_role("button", name="New bin").click()
    bin_url = (await page.locator("#bin-url").inner_text()).strip()
    # The bin answers 500, so the run's callback is retried, then dead-lettered.
    await page.locator("input[name=reply_status]").fill("500")
    await page.locator("#bin-settings").get_by_role("button", name="Save").click()
    await expect(page.locator(".flash-ok")).to_contain_text("Saved")

    async with aiohttp.ClientSession() as http:
        response = await http.post(
            url(served, "/api/v1/webhook/echo"), params={"webhook": bin_url}, json={"n": 1}
        )
        run_id = (await response.json())["run_id"]

    await page.goto(url(served, f"/inspect/runs/{run_id}"))
    delivery_link = page.locator("#live-deliveries a.id").first
    await expect(delivery_link).to_be_visible()
    await delivery_link.click()
    await expect(page.locator("#delivery-status")).to_contain_text("failed", timeout=15_000)
    tries = int(await page.locator("#delivery-attempts").inner_text())

    # The receiver is fixed; press Retry now and watch the new attempt arrive.
    bin_id = bin_url.rsplit("/", 1)[1]
    await store.update_bin(bin_id, {"reply_status": 200})  # type: ignore[attr-defined]
    await page.get_by_role("button", name="Retry now").click()
    await expect(page.locator(".flash-ok")).to_contain_text("Retry requested")
    new_attempt = page.locator(f"#attempt-{tries + 1}")
    await expect(new_attempt).to_be_visible()
    await expect(new_attempt.locator("summary")).to_contain_text("200")
    await expect(page.locator("#delivery-status")).to_contain_text("succeeded")


async def test_a_signed_callback_shows_a_tick_and_a_tampered_one_a_cross(
    page: Page, served: TestServer
) -> None:
    await page.goto(url(served, "/inspect/bins"))
    await page.get_by_role("button", name="New bin").click()
    bin_url = (await page.locator("#bin-url").inner_text()).strip()

    async with aiohttp.ClientSession() as http:
        await http.post(
            url(served, "/api/v1/webhook/echo"), params={"webhook": bin_url}, json={"a": 1}
        )
    signed = page.locator("details.capture").first
    await expect(signed.locator("[data-verdict]")).to_have_text("✓ verified")
    await expect(signed.locator(".checks")).to_contain_text(
        "HMAC-SHA256 over id.timestamp.body matches"
    )

    # Replay the same signed request with one byte of the body changed.
    bin_id = bin_url.rsplit("/", 1)[1]
    store = served.app[keys.store_key]
    (captured,) = await store.list_captures(bin_id)  # type: ignore[attr-defined]
    assert isinstance(captured, models.CapturedRequest)
    headers = {k: v for k, v in captured.headers.items() if k.lower().startswith("webhook-")}
    tampered = captured.body.replace(b'"a":1', b'"a":2')
    assert tampered != captured.body
    async with aiohttp.ClientSession() as http:
        await http.post(f"{bin_url}?{captured.query}", data=tampered, headers=headers)
    await expect(page.locator("details.capture")).to_have_count(2)
    newest = page.locator("details.capture").first
    await expect(newest.locator("[data-verdict]")).to_have_text("✗ not verified")
    await expect(newest.locator(".checks")).to_contain_text("signature mismatch")
    # the secret picked for the check is named, never shown
    html = await page.content()
    secret = served.app[keys.dispatcher_key].signing_secret
    assert secret not in html
    assert signing.SECRET_PREFIX + secret[6:12] not in html


async def test_pages_fit_a_phone(browser: object, served: TestServer) -> None:
    from playwright.async_api import Browser

    assert isinstance(browser, Browser)
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = await context.new_page()
    try:
        for path in ("/inspect/", "/inspect/runs", "/inspect/bins", "/inspect/endpoints"):
            await phone.goto(url(served, path))
            overflow = await phone.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{path} scrolls sideways by {overflow}px on a phone"
    finally:
        await context.close()
