"""Mutation testing of the store's rules that are SQL: the claims, the idempotency check and
the lease and health conditions they rest on.

mutmut mutates Python, and would only break a statement's syntax; these rules live in the SQL
text of the named constants below. This script makes one mutant per SQL operator found in
them (a comparison loosened or tightened, AND for OR, a NULL test negated, a status swapped, a
row lock dropped…), runs the store's tests for that backend against each (each worker on its
own copy of the code under ``mutants/sql/``), and writes ``name: killed|survived`` lines
that ``scripts/mutation_score.py`` scores like mutmut's.

    .venv/bin/python scripts/mutate_sql.py                 every mutant (about 40 minutes)
    .venv/bin/python scripts/mutate_sql.py --list          the mutants, not run
    .venv/bin/python scripts/mutate_sql.py --only _DEDUP   those of the constants named
    .venv/bin/python scripts/mutate_sql.py --names NAME…   those mutants (from --list)
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import dataclasses
import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutants" / "sql"

SQLITE_TESTS = (
    "tests/integration/store_contract",
    "tests/integration/test_store_sqlite.py",
    "tests/integration/test_leases.py",
    "tests/integration/test_delivery_lease.py",
    "tests/integration/test_delivery_policy.py",
)
POSTGRES_TESTS = ("tests/integration/store_contract", "tests/integration/test_store_postgres.py")

# The contract suite runs each test on both backends: a backend's mutant needs only its own.
SQLITE_ONLY, POSTGRES_ONLY = "not postgres", "not sqlite"
# The rules, by file: the constants holding their SQL, the tests that reach them, and which
# of those (a ``pytest -k`` expression).
TARGETS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "gateway/store/sql.py": (("THREAD_IS_FREE", "PUSHED", "ATTEMPT_OPEN"), SQLITE_TESTS, ""),
    "gateway/store/sqlite/deliveries.py": (
        (
            "_INFLIGHT",
            "_CAP",
            "_SENDS",
            "_FREE",
            "_LEASE",
            "CLAIM_DELIVERIES",
            "_CLAIM_RUN_DELIVERIES",
            "_SETTLE_ABANDONED_ATTEMPTS",
        ),
        SQLITE_TESTS,
        SQLITE_ONLY,
    ),
    "gateway/store/sqlite/runs.py": (
        ("_CLAIM_RUNS", "_DEDUP", "_THREAD_HAS_OPEN_RUN"),
        SQLITE_TESTS,
        SQLITE_ONLY,
    ),
    "gateway/store/postgres/deliveries.py": (
        (
            "_INFLIGHT",
            "_CAP",
            "_SENDS",
            "_LEASE",
            "CLAIM_DELIVERIES",
            "_CLAIM_RUN_DELIVERIES",
            "_SETTLE_ABANDONED_ATTEMPTS",
        ),
        POSTGRES_TESTS,
        POSTGRES_ONLY,
    ),
    "gateway/store/postgres/runs.py": (
        ("_CLAIM_RUNS", "_DEDUP", "_THREAD_HAS_OPEN_RUN"),
        POSTGRES_TESTS,
        POSTGRES_ONLY,
    ),
}

_STATUS_SWAP = {"pending": "running", "running": "pending", "push": "pull", "pull": "push"}
# (operator, pattern, replacement): each match in a rule's SQL text is one mutant.
OPERATORS: tuple[tuple[str, str, str | None], ...] = (
    ("<=", r"<=", "<"),
    (">=", r">=", ">"),
    ("<", r"<(?![=>])", "<="),
    (">", r"(?<![<=-])>(?!=)", ">="),
    ("<>", r"<>", "="),
    ("=", r"(?<=[\w)]) = (?=[\w$:?('])", " <> "),
    ("AND", r"\bAND\b", "OR"),
    ("OR", r"\bOR\b", "AND"),
    ("IS NULL", r"\bIS NULL\b", "IS NOT NULL"),
    ("IS NOT NULL", r"\bIS NOT NULL\b", "IS NULL"),
    ("NOT EXISTS", r"\bNOT EXISTS\b", "EXISTS"),
    ("NOT IN", r"\bNOT IN\b", "IN"),
    ("DESC", r"\bDESC\b", "ASC"),
    ("MIN", r"\bMIN\(", "MAX("),
    ("+ 1", r"\+ 1\b", "+ 0"),
    ("THEN 1", r"\bTHEN 1\b", "THEN 2"),
    ("status", r"'(pending|running|push|pull)'", None),
    ("row lock", r"\s*FOR UPDATE(?: OF \w+)? SKIP LOCKED", ""),
    ("SKIP LOCKED", r" SKIP LOCKED", ""),
)
_ASSIGNING = re.compile(r"\b(SET|WHERE|AND|OR|ON|WHEN|THEN|ELSE|SELECT|FROM)\b")


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    start: int  # offsets into the file's text
    end: int
    replacement: str
    tests: tuple[str, ...]
    selection: str

    def describe(self, source: str) -> str:
        line = source.count("\n", 0, self.start) + 1
        return f"{self.path}:{line}: {source[self.start : self.end]!r} → {self.replacement!r}"


def _module(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def _spans(source: str, names: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Where each named top-level constant's value is written: (first line, last line)."""
    spans = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in names:
                spans[target.id] = (node.value.lineno, node.value.end_lineno or node.lineno)
    missing = set(names) - set(spans)
    if missing:
        raise SystemExit(f"no constant {', '.join(sorted(missing))} in the file any more")
    return spans


