"""Fuzzing: schemathesis drives ``hookgate serve`` with LangGraph's own OpenAPI document.

Whatever it sends, valid, boundary or malformed, the answer is never a 5xx: bad input gets a
4xx. This is the review that found the 5xx classes fixed before, rerun on every change within a
fixed budget: a fixed seed and a fixed number of examples per operation, in every phase
schemathesis has (the spec's examples, boundary coverage, random fuzzing, stateful sequences
that reuse the ids the gateway returns), so a run is repeatable and fits CI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.testing import GatewayProcess, gateway_env, serve_command
from tests import needs

schemathesis = needs.module("schemathesis")
from schemathesis.config import CacheConfig  # noqa: E402
from schemathesis.engine import Status, StopReason, events, from_schema  # noqa: E402

SPEC = Path(__file__).resolve().parents[1] / "data" / "langgraph-api-0.16.7-openapi.json"
SEED = 1
EXAMPLES_PER_OPERATION = 10  # with every phase: about 5,000 requests, a minute or so
REQUEST_TIMEOUT = 1.0  # streams stay open by design; the fuzzer moves on after this
# One thread: schemathesis generating in two threads trips CPython 3.11's shared AST recursion
# counter (SystemError "AST constructor recursion depth mismatch") under coverage's tracer.
WORKERS = 1

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    env = gateway_env(GATEWAY_LOG_LEVEL="warning")  # JSON lines: stderr is not a terminal
    process = GatewayProcess(
        serve_command(f"sqlite:///{tmp_path / 'gateway.db'}"), env, tmp_path / "gateway.stderr"
    )
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def fuzz(base_url: str) -> list[str]:
    """Run schemathesis against ``base_url`` with the 5xx check only; one line per 5xx found."""
    # No cache: a run must not depend on what earlier runs found (nor write into the work tree).
    config = schemathesis.Config(seed=SEED, cache=CacheConfig(enabled=False))
    project = config.projects.override
    project.update(base_url=base_url, request_timeout=REQUEST_TIMEOUT, workers=WORKERS)
    project.checks.update(included_check_names=["not_a_server_error"])
    project.generation.update(max_examples=EXAMPLES_PER_OPERATION, no_shrink=True, database="none")
    schema = schemathesis.openapi.from_path(SPEC, config=config)
    found: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        found.append(f"{event.label}: {check.failure_info.code_sample}")
        elif isinstance(event, events.NonFatalError):
            found.append(f"{event.label}: the fuzzer failed: {event.value!r}")
        elif isinstance(event, events.FatalError):
            pytest.fail(f"schemathesis stopped: {event.exception!r}")
        elif isinstance(event, events.EngineFinished) and event.stop_reason != StopReason.COMPLETED:
            pytest.fail(f"schemathesis stopped early: {event.stop_reason}")
    return found


def server_tracebacks(stderr: Path) -> list[str]:
    """Where each failed request went wrong in the gateway's code, from its JSON log lines."""
    ends = set()
    for line in stderr.read_text(errors="replace").splitlines():
        try:
            entry: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") != "request_failed":
            continue
        for exc in entry.get("exception") or []:
            frames = [
                f"{frame['filename'].rsplit('/gateway/', 1)[-1]}:{frame['lineno']}"
                for frame in exc.get("frames", [])
                if "/gateway/" in frame.get("filename", "")
            ]
            if frames:
                where = " > ".join(frames[-3:])
                ends.add(
                    f"{entry.get('path')}: {exc.get('exc_type')}: {exc.get('exc_value')} at {where}"
                )
    return sorted(ends)


def test_no_request_from_langgraphs_spec_gets_a_5xx(gateway: GatewayProcess) -> None:
    found = fuzz(gateway.base_url)
    assert not found, "\n\n".join(
        [
            f"{len(found)} requests got a 5xx:",
            *sorted(set(found)),
            "gateway tracebacks:",
            *server_tracebacks(gateway.stderr_path),
        ]
    )
