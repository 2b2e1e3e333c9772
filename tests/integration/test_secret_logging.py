"""No secret reaches a log, whatever fails: real failures through the app, with the app's own
logging configuration (``gateway.log.configure_logging``), output read from stderr."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from gateway import log
from gateway.app import create_app
from gateway.settings import Settings
from tests.database import raw

API_KEY = "api-key-7Hq2ZxLw9PfT"
SIGNING_SECRET = "whsec_c2lnbmluZy1zZWNyZXQtZm9yLWxvZ3MtdGVzdA=="
ENDPOINT_SECRET = "whsec_ZW5kcG9pbnQtc2VjcmV0LWZvci1sb2dzLXRlc3Q="
PLAIN_ENDPOINT_SECRET = "ZW5kcG9pbnQtc2VjcmV0LXdpdGhvdXQtcHJlZml4"  # valid without whsec_ too
FORMATS = ["json", "console"]


@pytest.fixture
def app_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[str], None]]:
    """Configure logging as ``hookgate serve`` does, into this test's captured stderr."""

    def configure(fmt: str) -> None:
        log.configure_logging(fmt, "debug")
        # Loggers cached on first use would keep this test's stream after it ends.
        structlog.configure(cache_logger_on_first_use=False)

    root = logging.getLogger()
    level = root.level
    yield configure
    for handler in [h for h in root.handlers if h.get_name() == "hookgate"]:
        root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


async def break_table(settings: Settings, table: str) -> None:
    """A real store failure: the table the request needs is gone."""
    await raw(settings.database_url, f"ALTER TABLE {table} RENAME TO {table}_gone")


def assert_no_secret(output: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in output, f"{secret[:10]}… was logged"


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_failed_request_logs_no_api_key_nor_endpoint_secret(
    aiohttp_client: Any,
    make_settings: Callable[..., Settings],
    app_logs: Callable[[str], None],
    capsys: pytest.CaptureFixture[str],
    fmt: str,
) -> None:
    settings = make_settings(api_key=API_KEY, signing_secret=SIGNING_SECRET)
    app_logs(fmt)
    gateway = await aiohttp_client(create_app(settings))
    headers = {"x-api-key": API_KEY}
    await break_table(settings, "endpoints")

    created = await gateway.post(
        "/api/v1/endpoints",
        json={"url": "http://127.0.0.1:9/hook", "secret": ENDPOINT_SECRET},
        headers=headers,
    )
    assert created.status == 500
    listed = await gateway.get(f"/api/v1/endpoints?x-api-key={API_KEY}")
    assert listed.status == 500

    output = capsys.readouterr().err
    assert output.count("request_failed") >= 2
    missing_table = ("no such table", "does not exist")  # SQLite's words, PostgreSQL's
    assert any(text in output for text in missing_table), "the traceback is still logged"
    assert_no_secret(output, API_KEY, SIGNING_SECRET, ENDPOINT_SECRET)


async def test_an_endpoint_secret_without_prefix_is_masked_once_handled(
    aiohttp_client: Any,
    make_settings: Callable[..., Settings],
    app_logs: Callable[[str], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A failing write after the store has handled the secret: its text is masked anywhere."""
    settings = make_settings()
    app_logs("json")
    gateway = await aiohttp_client(create_app(settings))
    await break_table(settings, "endpoints")
    created = await gateway.post(
        "/api/v1/endpoints",
        json={"url": "http://127.0.0.1:9/hook", "secret": PLAIN_ENDPOINT_SECRET},
    )
    assert created.status == 500
    structlog.get_logger("test").error("echo", note=f"was {PLAIN_ENDPOINT_SECRET}.")
    output = capsys.readouterr().err
    assert '"note": "was ****' in output
    assert_no_secret(output, PLAIN_ENDPOINT_SECRET)


@pytest.mark.parametrize("fmt", FORMATS)
def test_configured_secrets_are_masked_in_messages_and_exception_text(
    make_settings: Callable[..., Settings],
    app_logs: Callable[[str], None],
    capsys: pytest.CaptureFixture[str],
    fmt: str,
) -> None:
    settings = make_settings(api_key=API_KEY, signing_secret=SIGNING_SECRET)
    flow_secret = settings.flows["github_push"].secret
    app_logs(fmt)
    logger = structlog.get_logger("test")
    try:
        raise ValueError(f"bad key {API_KEY} for {flow_secret} with {SIGNING_SECRET}")
    except ValueError:
        logger.exception("handler_failed", detail=f"expected {API_KEY}")
    logger.warning(
        "by_name",
        token="a-trigger-token-value",
        headers={"X-Gitlab-Token": "gitlab-token-value", "Accept": "application/json"},
        url="http://h/hook?hookgate_token=callback-token-value&page=2",
    )
    logging.getLogger("aiohttp.server").error("stdlib says %s", API_KEY)

    output = capsys.readouterr().err
    assert "handler_failed" in output
    assert "ValueError" in output
    assert "application/json" in output
    assert "page=2" in output
    assert "stdlib says ****" in output
    assert_no_secret(
        output,
        API_KEY,
        SIGNING_SECRET,
        flow_secret,
        "a-trigger-token-value",
        "gitlab-token-value",
        "callback-token-value",
    )


def test_tracebacks_carry_no_frame_locals(
    app_logs: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    unregistered = "a-value-only-a-local-variable-holds"

    def check(given: str) -> None:
        expected = unregistered
        raise RuntimeError(f"mismatch of {len(given)} and {len(expected)} characters")

    app_logs("json")
    try:
        check("x")
    except RuntimeError:
        structlog.get_logger("test").exception("check_failed")
    output = capsys.readouterr().err
    assert "mismatch of 1 and" in output
    assert unregistered not in output
