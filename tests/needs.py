"""What a group of tests needs from the machine, and what happens when it is missing.

Outside CI a missing part skips its tests, saying why. With ``CI=true`` a skip would land a
change that was never tested, so a missing part fails the run instead, naming what is missing.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing(what: str) -> None:
    """Skip the calling test or module, or fail it under CI."""
    if IN_CI:
        pytest.fail(f"CI=true and {what}: the tests that need it cannot run", pytrace=False)
    pytest.skip(what, allow_module_level=True)


def module(name: str, install_hint: str = "pip install -e '.[test]'") -> ModuleType:
    """Import ``name`` for a test module, or skip (fail under CI) saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"the {name} package is not importable ({exc}); {install_hint}")
        raise


def browser() -> None:
    """The browser tests need the playwright package and Debian's Chromium."""
    from gateway.testing import CHROMIUM

    module("playwright.async_api")
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"no Chromium at {CHROMIUM} (./scripts/test installs Debian's chromium package)")
