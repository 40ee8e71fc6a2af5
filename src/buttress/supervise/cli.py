"""``buttress supervise``: run the ``supervision:`` tree, show its status, export it.

``run`` keeps a small JSON state file up to date (``--state``, default
``.buttress/supervise.json``) that ``status`` reads: the tree, each child's state, restarts and
last exit reason, and the pid of the ``run`` process (so ``status`` can tell a stale file).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from buttress.errors import ConfigError
from buttress.events import Event, add_listener
from buttress.modes.switch import ModeSwitch
from buttress.modes.switch import read_state as read_mode
from buttress.remediation.build import build_remediator
from buttress.remediation.engine import Journal, Remediator, Signal, signal_from_event

from .export import kubernetes_manifests, systemd_units
from .process import pid_alive
from .spec import SupervisionSpec, build_supervisor, missing_programs
from .supervisor import CrashLoop, Supervisor

__all__ = ["supervise"]

DEFAULT_STATE = ".buttress/supervise.json"
DEFAULT_JOURNAL = ".buttress/remediation.jsonl"
DEFAULT_MODE_STATE = ".buttress/mode.json"


def _section(file: str) -> tuple[Any, SupervisionSpec]:
    from buttress.spec import load_spec

    spec = load_spec(file)
    section = spec.supervision
    if section is None:
        raise ConfigError("file", file, "has no supervision: section")
    return spec, section


@click.group()
def supervise() -> None:
    """Supervision trees: run, status, export to systemd or Kubernetes."""


def write_state(path: Path, supervisor: Supervisor) -> None:
    """The status of ``supervisor`` into ``path``, atomically (write, then rename)."""
    data = {
        "name": supervisor.name,
        "pid": os.getpid(),
        "updated": time.time(),
        "tree": _tree(supervisor),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(data, indent=1))
    partial.replace(path)


def _tree(supervisor: Supervisor) -> dict[str, Any]:
    snap = supervisor.snapshot()
    for entry in snap["children"]:
        child = supervisor.child(entry["name"])
        if isinstance(child, Supervisor):
            entry.update(_tree(child))
    return snap


def _log(event: Event) -> None:
    if event.policy_type != "supervisor":
        return
    fields = {
        f.name: getattr(event, f.name)
        for f in dataclasses.fields(event)
        if f.name not in ("pipeline", "policy", "time")
    }
    shown = " ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
    )
    click.echo(f"{event.pipeline}/{event.policy}: {event.kind} {shown}", err=True)


@supervise.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--state", "state", default=DEFAULT_STATE, show_default=True, help="Status file.")
@click.option(
    "--journal",
    default=DEFAULT_JOURNAL,
    show_default=True,
    help="Where the remediation: rules journal their actions (JSON lines).",
)
@click.option(
    "--mode-state", default=DEFAULT_MODE_STATE, show_default=True, help="The shared mode file."
)
@click.option("--dry-run", is_flag=True, help="Remediation rules only journal what they would do.")
@click.option("--quiet", "-q", is_flag=True, help="Do not log the supervisor's events.")
def run(
    file: str, *, state: str, journal: str, mode_state: str, dry_run: bool, quiet: bool
) -> None:
    """Start the tree of FILE and supervise it until SIGTERM or Ctrl-C (exit 0), or until it gives
    up (exit 1).  The file's remediation: rules act on the tree's events (a supervisor that gives
    up, a breaker that opens) and on the modes: of the file."""
    spec, _ = _section(file)
    missing = missing_programs(spec, Path(file).resolve().parent)
    if missing and spec.document is not None:
        where, program = missing[0]
        raise spec.document.error(where, f"program {program!r} not found: nothing was started")
    state_path = Path(state)
    holder: list[Supervisor] = []

    def changed() -> None:
        if holder:
            write_state(state_path, holder[0])

    top = build_supervisor(spec, on_change=changed)
    holder.append(top)
    remediator = _remediator(spec, top, journal, mode_state, dry_run)
    remove = add_listener(_log) if not quiet else None
    try:
        code = asyncio.run(_run(top, remediator))
    finally:
        if remove is not None:
            remove()
        write_state(state_path, top)
    sys.exit(code)


def _remediator(
    spec: Any, top: Supervisor, journal: str, mode_state: str, dry_run: bool
) -> Remediator | None:
    if not spec.remediation:
        return None
    switch = ModeSwitch.from_spec(spec, state_file=mode_state)
    return build_remediator(
        spec, switch=switch, supervisor=top, journal=Journal(journal), dry_run=dry_run
    )


async def _remediate(remediator: Remediator) -> None:
    """Feed the remediator the signals of the events, in a worker thread (its actions may block:
    hooks, commands), and let it notice holds once a second."""
    loop = asyncio.get_running_loop()
    signals: asyncio.Queue[Signal | None] = asyncio.Queue()

    def on_event(event: Event) -> None:
        found = signal_from_event(event)
        if found is not None:
            loop.call_soon_threadsafe(signals.put_nowait, found)

    remove = add_listener(on_event)
    try:
        while True:
            try:
                found = await asyncio.wait_for(signals.get(), 1.0)
            except TimeoutError:
                found = None
            if found is None:
                entries = await asyncio.to_thread(remediator.tick)
            else:
                entries = await asyncio.to_thread(remediator.signal, found)
            for entry in entries:
                click.echo(
                    f"remediation/{entry.rule}: {entry.action} on {entry.signal} {entry.subject}:"
                    f" {entry.outcome}",
                    err=True,
                )
    finally:
        remove()


async def _run(top: Supervisor, remediator: Remediator | None) -> int:
    task = asyncio.create_task(top.run())
    helper = asyncio.create_task(_remediate(remediator)) if remediator is not None else None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        return 0
    except CrashLoop as e:
        click.echo(f"error: {e}", err=True)
        return 1
    finally:
        if helper is not None:
            helper.cancel()
    return 0


def _render(node: dict[str, Any], indent: str = "") -> list[str]:
    lines = []
    children = node.get("children", [])
    for i, c in enumerate(children):
        last = i == len(children) - 1
        branch = "└─ " if last else "├─ "
        parts = [f"{c['name']:<16}", f"{c['state']:<9}"]
        if c.get("pid"):
            parts.append(f"pid {c['pid']}")
        parts.append(f"restarts {c['restarts']}")
        if c.get("crash_loop"):
            parts.append(f"CRASH LOOP ({c['failures']} failures in a row)")
        if c.get("kind") == "supervisor":
            parts.append(f"({c['strategy']}, {c['intensity']} in {c['period']:g}s)")
        if c.get("last_exit"):
            parts.append(f"last exit: {c['last_exit']}")
        lines.append(indent + branch + "  ".join(parts))
        if c.get("kind") == "supervisor":
            lines += _render(c, indent + ("   " if last else "│  "))
    return lines


@supervise.command()
@click.option("--state", "state", default=DEFAULT_STATE, show_default=True, help="Status file.")
@click.option("--json", "as_json", is_flag=True, help="Print the state file's JSON.")
@click.option("--journal", default=DEFAULT_JOURNAL, show_default=True, help="Remediation journal.")
@click.option(
    "--mode-state", default=DEFAULT_MODE_STATE, show_default=True, help="The shared mode file."
)
@click.option("--last", default=5, show_default=True, help="How many journal entries to show.")
def status(state: str, as_json: bool, journal: str, mode_state: str, last: int) -> None:
    """The tree that `buttress supervise run` is supervising: states, restarts, last exits."""
    path = Path(state)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            "--state", state, "no such file: is `buttress supervise run` running?"
        ) from None
    except (OSError, ValueError) as e:
        raise ConfigError("--state", state, f"unreadable state file ({e})") from None
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    tree = data["tree"]
    running = pid_alive(int(data["pid"]))
    age = time.time() - float(data["updated"])
    whose = f"run pid {data['pid']}" if running else f"not running (pid {data['pid']} gone)"
    click.echo(
        f"{data['name']} ({tree['strategy']}, {tree['intensity']} in {tree['period']:g}s)"
        f"  {whose}, updated {age:.0f}s ago"
    )
    for line in _render(tree):
        click.echo(line)
    mode = read_mode(mode_state) if Path(mode_state).exists() else None
    if mode is not None and mode.get("mode"):
        click.echo(f"mode: {mode['mode']} (cause: {mode.get('cause', '?')})")
    for entry in _journal_tail(Path(journal), last):
        when = time.strftime("%H:%M:%S", time.localtime(float(entry.get("time", 0))))
        click.echo(
            f"{when} {entry.get('rule')}: {entry.get('action')} on {entry.get('signal')}"
            f" {entry.get('subject')}: {entry.get('outcome')}"
        )


def _journal_tail(path: Path, count: int) -> list[dict[str, Any]]:
    """The last ``count`` entries of a remediation journal (none if there is no file)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines[-count:] if count > 0 else []:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


