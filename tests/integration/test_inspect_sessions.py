"""/inspect sessions with an API key: logout ends a session for good, failed logins are
throttled, and the API key never travels in a redirect's ``next=``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.inspect import access
from gateway.settings import Settings
from gateway.testing import FakeClock

Client = TestClient[web.Request, web.Application]
KEY = "the-api-key-123"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def locked(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], clock: FakeClock
) -> Client:
    client: Client = await aiohttp_client(create_app(make_settings(api_key=KEY), clock=clock))
    return client


async def log_in(client: Client, api_key: str = KEY, next_path: str = "/inspect/runs") -> Any:
    form = await (await client.get("/inspect/login")).text()
    return await client.post(
        "/inspect/login",
        data={"api_key": api_key, "csrf_token": csrf_of(form), "next": next_path},
        allow_redirects=False,
    )


def session_cookie(client: Client) -> str:
    (cookie,) = [c for c in client.session.cookie_jar if c.key == access.SESSION_COOKIE]
    return cookie.value


async def test_logout_ends_the_session_even_for_a_copied_cookie(locked: Client) -> None:
    assert (await log_in(locked)).status == 303
    stolen = session_cookie(locked)
    html = await (await locked.get("/inspect/runs")).text()
    assert "Log out" in html
    csrf = csrf_of(html)
    logged_out = await locked.post(
        "/inspect/logout", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert logged_out.status == 303
    locked.session.cookie_jar.clear()
    replayed = {"Cookie": f"{access.SESSION_COOKIE}={stolen}"}
    page = await locked.get("/inspect/runs", headers=replayed, allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"].startswith("/inspect/login")
    assert (await locked.get("/inspect/live", headers=replayed)).status == 401
    locked.session.cookie_jar.clear()
    action = await locked.post(
        "/inspect/bins", data={"name": "x", "csrf_token": csrf}, headers=replayed
    )
    assert action.status == 401
    # logging in again opens a new session
    locked.session.cookie_jar.clear()
    assert (await log_in(locked)).status == 303
    assert session_cookie(locked) != stolen
    assert (await locked.get("/inspect/runs", allow_redirects=False)).status == 200


async def test_a_session_ends_when_its_time_is_up(locked: Client, clock: FakeClock) -> None:
    assert (await log_in(locked)).status == 303
    assert (await locked.get("/inspect/runs", allow_redirects=False)).status == 200
    clock.advance(access.SESSION_MAX_AGE + 1)
    assert (await locked.get("/inspect/runs", allow_redirects=False)).status == 303


async def test_failed_logins_are_throttled_on_the_app_clock(
    locked: Client, clock: FakeClock
) -> None:
    for _ in range(access.LOGIN_FAILURES_ALLOWED):
        assert (await log_in(locked, api_key="guess")).status == 401
        clock.advance(1)
    throttled = await log_in(locked)  # even the right key waits: guessing must not pay
    assert throttled.status == 429
    wait = int(throttled.headers["Retry-After"])
    assert 0 < wait <= access.LOGIN_FAILURE_WINDOW
    assert "try again" in await throttled.text()
    assert access.SESSION_COOKIE not in throttled.cookies
    clock.advance(wait - 1)
    assert (await log_in(locked)).status == 429
    clock.advance(1)
    assert (await log_in(locked)).status == 303


async def test_failures_spread_over_more_than_a_minute_are_not_throttled(
    locked: Client, clock: FakeClock
) -> None:
    for _ in range(access.LOGIN_FAILURES_ALLOWED * 3):
        assert (await log_in(locked, api_key="typo")).status == 401
        clock.advance(access.LOGIN_FAILURE_WINDOW / (access.LOGIN_FAILURES_ALLOWED - 1))
    assert (await log_in(locked)).status == 303


@pytest.mark.parametrize("key", [KEY, "a-wrong-key"])
async def test_the_api_key_never_travels_in_next(locked: Client, key: str) -> None:
    for spelling in ("x-api-key", "X-API-Key"):
        response = await locked.get(
            f"/inspect/runs?status=failed&{spelling}={key}", allow_redirects=False
        )
        assert response.status == 303
        location = response.headers["Location"]
        assert key not in location
        assert "api-key" not in location.lower()
        (next_path,) = parse_qs(urlsplit(location).query)["next"]
        assert next_path == "/inspect/runs?status=failed"
    form = await (await locked.get(f"/inspect/login?next=/inspect/runs%3Fx-api-key%3D{key}")).text()
    assert key not in form
    logged_in = await log_in(locked, next_path=f"/inspect/runs?x-api-key={key}&status=failed")
    assert logged_in.headers["Location"] == "/inspect/runs?status=failed"


@pytest.mark.parametrize(
    "next_path",
    [
        "https://evil.example/inspect",
        "//evil.example/inspect",
        "/\\evil.example",
        "/inspect\\..\\..\\evil",
        "javascript:alert(1)",
        "/inspect\r\nSet-Cookie: x=1",
        "/inspectors",
        "/api/v1/endpoints",
        "",
    ],
)
async def test_next_is_a_path_under_inspect(locked: Client, next_path: str) -> None:
    response = await log_in(locked, next_path=next_path)
    assert response.status == 303
    assert response.headers["Location"] == "/inspect"


async def test_a_page_from_one_process_works_against_another(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """``serve --workers`` spreads a browser's requests over processes of one install: a form
    one of them rendered is accepted by another, its session cookie included."""
    settings = make_settings(signing_secret="one-install-signing-secret")
    first: Client = await aiohttp_client(create_app(settings))
    second: Client = await aiohttp_client(create_app(settings))
    page = await first.get("/inspect/bins")
    cookie = {"Cookie": f"{access.SESSION_COOKIE}={session_cookie(first)}"}
    created = await second.post(
        "/inspect/bins",
        data={"name": "shared", "csrf_token": csrf_of(await page.text())},
        headers=cookie,
        allow_redirects=False,
    )
    assert created.status == 303
    assert created.headers["Location"].startswith("/inspect/bins/")


async def test_a_login_and_a_logout_hold_in_every_process(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """Sessions live in the store: logged in through one process, a browser is logged in for
    all of them, and a logout through another ends the session everywhere."""
    settings = make_settings(api_key=KEY)
    first: Client = await aiohttp_client(create_app(settings))
    second: Client = await aiohttp_client(create_app(settings))
    assert (await log_in(first)).status == 303
    cookie = {"Cookie": f"{access.SESSION_COOKIE}={session_cookie(first)}"}
    page = await second.get("/inspect/runs", headers=cookie, allow_redirects=False)
    assert page.status == 200
    logged_out = await second.post(
        "/inspect/logout",
        data={"csrf_token": csrf_of(await page.text())},
        headers=cookie,
        allow_redirects=False,
    )
    assert logged_out.status == 303
    first.session.cookie_jar.clear()
    again = await first.get("/inspect/runs", headers=cookie, allow_redirects=False)
    assert again.status == 303
    assert again.headers["Location"].startswith("/inspect/login")
