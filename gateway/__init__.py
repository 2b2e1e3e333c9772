"""hookgate: durable webhook triggers in, signed and retried run callbacks out."""

from __future__ import annotations

__version__ = "0.1.0"