@supervise.group()
def export() -> None:
    """Write the tree as systemd units or Kubernetes manifests."""


@export.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--out", "-o", "out", required=True, type=click.Path(file_okay=False), help="Directory."
)
def systemd(file: str, out: str) -> None:
    """One .service per process and one .target per supervisor, into OUT."""
    _, section = _section(file)
    base = Path(file).resolve().parent
    units = systemd_units(section, base)
    Path(out).mkdir(parents=True, exist_ok=True)
    for name, text in units.items():
        (Path(out) / name).write_text(text)
        click.echo(str(Path(out) / name))


@export.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--image", required=True, help="The container image that holds the programs.")
@click.option("--namespace", default=None, help="metadata.namespace of every manifest.")
@click.option("--out", "-o", "out", default="-", help="File to write (default: standard output).")
def kubernetes(file: str, image: str, namespace: str | None, out: str) -> None:
    """Deployments (Jobs for transient and temporary children), probes, PodDisruptionBudgets."""
    import yaml

    spec, section = _section(file)
    drain = 0.0
    health = getattr(spec, "health", None)
    if health is not None and health.drain is not None:
        drain = health.drain.delay + health.drain.grace
    docs = kubernetes_manifests(section, image=image, namespace=namespace, drain_seconds=drain)

    class Plain(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True  # a manifest repeats its labels in full, as people write them

    text = yaml.dump_all(docs, Dumper=Plain, sort_keys=False)
    if out == "-":
        click.echo(text, nl=False)
    else:
        Path(out).write_text(text)
