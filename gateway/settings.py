"""One frozen, typed settings object, read from a TOML file and then ``GATEWAY_*`` variables.

The environment wins over the file so that one shipped config can serve dev, CI and
production. Every scalar field has a matching variable: ``retry_schedule`` is
``GATEWAY_RETRY_SCHEDULE``, ``allow_private_networks`` is ``GATEWAY_ALLOW_PRIVATE_NETWORKS``.
Flows only come from the file (``[flows.<id>]`` tables).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway import crosssite, errors, localsecrets, log, signing, store
from gateway import verify as verification
from gateway.outbox.delivery import check_timeout
from gateway.store import secretbox

DEFAULT_CONFIG = Path("config/gateway.toml")
SVIX_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
_SECRET_FIELDS = ("api_key", "signing_secret", "secret_key")
_ENDPOINT_NAME = re.compile(r"[A-Za-z0-9_-]+")
_HOST_LISTS = {"allowed_targets": "hosts or CIDRs", "allowed_hosts": "host names"}
_REPLACED = {
    name: "replaced by lease_seconds and heartbeat_seconds (leases are renewed while work is "
    "alive, so they no longer need to outlast it)"
    for name in ("run_lease_seconds", "delivery_lease_seconds")
}


@dataclasses.dataclass(frozen=True, repr=False)
class FlowSettings:
    """A flow named in config: where its code lives, how long one run may take, and how its
    triggers prove where they come from.

    ``kind`` is ``"python"`` (``target = "module:attribute"``), ``"forward"`` (no code: the
    run's output is the inbound request, see ``gateway.flows.forward``) or ``"relay"``: an upstream HTTP
    service at ``url`` called with ``headers`` and the API key read from the variable named by
    ``api_key_env`` (sent as ``api_key_header``); ``body`` is an optional JSON template in which
    the string ``"$input"`` stands for the run's input (default: the input itself);
    ``retries`` bounds the attempts on connection errors and 5xx. ``endpoint_name`` is an
    optional unique alias (``[A-Za-z0-9_-]+``) the Langflow routes accept in place of the id.

    ``verify`` is ``"none"`` or one of ``gateway.verify.SCHEMES`` (``github``, ``stripe``,
    ``standard``, ``slack``); ``secret`` is that sender's signing secret, given in the file or
    read at load time from the variable named by ``secret_env``. Secrets never appear in a repr.
    """

    target: str = ""
    timeout: float | None = None
    description: str = ""
    verify: str = verification.NONE
    secret: str = ""
    secret_env: str = ""
    kind: str = "python"
    endpoint_name: str = ""
    url: str = ""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    api_key: str = ""
    api_key_env: str = ""
    api_key_header: str = "x-api-key"
    body: Any = None
    retries: int = 3

    def __repr__(self) -> str:
        shown = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("secret", "api_key") and value:
                value = "***"
            elif field.name == "headers" and value:
                value = {name: "***" for name in value}
            shown.append(f"{field.name}={value!r}")
        return f"FlowSettings({', '.join(shown)})"


@dataclasses.dataclass(frozen=True, repr=False)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = "sqlite:///var/gateway.db"
    api_key: str = ""
    signing_secret: str = ""  # when not set at all: this install's own (localsecrets)
    secret_key: str = ""  # Fernet keys, newest first, sealing endpoint secrets (secretbox)
    allow_private_networks: bool = False
    max_body_bytes: int = 1024 * 1024
    # Slow clients: seconds to send a request's headers (from connecting, or from the previous
    # response on a kept-alive connection, which is closed after as long idle) and its body.
    header_read_timeout: float = 10.0
    body_read_timeout: float = 30.0
    retry_schedule: tuple[float, ...] = SVIX_SCHEDULE
    retry_jitter: float = 0.2
    delivery_connect_timeout: float = 5.0
    delivery_timeout: float = 15.0
    delivery_concurrency: int = 64
    endpoint_max_concurrency: int = 10
    throttle_min_delay: float = 60.0
    circuit_failure_threshold: int = 10
    circuit_cooldown_seconds: float = 60.0
    disable_after_seconds: float = 5 * 24 * 3600.0
    secret_rotation_overlap: float = 24 * 3600.0
    allowed_targets: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_write_backlog: int = 10_000
    run_timeout: float = 60.0
    run_concurrency: int = 16
    # Runs and deliveries are claimed for lease_seconds; the process renews its leases every
    # heartbeat_seconds while the work is alive, so a dead process's work is taken over soon.
    lease_seconds: float = 10.0
    heartbeat_seconds: float = 2.0
    poll_interval: float = 1.0
    log_format: str = "auto"
    log_level: str = "info"
    flows_path: str = ""
    dedup_window_seconds: float = 24 * 3600.0
    # Retention (gateway/store/retention.py), in days, fractions accepted; 0 keeps forever.
    # Settled deliveries and finished runs with their triggers go after retention_days.
    retention_days: float = 30.0
    rejected_retention_days: float = 7.0  # triggers that failed verification
    event_retention_days: float = 7.0  # the event logs of finished runs (the runs stay)
    bin_keep_captures: int = 500  # the newest requests each /inspect bin keeps
    prune_interval: float = 300.0  # seconds between background prunes; 0: only `hookgate prune`
    prune_batch: int = 500  # rows deleted per transaction, so a prune never holds the writer long
    flows: Mapping[str, FlowSettings] = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:
        shown = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in _SECRET_FIELDS and value:
                value = "***"
            elif field.name == "database_url":
                value = store.without_password(value)
            shown.append(f"{field.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def __post_init__(self) -> None:
        log.remember_secrets(*self.secret_values())

    def secret_values(self) -> list[str]:
        """Every configured secret, so that logs can mask it wherever it shows up."""
        values = [self.api_key, self.signing_secret, *self.secret_key.split(",")]
        for flow in self.flows.values():
            values += [flow.secret, flow.api_key]
            if isinstance(flow.headers, Mapping):
                values += [v for name, v in flow.headers.items() if log.is_secret_name(name)]
        return [value.strip() for value in values if value.strip()]

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def load_settings(
    path: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the TOML file (``GATEWAY_CONFIG`` or ``path``), then apply ``GATEWAY_*`` overrides."""
    env = os.environ if environ is None else environ
    config_path = Path(path or env.get("GATEWAY_CONFIG") or DEFAULT_CONFIG)
    raw: dict[str, Any] = {}
    if config_path.exists():
        with config_path.open("rb") as fh:
            raw = tomllib.load(fh)
    elif path is not None or "GATEWAY_CONFIG" in env:
        raise errors.ConfigError(f"config file not found: {config_path}")

    values: dict[str, Any] = {}
    types = {f.name: f.type for f in dataclasses.fields(Settings)}
    for name, value in raw.items():
        if name == "flows":
            values["flows"] = _parse_flows(value, env)
        elif name in types:
            values[name] = _coerce(name, value)
        elif name in _REPLACED:
            raise errors.ConfigError(f"{name} in {config_path}: {_REPLACED[name]}")
        else:
            raise errors.ConfigError(f"unknown setting {name!r} in {config_path}")
    for name in types:
        key = f"GATEWAY_{name.upper()}"
        if name != "flows" and key in env:
            values[name] = _coerce(name, env[key])
    values["flows_path"] = str((config_path.parent / values.get("flows_path", "")).resolve())
    settings = Settings(**values)
    validate(settings)
    if "signing_secret" not in values:
        settings = settings.replace(signing_secret=_local_signing_secret(settings))
    return settings


def _local_signing_secret(settings: Settings) -> str:
    """None configured: this install's own, generated on first need beside the database."""
    directory = store.local_state_dir(settings.database_url)
    return localsecrets.read_or_create(directory, "signing_secret", signing.new_secret)


def validate(settings: Settings) -> None:
    if settings.signing_secret:
        try:
            signing.secret_key(settings.signing_secret)
        except ValueError as exc:
            raise errors.ConfigError(f"signing_secret: {exc}") from None
    try:
        secretbox.parse_keys(settings.secret_key)
    except ValueError as exc:
        raise errors.ConfigError(f"secret_key: {exc}") from None
    if not settings.retry_schedule:
        raise errors.ConfigError("retry_schedule must list at least one delay")
    if any(delay < 0 for delay in settings.retry_schedule):
        raise errors.ConfigError("retry_schedule delays must not be negative")
    if not 0 <= settings.retry_jitter < 1:
        raise errors.ConfigError("retry_jitter must be in [0, 1)")
    store.backend_of(settings.database_url)
    for name in ("header_read_timeout", "body_read_timeout"):
        if not 0 < getattr(settings, name) < math.inf:
            raise errors.ConfigError(f"{name} must be a positive number of seconds")
    bad_hosts = [entry for entry in settings.allowed_hosts if not crosssite.valid_host_entry(entry)]
    if bad_hosts:
        raise errors.ConfigError(
            f"allowed_hosts: {', '.join(bad_hosts)}: expected host names without scheme or port"
        )
    try:
        check_timeout(settings.delivery_timeout)
    except ValueError as exc:
        raise errors.ConfigError(f"delivery_timeout: {exc}") from None
    _check_leases(settings.lease_seconds, settings.heartbeat_seconds)
    _check_retention(settings)


def _check_retention(settings: Settings) -> None:
    for name in ("retention_days", "rejected_retention_days", "event_retention_days"):
        if not 0 <= getattr(settings, name) < math.inf:
            raise errors.ConfigError(f"{name} must be a number of days, 0 keeping forever")
    if not 0 <= settings.prune_interval < math.inf:
        raise errors.ConfigError("prune_interval must be seconds, 0 turning background pruning off")
    if settings.bin_keep_captures < 1:
        raise errors.ConfigError("bin_keep_captures must be at least 1")
    if settings.prune_batch < 1:
        raise errors.ConfigError("prune_batch must be at least 1")


def _check_leases(lease: float, heartbeat: float) -> None:
    """A lease outlives a missed heartbeat: renewed at least twice before it would lapse."""
    if not 0 < lease < math.inf:
        raise errors.ConfigError("lease_seconds must be a positive number of seconds")
    if not 0 < heartbeat < lease / 2:
        raise errors.ConfigError(
            f"heartbeat_seconds ({heartbeat:g}) must be above 0 and below half of lease_seconds"
            f" ({lease:g}), so that a lease survives a missed heartbeat"
        )


def _coerce(name: str, value: Any) -> Any:
    default = getattr(Settings, name, None)
    kind = type(default) if default is not None else str
    if name in _HOST_LISTS:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise errors.ConfigError(
                f"{name}: expected a list of {_HOST_LISTS[name]}, got {value!r}"
            )
        return tuple(item.strip() for item in items if item.strip())
    if name == "retry_schedule":
        items = value.split(",") if isinstance(value, str) else value
        try:
            return tuple(float(item) for item in items if str(item).strip())
        except (TypeError, ValueError):
            raise errors.ConfigError(
                f"retry_schedule: expected seconds like 1,2,4, got {value!r}"
            ) from None
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise errors.ConfigError(f"{name}: expected true or false, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise errors.ConfigError(f"{name}: expected {kind.__name__}, got {value!r}") from None


def _parse_flows(raw: Any, env: Mapping[str, str]) -> dict[str, FlowSettings]:
    if not isinstance(raw, dict):
        raise errors.ConfigError("[flows] must be a table of [flows.<id>] tables")
    flows = {}
    for flow_id, spec in raw.items():
        if isinstance(spec, str):
            spec = {"target": spec}
        if not isinstance(spec, dict):
            raise errors.ConfigError(f"flows.{flow_id}: needs target = 'module:attribute'")
        try:
            flow = FlowSettings(**spec)
        except TypeError as exc:
            raise errors.ConfigError(f"flows.{flow_id}: {exc}") from None
        flow = _flow_kind(flow_id, flow, env)
        flows[flow_id] = _flow_verification(flow_id, flow, env)
    _check_endpoint_names(flows)
    return flows


FLOW_KINDS = ("python", "relay", "forward")


def _flow_kind(flow_id: str, flow: FlowSettings, env: Mapping[str, str]) -> FlowSettings:
    """A python flow needs a target; a relay needs an http(s) url, string headers and its key."""
    if flow.kind not in FLOW_KINDS:
        raise errors.ConfigError(f"flows.{flow_id}.kind: expected one of {', '.join(FLOW_KINDS)}")
    if flow.kind == "python":
        if not flow.target:
            raise errors.ConfigError(f"flows.{flow_id}: needs target = 'module:attribute'")
        return flow
    if flow.kind == "forward":  # gateway/flows/forward.py: the run's output is the request
        if flow.target or flow.url:
            raise errors.ConfigError(f"flows.{flow_id}: a forward flow takes no target nor url")
        return flow
    if not flow.url.startswith(("http://", "https://")):
        raise errors.ConfigError(f"flows.{flow_id}.url: a relay needs an http(s) URL")
    if not isinstance(flow.headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in flow.headers.items()
    ):
        raise errors.ConfigError(f"flows.{flow_id}.headers: expected a table of strings")
    if not isinstance(flow.retries, int) or flow.retries < 1:
        raise errors.ConfigError(f"flows.{flow_id}.retries: expected an integer >= 1")
    if flow.api_key_env:
        key = _from_env(flow_id, "api_key", flow.api_key, flow.api_key_env, env)
        flow = dataclasses.replace(flow, api_key=key)
    return flow


def _from_env(flow_id: str, name: str, given: str, variable: str, env: Mapping[str, str]) -> str:
    """A flow's secret named by ``<name>_env``: read now, so a missing variable stops start-up."""
    if given:
        raise errors.ConfigError(f"flows.{flow_id}: set {name} or {name}_env, not both")
    value = env.get(variable, "")
    if not value:
        raise errors.ConfigError(
            f"flows.{flow_id}.{name}_env: environment variable {variable} is not set"
        )
    return value


def _check_endpoint_names(flows: Mapping[str, FlowSettings]) -> None:
    """Each ``endpoint_name`` matches ``[A-Za-z0-9_-]+`` and names one flow only."""
    taken: dict[str, str] = {}
    for flow_id, flow in flows.items():
        name = flow.endpoint_name
        if not name:
            continue
        if not _ENDPOINT_NAME.fullmatch(name):
            raise errors.ConfigError(f"flows.{flow_id}.endpoint_name: must match [A-Za-z0-9_-]+")
        other = taken.get(name) or (name if name in flows and name != flow_id else None)
        if other:
            raise errors.ConfigError(
                f"flows.{flow_id}.endpoint_name: {name!r} already names flow {other!r}"
            )
        taken[name] = flow_id


def _flow_verification(flow_id: str, flow: FlowSettings, env: Mapping[str, str]) -> FlowSettings:
    """Resolve ``secret_env`` now (so a missing variable stops start-up) and check the scheme."""
    if flow.verify != verification.NONE and flow.verify not in verification.SCHEMES:
        choices = ", ".join((verification.NONE, *verification.SCHEMES))
        raise errors.ConfigError(f"flows.{flow_id}.verify: expected one of {choices}")
    if flow.secret_env:
        secret = _from_env(flow_id, "secret", flow.secret, flow.secret_env, env)
        flow = dataclasses.replace(flow, secret=secret)
    if flow.verify != verification.NONE:
        try:
            verification.check_secret(flow.verify, flow.secret)
        except ValueError as exc:
            raise errors.ConfigError(f"flows.{flow_id}.secret: {exc}") from None
    return flow
