"""Flows with steps, their plan and tweaks, lookup by name or UUID, and relay/steps config."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from gateway import errors, models
from gateway.flows import RunContext, Step, find_flow, flow_from_callable
from gateway.flows.relay import Relay
from gateway.settings import load_settings

CONFIG = Path(__file__).resolve().parents[2] / "config" / "gateway.toml"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def __call__(self, event: str, data: Any) -> None:
        self.events.append((event, data))


def context(recorder: Recorder, **kwargs: Any) -> RunContext:
    return RunContext("run-1", "flow", recorder, kwargs)


async def test_demo_agent_emits_the_step_event_contract() -> None:
    sys.path.insert(0, str(CONFIG.parent))
    from flows import demo  # type: ignore[import-not-found]

    flow = flow_from_callable("agent", demo.agent, timeout=5)
    recorder = Recorder()
    output = await flow.run({"topic": "ice cream"}, context(recorder))
    final = {"topic": "ice cream and cats", "joke": "This is a joke about ice cream and cats"}
    assert output == final
    steps = ["refine_topic", "generate_joke"]
    assert recorder.events == [
        ("values", {"topic": "ice cream"}),
        ("step_start", {"step": "refine_topic", "index": 0, "steps": steps}),
        ("updates", {"refine_topic": {"topic": "ice cream and cats"}}),
        ("values", {"topic": "ice cream and cats"}),
        ("step_start", {"step": "generate_joke", "index": 1, "steps": steps}),
        ("updates", {"generate_joke": {"joke": "This is a joke about ice cream and cats"}}),
        ("values", final),
    ]


def a(state: dict[str, Any]) -> dict[str, Any]:
    return {"a": 1}


async def b(state: dict[str, Any], context: RunContext, *, word: str = "b") -> dict[str, Any]:
    await context.token(word)
    return {"b": word}


async def c(state: dict[str, Any]) -> Any:
    yield {"c": 1}
    yield None
    yield {"c": 2}


def test_dependencies_order_the_steps_and_plan_selects() -> None:
    flow = flow_from_callable(
        "f",
        {"c": Step(c, after=("b",)), "a": Step(a, after=()), "b": Step(b, after=("a",))},
        timeout=1,
    )
    assert flow.vertices == ("a", "b", "c")
    assert flow.plan() == ("a", "b", "c")
    assert flow.plan(stop="b") == ("a", "b")
    assert flow.plan(start="b") == ("b", "c")
    assert flow.plan(start="b", stop="b") == ("b",)
    assert flow.first_layer(("a", "b", "c")) == ("a",)
    assert flow.first_layer(("b", "c")) == ("b",)
    assert flow.successors("a") == ("b",)
    with pytest.raises(ValueError, match="start_component_id: unknown component 'x'"):
        flow.plan(start="x")


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ([], "at least one step"),
        ([a, a], "duplicate steps a"),
        ([Step(a, after=("zz",))], "depends on unknown steps"),
        ({"x": Step(a, after=("y",)), "y": Step(b, after=("x",))}, "depend on each other"),
        ([Step(a, name="bad name")], "invalid step name"),
        ([42], "not callable"),
    ],
)
def test_bad_step_declarations_stop_start_up(declared: Any, message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        flow_from_callable("f", declared, timeout=1)


async def test_tweaks_generators_and_none_updates() -> None:
    flow = flow_from_callable("f", [a, b, c], timeout=1)
    tweaks = flow.resolve_tweaks({"b": {"word": "hi"}, "Other-1": {"x": 1}, "unused": 3})
    assert tweaks == {"b": {"word": "hi"}}
    assert flow.resolve_tweaks({"word": "all"}) == {"b": {"word": "all"}}
    with pytest.raises(ValueError, match=r"tweaks\.b: unknown parameter"):
        flow.resolve_tweaks({"b": {"nope": 1}})
    recorder = Recorder()
    output = await flow.run(["not", "a", "dict"], context(recorder, tweaks=tweaks))
    assert output == {"input": ["not", "a", "dict"], "a": 1, "b": "hi", "c": 2}
    assert ("token", {"chunk": "hi"}) in recorder.events
    updates = [data for event, data in recorder.events if event == "updates"]
    assert updates == [
        {"a": {"a": 1}},
        {"b": {"b": "hi"}},
        {"c": {"c": 1}},
        {"c": None},
        {"c": {"c": 2}},
    ]


async def test_a_step_returning_a_non_dict_fails_the_run() -> None:
    def talk(state: dict[str, Any]) -> str:
        return "text"

    flow = flow_from_callable("f", [talk], timeout=1)
    with pytest.raises(TypeError, match="must return a dict"):
        await flow.run({}, context(Recorder()))


async def test_plain_functions_stay_one_step_flows() -> None:
    def echo(value: Any, *, suffix: str = "") -> Any:
        return f"{value}{suffix}"

    flow = flow_from_callable("echo", echo, timeout=1)
    assert (flow.kind, flow.vertices, flow.params) == ("function", ("echo",), ("suffix",))
    assert await flow.run("x", context(Recorder(), tweaks={"echo": {"suffix": "!"}})) == "x!"


def test_flows_are_found_by_id_endpoint_name_or_uuid() -> None:
    flows = {"agent": flow_from_callable("agent", [a], timeout=1, endpoint_name="joke")}
    assert find_flow(flows, "agent") is flows["agent"]
    assert find_flow(flows, "joke") is flows["agent"]
    assert find_flow(flows, models.assistant_id("agent")) is flows["agent"]
    assert find_flow(flows, models.assistant_id("agent").upper()) is flows["agent"]
    assert find_flow(flows, "nope") is None


def write_config(tmp_path: Path, flows: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f'database_url = "sqlite:///{tmp_path / "x.db"}"\n{flows}')
    return path


def test_relay_config_reads_its_key_from_the_environment(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        '[flows.up]\nkind = "relay"\nurl = "http://127.0.0.1:9/run"\n'
        'headers = { "X-Team" = "a" }\napi_key_env = "UP_KEY"\ntimeout = 7\n',
    )
    settings = load_settings(path, {"UP_KEY": "k-1"})
    spec = settings.flows["up"]
    assert (spec.kind, spec.api_key, spec.target) == ("relay", "k-1", "")
    assert "k-1" not in repr(spec)
    relay = Relay.from_settings("up", spec, 7)
    assert relay.headers["x-api-key"] == "k-1"
    assert relay.headers["X-Team"] == "a"
    assert relay.request_body({"q": 1}) == {"q": 1}


@pytest.mark.parametrize(
    ("flows", "environ", "message"),
    [
        ('[flows.up]\nkind = "relay"\nurl = "ftp://x"\n', {}, "needs an http"),
        (
            '[flows.up]\nkind = "relay"\nurl = "http://x"\napi_key_env = "NOPE"\n',
            {},
            "NOPE is not set",
        ),
        ('[flows.up]\nkind = "relay"\nurl = "http://x"\nretries = 0\n', {}, "retries"),
        ('[flows.up]\nkind = "magic"\n', {}, "kind: expected one of"),
        ("[flows.up]\ntimeout = 3\n", {}, "needs target"),
        ('[flows.a]\ntarget = "m:f"\nendpoint_name = "bad name"\n', {}, "must match"),
        (
            '[flows.a]\ntarget = "m:f"\nendpoint_name = "x"\n[flows.b]\ntarget = "m:f"\nendpoint_name = "x"\n',
            {},
            "already names flow 'a'",
        ),
        (
            '[flows.a]\ntarget = "m:f"\nendpoint_name = "b"\n[flows.b]\ntarget = "m:f"\n',
            {},
            "already names",
        ),
    ],
)
def test_bad_flow_config_stops_start_up(
    tmp_path: Path, flows: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        load_settings(write_config(tmp_path, flows), environ)
