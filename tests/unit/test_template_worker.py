"""The template worker's side of the exchange, in this process: what it answers for a request.

The parent's side (starting the worker, its time and memory limits) is exercised end to end by
the relay's tests; here the worker's rules are checked without a process in between."""

from __future__ import annotations

import io
import json
from typing import Any

import jinja2
import pytest

from gateway.outbox import templates


def answer(source: str, **context: Any) -> dict[str, str]:
    request = json.dumps({"source": source, "context": context}).encode()
    reply: dict[str, str] = json.loads(templates._answer(request))
    return reply


def test_a_template_renders_its_context_unescaped() -> None:
    assert answer("{{ who }} <{{ n + 1 }}>", who="a & b", n=1) == {"output": "a & b <2>"}


def test_a_loop_renders_every_piece_in_order() -> None:
    assert answer("{% for x in xs %}{{ x }},{% endfor %}", xs=[1, 2, 3]) == {"output": "1,2,3,"}


def test_output_exactly_at_the_limit_is_kept() -> None:
    reply = answer("{{ text }}", text="x" * templates.MAX_OUTPUT)
    assert reply == {"output": "x" * templates.MAX_OUTPUT}


def test_output_past_the_limit_is_refused_while_it_is_produced() -> None:
    source = "{% for x in xs %}{{ text }}{% endfor %}"
    reply = answer(source, xs=list(range(3)), text="x" * (templates.MAX_OUTPUT // 2 + 1))
    assert reply == {
        "error": f"the template's output is longer than {templates.MAX_OUTPUT} characters"
    }


def test_a_missing_value_is_an_error_not_empty_text() -> None:
    assert answer("{{ missing }}") == {"error": "UndefinedError: 'missing' is undefined"}


def test_a_filter_that_does_not_exist_is_an_error_with_its_line() -> None:
    assert answer("\n{{ 1|nope }}") == {"error": "line 2: No filter named 'nope'."}


def test_the_sandbox_refuses_python_internals() -> None:
    reply = answer("{{ x.__class__.__mro__ }}", x=1)
    assert reply["error"].startswith("SecurityError: ")


def test_an_allocation_past_memory_is_an_error_naming_the_limit() -> None:
    # 10**18 characters is past any address space, so the allocation fails at once.
    reply = answer('{{ "x" * n }}', n=10**18)
    assert reply == {"error": f"the template needed more than {templates.MEMORY_LIMIT // 2**20} MB"}


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def test_the_worker_says_it_is_ready_then_answers_each_request_until_its_input_ends() -> None:
    requests = [json.dumps({"source": "{{ n }}", "context": {"n": n}}).encode() for n in (1, 22)]
    stdout = io.BytesIO()
    templates._serve(io.BytesIO(b"".join(frame(r) for r in requests) + b"\0\0"), stdout)
    written = stdout.getvalue()
    assert written[:4] == b"\0\0\0\0"
    replies, rest = [], written[4:]
    while rest:
        size = int.from_bytes(rest[:4], "big")
        replies.append(json.loads(rest[4 : 4 + size]))
        rest = rest[4 + size :]
    assert replies == [{"output": "1"}, {"output": "22"}]


def test_a_template_is_compiled_once_for_many_renders() -> None:
    templates._template.cache_clear()
    for n in range(3):
        assert answer("{{ n }}!", n=n) == {"output": f"{n}!"}
    assert templates._template.cache_info().misses == 1


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        (b"not json", "JSONDecodeError: Expecting value: line 1 column 1 (char 0)"),
        (b'{"source": "x"}', "KeyError: 'context'"),
    ],
)
def test_a_malformed_request_gets_an_error_reply(broken: bytes, error: str) -> None:
    assert json.loads(templates._answer(broken)) == {"error": error}


def test_the_environment_refuses_missing_values_and_escapes_nothing() -> None:
    environment = templates.environment()
    assert environment.from_string("{{ x }}").render(x="<b>&") == "<b>&"
    with pytest.raises(jinja2.UndefinedError):
        environment.from_string("{{ missing }}").render()
    with pytest.raises(jinja2.exceptions.SecurityError):
        environment.from_string("{{ xs.append(1) }}").render(xs=[])


def test_a_worker_starts_its_process_on_the_first_render_and_stops_it() -> None:
    worker = templates._Worker()
    try:
        request = json.dumps({"source": "{{ a }}-{{ b }}", "context": {"a": 1, "b": 2}}).encode()
        assert worker.render(request) == "1-2"
        assert worker.render(request) == "1-2"
    finally:
        worker.stop()
    with pytest.raises(templates.TemplateProblem, match="is undefined"):
        worker.render(json.dumps({"source": "{{ c }}", "context": {}}).encode())
    worker.stop()
