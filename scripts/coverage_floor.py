"""Fail when a module of gateway/ is under the per-module coverage floor.

The total has its own floor (``fail_under`` in pyproject.toml, checked by ``coverage report``);
this one stops a poorly tested module from hiding behind a good total. It reads the report
``coverage json`` writes, where a module's percentage counts branches too (``branch = true``).

    .venv/bin/coverage json -q -o .coverage-data/coverage.json
    .venv/bin/python scripts/coverage_floor.py .coverage-data/coverage.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

MODULE_FLOOR = 75.0
"""Percent of statements and branches each module must reach; it may only go up."""

LOWER_FLOORS = {
    "gateway/listen.py": 50.0,
}
"""Modules whose code runs mostly in processes that the tests end abruptly (``hookgate listen``
killed with SIGKILL by its crash test), so fewer of their lines are recorded. Each may only go
up, to ``MODULE_FLOOR``."""


def modules_under(report: dict[str, Any], floor: float, package: str) -> dict[str, float]:
    """Each module of ``package`` under ``floor``, with its coverage in percent."""
    under: dict[str, float] = {}
    for path, entry in report["files"].items():
        if not Path(path).as_posix().startswith(f"{package}/"):
            continue
        percent = float(entry["summary"]["percent_covered"])
        if percent < min(floor, LOWER_FLOORS.get(Path(path).as_posix(), floor)):
            under[path] = percent
    return under


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the file `coverage json` wrote")
    parser.add_argument("--floor", type=float, default=MODULE_FLOOR)
    parser.add_argument("--package", default="gateway")
    args = parser.parse_args(argv)
    report: dict[str, Any] = json.loads(args.report.read_text())
    under = modules_under(report, args.floor, args.package)
    for path, percent in sorted(under.items()):
        print(f"coverage floor: {path} is at {percent:.1f}%, under {args.floor:g}%")
    if under:
        return 1
    print(f"coverage floor: every module of {args.package}/ is at {args.floor:g}% or more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
