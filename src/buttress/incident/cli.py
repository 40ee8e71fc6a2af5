"""``buttress incident``: serve the receiver, list and show incidents, take lifecycle steps, post
deploy markers.  The lifecycle commands work on the store file directly (no server needed)."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from buttress.errors import ButtressError, ConfigError

from .model import stamp
from .store import DEFAULT_STORE, IncidentStore

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = ["incident"]

_store_option = click.option(
    "--store",
    default=DEFAULT_STORE,
    show_default=True,
    envvar="BUTTRESS_INCIDENT_DB",
    type=click.Path(dir_okay=True),
    help="The incident store (SQLite; env BUTTRESS_INCIDENT_DB).",
)


def _open(store: str) -> IncidentStore:
    if os.path.isdir(store):
        raise ConfigError("--store", store, "is a directory; give the SQLite file")
    return IncidentStore(store)


@click.group()
def incident() -> None:
    """Incidents: receive alerts, acknowledge, mitigate, resolve."""


@incident.command()
@_store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=9094, show_default=True, type=int, help="TCP port (0: any free).")
@click.option(
    "--token",
    envvar="BUTTRESS_INCIDENT_TOKEN",
    default=None,
    help="Bearer token every request must carry (env BUTTRESS_INCIDENT_TOKEN); "
    "required beyond loopback.",
)
@click.option("--notify-webhook", multiple=True, help="POST each incident step here (repeatable).")
@click.option("--smtp", default=None, help="HOST:PORT of the SMTP server for email notifications.")
@click.option("--mail-from", default="buttress@localhost", show_default=True, help="Sender.")
@click.option("--mail-to", multiple=True, help="Email recipient (repeatable).")
@click.option(
    "--notify-burst", default=5, show_default=True, type=click.IntRange(min=1),
    help="Messages sent at once before the rate limit applies.",
)  # fmt: skip
@click.option(
    "--notify-per-hour", default=60.0, show_default=True, type=click.FloatRange(min=0.001),
    help="Messages per hour after the burst.",
)  # fmt: skip
@click.option(
    "--slo-store", default=None, envvar="BUTTRESS_SLO_DB", type=click.Path(dir_okay=False),
    help="SLI store, for the SLO impact in notifications (with --spec).",
)  # fmt: skip
@click.option(
    "--spec", default=None, type=click.Path(dir_okay=False), help="SLOs (with --slo-store)."
)
def serve(
    *,
    store: str,
    host: str,
    port: int,
    token: str | None,
    notify_webhook: tuple[str, ...],
    smtp: str | None,
    mail_from: str,
    mail_to: tuple[str, ...],
    notify_burst: int,
    notify_per_hour: float,
    slo_store: str | None,
    spec: str | None,
) -> None:
    """Serve the webhook receiver and the incident API (and notify stakeholders)."""
    from .receiver import check_bind, create_app

    if not 0 <= port <= 65535:
        raise ConfigError("--port", port, "must be between 0 and 65535")
    check_bind(host, token)
    try:
        import uvicorn
    except ImportError:
        from buttress.errors import MissingExtra

        raise MissingExtra("buttress incident serve", "incident", "uvicorn") from None
    channels = _channels(notify_webhook, smtp, mail_from, mail_to)
    db = _open(store)
    notifier = None
    if channels:
        from .notify import Notifier

        notifier = Notifier(
            db,
            channels,
            burst=notify_burst,
            rate=notify_per_hour / 3600.0,
            impact=_impact_source(slo_store, spec),
        )
    app = create_app(db, token=token, notifier=notifier)
    if port == 0:
        import socket

        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    click.echo(f"buttress incident receiver on http://{host}:{port}/ (store {store})", err=True)
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        pass
    finally:
        if notifier is not None:
            notifier.close()
        db.close()


def _channels(
    webhooks: tuple[str, ...], smtp: str | None, sender: str, to: tuple[str, ...]
) -> list[Any]:
    from .notify import EmailChannel, WebhookChannel

    channels: list[Any] = []
    for url in webhooks:
        try:
            channels.append(WebhookChannel(url))
        except ConfigError as e:
            raise ConfigError("--notify-webhook", url, e.reason) from None
    if smtp is not None:
        host, _, port_text = smtp.rpartition(":")
        if not host or not port_text.isdigit():
            raise ConfigError("--smtp", smtp, "must be HOST:PORT")
        if not to:
            raise ConfigError("--mail-to", "", "give at least one recipient with --smtp")
        channels.append(EmailChannel(host, int(port_text), sender=sender, to=list(to)))
    elif to:
        raise ConfigError("--mail-to", ",".join(to), "needs --smtp HOST:PORT")
    return channels


def _impact_source(slo_store: str | None, spec: str | None) -> Any:
    """A function computing an incident's SLO impact, or ``None`` without both files."""
    if slo_store is None or spec is None:
        return None
    from buttress.slo.load import load_slos
    from buttress.slo.store import SLIStore

    from .timeline import DEFAULT_BEFORE, slo_impact

    slos = load_slos(spec)
    if not os.path.isfile(slo_store):
        raise ConfigError("--slo-store", slo_store, "no such file")

    def impact(inc: Any) -> Any:
        end = inc.resolved if inc.resolved is not None else time.time()
        with SLIStore(slo_store) as sli:
            return slo_impact(slos, sli, inc.started - DEFAULT_BEFORE, end)

    return impact


