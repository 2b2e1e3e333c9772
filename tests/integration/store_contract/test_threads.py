"""The store's promises for LangGraph threads, their states and crons, on every backend."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from gateway import errors, models
from gateway.store import base, thread_store
from tests.integration.store_contract.common import NOW, FullStore, new_run


def thread(thread_id: str, **metadata: object) -> models.Thread:
    return models.Thread(thread_id, dict(metadata), {"configurable": {}}, NOW, NOW)


def cron(**fields: object) -> models.Cron:
    values: dict[str, object] = {
        "cron_id": models.new_id(),
        "flow_id": "echo",
        "thread_id": None,
        "schedule": "* * * * *",
        "timezone": None,
        "payload": {"input": {"n": 1}},
        "metadata": {"team": "a"},
        "on_run_completed": None,
        "enabled": True,
        "end_time": None,
        "next_run_date": NOW + 60,
        "created_at": NOW,
        "updated_at": NOW,
        **fields,
    }
    return models.Cron(**values)  # type: ignore[arg-type]


async def finish(store: FullStore, run: models.Run, status: models.RunStatus, at: float) -> None:
    await store.finish_run(base.RunEnding(run.run_id, status, {"v": 1}, None, []), at)


async def test_a_thread_is_created_once(store: FullStore) -> None:
    created, inserted = await store.create_thread(thread("t", a=1), "raise")
    again, inserted_again = await store.create_thread(thread("t", a=2), "do_nothing")
    assert (inserted, inserted_again) == (True, False)
    assert created == again
    assert (created.metadata, created.status) == ({"a": 1}, "idle")
    assert await store.get_thread("missing") is None


async def test_a_run_records_its_graph_on_its_thread_in_its_transaction(
    store: FullStore,
) -> None:
    await store.create_thread(thread("t", a=1, graph_id="old"), "raise")
    await store.create_run(new_run(thread_id="t", thread_metadata={"graph_id": "new"}), NOW + 1)
    touched = await store.get_thread("t")
    assert touched is not None
    assert (touched.metadata, touched.updated_at) == ({"a": 1, "graph_id": "new"}, NOW + 1)
    busy = new_run(thread_id="t", thread_metadata={"graph_id": "refused"}, if_thread_idle=True)
    with pytest.raises(errors.Conflict):
        await store.create_run(busy, NOW + 2)
    kept = await store.get_thread("t")
    assert kept is not None
    assert (kept.metadata["graph_id"], kept.updated_at) == ("new", NOW + 1)


async def test_a_thread_metadata_update_merges(store: FullStore) -> None:
    await store.create_thread(thread("t", a=1, b=2), "raise")
    updated = await store.update_thread("t", {"b": 3, "c": [1]}, NOW + 1, {"ttl": 5})
    assert updated is not None
    assert (updated.metadata, updated.updated_at, updated.ttl) == (
        {"a": 1, "b": 3, "c": [1]},
        NOW + 1,
        {"ttl": 5},
    )
    kept = await store.update_thread("t", {}, NOW + 2, None)
    assert kept is not None
    assert kept.ttl == {"ttl": 5}
    assert await store.update_thread("missing", {"a": 1}, NOW, None) is None


async def test_concurrent_metadata_updates_lose_no_key(store: FullStore) -> None:
    await store.create_thread(thread("t"), "raise")
    await asyncio.gather(*(store.update_thread("t", {f"k{i}": i}, NOW, None) for i in range(10)))
    merged = await store.get_thread("t")
    assert merged is not None
    assert merged.metadata == {f"k{i}": i for i in range(10)}


async def test_a_thread_status_follows_its_runs(store: FullStore) -> None:
    await store.create_thread(thread("t"), "raise")
    run = await store.create_run(new_run(thread_id="t"), NOW)
    assert [r.run_id for r in await store.inflight_runs("t")] == [run.run_id]
    busy = await store.get_thread("t")
    assert busy is not None
    assert busy.status == "busy"
    await finish(store, run, models.RunStatus.ERROR, NOW + 1)
    errored = await store.get_thread("t")
    assert errored is not None
    assert errored.status == "error"
    later = await store.create_run(new_run(thread_id="t"), NOW + 2)
    await finish(store, later, models.RunStatus.INTERRUPTED, NOW + 3)
    interrupted = await store.get_thread("t")
    assert interrupted is not None
    assert interrupted.status == "interrupted"
    assert [r.run_id for r in await store.list_thread_runs("t", 10, 0, None)] == [
        later.run_id,
        run.run_id,
    ]
    assert [r.run_id for r in await store.list_thread_runs("t", 10, 0, "error")] == [run.run_id]
    assert [r.run_id for r in await store.list_thread_runs("t", 1, 1, None)] == [run.run_id]
    assert await store.inflight_runs("t") == []


async def test_the_runs_in_flight_of_every_thread(store: FullStore) -> None:
    """``inflight_runs(None)``: pending and running runs of every thread and stateless ones
    (what a bulk cancel by status acts on), oldest first."""
    for name in ("a", "b"):
        await store.create_thread(thread(name), "raise")
    first = await store.create_run(new_run(thread_id="a"), NOW)
    second = await store.create_run(new_run(thread_id="b"), NOW + 1)
    stateless = await store.create_run(new_run(), NOW + 2)
    done = await store.create_run(new_run(thread_id="b"), NOW + 3)
    await finish(store, done, models.RunStatus.SUCCESS, NOW + 4)
    assert [r.run_id for r in await store.inflight_runs(None)] == [
        first.run_id,
        second.run_id,
        stateless.run_id,
    ]
    assert [r.run_id for r in await store.inflight_runs("a")] == [first.run_id]


async def test_threads_are_searched_and_counted(store: FullStore) -> None:
    await store.create_thread(thread("a", team="x", n=1), "raise")
    await store.create_thread(
        dataclasses.replace(thread("b", team="x"), updated_at=NOW + 1), "raise"
    )
    await store.create_thread(thread("c", team="y"), "raise")
    await store.create_run(new_run(thread_id="c"), NOW)
    by_team = thread_store.ThreadSearch(metadata={"team": "x"})
    assert [t.thread_id for t in await store.search_threads(by_team)] == ["b", "a"]
    assert await store.count_threads(by_team) == 2
    oldest = thread_store.ThreadSearch(
        metadata={"team": "x"}, sort_by="updated_at", sort_order="asc"
    )
    assert [t.thread_id for t in await store.search_threads(oldest)] == ["a", "b"]
    assert [
        t.thread_id
        for t in await store.search_threads(thread_store.ThreadSearch(metadata={"n": 1}))
    ] == ["a"]
    busy = thread_store.ThreadSearch(status="busy")
    assert [t.thread_id for t in await store.search_threads(busy)] == ["c"]
    by_id = thread_store.ThreadSearch(ids=("a", "c"), sort_by="thread_id", sort_order="asc")
    assert [t.thread_id for t in await store.search_threads(by_id)] == ["a", "c"]
    page = thread_store.ThreadSearch(sort_by="thread_id", sort_order="asc", limit=1, offset=1)
    assert [t.thread_id for t in await store.search_threads(page)] == ["b"]
    assert await store.count_threads(thread_store.ThreadSearch()) == 3


async def test_checkpoints_are_values_events_outputs_and_updates(store: FullStore) -> None:
    await store.create_thread(thread("t"), "raise")
    streamed = await store.create_run(new_run(thread_id="t"), NOW)
    await store.append_events(streamed.run_id, [("values", json.dumps({"v": 1}))], NOW + 1)
    await finish(store, streamed, models.RunStatus.SUCCESS, NOW + 2)
    quiet = await store.create_run(new_run(thread_id="t"), NOW + 3)
    await finish(store, quiet, models.RunStatus.SUCCESS, NOW + 4)
    await store.add_thread_state("t", "cp-1", {"v": 9}, "node", NOW + 5)
    checkpoints = await store.list_checkpoints("t")
    assert [(c.source, c.values, c.run_id, c.as_node) for c in checkpoints] == [
        ("update", {"v": 9}, None, "node"),
        ("loop", {"v": 1}, quiet.run_id, None),
        ("loop", {"v": 1}, streamed.run_id, None),
    ]
    assert checkpoints[0].checkpoint_id == "cp-1"
    updated = await store.get_thread("t")
    assert updated is not None
    assert updated.updated_at == NOW + 5
    events = await store.list_thread_events("t", 0)
    assert [e.event for e in events] == ["values"]
    assert await store.list_thread_events("t", events[0].id) == []


async def test_deleting_a_thread_or_a_run_takes_their_events(store: FullStore) -> None:
    await store.create_thread(thread("t"), "raise")
    run = await store.create_run(new_run(thread_id="t"), NOW)
    await store.append_events(run.run_id, [("values", json.dumps({}))], NOW)
    other = await store.create_run(new_run(), NOW)
    await store.append_events(other.run_id, [("values", json.dumps({}))], NOW)
    assert await store.delete_run(other.run_id)
    assert not await store.delete_run(other.run_id)
    assert await store.list_events(other.run_id) == []
    assert await store.delete_thread("t")
    assert not await store.delete_thread("t")
    assert await store.get_run(run.run_id) is None
    assert await store.list_events(run.run_id) == []


async def test_a_cron_is_created_searched_changed_and_deleted(store: FullStore) -> None:
    first = await store.create_cron(cron(metadata={"team": "a"}))
    second = await store.create_cron(
        cron(metadata={"team": "b"}, created_at=NOW + 1, thread_id="t")
    )
    assert await store.get_cron(first.cron_id) == first
    assert [c.cron_id for c in await store.search_crons(thread_store.CronSearch())] == [
        second.cron_id,
        first.cron_id,
    ]
    team_a = thread_store.CronSearch(metadata={"team": "a"})
    assert [c.cron_id for c in await store.search_crons(team_a)] == [first.cron_id]
    assert await store.count_crons(thread_store.CronSearch(thread_id="t")) == 1
    changed = await store.update_cron(
        first.cron_id, {"enabled": False, "payload": {"input": 2}}, NOW + 2
    )
    assert changed is not None
    assert (changed.enabled, changed.payload, changed.updated_at) == (False, {"input": 2}, NOW + 2)
    assert await store.count_crons(thread_store.CronSearch(enabled=True)) == 1
    assert await store.delete_cron(first.cron_id)
    assert not await store.delete_cron(first.cron_id)
    assert await store.update_cron(first.cron_id, {"enabled": True}, NOW) is None


async def test_a_firing_happens_once(store: FullStore) -> None:
    due = await store.create_cron(cron(next_run_date=NOW))
    assert await store.due_crons(NOW - 1, 10) == []
    assert [c.cron_id for c in await store.due_crons(NOW, 10)] == [due.cron_id]
    firings = [thread_store.CronFiring(due.cron_id, NOW, NOW + 60, new_run()) for _ in range(5)]
    fired = await asyncio.gather(*(store.fire_cron(f, NOW) for f in firings))
    runs = [run for run in fired if run is not None]
    assert len(runs) == 1
    moved = await store.get_cron(due.cron_id)
    assert moved is not None
    assert (moved.next_run_date, moved.enabled) == (NOW + 60, True)
    assert await store.get_run(runs[0].run_id) == runs[0]
    last = thread_store.CronFiring(due.cron_id, NOW + 60, None, new_run())
    assert await store.fire_cron(last, NOW + 60) is not None
    ended = await store.get_cron(due.cron_id)
    assert ended is not None
    assert not ended.enabled
    assert await store.due_crons(NOW + 1000, 10) == []


# Metadata filters: each wanted key means itself (never a path), each value matches by JSON type.
KEYS = ['a"b', "back\\slash", "a.b", "k[0]", "$", "$.a", "", "it's", "a", "\\u0041"]


async def test_metadata_filter_keys_match_literally(store: FullStore) -> None:
    owners = {}
    for n, key in enumerate(KEYS):
        await store.create_thread(thread(f"t{n}", **{key: 7}), "raise")
        made = await store.create_cron(cron(metadata={key: 7}, created_at=NOW + n))
        owners[key] = (f"t{n}", made.cron_id)
    await store.create_thread(thread("nested", a={"b": 7}, k=[7]), "raise")
    await store.create_cron(cron(metadata={"a": {"b": 7}, "k": [7]}))
    for key in KEYS:
        threads = thread_store.ThreadSearch(metadata={key: 7}, limit=100)
        crons = thread_store.CronSearch(metadata={key: 7}, limit=100)
        found = (
            [t.thread_id for t in await store.search_threads(threads)],
            [c.cron_id for c in await store.search_crons(crons)],
        )
        assert found == ([owners[key][0]], [owners[key][1]]), key
        assert (await store.count_threads(threads), await store.count_crons(crons)) == (1, 1)
    nowhere = thread_store.ThreadSearch(metadata={"nul\x00": 7, "a": 7})
    assert await store.search_threads(nowhere) == []
    assert await store.count_crons(thread_store.CronSearch(metadata={"a\x00": 7})) == 0


async def test_metadata_filter_values_match_by_json_type(store: FullStore) -> None:
    values = {
        "true": True,
        "one": 1,
        "text": "1",
        "null": None,
        "false": False,
        "zero": 0,
        "object": {"b": 1},
        "list": [1],
    }
    for name, value in values.items():
        await store.create_thread(thread(name, v=value), "raise")
    await store.create_thread(thread("without"), "raise")

    async def having(wanted: dict[str, object]) -> list[str]:
        search = thread_store.ThreadSearch(metadata=wanted, limit=100)
        return sorted(t.thread_id for t in await store.search_threads(search))

    for name, value in values.items():
        assert await having({"v": value}) == [name], name
    assert await having({"v": 1.0}) == ["one"], "a number is a number, however written"
    assert await having({"w": None}) == [], "null matches a null, not a missing key"
    assert await having({"v": 1, "w": 2}) == []
    assert await having({}) == sorted([*values, "without"])
