"""The relay's pure rules: filters, payload shapes, forwardable headers and transforms."""

from __future__ import annotations

import json

import pytest

from gateway import models
from gateway.outbox import routing, templates

NOW = 1_800_000_000.0


def trigger(body: bytes, **headers: str) -> models.Trigger:
    return models.Trigger(
        trigger_id=models.new_id(),
        flow_id="github",
        received_at=NOW,
        method="POST",
        path="/api/v1/webhook/github",
        query="",
        headers={"Content-Type": "application/json; charset=utf-8", **headers},
        body=body,
        content_type="application/json",
        source="127.0.0.1",
    )


def endpoint(**fields: object) -> models.Endpoint:
    values: dict[str, object] = {
        "endpoint_id": models.new_id(),
        "url": "http://127.0.0.1:9/hook",
        "secret": "whsec_x",
        "created_at": NOW,
        "updated_at": NOW,
        **fields,
    }
    return models.Endpoint(**values)  # type: ignore[arg-type]


def source(received: models.Trigger | None, run_input: object = None) -> routing.Source:
    return routing.Source(
        models.new_id(), "github", "run.success", b'{"run": 1}', run_input, NOW, received
    )


def delivery(payload: bytes, **headers: str) -> models.Delivery:
    return models.Delivery(
        delivery_id=models.new_id(),
        run_id=None,
        url="http://127.0.0.1:9/hook",
        event_type="run.success",
        payload=payload,
        status=models.DeliveryStatus.PENDING,
        attempts=1,
        next_attempt_at=NOW,
        created_at=NOW,
        updated_at=NOW,
        headers=dict(headers),
    )


PUSH = trigger(b'{"ref": "main", "count": 0}', **{"X-GitHub-Event": "push"})


@pytest.mark.parametrize(
    ("expression", "matched"),
    [
        ("headers.\"x-github-event\" == 'push'", True),
        ("headers.\"x-github-event\" == 'issues'", False),
        ("body.count", True),  # 0 is true in JMESPath
        ("body.missing", False),
        ("body.ref == 'main' && status == 'success'", True),
        ("event_type == 'run.error'", False),
    ],
)
def test_a_filter_selects_on_the_triggers_body_headers_and_the_event(
    expression: str, matched: bool
) -> None:
    document = routing.filter_document(source(PUSH))
    assert (routing.unmatched(expression, document) is None) is matched


def test_a_filter_sees_the_triggers_body_and_lowered_headers_the_event_flow_and_status() -> None:
    assert routing.filter_document(source(PUSH)) == {
        "body": {"ref": "main", "count": 0},
        "headers": {"content-type": "application/json; charset=utf-8", "x-github-event": "push"},
        "event_type": "run.success",
        "flow_id": "github",
        "status": "success",
    }


def test_a_filter_of_a_run_without_trigger_sees_its_input_and_no_headers() -> None:
    assert routing.filter_document(source(None, run_input={"n": 1})) == {
        "body": {"n": 1},
        "headers": {},
        "event_type": "run.success",
        "flow_id": "github",
        "status": "success",
    }


@pytest.mark.parametrize(
    ("value", "matched"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (0, True),
        (0.0, True),
        ("x", True),
        ([0], True),
        ({"k": None}, True),
    ],
)
def test_a_filter_matches_by_jmespaths_truth(value: object, matched: bool) -> None:
    assert (routing.unmatched("v", {"v": value}) is None) is matched


def test_a_filter_that_fails_on_its_input_matches_nothing_and_says_why() -> None:
    reason = routing.unmatched("length(body.count)", routing.filter_document(source(PUSH)))
    assert reason is not None
    assert reason.startswith("the filter failed: In function length()")


def test_routing_records_what_a_filter_turned_away() -> None:
    wanted = endpoint(filter="headers.\"x-github-event\" == 'push'")
    other = endpoint(filter="headers.\"x-github-event\" == 'issues'")
    plain = endpoint()
    routes = routing.route([wanted, other, plain], source(PUSH), NOW)
    assert [d.endpoint_id for d in routes.deliveries] == [wanted.endpoint_id, plain.endpoint_id]
    [skipped] = routes.filtered
    assert (skipped.endpoint_id, skipped.event_type) == (other.endpoint_id, "run.success")
    assert "did not match" in skipped.reason


