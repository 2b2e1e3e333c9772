from __future__ import annotations

from gateway import cli

raise SystemExit(cli.main())
