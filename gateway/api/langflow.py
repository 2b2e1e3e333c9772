"""Langflow's API: ``/api/v1/webhook``, ``/api/v1/run`` (and ``/run/advanced``) and ``/api/v1/build``.

Webhook: an adapter over ``gateway.runs.ingest``, which commits the trigger and its run before
the 202 goes out; the answer adds the ``run_id`` and a ``Location`` so the caller can follow the
run, which Langflow cannot offer.

Run and build: every call starts a normal run (stored, visible at ``/api/v1/runs/{id}``,
delivered to matching endpoints, plus an optional per-run ``webhook``); the Langflow answers
and events are made from the run's stored event log by ``langflow_events.Translator``, so a
build job's events can be read late, or twice, from the start. A job id is the run id. Flows
are named by id, ``endpoint_name`` or UUID on every route (``flows.find_flow``).

A flow configured with ``verify = "github" | "stripe" | "standard" | "slack"`` must prove its
sender by a signature over the raw body: a failure answers 401, stores the trigger as
rejected and starts no run. A ``?token=`` made by ``hookgate token`` stands in for the API key
on this route only (see ``middleware.carries_trigger_token``) and must be valid for the flow,
otherwise 403 with nothing stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import structlog
from aiohttp import web

from gateway import errors, flows, keys, models, netguard
from gateway.api import schema, streaming
from gateway.api.langflow_events import Translator
from gateway.api.langflow_shapes import frame
from gateway.api.schema import langflow as lf
from gateway.runs import ingest

logger = structlog.get_logger(__name__)
TRIGGER_TOKEN_PARAM = "token"


async def webhook(request: web.Request) -> web.Response:
    inbound = ingest.Inbound(
        method=request.method,
        path=request.path,
        query_string=request.query_string,
        headers=request.headers,
        read=request.read,
        content_type=request.content_type,
        source=request.remote or "",
    )
    # read as sent, not through ``lf.WebhookQuery``: an empty ``token`` is a wrong one, not none
    run = await request.app[keys.ingest_key].receive(
        request.match_info["flow_id"],
        inbound,
        token=request.query.get(TRIGGER_TOKEN_PARAM),
        webhook=request.query.get("webhook"),
    )
    return web.json_response(
        {
            "message": "Task started in the background",
            "status": "in progress",
            "run_id": run.run_id,
        },
        status=202,
        headers={"Location": f"/api/v1/runs/{run.run_id}"},
    )


# -- /api/v1/run and /api/v1/build ---------------------------------------------------------------

NDJSON = "application/x-ndjson"
POLL_WAIT = 10.0
"""How long a polling request waits for a first new event before answering with none."""
POLL_CURSORS_KEPT = 10_000


def setup(app: web.Application) -> None:
    """Per-process state of the build API: how far each polled job has been read."""
    app[keys.langflow_polls_key] = {}


async def run_flow(request: web.Request) -> web.StreamResponse:
    """``POST /api/v1/run/{flow_id_or_name}[?stream=true]``."""
    flow = _find_flow(request, request.match_info["flow_id"])
    body = await schema.json_object(request)
    if isinstance(body.get("input_request"), dict):  # FastAPI's embedded form
        body = body["input_request"]
    parsed = schema.validate(lf.SimplifiedAPIRequest, body, wording=lf.WORDING)
    query = schema.query(request, lf.RunQuery, wording=lf.WORDING)
    stream = query.stream
    tweaks = _tweaks(flow, parsed.tweaks or {})
    webhook_url = _callback(request, parsed.webhook or query.webhook)
    kwargs = {
        "session_id": parsed.session_id,
        "input_value": parsed.input_value,
        "tweaks": tweaks,
        "langflow": {
            "route": "run",
            "stream": stream,
            "input_type": parsed.input_type,
            "output_type": parsed.output_type,
            "output_component": parsed.output_component or "",
        },
    }
    run = await request.app[keys.runs_key].start(
        flow.flow_id, _input(parsed.input_value), webhook=webhook_url, kwargs=kwargs
    )
    logger.info("langflow_run_started", flow_id=flow.flow_id, run_id=run.run_id, stream=stream)
    if stream:
        return await _stream(request, run, flow, "text/event-stream", cancel_on_disconnect=True)
    translator = await _finished(request, run, flow)
    if translator.status != "success":
        detail = {
            "message": translator.error_message(),
            "traceback": None,
            "description": None,
            "code": None,
            "suggestion": None,
        }
        return web.json_response({"detail": json.dumps(detail)}, status=500, headers=_location(run))
    return web.json_response(translator.response(), headers=_location(run))


async def run_advanced(request: web.Request) -> web.Response:
    """``POST /api/v1/run/advanced/{flow_id_or_name}``: one run per input, one answer."""
    flow = _find_flow(request, request.match_info["flow_id"])
    body = await schema.body(request, lf.RunAdvancedRequest, wording=lf.WORDING)
    values = body.inputs
    if values is None:
        values = [lf.InputValueRequest(input_value="")]
    outputs = tuple(dict.fromkeys(body.outputs or ()))
    tweaks = _tweaks(flow, body.tweaks or {})
    session_id = body.session_id
    webhook_url = _callback(request, body.webhook)
    service = request.app[keys.runs_key]
    runs = []
    for value in values:
        input_value = value.input_value
        kwargs = {
            "session_id": session_id or value.session,
            "input_value": input_value,
            "tweaks": tweaks,
            "langflow": {"route": "run/advanced", "outputs": list(outputs)},
        }
        runs.append(
            await service.start(
                flow.flow_id, _input(input_value), webhook=webhook_url, kwargs=kwargs
            )
        )
    answers = []
    for run in runs:
        translator = await _finished(request, run, flow)
        if translator.status != "success":
            return web.json_response({"detail": translator.error_message()}, status=500)
        answers.append(translator.run_outputs(translator.selected(outputs=outputs)))
    session = session_id or flow.uuid
    return web.json_response({"session_id": session, "outputs": answers})


async def build_flow(request: web.Request) -> web.StreamResponse:
    """``POST /api/v1/build/{flow_id}/flow`` → ``{"job_id"}`` (or the events, when direct)."""
    flow = _find_flow(request, request.match_info["flow_id"], label="Flow with id {} not found")
    body = await schema.body(request, lf.BuildRequest, wording=lf.WORDING)
    query = schema.query(request, lf.BuildQuery, wording=lf.WORDING)
    value = body.inputs or lf.InputValueRequest()
    start, stop = query.start_component_id, query.stop_component_id
    try:
        flow.plan(start, stop)
    except ValueError as exc:
        raise errors.Unprocessable(str(exc)) from None
    webhook_url = _callback(request, body.webhook)
    delivery = query.event_delivery
    kwargs = {
        "session_id": value.session,
        "input_value": value.input_value,
        "start_step": start,
        "stop_step": stop,
        "langflow": {"route": "build", "event_delivery": delivery},
    }
    run = await request.app[keys.runs_key].start(
        flow.flow_id, _input(value.input_value), webhook=webhook_url, kwargs=kwargs
    )
    logger.info("langflow_build_started", flow_id=flow.flow_id, run_id=run.run_id)
    if delivery == "direct":
        return await _stream(request, run, flow, NDJSON, cancel_on_disconnect=True)
    return web.json_response({"job_id": run.run_id}, headers=_location(run))


async def build_events(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/build/{job_id}/events``: NDJSON streamed, polled, or one event per call."""
    run, flow = await _job(request)
    query = schema.query(request, lf.BuildEventsQuery, wording=lf.WORDING)
    if query.stream is False and "event_delivery" not in query.model_fields_set:
        return await _legacy_event(request, run, flow)
    if query.event_delivery == "polling":
        events = await _poll(request, run, flow, POLL_WAIT)
        body = "\n".join(json.dumps(event) + "\n\n" for event in events)
        return web.Response(body=body.encode(), content_type=NDJSON)
    return await _stream(request, run, flow, NDJSON, cancel_on_disconnect=False)


