"""LangGraph runs: threaded and stateless create/stream/wait, list, get, join, cancel, delete,
and the run and thread event streams, written byte for byte as the Agent Server writes them.

Every run's events are stored, so every stream carries ``id:`` lines and any run can be
resumed with ``Last-Event-ID`` (the peer does this only for ``stream_resumable`` runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from typing import Any

import aiohttp
from aiohttp import web

from gateway import errors, keys, models, netguard, strictjson
from gateway.api import schema, streaming
from gateway.api.langgraph import flow_for_assistant, selected, store_of
from gateway.api.schema import langgraph as models_lg
from gateway.runs import sse
from gateway.runs import threads as lg
from gateway.runs.events import RUN_END

KEEPALIVE_SECONDS = 5.0
THREAD_STREAM_MODES = ("run_modes", "lifecycle", "state_update")
_DISCONNECTED = (ConnectionResetError, aiohttp.ClientConnectionResetError)
_EVENT_ID = re.compile(r"^(\d{1,18})(?:-(\d{1,18}|\*))?$")


# the run-create body


def parse_run(
    request: web.Request,
    data: models_lg.RunCreateStateless,
    thread_id: str | None,
    *,
    streaming: bool,
) -> lg.RunRequest:
    flow = flow_for_assistant(request, data.assistant_id)
    modes = (data.stream_mode or sse.DEFAULT_MODES) if streaming else ("values",)
    config = data.config or {}
    context = data.context or {}
    if config.get("configurable") and context:
        raise errors.BadRequest(
            "Cannot specify both configurable and context. Prefer setting context alone."
        )
    command = data.command
    if thread_id is None and command and command.get("resume") is not None:
        raise errors.BadRequest("You must provide a thread_id when resuming.")
    webhook = data.webhook
    if webhook is not None:
        webhook = netguard.check_callback(webhook, request.app[keys.settings_key])
    return lg.RunRequest(
        flow_id=flow.flow_id,
        thread_id=thread_id,
        input=data.input,
        stream_mode=modes,
        webhook=webhook,
        command=command,
        config=config,
        context=context,
        metadata=data.metadata or {},
        multitask_strategy=data.multitask_strategy,
        if_not_exists=data.if_not_exists,
        on_completion=data.on_completion,
        on_disconnect=data.on_disconnect,
        subgraphs=bool(data.stream_subgraphs),
        resumable=bool(data.stream_resumable),
        interrupt_before=data.interrupt_before,
        interrupt_after=data.interrupt_after,
        feedback_keys=data.feedback_keys,
        durability=data.durability,
        after_seconds=data.after_seconds or 0.0,
    )


def _thread_param(request: web.Request) -> str | None:
    if "thread_id" not in request.match_info:
        return None
    return schema.path_id(request, "thread_id")


async def _create(request: web.Request, *, streaming: bool) -> models.Run:
    thread_id = _thread_param(request)
    data = await schema.body(request, models_lg.RunCreateStateless, required=True)
    run_request = parse_run(request, data, thread_id, streaming=streaming)
    return await request.app[keys.langgraph_threads_key].create_run(run_request)


def _run_path(run: models.Run, *, stateless: bool) -> str:
    if stateless:
        return f"/runs/{run.run_id}"
    return f"/threads/{run.thread_id}/runs/{run.run_id}"


def run_view(run: models.Run) -> dict[str, Any]:
    from gateway.runs.payload import run_view as view

    return view(run)


async def create_run(request: web.Request) -> web.Response:
    run = await _create(request, streaming=True)
    stateless = "thread_id" not in request.match_info
    return web.json_response(
        run_view(run), headers={"Content-Location": _run_path(run, stateless=stateless)}
    )


async def create_batch(request: web.Request) -> web.Response:
    items = await schema.json_value(request, required=True)
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise errors.Unprocessable("Request body must be a non-empty array of run objects")
    bodies = schema.validate(list[models_lg.RunCreateStateless], items)
    parsed = [parse_run(request, item, None, streaming=True) for item in bodies]
    threads = request.app[keys.langgraph_threads_key]
    runs = [await threads.create_run(item) for item in parsed]
    return web.json_response([run_view(run) for run in runs])


async def stream_run(request: web.Request) -> web.StreamResponse:
    run = await _create(request, streaming=True)
    stateless = "thread_id" not in request.match_info
    path = _run_path(run, stateless=stateless)
    cancel = run.kwargs.get("on_disconnect") == "cancel"
    return await write_run_stream(
        request,
        run,
        tuple(run.kwargs.get("stream_mode") or sse.DEFAULT_MODES),
        after_id=0,
        headers={"Location": f"{path}/stream", "Content-Location": path},
        cancel_on_disconnect=cancel,
    )


async def wait_run(request: web.Request) -> web.StreamResponse:
    run = await _create(request, streaming=False)
    path = f"/threads/{run.thread_id}/runs/{run.run_id}"
    return await write_final(
        request,
        run,
        headers={"Location": f"{path}/join", "Content-Location": path},
        cancel_on_disconnect=run.kwargs.get("on_disconnect") == "cancel",
    )


# reading runs


async def _run_of_thread(request: web.Request) -> models.Run:
    thread_id = _thread_param(request)
    run_id = schema.path_id(request, "run_id")
    run = await store_of(request).get_run(run_id)
    if run is None or (thread_id is not None and run.thread_id != thread_id):
        raise errors.NotFound(f"Run {run_id} not found")
    return run


async def list_runs(request: web.Request) -> web.Response:
    thread_id = schema.path_id(request, "thread_id")
    query = schema.query(request, models_lg.RunListQuery)
    store = store_of(request)
    if await store.get_thread(thread_id) is None:
        raise errors.NotFound(f"Thread with ID {thread_id} not found")
    runs = await store.list_thread_runs(thread_id, query.limit, query.offset, query.status)
    return web.json_response(selected([run_view(run) for run in runs], query.select))


async def get_run(request: web.Request) -> web.Response:
    return web.json_response(run_view(await _run_of_thread(request)))


async def delete_run(request: web.Request) -> web.Response:
    run = await _run_of_thread(request)
    if not run.status.is_final:
        await request.app[keys.langgraph_threads_key].cancel(run, "interrupt")
    await store_of(request).delete_run(run.run_id)
    return web.Response(status=204)


async def cancel_run(request: web.Request) -> web.StreamResponse:
    query = schema.query(request, models_lg.CancelQuery)
    action, wait = query.action, query.wait
    run = await _run_of_thread(request)
    if run.status.is_final:
        raise errors.NotFound(
            "No matching runs to cancel. The run may have already finished or does not exist."
        )
    await request.app[keys.langgraph_threads_key].cancel(run, action)
    if not wait:
        return web.Response(status=202)
    final = await store_of(request).get_run(run.run_id)
    if final is None:
        return web.json_response({})
    return await write_final(request, final, headers={}, cancel_on_disconnect=False)


async def cancel_many(request: web.Request) -> web.Response:
    data = await schema.body(request, models_lg.RunsCancel)
    action = schema.query(request, models_lg.CancelQuery).action
    status = data.status
    thread_id = None if data.thread_id is None else str(data.thread_id)
    run_ids = [str(run_id) for run_id in data.run_ids or ()]
    if status is not None and (thread_id or run_ids):
        raise errors.Unprocessable("status cannot be combined with thread_id or run_ids")
    store = store_of(request)
    threads = request.app[keys.langgraph_threads_key]
    targets: list[models.Run] = []
    if status is not None:
        targets = [
            run for run in await store.inflight_runs(None) if status in ("all", run.status.value)
        ]
    elif thread_id:
        targets = await store.inflight_runs(thread_id)
        if run_ids:
            targets = [r for r in targets if r.run_id in run_ids]
    else:
        for run_id in run_ids:
            run = await store.get_run(run_id)
            if run is not None and not run.status.is_final:
                targets.append(run)
    for run in targets:
        await threads.cancel(run, action)
    return web.Response(status=204)


async def join_run(request: web.Request) -> web.StreamResponse:
    cancel = schema.query(request, models_lg.JoinQuery).cancel_on_disconnect
    run = await _run_of_thread(request)
    return await write_final(request, run, headers={}, cancel_on_disconnect=cancel)


async def join_stream(request: web.Request) -> web.StreamResponse:
    cancel = schema.query(request, models_lg.JoinQuery).cancel_on_disconnect
    run = await _run_of_thread(request)
    modes = _query_modes(request, "stream_mode") or tuple(
        run.kwargs.get("stream_mode") or sse.DEFAULT_MODES
    )
    for mode in modes:
        if mode not in sse.STREAM_MODES:
            raise errors.Unprocessable(f"Invalid stream mode: {mode}")
    after = _last_event_id(request)
    return await write_run_stream(
        request, run, modes, after_id=after or 0, headers={}, cancel_on_disconnect=cancel
    )


def _query_modes(request: web.Request, *names: str) -> tuple[str, ...]:
    """Repeated params, comma-separated values or a JSON array, under any of ``names``."""
    modes: list[str] = []
    for name in names:
        for value in request.query.getall(name, []):
            value = value.strip()
            if not value:
                continue
            if value.startswith("["):
                try:
                    parsed = strictjson.loads(value)
                except strictjson.InvalidJSON:
                    parsed = None
                if not isinstance(parsed, list):
                    raise errors.Unprocessable(f"Invalid stream mode: {value}")
                modes.extend(str(item) for item in parsed)
            else:
                modes.extend(part.strip() for part in value.split(",") if part.strip())
    return tuple(dict.fromkeys(modes))


def _last_event_id(request: web.Request) -> int | None:
    value = request.headers.get("Last-Event-ID")
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value == "-":
        return 0
    match = _EVENT_ID.match(value)
    if match is None:
        raise errors.Unprocessable(f"Invalid Last-Event-ID: {value}")
    return int(match.group(1))


# writing streams


def _on_disconnect(
    request: web.Request, run: models.Run, cancel: bool
) -> streaming.Departure | None:
    """What a departed client's stream does: interrupt the run, when asked to."""

    async def interrupt() -> None:
        current = await store_of(request).get_run(run.run_id)
        if current is not None and not current.status.is_final:
            await request.app[keys.langgraph_threads_key].cancel(current, "interrupt")

    return interrupt if cancel else None


