#!/usr/bin/env python3
"""Take the README's screenshots of /inspect: docs/inspect-*.png.

Serves the real app on a temporary database, makes some traffic (runs that succeed and fail,
an endpoint whose receiver fails then recovers, a bin with signed and tampered callbacks),
then photographs the main pages in Debian's Chromium through Playwright at 1280 px, and the
overview at phone width. Run: .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import keys, models  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.inspect.bins import new_bin_id  # noqa: E402
from gateway.log import configure_logging  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from gateway.store import base as store_base  # noqa: E402
from gateway.testing import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

DOCS = ROOT / "docs"


async def traffic(base: str, server: TestServer) -> dict[str, str]:
    store = server.app[keys.store_key]
    ids: dict[str, str] = {}
    async with aiohttp.ClientSession() as http:
        # a bin, used as a run's webhook and as a failing endpoint
        bins = await store.list_bins()  # type: ignore[attr-defined]
        bin_id = bins[0].bin_id
        bin_url = f"{base}/inspect/bins/{bin_id}"
        ids["bin"] = bin_id
        await store.update_bin(bin_id, {"name": "local callbacks"})  # type: ignore[attr-defined]
        flaky_bin = new_bin_id()
        await store.create_bin(  # type: ignore[attr-defined]
            models.Bin(
                bin_id=flaky_bin, name="flaky receiver", created_at=time.time(), reply_status=503
            )
        )
        async with http.post(
            f"{base}/api/v1/endpoints",
            json={
                "url": f"{base}/inspect/bins/{flaky_bin}",
                "description": "billing service",
                "flow_ids": ["agent"],
            },
        ) as response:
            await response.json()
        for topic in ("ice cream", "parrots", "monday mornings"):
            async with http.post(f"{base}/api/v1/webhook/agent", json={"topic": topic}) as response:
                ids["agent_run"] = (await response.json())["run_id"]
        for n in range(3):
            async with http.post(
                f"{base}/api/v1/webhook/echo",
                params={"webhook": bin_url},
                json={"order": 1000 + n, "customer": {"name": "Ada", "plan": "pro"}, "items": [n]},
            ) as response:
                ids["echo_run"] = (await response.json())["run_id"]
        async with http.post(f"{base}/api/v1/webhook/fail", json={"why": "demo"}) as response:
            ids["fail_run"] = (await response.json())["run_id"]
        async with http.post(
            f"{base}/webhook/echo",
            data="event=push&ref=refs/heads/main",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": "Bearer s3cr3t-token-123",
            },
        ) as response:
            pass
        await asyncio.sleep(2.5)
        # a tampered callback next to the genuine ones
        captures = await store.list_captures(bin_id)  # type: ignore[attr-defined]
        genuine = captures[0]
        headers = {k: v for k, v in genuine.headers.items() if k.lower().startswith("webhook-")}
        async with http.post(
            f"{bin_url}?{genuine.query}", data=genuine.body.replace(b"Ada", b"Eve"), headers=headers
        ):
            pass
    deliveries = await store.list_deliveries(store_base.DeliverySelection())
    failing = [d for d in deliveries if d.endpoint_id]
    ids["delivery"] = (failing or deliveries)[0].delivery_id
    triggers = await store.list_triggers(store_base.TriggerSelection())  # type: ignore[attr-defined]
    ids["trigger"] = triggers[-1].trigger_id
    return ids


async def shoot(page: Page, base: str, path: str, name: str, full: bool = True) -> None:
    await page.goto(base + path)
    await page.wait_for_timeout(400)
    await page.screenshot(path=str(DOCS / name), full_page=full)
    print("wrote", DOCS / name)


async def main() -> None:
    configure_logging("console", "warning")
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            ROOT / "config" / "gateway.toml",
            {
                "GATEWAY_DATABASE_URL": f"sqlite:///{tmp}/gateway.db",
                "GATEWAY_RETRY_SCHEDULE": "0.2,0.4,60",
                "GATEWAY_RETRY_JITTER": "0",
                "GATEWAY_POLL_INTERVAL": "0.05",
                "GATEWAY_LOG_LEVEL": "warning",
            },
        )
        server = TestServer(create_app(settings), host="127.0.0.1")
        await server.start_server()
        base = str(server.make_url("")).rstrip("/")
        try:
            ids = await traffic(base, server)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=list(CHROMIUM_ARGS)
                )
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                await shoot(page, base, "/inspect/", "inspect-overview.png")
                await shoot(
                    page, base, f"/inspect/deliveries/{ids['delivery']}", "inspect-delivery.png"
                )
                await shoot(page, base, f"/inspect/bins/{ids['bin']}/view", "inspect-bin.png")
                await shoot(page, base, f"/inspect/runs/{ids['agent_run']}", "inspect-run.png")
                await shoot(
                    page, base, f"/inspect/triggers/{ids['trigger']}", "inspect-trigger.png"
                )
                phone = await browser.new_page(
                    viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
                )
                await shoot(phone, base, "/inspect/", "inspect-phone.png", full=False)
                await browser.close()
        finally:
            await server.close()


if __name__ == "__main__":
    asyncio.run(main())