async def build_cancel(request: web.Request) -> web.Response:
    """``POST /api/v1/build/{job_id}/cancel``: the run ends ``interrupted`` (and is delivered)."""
    run, _ = await _job(request)
    if not run.status.is_final:
        await request.app[keys.worker_key].cancel(run.run_id, "build cancelled by the client")
        current = await request.app[keys.store_key].get_run(run.run_id)
        if current is None or not current.status.is_final:
            return web.json_response({"success": False, "message": "Failed to cancel flow build"})
    return web.json_response({"success": True, "message": "Flow build cancelled successfully"})


# -- helpers -------------------------------------------------------------------------------------


def _find_flow(
    request: web.Request, ref: str, label: str = "Flow identifier {} not found"
) -> flows.Flow:
    flow = flows.find_flow(request.app[keys.flows_key], ref)
    if flow is None:
        raise errors.NotFound(label.format(ref))
    return flow


async def _job(request: web.Request) -> tuple[models.Run, flows.Flow | None]:
    job_id = request.match_info["job_id"]
    run = None
    with contextlib.suppress(errors.GatewayError):
        run = await request.app[keys.store_key].get_run(schema.path_id(request, "job_id"))
    if run is None:
        raise errors.NotFound(f"Job not found: {job_id}")
    return run, request.app[keys.flows_key].get(run.flow_id)


