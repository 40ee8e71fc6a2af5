"""The ``health:`` section of ``reliability.yaml``: probes and checks, declared.

.. code-block:: yaml

    health:
      service_id: payments
      version: "1.4.0"
      probe_timeouts: {readiness: 1s, liveness: 1s}
      groups: {batch: 5s}                 # user groups and their probe timeouts
      drain: {delay: 5s, grace: 20s}
      checks:
        - {type: postgres, name: db, dsn_env: DATABASE_URL, ttl: 2s}
        - {type: redis, name: cache, url_env: REDIS_URL, critical: false}
        - {type: http, name: rates, url: "http://rates.internal/health/ready", timeout: 500ms}
        - {type: tcp, name: smtp, host: mail.internal, port: 25, groups: [batch]}
        - {type: disk, path: /var/lib/app, warn_below: 0.1, fail_below: 0.05}
        - {type: event_loop_lag, groups: [liveness], fail_after: 2s}
        - {type: breaker, breaker: payments}   # a breaker you pass to build_health(breakers=...)

Secrets are not written in the file: ``dsn_env`` / ``url_env`` name environment variables read when
the registry is built (``dsn`` / ``url`` are accepted for local setups).  :func:`build_health`
turns the section into a :class:`~buttress.health.registry.HealthRegistry`; every parameter the
checks refuse (unknown group, a timeout over the probe timeout, a URL that does not parse) becomes
a :class:`~buttress.errors.SpecError` with the file, line and field.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from buttress.errors import ConfigError, SpecError
from buttress.spec.sections import register_section
from buttress.spec.types import Duration, FiniteFloat, PositiveDuration
from buttress.spec.validation import located
from buttress.state.urls import check_redis_url

from . import builtin
from .checks import DEFAULT_TTL, Check, CheckOptions
from .drain import DEFAULT_DRAIN_DELAY, DEFAULT_GRACE, Drainer
from .registry import HealthRegistry

__all__ = ["CheckSpec", "DrainSpec", "HealthSpec", "build_drainer", "build_health"]


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="Component name (default: the type's name).")
    measurement: str | None = Field(None, description="Measurement name (default per type).")
    groups: list[str] = Field(["readiness"], min_length=1, description="Groups it belongs to.")
    critical: bool | None = Field(
        None, description="False: a failure only warns (default per type)."
    )
    timeout: PositiveDuration | None = Field(None, description="Default 0.8 x the probe timeout.")
    ttl: Duration = Field(DEFAULT_TTL, description="Seconds a result is reused.")
    refresh: PositiveDuration | None = Field(None, description="Background refresh interval.")
    component_id: str | None = Field(None, description="componentId in health+json.")

    def options(self) -> CheckOptions:
        opts: CheckOptions = {"groups": list(self.groups), "ttl": self.ttl}
        if self.measurement is not None:
            opts["measurement"] = self.measurement
        if self.critical is not None:
            opts["critical"] = self.critical
        if self.timeout is not None:
            opts["timeout"] = self.timeout
        if self.refresh is not None:
            opts["refresh"] = self.refresh
        if self.component_id is not None:
            opts["component_id"] = self.component_id
        return opts


class TcpCheckSpec(_Common):
    type: Literal["tcp"]
    host: str
    port: int = Field(ge=1, le=65535)


class HttpCheckSpec(_Common):
    type: Literal["http"]
    url: str
    expect: list[int] | None = Field(None, description="Passing status codes (default 200-399).")


class RedisCheckSpec(_Common):
    type: Literal["redis"]
    url: str | None = None
    url_env: str | None = Field(None, description="Environment variable holding the URL.")


class PostgresCheckSpec(_Common):
    type: Literal["postgres"]
    dsn: str | None = None
    dsn_env: str | None = Field(None, description="Environment variable holding the DSN.")
    query: str = "SELECT 1"


class SqliteCheckSpec(_Common):
    type: Literal["sqlite"]
    path: str
    query: str = "SELECT 1"


class DiskCheckSpec(_Common):
    type: Literal["disk"]
    path: str = "/"
    warn_below: FiniteFloat = 0.10
    fail_below: FiniteFloat = 0.05
    min_free_bytes: int = 0


class LoopLagCheckSpec(_Common):
    type: Literal["event_loop_lag"]
    warn_after: PositiveDuration = 0.1
    fail_after: PositiveDuration = 1.0
    interval: PositiveDuration = 0.05


class BreakerCheckSpec(_Common):
    type: Literal["breaker"]
    breaker: str = Field(description="Key of the breaker in build_health(breakers=...).")


CheckSpec = Annotated[
    TcpCheckSpec
    | HttpCheckSpec
    | RedisCheckSpec
    | PostgresCheckSpec
    | SqliteCheckSpec
    | DiskCheckSpec
    | LoopLagCheckSpec
    | BreakerCheckSpec,
    Field(discriminator="type"),
]


class DrainSpec(BaseModel):
    """Drain on SIGTERM (see :mod:`buttress.health.drain`)."""

    model_config = ConfigDict(extra="forbid")

    delay: Duration = Field(DEFAULT_DRAIN_DELAY, description="SIGTERM -> stop accepting.")
    grace: Duration = Field(DEFAULT_GRACE, description="Time in-flight requests get after that.")


class HealthSpec(BaseModel):
    """The ``health:`` section."""

    model_config = ConfigDict(extra="forbid")

    service_id: str | None = None
    version: str | None = None
    release_id: str | None = None
    description: str | None = None
    expose_errors: bool = Field(False, description="Render exception text (internal use only).")
    probe_timeouts: dict[str, PositiveDuration] = Field(
        default_factory=dict, description="Probe timeout per built-in group (default 1 s)."
    )
    groups: dict[str, PositiveDuration] = Field(
        default_factory=dict, description="User groups and their probe timeouts."
    )
    drain_groups: list[str] = Field(["readiness"], description="Groups that fail while draining.")
    drain: DrainSpec | None = None
    checks: list[CheckSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _builds(self) -> HealthSpec:
        # What build_health() would refuse, checked when the file is validated (`buttress spec
        # validate` too): groups, probe timeouts, URLs, ports, thresholds.  Not checked here: what
        # depends on the process that builds it (environment variables, breakers, paths).
        _dry_build(self)
        return self


_LOC = ("health",)


def _secret(
    value: str | None,
    env_name: str | None,
    field: str,
    *,
    env: Mapping[str, str],
    where: tuple[str | int, ...],
    err: Any,
) -> str:
    if (value is None) == (env_name is None):
        raise err(where, f"give exactly one of {field} or {field}_env")
    if env_name is not None:
        found = env.get(env_name)
        if not found:
            raise err((*where, f"{field}_env"), f"environment variable {env_name!r} is not set")
        return found
    assert value is not None
    return value


def _check(
    c: Any,
    env: Mapping[str, str],
    breakers: Mapping[str, object],
    where: tuple[str | int, ...],
    err: Any,
) -> Check:
    opts = c.options()
    name = {"name": c.name} if c.name is not None else {}
    if isinstance(c, TcpCheckSpec):
        return builtin.tcp_check(c.host, c.port, **name, **opts)
    if isinstance(c, HttpCheckSpec):
        extra = {"expect": c.expect} if c.expect is not None else {}
        return builtin.http_check(c.url, **name, **extra, **opts)  # type: ignore[arg-type]
    if isinstance(c, RedisCheckSpec):
        url = _secret(c.url, c.url_env, "url", env=env, where=where, err=err)
        return builtin.redis_check(url, **name, **opts)
    if isinstance(c, PostgresCheckSpec):
        dsn = _secret(c.dsn, c.dsn_env, "dsn", env=env, where=where, err=err)
        return builtin.postgres_check(dsn, query=c.query, **name, **opts)
    if isinstance(c, SqliteCheckSpec):
        return builtin.sqlite_check(c.path, query=c.query, **name, **opts)
    if isinstance(c, DiskCheckSpec):
        return builtin.disk_space_check(
            c.path,
            warn_below=c.warn_below,
            fail_below=c.fail_below,
            min_free_bytes=c.min_free_bytes,
            **name,
            **opts,
        )
    if isinstance(c, LoopLagCheckSpec):
        return builtin.event_loop_lag_check(
            warn_after=c.warn_after, fail_after=c.fail_after, interval=c.interval, **name, **opts
        )
    assert isinstance(c, BreakerCheckSpec)
    if c.breaker not in breakers:
        known = ", ".join(sorted(breakers)) or "none were passed to build_health(breakers=...)"
        raise err((*where, "breaker"), f"unknown breaker {c.breaker!r} (known: {known})")
    return builtin.breaker_check(breakers[c.breaker], name=c.name, **opts)


# The name and measurement each check type's builder gives a check by default (for duplicates).
_KEYS = {
    "tcp": ("tcp", "connect"),
    "http": ("http", "responseTime"),
    "redis": ("redis", "ping"),
    "postgres": ("postgres", "query"),
    "sqlite": ("sqlite", "query"),
    "disk": ("disk", "utilization"),
    "event_loop_lag": ("event_loop", "lag"),
    "breaker": ("breaker", "state"),
}


def _noop() -> None:
    return None


def _check_parameters(c: Any) -> None:
    """The parameter checks of the check's builder that need neither an extra nor the host."""
    if isinstance(c, TcpCheckSpec):
        builtin.tcp_check(c.host, c.port)
    elif isinstance(c, HttpCheckSpec):
        builtin.check_http_url(c.url)
        if c.expect is not None and (
            not c.expect or not all(100 <= code < 600 for code in c.expect)
        ):
            raise ConfigError("expect", c.expect, "must be HTTP status codes (100..599)")
    elif isinstance(c, SqliteCheckSpec):
        builtin.sqlite_check(c.path, query=c.query)
    elif isinstance(c, PostgresCheckSpec) and not c.query.strip():
        raise ConfigError("query", c.query, "must be a non-empty SQL statement")
    elif isinstance(c, DiskCheckSpec):
        for param, v in (("warn_below", c.warn_below), ("fail_below", c.fail_below)):
            if not 0 <= v < 1:
                raise ConfigError(param, v, "must be a share of the disk in [0, 1)")
        if c.fail_below > c.warn_below:
            raise ConfigError("fail_below", c.fail_below, f"must be <= warn_below ({c.warn_below})")
        if c.min_free_bytes < 0:
            raise ConfigError("min_free_bytes", c.min_free_bytes, "must be an integer >= 0")
    elif isinstance(c, LoopLagCheckSpec):
        builtin.event_loop_lag_check(
            warn_after=c.warn_after, fail_after=c.fail_after, interval=c.interval
        )


