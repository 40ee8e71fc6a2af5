"""Redis URLs: checked when a component is built, and never shown with their secrets.

:func:`check_redis_url` reads every part of a ``redis://``, ``rediss://`` or ``unix://`` URL the
way redis-py will (redis-py itself reads some parts only when it first connects, and ignores
others: ``redis://host/notadb`` silently means database 0), so a typo fails at build time with a
:class:`~buttress.errors.ConfigError` rather than at the first decision, in the middle of traffic.

:func:`redact_url` is what every message, ``repr`` and error shows instead of a URL: the user
information (``user:password@``) and a ``password=`` query parameter are replaced by ``***``.  It
never raises, so it also serves URLs that do not parse.

Standard library only: :mod:`buttress.health` and :mod:`buttress.state` both use it.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from buttress.errors import ConfigError

__all__ = ["REDIS_SCHEMES", "check_redis_url", "redact_url"]

REDIS_SCHEMES = ("redis", "rediss", "unix")
"""The URL schemes redis-py connects with: TCP, TLS, and a Unix domain socket."""

_SECRET_QUERY = re.compile(r"(?i)((?:^|[?&;])password=)[^&;#]*")


def redact_url(url: object) -> str:
    """``url`` with its secrets replaced by ``***``: the user information before ``@`` in the
    authority, and the value of a ``password=`` query parameter.  Anything that is not a string is
    shown as its type name.  Never raises.

    >>> redact_url("redis://:hunter2@db.internal:6379/0")
    'redis://***@db.internal:6379/0'
    """
    if not isinstance(url, str):
        return f"<{type(url).__name__}>"
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    cut = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if 0 <= i < cut:
            cut = i
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    tail = _SECRET_QUERY.sub(r"\1***", tail)
    return f"{scheme}{sep}{authority}{tail}"


def _db(value: str, url: str, where: str, parameter: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise ConfigError(
            parameter,
            redact_url(url),
            f"the database {where} must be a number >= 0 (redis://host:6379/0), got {value!r}",
        )
    return int(value)


def check_redis_url(url: object, parameter: str = "url") -> str:
    """Check a Redis URL part by part; return it unchanged.

    * the scheme is ``redis``, ``rediss`` or ``unix``;
    * ``redis``/``rediss``: the port, when given, is an integer in 1..65535; the path is empty,
      ``/`` or ``/<db>`` with ``db`` an integer >= 0;
    * ``unix``: the socket path is present (``unix:///run/redis.sock``);
    * ``?db=`` when given is an integer >= 0.

    :raises ConfigError: naming ``parameter``, with the URL redacted (:func:`redact_url`).
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(
            parameter,
            redact_url(url),
            "must be a Redis URL such as redis://127.0.0.1:6379/0 (or rediss://, unix://)",
        )
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed IPv6 bracket, for one
        raise ConfigError(parameter, shown, f"is not a URL that parses ({exc})") from None
    if parts.scheme not in REDIS_SCHEMES:
        raise ConfigError(
            parameter, shown, "must be a redis://, rediss:// or unix:// URL (redis://host:6379/0)"
        )
    if parts.scheme == "unix":
        if not parts.path or parts.path == "/":
            raise ConfigError(
                parameter, shown, "a unix:// URL needs the socket's path (unix:///run/redis.sock)"
            )
    else:
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(
                parameter, shown, "the port must be an integer in 1..65535 (redis://host:6379/0)"
            ) from None
        if port == 0:
            raise ConfigError(parameter, shown, "the port must be an integer in 1..65535")
        path = parts.path.strip("/")
        if path:
            _db(path, url, "in the path", parameter)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "db":
            _db(value, url, "in ?db=", parameter)
    return url
