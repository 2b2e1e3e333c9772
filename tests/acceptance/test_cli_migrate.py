"""``hookgate migrate``: the schema on its own, on both backends, as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from gateway.testing import ROOT, gateway_env


def migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "migrate", "--database", database_url],
        cwd=ROOT,
        env=gateway_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def shipped(backend_dir: Path) -> str:
    """What a first ``hookgate migrate`` reports: every migration file of the backend."""
    versions = sorted(int(path.name.split("_", 1)[0]) for path in backend_dir.glob("*.sql"))
    return "applied migrations " + ", ".join(map(str, versions)) + "\n"


MIGRATIONS = ROOT / "gateway" / "store" / "migrations"
POSTGRES_MIGRATIONS = ROOT / "gateway" / "store" / "postgres" / "migrations"


def test_migrate_creates_a_sqlite_schema_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'gateway.db'}"
    first = migrate(url)
    assert (first.returncode, first.stdout) == (0, shipped(MIGRATIONS))
    again = migrate(url)
    assert (again.returncode, again.stdout) == (0, "the schema is up to date\n")


async def test_migrate_creates_a_postgres_schema_once(postgres_url: str) -> None:
    first = migrate(postgres_url)
    assert (first.returncode, first.stdout) == (0, shipped(POSTGRES_MIGRATIONS))
    assert migrate(postgres_url).stdout == "the schema is up to date\n"
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT COUNT(*) FROM runs") == 0
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("postgresql://hookgate:pw@127.0.0.1:1/x", 1, "cannot reach PostgreSQL at 127.0.0.1:1/x"),
        ("mysql://x@localhost/db", 2, "database_url must look like sqlite:///"),
    ],
)
def test_migrate_says_why_it_cannot(url: str, code: int, message: str) -> None:
    result = migrate(url)
    assert result.returncode == code
    assert result.stderr.startswith(f"hookgate: {message}"), result.stderr
    assert ":pw@" not in result.stderr