def _registry(
    section: HealthSpec, err: Callable[[tuple[str | int, ...], str], Exception]
) -> HealthRegistry:
    """The section's registry with its groups and no checks yet; ``err`` makes the located error
    for a refused value (relative to the section), so that the dry build and the real one agree."""
    try:
        registry = HealthRegistry(
            service_id=section.service_id,
            version=section.version,
            release_id=section.release_id,
            description=section.description,
            probe_timeouts=section.probe_timeouts,
            drain_groups=(),
            expose_errors=section.expose_errors,
        )
    except ConfigError as e:
        raise err(("probe_timeouts",), str(e)) from None
    for g, t in section.groups.items():
        try:
            registry.add_group(g, probe_timeout=t)
        except ConfigError as e:
            raise err(("groups", g), str(e)) from None
    for g in section.drain_groups:
        try:
            registry.check_group("drain_groups", g)
        except ConfigError as e:
            raise err(("drain_groups",), str(e)) from None
    return registry


def _check_field(c: Any, e: ConfigError) -> str | None:
    """The check's field that ``e`` is about, if it names one (``target`` is the url)."""
    param = "url" if e.parameter == "target" else e.parameter
    return param if param in type(c).model_fields else None


def _dry_build(section: HealthSpec) -> None:
    """Build the registry with stand-in checks, raising :func:`located` errors (relative to the
    section) for whatever :func:`build_health` would refuse in the file itself."""
    registry = _registry(section, located)
    for i, c in enumerate(section.checks):
        where: tuple[str | int, ...] = ("checks", i)
        for secret in ("url", "dsn"):
            if isinstance(c, RedisCheckSpec | PostgresCheckSpec) and hasattr(c, f"{secret}_env"):
                value, env_name = getattr(c, secret), getattr(c, f"{secret}_env")
                if (value is None) == (env_name is None):
                    raise located(where, f"give exactly one of {secret} or {secret}_env")
        try:
            if isinstance(c, RedisCheckSpec) and c.url is not None:
                check_redis_url(c.url, "url")
            _check_parameters(c)
            name, measurement = _KEYS[c.type]
            opts = c.options()
            opts.setdefault("measurement", measurement)
            if c.type == "breaker" and c.name is None:
                name = f"breaker-{i}"  # named after the breaker passed at build time
            registry.add(Check(c.name or name, _noop, **opts))
        except ConfigError as e:
            field = _check_field(c, e)
            raise located((*where, field) if field else where, str(e)) from None


