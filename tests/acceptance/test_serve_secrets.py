"""``hookgate serve`` and public or unreadable secrets: refuse beyond loopback, warn on it, and
stop with the reason (never a server that answers 500s) when endpoint secrets cannot be read."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from cryptography.fernet import Fernet

from gateway import localsecrets, models, signing, verify
from gateway.store.sqlite import SQLiteStore
from gateway.testing import ROOT, GatewayProcess, gateway_env

DEV_SIGNING_SECRET = "whsec_ZGV2ZWxvcG1lbnQtb25seS1zaWduaW5nLXNlY3JldA=="
UNASSIGNED = "192.0.2.1"  # TEST-NET-1: never an address of this machine, so never bound


def hookgate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_serve_refuses_a_public_address_while_a_development_secret_is_in_use(
    tmp_path: Path,
) -> None:
    env = gateway_env(GATEWAY_DATABASE_URL=f"sqlite:///{tmp_path / 'gateway.db'}")
    shipped = hookgate("serve", "--host", UNASSIGNED, "--port", "0", env=env)
    assert shipped.returncode == 2
    assert f"refusing to listen on {UNASSIGNED}" in shipped.stderr
    assert "flows.github_push.secret holds a public development secret" in shipped.stderr

    env["GATEWAY_SIGNING_SECRET"] = DEV_SIGNING_SECRET
    old_signing = hookgate("serve", "--host", UNASSIGNED, "--port", "0", env=env)
    assert old_signing.returncode == 2
    assert "signing_secret, flows.github_push.secret" in old_signing.stderr
    assert DEV_SIGNING_SECRET not in old_signing.stderr + old_signing.stdout


async def test_serve_on_loopback_warns_and_signs_with_its_own_generated_secret(
    tmp_path: Path, spawn_gateway: Callable[..., GatewayProcess]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    env = gateway_env(GATEWAY_DATABASE_URL=database_url, GATEWAY_API_KEY="key-for-this-test")
    gateway = spawn_gateway(database_url, env)
    base_url = gateway.wait_ready()
    stderr = gateway.stderr_path.read_text()
    assert "development_secret_in_use" in stderr
    assert "flows.github_push.secret" in stderr

    generated = localsecrets.read(tmp_path, "signing_secret")
    assert generated is not None
    assert generated not in localsecrets.DEVELOPMENT_SECRETS
    assert localsecrets.read(tmp_path, "secret_key") is not None
    mode = (tmp_path / localsecrets.FILE_NAME).stat().st_mode & 0o777
    assert mode == 0o600

    printed = hookgate("token", "echo", "--base-url", base_url, env=env)
    assert printed.returncode == 0, printed.stderr
    forged = verify.trigger_token(DEV_SIGNING_SECRET, "echo", time.time() + 60)
    async with aiohttp.ClientSession() as session:
        async with session.post(printed.stdout.strip(), json={"a": 1}) as response:
            assert response.status == 202
        forged_url = f"{base_url}/api/v1/webhook/echo?token={forged}"
        async with session.post(forged_url, json={"a": 1}) as response:
            assert response.status == 403


def test_serve_with_a_wrong_secret_key_exits_with_the_reason(tmp_path: Path) -> None:
    database = tmp_path / "gateway.db"

    async def store_one_endpoint() -> None:
        store = SQLiteStore(database, Fernet.generate_key().decode())
        await store.open()
        secret = signing.new_secret()
        await store.create_endpoint(
            models.Endpoint(
                endpoint_id=models.new_id(),
                url="http://127.0.0.1:9/hook",
                secret=secret,
                created_at=1.0,
                updated_at=1.0,
            )
        )
        await store.close()

    asyncio.run(store_one_endpoint())
    env = gateway_env(
        GATEWAY_DATABASE_URL=f"sqlite:///{database}",
        GATEWAY_SECRET_KEY=Fernet.generate_key().decode(),
    )
    for command, code in (
        (("serve", "--host", "127.0.0.1", "--port", "0"), 2),
        (("endpoints", "list"), 1),
    ):
        result = hookgate(*command, env=env)
        assert result.returncode == code, (command, result.stderr)
        assert "cannot be decrypted" in result.stderr
        assert "GATEWAY_SECRET_KEY" in result.stderr
        assert "Traceback" not in result.stderr
        assert "hookgate listening" not in result.stdout