def _strings(source: str, first: int, last: int) -> list[tuple[int, int]]:
    """The string tokens between those lines, as text offsets (SQL lives only in these)."""
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.STRING and first <= token.start[0] <= last:
            found.append(
                (
                    starts[token.start[0] - 1] + token.start[1],
                    starts[token.end[0] - 1] + token.end[1],
                )
            )
    return found


def _is_assignment(text: str, at: int) -> bool:
    """Whether the ``=`` at ``at`` sets a column (in SET) rather than compares."""
    keywords = list(_ASSIGNING.finditer(text, 0, at))
    return bool(keywords) and keywords[-1][1] == "SET"


def mutants(only: set[str] | None = None) -> list[Mutant]:
    found = []
    for path, (names, tests, selection) in TARGETS.items():
        source = (ROOT / path).read_text()
        for constant, (first, last) in _spans(source, names).items():
            if only and constant not in only:
                continue
            count = 0
            for start, end in _strings(source, first, last):
                text = source[start:end]
                for operator, pattern, replacement in OPERATORS:
                    for match in re.finditer(pattern, text):
                        if operator == "=" and _is_assignment(text, match.start()):
                            continue
                        new = replacement
                        if new is None:
                            new = f"'{_STATUS_SWAP[match[1]]}'"
                        count += 1
                        found.append(
                            Mutant(
                                f"{_module(path)}.x_{constant}__sql_{count}",
                                path,
                                start + match.start(),
                                start + match.end(),
                                new,
                                tests,
                                selection,
                            )
                        )
    return found


def _copy(worker: int) -> Path:
    """A copy of the code and the tests for one worker to mutate."""
    copy = WORK / f"w{worker}"
    shutil.rmtree(copy, ignore_errors=True)
    for part in ("gateway", "tests", "pyproject.toml", "config"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            copy.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / part)
    return copy


def run(mutant: Mutant, copy: Path, timeout: float) -> str:
    """Test the code with this one mutant in place; ``killed``, ``survived`` or ``timeout``."""
    target = copy / mutant.path
    original = target.read_text()
    target.write_text(original[: mutant.start] + mutant.replacement + original[mutant.end :])
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutant.tests]
    if mutant.selection:
        command += ["-k", mutant.selection]
    env = {**os.environ, "PYTHONPATH": str(copy), "CI": "true"}
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    finally:
        target.write_text(original)
    if done.returncode == 0:
        return "survived"
    if done.returncode == 1:
        return "killed"
    raise SystemExit(
        f"{mutant.name}: pytest could not run ({done.returncode}):\n" + done.stdout.decode()[-3000:]
    )


def _earlier(results: Path) -> dict[str, str]:
    if not results.exists():
        return {}
    lines = (line.strip().split(": ", 1) for line in results.read_text().splitlines())
    return {parts[0]: parts[1] for parts in lines if len(parts) == 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the mutants, do not run them")
    parser.add_argument("--only", nargs="*", help="only the mutants of these constants")
    parser.add_argument("--names", nargs="*", help="only these mutants (as --list names them)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--results", type=Path, default=WORK / "results.txt")
    args = parser.parse_args(argv)
    chosen = mutants(set(args.only) if args.only else None)
    if args.names:
        chosen = [mutant for mutant in chosen if mutant.name in args.names]
    sources = {path: (ROOT / path).read_text() for path in TARGETS}
    if args.list:
        for mutant in chosen:
            print(f"{mutant.name}  {mutant.describe(sources[mutant.path])}")
        return 0
    copies = [_copy(worker) for worker in range(args.workers)]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    verdicts = _earlier(args.results)  # a partial run updates the earlier verdicts
    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        free = list(copies)

        def one(mutant: Mutant) -> tuple[Mutant, str]:
            copy = free.pop()
            try:
                return mutant, run(mutant, copy, args.timeout)
            finally:
                free.append(copy)

        for mutant, verdict in pool.map(one, chosen):
            verdicts[mutant.name] = verdict
            print(f"{verdict:8} {mutant.name}  {mutant.describe(sources[mutant.path])}", flush=True)
    args.results.write_text("".join(f"    {name}: {v}\n" for name, v in verdicts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