def build_health(
    spec: Any, *, env: Mapping[str, str] | None = None, breakers: Mapping[str, object] | None = None
) -> HealthRegistry:
    """A :class:`HealthRegistry` from a :class:`HealthSpec` or a whole ``ReliabilitySpec`` (its
    ``health:`` section; an empty registry when there is none).

    :param env: where ``*_env`` names are looked up (default :data:`os.environ`).
    :param breakers: circuit breakers that ``type: breaker`` checks refer to by key.
    :raises SpecError: for any value the checks refuse, with the file, line and field.
    """
    doc = getattr(spec, "document", None)
    section = getattr(spec, "health", spec)
    if section is None:
        return HealthRegistry()
    if not isinstance(section, HealthSpec):
        raise ConfigError("spec", type(spec).__name__, "must be a HealthSpec or a ReliabilitySpec")

    def err(loc: tuple[str | int, ...], message: str) -> SpecError:
        if doc is not None:
            return doc.error((*_LOC, *loc), message)  # type: ignore[no-any-return]
        return SpecError(message, field=".".join(str(p) for p in (*_LOC, *loc)))

    registry = _registry(section, err)
    registry.drain_groups = tuple(section.drain_groups)
    env = os.environ if env is None else env
    for i, c in enumerate(section.checks):
        where: tuple[str | int, ...] = ("checks", i)
        try:
            registry.add(_check(c, env, breakers or {}, where, err))
        except ConfigError as e:
            field = _check_field(c, e)
            if field is not None and getattr(c, f"{field}_env", None):
                field = f"{field}_env"  # the value came from the environment
            raise err((*where, field) if field else where, str(e)) from None
    return registry


def build_drainer(spec: Any, registry: HealthRegistry) -> Drainer:
    """A :class:`Drainer` for ``registry`` with the section's ``drain:`` settings (or defaults)."""
    section = getattr(spec, "health", spec)
    drain = section.drain if isinstance(section, HealthSpec) else None
    if drain is None:
        return Drainer(registry)
    return Drainer(registry, delay=drain.delay, grace=drain.grace)


register_section(
    "health", HealthSpec, description="Health checks, probe groups and drain (see docs/health.md)."
)