@incident.command("list")
@_store_option
@click.option("--open", "open_only", is_flag=True, help="Only incidents not yet resolved.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
def list_(*, store: str, open_only: bool, as_json: bool, limit: int) -> None:
    """List incidents, newest first."""
    with _open(store) as db:
        rows = db.incidents(open_only=open_only, limit=limit)
    if as_json:
        for r in rows:
            click.echo(json.dumps(r.to_json(), sort_keys=True))
        return
    if not rows:
        click.echo("no incidents")
        return
    for r in rows:
        click.echo(
            f"#{r.id:<5} {r.state:<12} {stamp(r.detected)}  {r.service}/{r.mode}  {r.title}"
            f"  ({r.notifications} notifications)"
        )


@incident.command()
@_store_option
@click.argument("ident", type=int)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def show(*, store: str, ident: int, as_json: bool) -> None:
    """Show one incident and its log."""
    with _open(store) as db:
        found = db.get(ident)
        log = db.log(ident)
    if as_json:
        out: dict[str, Any] = found.to_json() | {"log": [e.to_json() for e in log]}
        click.echo(json.dumps(out, indent=2, sort_keys=True))
        return
    click.echo(f"incident #{found.id}: {found.title}")
    click.echo(f"  state     {found.state}")
    click.echo(f"  service   {found.service}   mode {found.mode}   severity {found.severity}")
    click.echo(f"  group     {found.group_key}")
    click.echo(f"  started   {stamp(found.started)}")
    click.echo(f"  detected  {stamp(found.detected)}")
    for step in ("acknowledged", "mitigated", "resolved"):
        when = getattr(found, step)
        who = getattr(found, f"{step}_by")
        click.echo(f"  {step:<13}{stamp(when)}" + (f" by {who}" if who else ""))
    click.echo("log:")
    for e in log:
        detail = f" {json.dumps(dict(e.detail), sort_keys=True)}" if e.detail else ""
        click.echo(f"  {stamp(e.time)}  {e.kind:<13} {e.actor}{detail}")


def _step(target: str, help_text: str) -> click.Command:
    @click.command(help=help_text)
    @_store_option
    @click.argument("ident", type=int)
    @click.option("--by", "actor", required=True, help="Who takes the step.")
    @click.option("--note", default="", help="A note for the incident's log.")
    def command(*, store: str, ident: int, actor: str, note: str) -> None:
        with _open(store) as db:
            found = db.transition(ident, target, actor=actor, note=note)
        click.echo(f"incident #{found.id} {target} by {actor}")

    return command


incident.add_command(_step("acknowledged", "Acknowledge an incident."), "ack")
incident.add_command(_step("mitigated", "Mark an incident mitigated."), "mitigate")
incident.add_command(_step("resolved", "Resolve an incident."), "resolve")


@incident.command()
@_store_option
@click.option("--service", required=True, help="The service deployed.")
@click.option("--version", "version", required=True, help="The version deployed.")
@click.option("--by", "actor", default="ci", show_default=True, help="Who deployed.")
def deploy(*, store: str, service: str, version: str, actor: str) -> None:
    """Record a deploy marker (for CI: it shows on incident timelines)."""
    with _open(store) as db:
        marker = db.add_deploy(service, version, actor=actor)
    click.echo(f"deploy #{marker.seq}: {service} {version} at {stamp(marker.time)}")


_slo_store_option = click.option(
    "--slo-store",
    default=None,
    envvar="BUTTRESS_SLO_DB",
    type=click.Path(dir_okay=True),
    help="The SLI store the service records into; its state feed is read too "
    "(env BUTTRESS_SLO_DB).",
)
_spec_option = click.option(
    "--spec",
    type=click.Path(dir_okay=True),
    default=None,
    help="reliability.yaml: its SLOs (impact) and architecture (risk register).",
)


def _paths_option(flag: str, dest: str, help: str) -> Callable[[_F], _F]:
    """A repeatable option naming files or directories of evidence for the timeline."""
    return click.option(flag, dest, multiple=True, type=click.Path(dir_okay=True), help=help)


@dataclass(frozen=True, slots=True)
class _Sources:
    """Where an incident's timeline is read from (the options of ``timeline`` and
    ``postmortem``)."""

    store: str
    ident: int
    slo_store: str | None
    spec: str | None
    journals: tuple[str, ...]
    remediation: tuple[str, ...]
    supervisor: tuple[str, ...]

    def timeline(self) -> Any:
        from .timeline import build_timeline

        sli = _sli_store(self.slo_store)
        with _open(self.store) as db:
            found = db.get(self.ident)
            log = db.log(self.ident)
            deploys = db.deploys()
        try:
            return build_timeline(
                found,
                log,
                deploys=deploys,
                slos=_slos(self.spec),
                sli_store=sli,
                feed=self.slo_store,
                journals=list(self.journals),
                remediation=list(self.remediation),
                supervisor=list(self.supervisor),
                now=db.clock.wall(),
            )
        finally:
            if sli is not None:
                sli.close()


_SOURCE_OPTIONS = (
    _store_option,
    click.argument("ident", type=int),
    _slo_store_option,
    _spec_option,
    _paths_option(
        "--journals", "journals", "Chaos Toolkit journal files or directories (repeatable)."
    ),
    _paths_option(
        "--remediation-journal",
        "remediation",
        "Remediation journals (JSON lines, e.g. .buttress/remediation.jsonl; repeatable).",
    ),
    _paths_option(
        "--supervisor-state",
        "supervisor",
        "Supervisor status files (buttress supervise run --state; repeatable).",
    ),
)


def _with_sources(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the timeline's options, gathered into one ``sources`` argument."""

    @functools.wraps(command)
    def run(*, store: str, ident: int, slo_store: str | None, spec: str | None,
            journals: tuple[str, ...], remediation: tuple[str, ...],
            supervisor: tuple[str, ...], **rest: Any) -> None:  # fmt: skip
        sources = _Sources(store, ident, slo_store, spec, journals, remediation, supervisor)
        command(sources=sources, **rest)

    for option in reversed(_SOURCE_OPTIONS):
        run = option(run)
    return run


def _slos(spec: str | None) -> list[Any]:
    if spec is None:
        return []
    from buttress.slo.load import load_slos

    if os.path.isdir(spec):
        raise ConfigError("--spec", spec, "is a directory; give the reliability.yaml file")
    try:
        return load_slos(spec)
    except ButtressError as e:
        if "slos" not in str(e).lower():
            raise
        return []  # an architecture-only file: no SLO impact


def _sli_store(slo_store: str | None) -> Any:
    if slo_store is None:
        return None
    if not os.path.isfile(slo_store):
        raise ConfigError("--slo-store", slo_store, "no such file")
    from buttress.slo.store import SLIStore

    return SLIStore(slo_store)


@incident.command()
@_with_sources
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def timeline(*, sources: _Sources, as_json: bool) -> None:
    """The incident's timeline: its log, SLO errors and burn, state changes, supervisor and
    remediation actions, chaos, deploys."""
    tl = sources.timeline()
    if as_json:
        click.echo(json.dumps(tl.to_json(), indent=2, sort_keys=True))
        return
    for e in tl.entries:
        click.echo(f"{stamp(e.time)}  {e.source:<9} {e.text}")


@incident.command()
@_with_sources
@click.option("--html", "as_html", is_flag=True, help="HTML instead of Markdown.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write here.")
def postmortem(*, sources: _Sources, as_html: bool, output: str | None) -> None:
    """Draft the incident's postmortem (Google SRE template), Markdown or HTML."""
    from .postmortem import postmortem_context, render_html, render_markdown

    tl = sources.timeline()
    with _open(sources.store) as db:
        items = db.action_items(incident=sources.ident)
    risks = _risks(sources.spec) if sources.spec is not None else []
    context = postmortem_context(tl, items, risks)
    text = render_html(context) if as_html else render_markdown(context)
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


def _risks(spec: str) -> list[Any]:
    import importlib.util

    from .postmortem import load_risks

    # The assessment imports numpy deep inside; name the extra before any work.
    if importlib.util.find_spec("numpy") is None:
        from buttress.errors import MissingExtra

        raise MissingExtra("the risk register (--spec)", "incident", "numpy")

    try:
        return load_risks(spec)
    except ButtressError as e:
        if "architecture" not in str(e).lower():
            raise
        return []  # an SLO-only file: no register to link to


@incident.command()
@_store_option
@click.argument("ident", type=int)
@click.option("--title", required=True, help="What will be done.")
@click.option("--owner", required=True, help="Who owns it.")
@click.option("--risk", required=True, help="The risk register's event it answers (unit:db...).")
@_spec_option
def action(*, store: str, ident: int, title: str, owner: str, risk: str, spec: str | None) -> None:
    """Add an action item to an incident, linked to a risk of the register (checked with
    --spec)."""
    if spec is not None:
        events = sorted({r.event for r in _risks(spec)})
        if risk not in events:
            import difflib

            close = difflib.get_close_matches(risk, events, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError("--risk", risk, f"not an event of the risk register{hint}")
    with _open(store) as db:
        item = db.add_action_item(ident, title, owner=owner, risk=risk)
    click.echo(f"action item #{item.id} on incident #{ident}: {title} ({owner}, risk {risk})")


@incident.command("action-done")
@_store_option
@click.argument("item", type=int)
def action_done(*, store: str, item: int) -> None:
    """Mark an action item done."""
    with _open(store) as db:
        db.close_action_item(item)
    click.echo(f"action item #{item} done")


@incident.command()
@_store_option
@click.option("--since", default=None, help="Start (ISO 8601, Unix seconds, or 30d back).")
@click.option("--until", default=None, help="End (default now).")
@click.option("--by", "key", type=click.Choice(["all", "service", "mode"]), default="all",
              show_default=True, help="Group by service or failure mode.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def stats(*, store: str, since: str | None, until: str | None, key: str, as_json: bool) -> None:
    """Time to detect, acknowledge, mitigate and recover, and time between failures: medians and
    90th percentiles with order-statistic confidence intervals (95 %)."""
    from .analytics import by_group
    from .report import Period, secs

    period = Period.between(since, until)
    with _open(store) as db:
        rows = db.incidents(since=period.since, until=period.until, limit=1_000_000)
    groups = by_group(rows, key=key)
    if as_json:
        out = {g: {m: s.to_json() for m, s in ms.items()} for g, ms in groups.items()}
        click.echo(json.dumps(out, indent=2, sort_keys=True))
        return
    if not groups:
        click.echo("no incidents in the period")
    for group, metrics in groups.items():
        click.echo(f"{group}:")
        for metric, s in metrics.items():
            if s.median is None or s.p90 is None:
                click.echo(f"  {metric:<24} no data")
                continue
            click.echo(
                f"  {metric:<24} median {secs(s.median.value)} "
                f"[{secs(s.median.low)}, {secs(s.median.high)}]  "
                f"p90 {secs(s.p90.value)} [{secs(s.p90.low)}, {secs(s.p90.high)}]  "
                f"mean {secs(s.mean)}  n={s.n}"
            )


@click.command()
@_store_option
@_slo_store_option
@_spec_option
@click.option("--since", default=None, help="Start (ISO 8601, Unix seconds, or 30d back).")
@click.option("--until", default=None, help="End (default now).")
@click.option(
    "--lab", "labs", multiple=True, type=click.Path(dir_okay=True),
    help="Lab report directories (searched for result.json) or files (repeatable).",
)  # fmt: skip
@click.option(
    "--drills", multiple=True, type=click.Path(dir_okay=True),
    help="Directories of `buttress dr drill --json` reports, or files (repeatable).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def report(*, store: str, slo_store: str | None, spec: str | None, since: str | None,
           until: str | None, labs: tuple[str, ...], drills: tuple[str, ...],
           as_json: bool) -> None:  # fmt: skip
    """A period's reliability against the previous period: SLO attainment and budget spent,
    incidents, top failure modes, time to x, lab runs and drills, open action items, risks
    predicted and observed."""
    from .exercises import drill_every, drill_results, lab_results
    from .report import Period, period_report, render_text

    period = Period.between(since, until)
    lab_rows, lab_skipped = lab_results(labs)
    drill_rows, drill_skipped = drill_results(drills)
    slos: list[Any] = []
    risks: list[Any] = []
    every = None
    if spec is not None:
        from buttress.slo.load import load_slos

        if os.path.isdir(spec):
            raise ConfigError("--spec", spec, "is a directory; give the reliability.yaml file")
        slos = load_slos(spec)
        risks = _risks(spec)
        every = drill_every(spec)
    sli = None
    if slo_store is not None:
        if not os.path.isfile(slo_store):
            raise ConfigError("--slo-store", slo_store, "no such file")
        from buttress.slo.store import SLIStore

        sli = SLIStore(slo_store)
    try:
        with _open(store) as db:
            data = period_report(
                db,
                period,
                slos=slos,
                sli_store=sli,
                risks=risks,
                labs=lab_rows,
                drills=drill_rows,
                skipped=lab_skipped + drill_skipped,
                drill_every=every,
            )
    finally:
        if sli is not None:
            sli.close()
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(render_text(data), nl=False)