def test_a_raw_payload_is_the_triggers_bytes_with_its_content_type_and_event_headers() -> None:
    received = trigger(
        b"payload=%7B%7D",
        **{
            "Content-Type": "application/x-www-form-urlencoded",
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": "sha256=****ab",
            "User-Agent": "GitHub-Hookshot/1",
        },
    )
    payload, headers = routing.shaped(endpoint(payload="raw"), source(received))
    assert payload == b"payload=%7B%7D"
    assert headers == {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": "d-1",
    }
    named = endpoint(payload="raw", forward_headers=("User-Agent",))
    assert routing.shaped(named, source(received))[1] == {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "GitHub-Hookshot/1",
    }
    assert routing.shaped(endpoint(), source(received)) == (b'{"run": 1}', {})


def test_a_raw_payload_of_a_run_without_trigger_is_its_input() -> None:
    payload, headers = routing.shaped(endpoint(payload="raw"), source(None, {"a": [1]}))
    assert (json.loads(payload), headers) == ({"a": [1]}, {"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "name",
    [
        "Stripe-Signature",
        "X-Hub-Signature",
        "Authorization",
        "Cookie",
        "X-Gitlab-Token",
        "x-api-key",
    ],
)
def test_secret_headers_are_never_forwardable(name: str) -> None:
    with pytest.raises(routing.FieldError) as refused:
        routing.check_forward_headers([name])
    assert str(refused.value) == (
        f"forward_headers: {name} is never forwarded: hookgate keeps secret, signature and auth "
        "headers masked, and signs what it sends itself (webhook-signature)"
    )


def test_forward_headers_are_kept_once_each() -> None:
    assert routing.check_forward_headers(["X-A", "x-a", "X-B"]) == ("X-A", "X-B")
    fifty = [f"X-{n}" for n in range(50)]
    assert routing.check_forward_headers(fifty) == tuple(fifty)
    with pytest.raises(routing.FieldError, match="at most 50"):
        routing.check_forward_headers([*fifty, "X-50"])


def test_a_name_that_is_not_a_header_is_quoted_cut_to_100_characters() -> None:
    name = "bad name" + "x" * 200
    with pytest.raises(routing.FieldError) as refused:
        routing.check_forward_headers([name])
    assert str(refused.value) == f"forward_headers: {name[:100]!r} is not a header name"


async def test_a_jmespath_transform_reshapes_and_sends_json() -> None:
    shaped = await routing.outgoing(
        delivery(b'{"a": {"b": [1, 2]}}', **{"Content-Type": "text/plain", "X-K": "v"}),
        endpoint(transform="{sum: sum(a.b), first: a.b[0]}"),
    )
    assert json.loads(shaped.payload) == {"sum": 3, "first": 1}
    assert shaped.headers == {"Content-Type": "application/json", "X-K": "v"}


async def test_no_transform_sends_the_payload_untouched() -> None:
    original = delivery(b"not json at all")
    assert await routing.outgoing(original, endpoint()) is original
    assert await routing.outgoing(original, None) is original


@pytest.mark.parametrize(
    ("payload", "transform", "message"),
    [
        (b"not json", "@", "the payload is not JSON"),
        (b'{"a": 1}', "missing", "the result is null"),
        (b'{"a": "x"}', "length(a.b)", "In function length()"),
    ],
)
async def test_a_transform_that_cannot_produce_json_fails_clearly(
    payload: bytes, transform: str, message: str
) -> None:
    with pytest.raises(routing.TransformFailed, match=message):
        await routing.outgoing(delivery(payload), endpoint(transform=transform))


def test_a_projection_that_grows_past_the_limit_is_refused_before_it_is_built() -> None:
    big = {"text": "x" * 1000}
    with pytest.raises(routing.TransformFailed, match="larger than"):
        routing.encode([big] * 100, limit=10_000)


@pytest.mark.parametrize(
    ("source_text", "message"),
    [
        ("{% for x in y %}", "line 1: Unexpected end of template"),
        ("{{ a b }}", "line 1: expected token 'end of print statement'"),
        ("x" * (templates.MAX_TEMPLATE + 1), "longer than"),
    ],
)
def test_a_template_that_does_not_compile_is_refused_with_its_line(
    source_text: str, message: str
) -> None:
    with pytest.raises(routing.FieldError, match=message):
        routing.check_transform("jinja", source_text)


def test_an_expression_nested_past_the_parser_is_refused() -> None:
    with pytest.raises(routing.FieldError) as refused:
        routing.check_filter("[" * 1000 + "]" * 1000)
    assert str(refused.value) == "filter: nested too deeply"


def test_an_expression_is_allowed_up_to_its_length_limit() -> None:
    longest = "a" * routing.MAX_EXPRESSION
    assert routing.check_filter(longest) == longest
    with pytest.raises(routing.FieldError) as refused:
        routing.check_filter(longest + "a")
    assert str(refused.value) == f"filter: longer than {routing.MAX_EXPRESSION} characters"