async def write_run_stream(
    request: web.Request,
    run: models.Run,
    modes: tuple[str, ...],
    *,
    after_id: int,
    headers: dict[str, str],
    cancel_on_disconnect: bool,
) -> web.StreamResponse:
    """One run's events as SSE: ``metadata`` first (unless resuming), then every mapped event
    with the id of the stored event behind it, up to the run's end."""
    response = web.StreamResponse(headers={**sse.SSE_HEADERS, **headers})
    await response.prepare(request)
    hub = request.app[keys.runs_key].events
    mapper = sse.ModeMapper(run, modes)

    async def beat() -> None:
        await response.write(sse.HEARTBEAT)

    async def produce() -> None:
        if after_id == 0 and request.headers.get("Last-Event-ID") is None:
            await response.write(
                sse.encode("metadata", {"run_id": run.run_id, "attempt": max(1, run.attempt)})
            )
        async for event in hub.follow(run.run_id, 0, beat=beat, beat_every=KEEPALIVE_SECONDS):
            outs = mapper.feed(event)
            if event.id > after_id:
                for out in outs:
                    if sse.mode_matches(out.event, modes) or out.event == "error":
                        await response.write(sse.encode(out.event, out.data, str(out.source_id)))

    departure = _on_disconnect(request, run, cancel_on_disconnect)
    if await streaming.while_connected(request, produce, departure):
        with contextlib.suppress(*_DISCONNECTED):
            await response.write_eof()
    return response


