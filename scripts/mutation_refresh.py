"""Make mutmut's cache agree with the tests as they are now, before a run.

When tests were added or changed since mutmut mapped which tests reach which function, mutmut
3.8 maps only the new tests and then replaces each function's test list with theirs, so a
mutant is tried against a handful of tests and survives. And a cached "survived" or "no tests"
was judged by the tests of its day. So when the tests differ from those of the last run (a
digest of their text, kept beside mutmut's cache), the map is dropped (the next run maps every
test again) and those verdicts are forgotten (their mutants run again); a "killed" stands,
since a test did fail on it.

    .venv/bin/python scripts/mutation_refresh.py mutants tests
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

STATS = "mutmut-stats.json"
UNDECIDED = {0, 33}  # mutmut's exit codes for "survived" and "no tests"


DIGEST = "tests.sha256"


def digest(tests: Path) -> str:
    """What the tests say, path and text of each file."""
    hashed = hashlib.sha256()
    for path in sorted(tests.rglob("*.py")):
        hashed.update(path.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return hashed.hexdigest()


def forget_undecided(mutants: Path) -> int:
    """Reset each cached survivor's verdict so that its mutant runs again; how many."""
    count = 0
    for meta in mutants.rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        verdicts = data.get("exit_code_by_key", {})
        undecided = [name for name, code in verdicts.items() if code in UNDECIDED]
        if undecided:
            verdicts.update(dict.fromkeys(undecided))
            meta.write_text(json.dumps(data, indent=4))
            count += len(undecided)
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mutants", type=Path, help="mutmut's working copy")
    parser.add_argument("tests", type=Path, help="the tests it runs")
    args = parser.parse_args(argv)
    now, recorded = digest(args.tests), args.mutants / DIGEST
    stats = args.mutants / STATS
    if stats.exists() and (not recorded.exists() or recorded.read_text() != now):
        stats.unlink()
        forgotten = forget_undecided(args.mutants)
        print(
            f"the tests changed since mutmut's last run: mapping them again, {forgotten} "
            "survivors to try again"
        )
    args.mutants.mkdir(exist_ok=True)
    recorded.write_text(now)
    return 0


if __name__ == "__main__":
    sys.exit(main())
