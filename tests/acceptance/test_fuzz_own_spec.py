"""Fuzzing: schemathesis drives ``hookgate serve`` with hookgate's own ``/openapi.json``.

Whatever it sends, no answer is a 5xx, every answer's status is one the document lists, and
every JSON answer matches its documented schema: the document is checked against the server
it describes. A fixed seed and a fixed number of examples per operation keep the run
repeatable and within a minute or two. LangGraph's own document is driven separately
(``test_fuzz_langgraph_spec``).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.testing import GatewayProcess, gateway_env, serve_command
from tests import needs
from tests.acceptance.test_fuzz_langgraph_spec import server_tracebacks

schemathesis = needs.module("schemathesis")
from schemathesis.config import CacheConfig  # noqa: E402
from schemathesis.engine import Status, StopReason, events, from_schema  # noqa: E402

SEED = 1
EXAMPLES_PER_OPERATION = 5  # with every phase: about 4,000 requests, under a minute
REQUEST_TIMEOUT = 1.0  # streams stay open by design; the fuzzer moves on after this
WORKERS = 1  # see test_fuzz_langgraph_spec
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
]
# A pull long-polls up to a minute per request; tests/integration/test_pull.py drives it.
SKIPPED = r"/pull$"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    env = gateway_env(GATEWAY_LOG_LEVEL="warning")
    process = GatewayProcess(
        serve_command(f"sqlite:///{tmp_path / 'gateway.db'}"), env, tmp_path / "gateway.stderr"
    )
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def fuzz(base_url: str, document: dict[str, object]) -> list[str]:
    config = schemathesis.Config(seed=SEED, cache=CacheConfig(enabled=False))
    project = config.projects.override
    project.update(base_url=base_url, request_timeout=REQUEST_TIMEOUT, workers=WORKERS)
    project.checks.update(included_check_names=CHECKS)
    project.generation.update(max_examples=EXAMPLES_PER_OPERATION, no_shrink=True, database="none")
    schema = schemathesis.openapi.from_dict(document, config=config).exclude(path_regex=SKIPPED)
    found: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        found.append(
                            f"{event.label}: {check.name}: {failure.title}: "
                            f"{check.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError):
            found.append(f"{event.label}: the fuzzer failed: {event.value!r}")
        elif isinstance(event, events.FatalError):
            pytest.fail(f"schemathesis stopped: {event.exception!r}")
        elif isinstance(event, events.EngineFinished) and event.stop_reason != StopReason.COMPLETED:
            pytest.fail(f"schemathesis stopped early: {event.stop_reason}")
    return found


def test_our_own_document_holds_against_the_server(gateway: GatewayProcess) -> None:
    with urllib.request.urlopen(f"{gateway.base_url}/openapi.json", timeout=10) as response:
        document = json.load(response)
    found = fuzz(gateway.base_url, document)
    assert not found, "\n\n".join(
        [
            f"{len(found)} checks failed:",
            *sorted(set(found)),
            "gateway tracebacks:",
            *server_tracebacks(gateway.stderr_path),
        ]
    )
