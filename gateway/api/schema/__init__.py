"""The API's request and response models (pydantic v2): one source for validation and for
``/openapi.json``. A model refuses what the gateway cannot store or show: every number that
becomes a duration, a moment or a row count carries its bounds (``Range``, ``Moment``), and
every failure answers 422 with a ``detail`` naming the field, in the words the API has always
used (``limit: expected 1 to 1000, got 0``).

Bodies are validated strictly (JSON types as sent: ``"10"`` is not a number, ``true`` is not
an integer); query strings leniently (``?limit=10`` is a number) through ``query``.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, TypeVar, cast

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError, core_schema

from gateway import errors, paging, strictjson
from gateway.store import base

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

YEAR_SECONDS = 365 * 24 * 3600
MAX_DELAY_SECONDS = float(YEAR_SECONDS)
"""The longest wait the API schedules (a run's ``after_seconds``, a retry delay)."""
MAX_TTL_MINUTES = 10 * YEAR_SECONDS / 60
LATEST_TIMESTAMP = datetime(9999, 1, 1, tzinfo=UTC).timestamp()
"""The last moment taken as a date: every time zone can still show it."""
LATEST_TIMESTAMP_MS = int(LATEST_TIMESTAMP) * 1000
MAX_LIMIT = 1000
MAX_OFFSET = 2**53 - 1
"""Far past any table, exact in every JSON reader, and well inside SQLite's 64-bit integers."""
_QUERY_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")
_FROM_TEXT = "from_text"


class Body(BaseModel):
    """A JSON request body: strict JSON types; fields the peer may add later are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Closed(Body):
    """A request body whose unknown fields are refused (hookgate's own API)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Query(BaseModel):
    """Query parameters: text read as the declared types; unknown parameters are ignored."""

    model_config = ConfigDict(extra="ignore")


class Response(BaseModel):
    """A response body: documented fields; a peer may add more, so more are allowed."""

    model_config = ConfigDict(extra="allow")


# bounded numbers and moments


def _plain(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


def _kind(value: Any) -> str:
    return type(value).__name__


@dataclass(frozen=True)
class Range:
    """A finite number (an integer when ``integer``) within ``minimum``..``maximum``.

    In a body it must be a JSON number (not a boolean); in a query string, decimal text.
    """

    minimum: float
    maximum: float
    unit: str = ""
    integer: bool = False

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(self._validate)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        kind = "integer" if self.integer else "number"
        bounds = [int(b) if self.integer else b for b in (self.minimum, self.maximum)]
        return {"type": kind, "minimum": bounds[0], "maximum": bounds[1]}

    def _validate(self, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and info.context and info.context.get(_FROM_TEXT):
            value = self._from_text(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PydanticCustomError(
                "range_type", self._expected() + ", got {kind}", {"kind": _kind(value)}
            )
        if self.integer and not isinstance(value, int):
            raise PydanticCustomError(
                "range_type", "expected an integer, got {kind}", {"kind": _kind(value)}
            )
        if not math.isfinite(value):
            raise PydanticCustomError(
                "range_type", self._expected() + ", got {value!r}", {"value": str(value)}
            )
        if not self.minimum <= value <= self.maximum:
            got = f", got {value}" if self.integer else ""
            raise PydanticCustomError(
                "range",
                f"expected {_plain(self.minimum)} to {_plain(self.maximum)}{self.unit}{got}",
            )
        return value if self.integer else float(value)

    def _expected(self) -> str:
        if self.integer:
            return "expected an integer"
        return f"expected {self.unit.strip()}" if self.unit else "expected a number"

    def _from_text(self, text: str) -> Any:
        if self.integer:
            if _QUERY_INTEGER.fullmatch(text.strip()) is None:
                raise PydanticCustomError(
                    "range_type", "expected an integer, got {text!r}", {"text": text[:40]}
                )
            return int(text)
        try:
            return float(text)
        except ValueError:
            raise PydanticCustomError(
                "range_type", self._expected() + ", got {text!r}", {"text": text[:40]}
            ) from None


def _moment(value: Any) -> float:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            value = moment.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("moment_type", "expected an RFC 3339 date-time or epoch seconds")
    if not (math.isfinite(value) and 0 <= value <= LATEST_TIMESTAMP):
        raise PydanticCustomError("moment", "expected a moment between 1970 and the year 9999")
    return float(value)


class _MomentType:
    """An RFC 3339 date-time or epoch seconds, between 1970 and the year 9999 (epoch seconds)."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(_moment)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "number", "minimum": 0, "maximum": LATEST_TIMESTAMP},
            ],
            "description": "An RFC 3339 date-time or epoch seconds, between 1970 and 9999.",
        }


Moment = Annotated[float, _MomentType]
Seconds = Annotated[float, Range(0, MAX_DELAY_SECONDS, " seconds")]
Limit = Annotated[int, Range(1, MAX_LIMIT, integer=True)]
Offset = Annotated[int, Range(0, MAX_OFFSET, integer=True)]
Id = Annotated[uuid.UUID, Field(strict=False)]
"""A UUID, given as its text."""
JsonObject = dict[str, Any]


# reading requests


Wording = Mapping[str, str]
"""Message templates by pydantic error type, over ``MESSAGES``: an API's own words where its
clients rely on them (``schema.langflow.WORDING``)."""

MESSAGES: Wording = {
    "missing": "required",
    "string_type": "expected str, got {kind}",
    "bool_type": "expected bool, got {kind}",
    "bool_parsing": "expected true or false, got {input!r}",
    "dict_type": "expected an object, got {kind}",
    "list_type": "expected a list, got {kind}",
    "int_type": "expected an integer, got {kind}",
    "float_type": "expected a number, got {kind}",
    "uuid_type": "must be a UUID",
    "uuid_parsing": "must be a UUID",
    "model_type": "expected an object, got {kind}",
    "model_attributes_type": "expected an object, got {kind}",
    "literal_error": "expected one of {expected}, got {shown}",
    "literal_type": "expected one of {expected}, got {shown}",
}
"""``literal_type`` is a choice given as something other than a string."""


def detail(exc: ValidationError, wording: Wording = MESSAGES) -> str:
    """Every failure as ``field: what was expected``, in the API's words; a body's unknown
    fields are named together, where they are."""
    unknown: dict[str, list[str]] = {}
    messages = []
    for error in exc.errors(include_url=False):
        if error["type"] == "extra_forbidden":
            *parent, name = error["loc"]
            unknown.setdefault(_location(tuple(parent)), []).append(str(name))
        else:
            messages.append(_message(error, wording))
    for where, names in reversed(unknown.items()):
        text = f"unknown field(s) {', '.join(names)}"
        messages.insert(0, f"{where}: {text}" if where else text)
    return "; ".join(messages)


def _message(error: Any, wording: Wording) -> str:
    loc = error["loc"]
    value = error.get("input")
    kind = error["type"]
    expected = ""
    if kind == "literal_error":
        expected = ", ".join(re.findall(r"'([^']*)'", error["ctx"]["expected"]))
        if not isinstance(value, str):
            kind = "literal_type"
    template = wording.get(kind) or MESSAGES.get(kind)
    if kind == "string_type" and loc and isinstance(loc[-1], int):
        text = f"expected a list of strings, got {_kind(value)} at [{loc[-1]}]"
        loc = loc[:-1]
    elif template is None:
        text = error["msg"]
    else:
        text = template.format(
            kind=_kind(value), input=str(value)[:40], shown=repr(value)[:60], expected=expected
        )
    where = _location(loc)
    return f"{where}: {text}" if where else text


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _is_tag(part):
            text += f".{part}" if text else part
    return text


def _is_tag(part: str) -> bool:
    """A union member's or validator's name in an error location, not a field."""
    return "[" in part or part.startswith("function-") or part[:1].isupper()


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def validate(
    kind: type[T], data: Any, *, from_text: bool = False, wording: Wording = MESSAGES
) -> T:
    """``data`` as ``kind`` (a model, or a type such as ``list[Model]``), or 422 naming each
    field that is wrong."""
    try:
        value: T = _adapter(cast(Hashable, kind)).validate_python(
            data, context={_FROM_TEXT: from_text}
        )
    except ValidationError as exc:
        raise errors.Unprocessable(detail(exc, wording)) from None
    return value


async def json_value(
    request: web.Request,
    *,
    required: bool = False,
    malformed: type[errors.GatewayError] = errors.Unprocessable,
) -> Any:
    """The body's JSON value, read by ``gateway.strictjson``: ``{}`` when empty unless
    ``required``; a body that is not JSON is refused with ``malformed`` (400, or 422 where
    the peer API says so)."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise malformed("Request body is empty: expected a JSON object")
        return {}
    try:
        return strictjson.loads(raw)
    except strictjson.InvalidJSON as exc:
        raise malformed(f"Invalid JSON in request body: {exc}") from None


async def json_object(
    request: web.Request,
    *,
    required: bool = False,
    malformed: type[errors.GatewayError] = errors.Unprocessable,
) -> dict[str, Any]:
    """The body as a JSON object (see ``json_value``), for a handler that keeps it as sent."""
    data = await json_value(request, required=required, malformed=malformed)
    if not isinstance(data, dict):
        raise errors.Unprocessable("Request body must be a JSON object")
    return data


async def body(
    request: web.Request,
    model: type[M],
    *,
    required: bool = False,
    malformed: type[errors.GatewayError] = errors.Unprocessable,
    wording: Wording = MESSAGES,
) -> M:
    """The request's JSON object body as ``model`` (see ``json_value``)."""
    data = await json_object(request, required=required, malformed=malformed)
    return validate(model, data, wording=wording)


def query(request: web.Request, model: type[M], wording: Wording = MESSAGES) -> M:
    """The query string as ``model``; a repeated parameter is a list where the model says so."""
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        values = request.query.getall(name, [])
        if _is_list(field.annotation):
            data[name] = [v for v in values if v != ""]
        elif values and values[0] != "":
            data[name] = values[0]
    return validate(model, data, from_text=True, wording=wording)


def _is_list(annotation: Any) -> bool:
    return "list[" in str(annotation)


# path parameters


@dataclass(frozen=True)
class PathParam:
    """A path parameter: what it names (for messages) and whether it must be a UUID."""

    label: str
    is_uuid: bool = True
    description: str = ""


PATH_PARAMS = {
    "run_id": PathParam("run ID"),
    "thread_id": PathParam("thread ID"),
    "cron_id": PathParam("cron ID"),
    "endpoint_id": PathParam("endpoint ID"),
    "delivery_id": PathParam("delivery ID"),
    "checkpoint_id": PathParam("checkpoint ID", is_uuid=False),
    "assistant_id": PathParam(
        "assistant ID",
        is_uuid=False,
        description="The assistant's UUID (on /graph, also its graph name).",
    ),
    "flow_id": PathParam(
        "flow", is_uuid=False, description="A flow's id, its endpoint_name or its UUID."
    ),
    "job_id": PathParam("job", is_uuid=False, description="A build job's id (its run's id)."),
}


def path_id(request: web.Request, name: str) -> str:
    """A UUID path parameter in its canonical form, or 422 ``Invalid <label>: must be a UUID``."""
    value = request.match_info[name]
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.Unprocessable(f"Invalid {PATH_PARAMS[name].label}: must be a UUID") from None


# the error shape


class ErrorBody(BaseModel):
    """Every error: ``{"detail": "<what is wrong>"}``."""

    detail: str = Field(description="What is wrong, naming the field when one is.")


@dataclass(frozen=True, eq=False)
class Checked:
    """A value ``check`` accepts (and may normalise), documented by ``json_schema``: for rules a
    module already owns (a cron schedule, a stream mode). ``check`` raises ``ValueError`` or
    ``errors.GatewayError`` with its reason."""

    check: Any
    json_schema: Any

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self._validate)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return dict(self.json_schema)

    def _validate(self, value: Any) -> Any:
        try:
            return self.check(value)
        except ValueError as exc:
            raise PydanticCustomError("checked", "{reason}", {"reason": str(exc)}) from None
        except errors.GatewayError as exc:
            raise PydanticCustomError("checked", "{reason}", {"reason": exc.detail}) from None


def _state(value: Any) -> Any:
    if not isinstance(value, dict | list):
        raise ValueError(f"expected an object or an array, got {_kind(value)}")
    return value


State = Annotated[Any, Checked(_state, {"anyOf": [{"type": "object"}, {"type": "array"}]})]
"""A thread's state: an object or an array (LangGraph's ``ThreadState.values``)."""

Cursor = Annotated[
    base.Position,
    Checked(
        paging.decode,
        {
            "type": "string",
            "maxLength": paging.MAX_CURSOR,
            "description": "Opaque: the `cursor` of the previous page's `Link: <…>; "
            'rel="next"`, as it came.',
        },
    ),
]
"""Where a page starts (``gateway.paging``); a malformed one is 422 ``cursor: not a cursor…``."""
