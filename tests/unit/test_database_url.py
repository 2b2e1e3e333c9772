"""The database URL: which backend it names, and how it is shown."""

from __future__ import annotations

import pytest

from gateway import errors
from gateway.settings import load_settings
from gateway.store import backend_of, without_password


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("sqlite:///var/gateway.db", "sqlite"),
        ("sqlite:////tmp/gateway.db", "sqlite"),
        ("postgresql://postgres@127.0.0.1:5432/test", "postgres"),
        ("postgres://user:pw@db.example.com/hookgate", "postgres"),
    ],
)
def test_the_scheme_picks_the_backend(url: str, backend: str) -> None:
    assert backend_of(url) == backend


@pytest.mark.parametrize(
    "url", ["mysql://x@localhost/db", "sqlite://relative.db", "", "gateway.db"]
)
def test_any_other_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(errors.ConfigError, match=r"sqlite:///path\.db or postgresql://"):
        backend_of(url)


def test_a_password_is_never_shown() -> None:
    url = "postgresql://hookgate:s3cret@db.example.com:5432/gateway"
    assert without_password(url) == "postgresql://hookgate:***@db.example.com:5432/gateway"
    assert without_password("sqlite:///var/gateway.db") == "sqlite:///var/gateway.db"
    settings = load_settings(environ={"GATEWAY_DATABASE_URL": url})
    assert "s3cret" not in repr(settings)
    assert "hookgate:***@db.example.com" in repr(settings)