async def write_final(
    request: web.Request,
    run: models.Run,
    *,
    headers: dict[str, str],
    cancel_on_disconnect: bool,
) -> web.StreamResponse:
    """``wait``/``join``: headers at once, a newline every few seconds, then the final JSON."""
    response = web.StreamResponse(headers={"Content-Type": "application/json", **headers})
    await response.prepare(request)
    hub = request.app[keys.runs_key].events
    events: list[models.Event] = []

    async def beat() -> None:
        await response.write(b"\n")

    async def produce() -> None:
        async for event in hub.follow(run.run_id, 0, beat=beat, beat_every=KEEPALIVE_SECONDS):
            events.append(event)
        final = lg.ended_as(run, events) or await store_of(request).get_run(run.run_id) or run
        await response.write(sse.dumps(lg.final_body(final, events)).encode())
        await response.write_eof()

    await streaming.while_connected(
        request, produce, _on_disconnect(request, run, cancel_on_disconnect)
    )
    return response


async def thread_stream(request: web.Request) -> web.StreamResponse:
    """Every run on the thread, forever: ids ``<event id>-<n>`` so synthetic events resume too."""
    thread_id = schema.path_id(request, "thread_id")
    store = store_of(request)
    if await store.get_thread(thread_id) is None:
        raise errors.NotFound(f"Thread with ID {thread_id} not found")
    modes = _query_modes(request, "stream_modes", "stream_mode") or ("run_modes",)
    for mode in modes:
        if mode not in THREAD_STREAM_MODES:
            raise errors.Unprocessable(f"Invalid stream mode: {mode}")
    cursor = _thread_cursor(request)
    if cursor is None:
        existing = await store.list_thread_events(thread_id, 0)
        cursor = (existing[-1].id, 9) if existing else (0, 9)
    response = web.StreamResponse(headers={**sse.SSE_HEADERS})
    await response.prepare(request)
    interval = min(request.app[keys.settings_key].poll_interval, 0.2)
    writer = _ThreadStreamWriter(request, response, thread_id, modes, cursor)
    await streaming.while_connected(request, functools.partial(writer.run, interval))
    return response


