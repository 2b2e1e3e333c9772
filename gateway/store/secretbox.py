"""Endpoint secrets at rest: sealed with Fernet (``cryptography``) under ``GATEWAY_SECRET_KEY``.

The setting is a comma-separated list of Fernet keys, newest first. ``MultiFernet`` opens a
value sealed with any of them and seals with the first, so rotating is: put the new key in
front, restart (the store re-seals every row with it on open), then drop the old key. Without
a configured key the store uses one generated beside the database (``localsecrets``), so the
embedded default encrypts too; while that file exists its key also opens old values, which
lets an install move to a configured key by setting it and restarting.

A sealed value is ``fernet:<token>``; anything else in a secret column is plaintext from
before encryption, sealed on the next open.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway import errors, localsecrets, log

PREFIX = "fernet:"
KEY_SETTING = "GATEWAY_SECRET_KEY"
OPENED_KEPT = 4096
"""Opened values kept in memory at most (one per endpoint secret, current and previous)."""


def parse_keys(setting: str) -> list[bytes]:
    """The keys of a ``GATEWAY_SECRET_KEY`` value; ``ValueError`` says which one is malformed."""
    keys = [item.strip() for item in setting.split(",") if item.strip()]
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                f"key {position} is not a Fernet key (32 url-safe base64 bytes; make one with "
                "python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            ) from None
    return [key.encode() for key in keys]


def new_key() -> str:
    return Fernet.generate_key().decode()


class SecretBox:
    """Seals and opens secrets; ``keys`` newest first (the first one seals)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a SecretBox needs at least one key")
        self._newest = Fernet(keys[0])
        self._all = MultiFernet([Fernet(key) for key in keys])
        self._opened: dict[str, str] = {}  # sealed value → plaintext: a value opens the same
        # way every time, and endpoints are read on every run's ending and every delivery

    @classmethod
    def for_database(cls, setting: str, directory: Path) -> SecretBox:
        """The configured keys, else the install's generated one; plus the generated one, when
        it exists, to open values sealed before a key was configured."""
        try:
            keys = parse_keys(setting)
        except ValueError as exc:
            raise errors.ConfigError(f"secret_key ({KEY_SETTING}): {exc}") from None
        if keys:
            local = localsecrets.read(directory, "secret_key")
        else:
            local = localsecrets.read_or_create(directory, "secret_key", new_key)
        try:
            generated = parse_keys(local or "")
        except ValueError as exc:
            where = directory / localsecrets.FILE_NAME
            raise errors.ConfigError(f"secret_key in {where}: {exc}") from None
        return cls(keys + [key for key in generated if key not in keys])

    def seal(self, secret: str) -> str:
        log.remember_endpoint_secret(secret)
        return PREFIX + self._newest.encrypt(secret.encode()).decode()

    def open(self, stored: str) -> str:
        """The plaintext of a sealed value (a plaintext one as is); ``StoreError`` when no
        configured key opens it."""
        if not stored.startswith(PREFIX):
            log.remember_endpoint_secret(stored)
            return stored
        opened = self._opened.get(stored)
        if opened is not None:
            return opened
        try:
            secret = self._all.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken:
            raise errors.StoreError(
                f"endpoint secrets in the database cannot be decrypted with the configured "
                f"keys: {KEY_SETTING} (or the generated key in {localsecrets.FILE_NAME}, beside "
                "the SQLite file or in var/ for PostgreSQL) must include the key they were "
                "encrypted with"
            ) from None
        log.remember_endpoint_secret(secret)
        if len(self._opened) >= OPENED_KEPT:
            self._opened.clear()
        self._opened[stored] = secret
        return secret

    def is_current(self, stored: str) -> bool:
        """Sealed with the newest key: nothing to do on a rotation."""
        if not stored.startswith(PREFIX):
            return False
        try:
            self._newest.decrypt(stored.removeprefix(PREFIX).encode())
        except InvalidToken:
            return False
        return True

    def resealed(self, stored: str) -> str:
        """``stored`` sealed with the newest key: as it is, if it is already."""
        return stored if self.is_current(stored) else self.seal(self.open(stored))
