"""A seeded random sample of each module's mutants, for a mutation score in minutes.

The delivery path's own modules (the dispatcher, the run service) are reached by most of the
integration suite, so each of their mutants runs hundreds of tests and a full run takes hours.
A sample of ``n`` mutants per module estimates the score; ``mutation_score.py`` prints its
95 % lower bound beside it.

    .venv/bin/mutmut results --all true | .venv/bin/python scripts/mutation_sample.py 60 \\
        gateway.outbox.dispatcher
"""

from __future__ import annotations

import argparse
import random
import sys

from mutation_score import _LINE, module_of


def sample(results: str, modules: list[str], size: int, seed: int) -> list[str]:
    """Up to ``size`` mutant names of each module, the same ones for the same seed."""
    chosen: list[str] = []
    for module in modules:
        names = sorted(
            match["name"]
            for line in results.splitlines()
            if (match := _LINE.match(line)) and module_of(match["name"]) == module
        )
        chosen += random.Random(f"{seed}:{module}").sample(names, min(size, len(names)))
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", type=int, help="mutants per module")
    parser.add_argument("modules", nargs="+")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print("\n".join(sample(sys.stdin.read(), args.modules, args.size, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
