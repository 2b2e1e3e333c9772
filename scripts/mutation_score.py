"""The mutation score of each module, from ``mutmut results --all true``.

A module's score is the share of its tested mutants that the suite kills (a mutant that makes
a test time out counts as killed). Survivors listed in the equivalents file, as changes no
test could tell from the original, are counted apart: the adjusted score leaves them out.

    .venv/bin/mutmut results --all true > mutants/results.txt
    .venv/bin/python scripts/mutation_score.py mutants/results.txt scripts/mutate-equivalent.txt
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import re
import sys
from pathlib import Path

TARGET = 85.0
"""The score each module is to reach (adjusted for equivalent mutants)."""

_LINE = re.compile(r"^\s*(?P<name>\S+): (?P<status>.+?)\s*$")
_FUNCTION = re.compile(r"\.x(?:_|ǁ)")  # where mutmut's mangled function name starts
KILLED = {"killed", "timeout"}
SURVIVED = {"survived", "no tests", "suspicious"}


@dataclasses.dataclass
class Tally:
    killed: int = 0
    survived: int = 0
    equivalent: int = 0
    unchecked: int = 0  # not run yet (an interrupted run), skipped or caught by a type check

    def score(self) -> float:
        tested = self.killed + self.survived
        return 100.0 * self.killed / tested if tested else 100.0

    def adjusted(self) -> float:
        tested = self.killed + self.survived - self.equivalent
        return 100.0 * self.killed / tested if tested else 100.0

    def lower_bound(self) -> float:
        """When only a sample was run, the adjusted score's 95 % lower bound (Wilson's
        interval, which holds when every sampled mutant was killed); the score itself after a
        full run."""
        tested = self.killed + self.survived - self.equivalent
        if not self.unchecked or not tested:
            return self.adjusted()
        share, z = self.adjusted() / 100.0, 1.96
        centre = share + z * z / (2 * tested)
        spread = z * math.sqrt(share * (1 - share) / tested + z * z / (4 * tested * tested))
        return 100.0 * (centre - spread) / (1 + z * z / tested)


def module_of(mutant: str) -> str:
    """``gateway.outbox.retry.xǁRetryPolicyǁdecide__mutmut_5`` → ``gateway.outbox.retry``."""
    found = _FUNCTION.search(mutant)
    return mutant[: found.start()] if found else mutant.rsplit(".", 1)[0]


def equivalents(path: Path) -> set[str]:
    """Mutant names at the start of each line that is not blank or a comment."""
    names = set()
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            names.add(line.split()[0])
    return names


def tally(results: str, equivalent: set[str]) -> dict[str, Tally]:
    modules: dict[str, Tally] = collections.defaultdict(Tally)
    for line in results.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        name, status = match["name"], match["status"]
        entry = modules[module_of(name)]
        if status in KILLED:
            entry.killed += 1
        elif status in SURVIVED:
            entry.survived += 1
            entry.equivalent += name in equivalent
        else:  # not checked, skipped, caught by a type check
            entry.unchecked += 1
    return dict(modules)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="what `mutmut results --all true` printed")
    parser.add_argument("equivalent", type=Path, help="survivors judged equivalent")
    parser.add_argument("modules", nargs="*", help="report only these (default: every one)")
    args = parser.parse_args(argv)
    modules = tally(args.results.read_text(), equivalents(args.equivalent))
    wanted = [m for m in sorted(modules) if not args.modules or m in args.modules]
    print(
        f"{'module':32} {'killed':>6} {'survived':>8} {'equiv.':>6} {'score':>7} {'adjusted':>8}"
        f" {'≥ (95%)':>8} {'not run':>7}"
    )
    below = []
    for name in wanted:
        entry = modules[name]
        if entry.killed + entry.survived == 0:
            continue
        print(
            f"{name:32} {entry.killed:6} {entry.survived:8} {entry.equivalent:6}"
            f" {entry.score():6.1f}% {entry.adjusted():7.1f}% {entry.lower_bound():7.1f}%"
            f" {entry.unchecked:7}"
        )
        if entry.adjusted() < TARGET:
            below.append(name)
    if below:
        print(f"under {TARGET:g}% (adjusted): {', '.join(below)}")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