def _thread_cursor(request: web.Request) -> tuple[int, int] | None:
    value = request.headers.get("Last-Event-ID")
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value == "-":
        return (0, 9)
    match = _EVENT_ID.match(value)
    if match is None:
        raise errors.Unprocessable(f"Invalid Last-Event-ID: {value}")
    sub = match.group(2)
    return (int(match.group(1)), 9 if sub in (None, "*") else int(sub))


class _ThreadStreamWriter:
    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        thread_id: str,
        modes: tuple[str, ...],
        cursor: tuple[int, int],
    ) -> None:
        self.request = request
        self.response = response
        self.thread_id = thread_id
        self.modes = modes
        self.cursor = cursor
        self.store = store_of(request)
        self.mappers: dict[str, sse.ModeMapper] = {}

    async def run(self, interval: float) -> None:
        last = 0
        idle = 0.0
        while True:
            events = await self.store.list_thread_events(self.thread_id, last)
            for event in events:
                await self._handle(event)
                last = event.id
            if events:
                idle = 0.0
            else:
                idle += interval
                if idle >= KEEPALIVE_SECONDS:
                    await self.response.write(sse.HEARTBEAT)
                    idle = 0.0
            await asyncio.sleep(interval)

    async def _write(self, event: str, data: Any, event_id: tuple[int, int]) -> None:
        if event_id > self.cursor:
            await self.response.write(sse.encode(event, data, f"{event_id[0]}-{event_id[1]}"))

    async def _handle(self, event: models.Event) -> None:
        mapper = self.mappers.get(event.run_id)
        if mapper is None:
            run = await self.store.get_run(event.run_id)
            if run is None:
                return
            mapper = sse.ModeMapper(run, tuple(run.kwargs.get("stream_mode") or ("values",)))
            self.mappers[event.run_id] = mapper
            if "run_modes" in self.modes or "lifecycle" in self.modes:
                start = {"run_id": run.run_id, "attempt": max(1, run.attempt)}
                await self._write("metadata", start, (event.id, 0))
        outs = mapper.feed(event)
        if "run_modes" in self.modes:
            for out in outs:
                await self._write(out.event, out.data, (event.id, 1))
        if event.event == RUN_END:
            if "run_modes" in self.modes or "lifecycle" in self.modes:
                done = {"status": "run_done", "run_id": event.run_id}
                await self._write("metadata", done, (event.id, 2))
            if "state_update" in self.modes:
                state = await lg.current_state(self.store, self.thread_id)
                await self._write(
                    "state_update", {"thread_id": self.thread_id, "state": state}, (event.id, 3)
                )