def _tweaks(flow: flows.Flow, tweaks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    try:
        return flow.resolve_tweaks(tweaks)
    except ValueError as exc:
        raise errors.Unprocessable(str(exc)) from None


def _callback(request: web.Request, url: str | None) -> str | None:
    """A per-run callback URL, refused (422) like the webhook route's ``?webhook=``."""
    if url is None:
        return None
    settings = request.app[keys.settings_key]
    return netguard.check_callback(url, settings)


def _input(input_value: str | None) -> dict[str, Any]:
    """A Langflow run's input: ``{"input_value": …}`` (``{}`` when none was given)."""
    return {} if input_value is None else {"input_value": input_value}


def _location(run: models.Run) -> dict[str, str]:
    return {"Location": f"/api/v1/runs/{run.run_id}"}


async def _finished(request: web.Request, run: models.Run, flow: flows.Flow | None) -> Translator:
    """Wait for the run's end, reading its events; the translator holds the answer."""
    translator = Translator(run, flow, "run")
    translator.start()
    async with _following(request, run.run_id) as events:
        async for event in events:
            translator.feed(event)
            if translator.finished:
                break
    translator.end_from(await request.app[keys.store_key].get_run(run.run_id))
    return translator


async def _stream(
    request: web.Request,
    run: models.Run,
    flow: flows.Flow | None,
    content_type: str,
    *,
    cancel_on_disconnect: bool,
) -> web.StreamResponse:
    """Write the run's events as they come, each JSON object followed by a blank line.

    ``/run?stream=true`` uses ``text/event-stream`` and the run events; the build routes
    ``application/x-ndjson`` and the build events. A client that leaves a stream it started
    cancels the run (``interrupted``); a build reader that leaves does not.
    """
    mode: Literal["run", "build"] = "run" if content_type == "text/event-stream" else "build"
    response = web.StreamResponse(headers=_location(run))
    response.content_type = content_type
    if mode == "run":
        response.charset = "utf-8"
    await response.prepare(request)
    translator = Translator(run, flow, mode)
    store = request.app[keys.store_key]

    async def pump() -> None:
        for event in translator.start():
            await response.write(frame(event))
        async with _following(request, run.run_id) as events:
            async for stored in events:
                for event in translator.feed(stored):
                    await response.write(frame(event))
                if translator.finished:
                    return
        for event in translator.end_from(await store.get_run(run.run_id)):
            await response.write(frame(event))

    departure = functools.partial(_cancel_run, request, run.run_id)
    if await streaming.while_connected(request, pump, departure if cancel_on_disconnect else None):
        await response.write_eof()
    return response


async def _cancel_run(request: web.Request, run_id: str) -> None:
    """Interrupt the run of a stream its client left."""
    logger.info("langflow_stream_disconnected", run_id=run_id)
    await request.app[keys.worker_key].cancel(run_id, "client disconnected from the stream")


async def _read_build(
    request: web.Request, run: models.Run, flow: flows.Flow | None, cursor: int, wait: float
) -> tuple[list[dict[str, Any]], bool]:
    """All build events so far (from the start), waiting up to ``wait`` s for one past ``cursor``."""
    translator = Translator(run, flow, "build")
    produced = translator.start()
    last = 0
    for stored in await request.app[keys.store_key].list_events(run.run_id):
        produced += translator.feed(stored)
        last = stored.id
    if len(produced) <= cursor and not translator.finished:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                async with _following(request, run.run_id, last) as events:
                    async for stored in events:
                        produced += translator.feed(stored)
                        if len(produced) > cursor or translator.finished:
                            break
    if len(produced) <= cursor and not translator.finished:
        produced += translator.end_from(await request.app[keys.store_key].get_run(run.run_id))
    return produced, translator.finished


async def _poll(
    request: web.Request, run: models.Run, flow: flows.Flow | None, wait: float
) -> list[dict[str, Any]]:
    """Langflow's polling: the events not yet returned for this job; after the last one, an
    ``end {}`` (clients stop at the first ``end`` or terminal ``error``)."""
    cursors = request.app[keys.langflow_polls_key]
    cursor = cursors.get(run.run_id, 0)
    produced, finished = await _read_build(request, run, flow, cursor, wait)
    fresh = produced[cursor:]
    if not fresh and finished:
        fresh = [{"event": "end", "data": {}}]
    _remember(cursors, run.run_id, max(cursor, len(produced)))
    return fresh


async def _legacy_event(
    request: web.Request, run: models.Run, flow: flows.Flow | None
) -> web.Response:
    """Langflow ≤ 1.3's ``?stream=false``: one event per call as JSON text, ``null`` at the end."""
    cursors = request.app[keys.langflow_polls_key]
    cursor = cursors.get(run.run_id, 0)
    flow_timeout = flow.timeout if flow is not None else POLL_WAIT
    produced, _ = await _read_build(request, run, flow, cursor, flow_timeout + POLL_WAIT)
    if cursor >= len(produced):
        return web.json_response({"event": None})
    _remember(cursors, run.run_id, cursor + 1)
    return web.json_response({"event": json.dumps(produced[cursor]) + "\n\n"})


def _remember(cursors: dict[str, int], run_id: str, position: int) -> None:
    cursors[run_id] = position
    while len(cursors) > POLL_CURSORS_KEPT:
        del cursors[next(iter(cursors))]


@contextlib.asynccontextmanager
async def _following(
    request: web.Request, run_id: str, after_id: int = 0
) -> AsyncIterator[AsyncIterator[models.Event]]:
    """``EventHub.follow``, closed (its live subscription dropped) when the reader stops early."""
    events = request.app[keys.runs_key].events.follow(run_id, after_id)
    try:
        yield events
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
