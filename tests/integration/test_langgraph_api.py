"""LangGraph Agent Server compatibility, driven by the official ``langgraph-sdk`` async client
against the real app on a real port (meta, assistants, threads, runs, multitask, webhooks)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import standardwebhooks
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from gateway import signing
from gateway.settings import FlowSettings, Settings
from gateway.testing import Receiver, eventually
from tests.integration.helpers import count_rows

AGENT_ID = "fe096781-5601-53d2-b2f6-0d3403f7e9ca"
SIGNING_SECRET = "whsec_ZGV2ZWxvcG1lbnQtb25seS1zaWduaW5nLXNlY3JldA=="
FINAL = {"topic": "ice cream and cats", "joke": "This is a joke about ice cream and cats"}


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """The shipped flows plus ``slow``, which sleeps for ``input["seconds"]``."""
    shipped: Settings = make_settings()
    slow = FlowSettings(target="tests.integration.flows_for_tests:slow")
    return shipped.replace(flows={**shipped.flows, "slow": slow})


async def test_ok_and_info(client: LangGraphClient, gateway: Any) -> None:
    assert (await (await gateway.get("/ok")).json()) == {"ok": True}
    info = await client.http.get("/info")
    assert info["flags"]["assistants"] is True
    assert info["flags"]["crons"] is True


async def test_assistants_from_the_flow_registry(client: LangGraphClient) -> None:
    found = await client.assistants.search(graph_id="agent")
    assert [a["assistant_id"] for a in found] == [AGENT_ID]
    assistant = await client.assistants.get(AGENT_ID)
    assert assistant["graph_id"] == "agent"
    assert assistant["metadata"] == {"created_by": "system"}
    assert assistant["version"] == 1
    everything = await client.assistants.search(limit=100)
    assert {"agent", "echo", "chat", "fail"} <= {a["graph_id"] for a in everything}
    graph = await client.assistants.get_graph("agent")
    assert {"nodes", "edges"} <= set(graph)
    schemas = await client.assistants.get_schemas(AGENT_ID)
    assert schemas["graph_id"] == "agent"
    with pytest.raises(NotFoundError):
        await client.assistants.get(str(uuid.uuid4()))
    with pytest.raises(UnprocessableEntityError):
        await client.assistants.get("not-a-uuid")


async def test_thread_crud_search_and_status(client: LangGraphClient, gateway: Any) -> None:
    thread = await client.threads.create(metadata={"user": "ada"})
    assert thread["status"] == "idle"
    assert thread["values"] is None
    assert thread["metadata"] == {"user": "ada"}
    thread_id = thread["thread_id"]
    assert (await client.threads.get(thread_id))["thread_id"] == thread_id

    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id)
    same = await client.threads.create(thread_id=thread_id, if_exists="do_nothing")
    assert same["thread_id"] == thread_id

    updated = await client.threads.update(thread_id, metadata={"plan": "pro"})
    assert updated["metadata"] == {"user": "ada", "plan": "pro"}
    found = await client.threads.search(metadata={"user": "ada"})
    assert [t["thread_id"] for t in found] == [thread_id]
    assert await client.threads.count(metadata={"plan": "pro"}) == 1

    result = await client.runs.wait(thread_id, "agent", input={"topic": "ice cream"})
    assert result == FINAL
    after = await client.threads.get(thread_id)
    assert after["status"] == "idle"
    assert after["values"] == FINAL
    assert after["metadata"]["graph_id"] == "agent"
    assert after["metadata"]["assistant_id"] == AGENT_ID
    state = await client.threads.get_state(thread_id)
    assert state["values"] == FINAL
    history = await client.threads.get_history(thread_id, limit=10)
    assert next(h["values"] for h in history) == FINAL
    assert len(history) >= 2
    assert await client.threads.search(status="idle", metadata={"user": "ada"})

    await client.threads.update_state(thread_id, {"joke": "a better joke"})
    assert (await client.threads.get_state(thread_id))["values"]["joke"] == "a better joke"

    failed = await client.runs.wait(thread_id, "fail", input={}, raise_error=False)
    assert failed["__error__"]["error"] == "RuntimeError"
    assert (await client.threads.get(thread_id))["status"] == "error"

    await client.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)


async def test_bad_input_answers_as_the_peer_and_stores_nothing(
    client: LangGraphClient, settings: Any
) -> None:
    thread = await client.threads.create()
    runs_before = count_rows(settings, "runs")
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(thread["thread_id"], "no-such-graph", input={})
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(
            thread["thread_id"], "agent", input={}, webhook="http://169.254.169.254/hook"
        )
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(thread["thread_id"], "agent", input={}, webhook="ftp://x/y")
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(thread["thread_id"], "agent", input={}, stream_mode="nope")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        await client.runs.create(str(uuid.uuid4()), "agent", input={})
    with pytest.raises(UnprocessableEntityError):
        await client.threads.get("not-a-uuid")
    assert count_rows(settings, "runs") == runs_before


async def test_run_create_get_list_join_and_headers(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    created: list[Any] = []
    run = await client.runs.create(
        thread_id, "agent", input={"topic": "ice cream"}, on_run_created=created.append
    )
    assert created == [{"run_id": run["run_id"], "thread_id": thread_id}]
    assert run["assistant_id"] == AGENT_ID
    assert run["status"] in ("pending", "running", "success")
    assert await client.runs.join(thread_id, run["run_id"]) == FINAL
    got = await client.runs.get(thread_id, run["run_id"])
    assert got["status"] == "success"
    listed = await client.runs.list(thread_id)
    assert [r["run_id"] for r in listed] == [run["run_id"]]
    await client.runs.delete(thread_id, run["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, run["run_id"])


async def test_stateless_wait_and_stream(client: LangGraphClient) -> None:
    created: list[Any] = []
    result = await client.runs.wait(
        None, "agent", input={"topic": "ice cream"}, on_run_created=created.append
    )
    assert result == FINAL
    assert created
    assert created[0]["run_id"]
    parts = [
        part
        async for part in client.runs.stream(
            None, "agent", input={"topic": "ice cream"}, stream_mode=["updates", "values"]
        )
    ]
    assert [p.event for p in parts] == [
        "metadata",
        "values",
        "updates",
        "values",
        "updates",
        "values",
    ]
    assert parts[-1].data == FINAL


async def test_webhook_on_every_run_endpoint_is_signed_and_delivered(
    client: LangGraphClient, receiver: Receiver
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    hook = receiver.url + "?token=abc"
    ids = []
    run = await client.runs.create(thread_id, "agent", input={"topic": "ice cream"}, webhook=hook)
    ids.append(run["run_id"])
    await client.runs.join(thread_id, run["run_id"])
    created: list[Any] = []
    await client.runs.wait(
        thread_id,
        "agent",
        input={"topic": "ice cream"},
        webhook=hook,
        on_run_created=created.append,
    )
    ids.append(created[-1]["run_id"])
    async for part in client.runs.stream(
        thread_id, "agent", input={"topic": "ice cream"}, webhook=hook, stream_mode="updates"
    ):
        if part.event == "metadata":
            ids.append(part.data["run_id"])
    await client.runs.wait(
        None, "agent", input={"topic": "ice cream"}, webhook=hook, on_run_created=created.append
    )
    ids.append(created[-1]["run_id"])
    async for part in client.runs.stream(None, "agent", input={"topic": "x"}, webhook=hook):
        if part.event == "metadata":
            ids.append(part.data["run_id"])
    stateless = await client.runs.create(None, "echo", input={"a": 1}, webhook=hook)
    ids.append(stateless["run_id"])

    received = await receiver.wait_for(len(ids))
    verifier = standardwebhooks.Webhook(signing.callback_secret(SIGNING_SECRET, hook))
    payloads = [verifier.verify(r.body, r.headers) for r in received]
    assert sorted(p["run_id"] for p in payloads) == sorted(ids)
    for callback, payload in zip(received, payloads, strict=True):
        assert callback.query["token"] == "abc"
        assert payload["status"] == "success"
        for key in (
            "thread_id",
            "assistant_id",
            "kwargs",
            "run_started_at",
            "run_ended_at",
            "webhook_sent_at",
            "values",
            "multitask_strategy",
            "metadata",
        ):
            assert key in payload
        assert payload["kwargs"]["webhook"] == hook


async def test_multitask_reject_interrupt_rollback_enqueue(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    slow = await client.runs.create(thread_id, "slow", input={"seconds": 30})
    await _until_status(client, thread_id, slow["run_id"], "running")
    assert (await client.threads.get(thread_id))["status"] == "busy"

    with pytest.raises(ConflictError):
        await client.runs.create(thread_id, "echo", input={}, multitask_strategy="reject")

    queued = await client.runs.create(
        thread_id, "echo", input={"n": 1}, multitask_strategy="enqueue"
    )
    assert (await client.runs.get(thread_id, queued["run_id"]))["status"] == "pending"

    interrupting = await client.runs.create(
        thread_id, "echo", input={"n": 2}, multitask_strategy="interrupt"
    )
    assert await client.runs.join(thread_id, interrupting["run_id"]) == {"n": 2}
    assert (await client.runs.get(thread_id, slow["run_id"]))["status"] == "interrupted"
    assert (await client.runs.get(thread_id, queued["run_id"]))["status"] == "interrupted"

    slow2 = await client.runs.create(thread_id, "slow", input={"seconds": 30})
    await _until_status(client, thread_id, slow2["run_id"], "running")
    rolling = await client.runs.create(
        thread_id, "echo", input={"n": 3}, multitask_strategy="rollback"
    )
    assert await client.runs.join(thread_id, rolling["run_id"]) == {"n": 3}
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, slow2["run_id"])
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_enqueue_runs_one_at_a_time_in_order(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    runs = [
        await client.runs.create(thread_id, "echo", input={"n": n}, multitask_strategy="enqueue")
        for n in range(4)
    ]
    for run in runs:
        await client.runs.join(thread_id, run["run_id"])
    got = [await client.runs.get(thread_id, r["run_id"]) for r in runs]
    assert [g["status"] for g in got] == ["success"] * 4
    starts = [g["run_started_at"] for g in got]
    ends = [g["run_ended_at"] for g in got]
    for previous_end, next_start in zip(ends, starts[1:], strict=False):
        assert previous_end <= next_start


async def test_cancel_with_wait_and_without(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "slow", input={"seconds": 30})
    await _until_status(client, thread_id, run["run_id"], "running")
    await client.runs.cancel(thread_id, run["run_id"], wait=True)
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    with pytest.raises(NotFoundError):
        await client.runs.cancel(thread_id, run["run_id"])
    second = await client.runs.create(thread_id, "slow", input={"seconds": 30})
    await client.runs.cancel(thread_id, second["run_id"])
    got = await _until_status(client, thread_id, second["run_id"], "interrupted")
    assert got["status"] == "interrupted"


async def _until_status(
    client: LangGraphClient, thread_id: str, run_id: str, status: str
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        run = await client.runs.get(thread_id, run_id)
        return dict(run) if run["status"] == status else None

    result: dict[str, Any] = await eventually(check)
    return result


async def test_after_seconds_delays_the_run(client: LangGraphClient) -> None:
    """A delayed run shows a future ``created_at`` (as the peer does) and starts no earlier."""
    thread_id = (await client.threads.create())["thread_id"]
    before = datetime.now(UTC)
    run = await client.runs.create(thread_id, "echo", input={"n": 1}, after_seconds=0.5)
    created = datetime.fromisoformat(run["created_at"])
    assert created >= before + timedelta(seconds=0.5)
    done = await _until_status(client, thread_id, run["run_id"], "success")
    state = await client.runs.join(thread_id, done["run_id"])
    assert state == {"n": 1}
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(thread_id, "echo", input={}, after_seconds=-1)
