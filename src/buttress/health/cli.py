"""``buttress health``: probe a health endpoint from the command line.

``buttress health probe URL`` is an exec probe for images without curl (Docker ``HEALTHCHECK``,
Kubernetes ``exec`` probes): it GETs the URL and exits 0 when the answer is 2xx/3xx (``pass`` or
``warn``), 1 otherwise (``fail``, another status, no answer in time).  It prints one line:
``pass 200 http://...`` (with ``--verbose``, the failing checks' keys too).

The URL is printed with its secrets redacted: ``user:password@`` as ``***@``, and the value of every
query-string parameter as ``***`` (``?token=***&key=***``): probe URLs often carry a token there,
and the probe's output ends up in container logs.
"""

from __future__ import annotations

import json
import math
from urllib.parse import urlsplit

import click

from buttress.errors import ConfigError, MissingExtra
from buttress.state.urls import redact_url

from .builtin import check_http_url

__all__ = ["health", "shown_url"]


def shown_url(url: str) -> str:
    """``url`` as the probe prints it: user information and every query value as ``***``."""
    shown = redact_url(url)
    try:
        query = urlsplit(shown).query
    except ValueError:
        query = shown.partition("?")[2].partition("#")[0]
    if not query:
        return shown
    redacted = "&".join(
        f"{part.partition('=')[0]}=***" if part else part for part in query.split("&")
    )
    head, _, rest = shown.partition("?")
    fragment = rest[len(query) :]  # "#..." or nothing
    return f"{head}?{redacted}{fragment}"


@click.group()
def health() -> None:
    """Health endpoints: probe them from the command line."""


@health.command()
@click.argument("url")
@click.option(
    "--timeout",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds to wait for the answer (the kubelet's default timeoutSeconds is 1).",
)
@click.option("--verbose", "-v", is_flag=True, help="Also print the keys of non-passing checks.")
def probe(url: str, timeout: float, verbose: bool) -> None:
    """GET URL; exit 0 on 2xx/3xx (pass, warn), 1 otherwise."""
    shown = shown_url(url)  # user:password@ and query values are printed as ***
    try:
        check_http_url(url)  # a URL that does not parse, a bad port: one message, exit status 2
    except ConfigError as e:
        raise ConfigError("url", shown, e.reason) from None
    if not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError("timeout", timeout, "must be a number of seconds > 0")
    try:
        import httpx
    except ImportError:
        raise MissingExtra("buttress health probe", "health", "httpx") from None
    try:
        r = httpx.get(url, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as e:
        click.echo(f"fail no answer ({type(e).__name__}) {shown}")
        raise SystemExit(1) from None
    status = "pass" if r.status_code < 400 else "fail"
    detail = ""
    if "json" in r.headers.get("content-type", ""):
        try:
            doc = json.loads(r.content)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and doc.get("status") in ("pass", "warn", "fail"):
            status = str(doc["status"])
            if verbose and isinstance(doc.get("checks"), dict):
                bad = [
                    f"{key}={item.get('status')}"
                    for key, items in doc["checks"].items()
                    if isinstance(items, list)
                    for item in items
                    if isinstance(item, dict) and item.get("status") != "pass"
                ]
                if bad:
                    detail = " [" + ", ".join(bad) + "]"
    click.echo(f"{status} {r.status_code} {shown}{detail}")
    if r.status_code >= 400:
        raise SystemExit(1)
