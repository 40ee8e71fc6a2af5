"""Notifying stakeholders: by webhook (JSON POST) and by email (SMTP), deduplicated and
rate-limited, with the message drawn from the incident (state, who, when, impact in SLO budget
terms).

What is sent: one message when an incident is opened, acknowledged, mitigated or resolved.  Alert
repeats and alerts joining an open incident send nothing.

* **Deduplicated** by ``(incident, state)``: the same step is announced once, however many
  notifications or API calls report it.
* **Rate-limited** by a token bucket shared by all channels: ``burst`` messages at once, refilled at
  ``rate`` per second (default 5, then one a minute).  An alert storm that opens fifty incidents
  sends five messages and counts the rest in :attr:`Notifier.suppressed`; a suppressed step is not
  retried, but the next step of the same incident is sent when a token is free.

:meth:`Notifier.decide` is the decision, without I/O (it reads time from the injected clock);
:meth:`Notifier.submit` queues an incident's step and a background thread renders and sends it, so
the receiver's writer never waits for a mail server.  A failing channel is logged and counted in
:attr:`Notifier.failed`; it never affects the incident or the other channels.
"""

from __future__ import annotations

import json
import logging
import queue
import smtplib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Protocol

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError

from .model import Incident, Notification, stamp
from .store import IncidentStore, Outcome

if TYPE_CHECKING:
    from .timeline import SLOImpact

__all__ = ["Channel", "EmailChannel", "Message", "Notifier", "WebhookChannel", "render"]

_log = logging.getLogger("buttress.incident.notify")
_ANNOUNCED = {"opened": "detected", "resolved": "resolved"}  # outcome -> the state it announces

ImpactSource = Callable[[Incident], "Sequence[SLOImpact]"]


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered notification: ``subject`` and ``text`` for people, ``data`` for machines."""

    incident: int
    state: str
    subject: str
    text: str
    data: dict[str, Any]


class Channel(Protocol):
    """Where messages go; ``send`` raises on failure."""

    def send(self, message: Message) -> None: ...


class WebhookChannel:
    """POST each message's ``data`` as JSON to ``url`` (with ``headers``; ``timeout`` seconds)."""

    def __init__(
        self, url: str, *, headers: dict[str, str] | None = None, timeout: float = 5.0
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError("url", url, "must be an http:// or https:// URL")
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout

    def send(self, message: Message) -> None:
        import httpx

        r = httpx.post(self.url, json=message.data, headers=self.headers, timeout=self.timeout)
        r.raise_for_status()


class EmailChannel:
    """Mail each message to ``to`` from ``sender`` through the SMTP server at ``host:port``
    (``starttls`` and ``username``/``password`` when the server wants them)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        to: Sequence[str],
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not to:
            raise ConfigError("to", to, "give at least one recipient")
        if "@" not in sender:
            raise ConfigError("sender", sender, "must be an email address")
        self.host, self.port = host, port
        self.sender, self.to = sender, list(to)
        self.starttls = starttls
        self.username, self.password = username, password
        self.timeout = timeout

    def send(self, message: Message) -> None:
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.to)
        mail["X-Buttress-Incident"] = str(message.incident)
        mail.set_content(message.text)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username is not None:
                smtp.login(self.username, self.password or "")
            smtp.send_message(mail)


def render(
    incident: Incident, impacts: Sequence[SLOImpact] = (), step: str | None = None
) -> Message:
    """The message announcing ``step`` of ``incident`` (default its current state).  The step is
    the one that was queued: by the time the sender renders it the incident may have moved on
    (acknowledged, then resolved a moment later), and each message must still say what it
    announces; the lines below it give the incident as it is now."""
    inc = incident
    announced = step if step is not None else inc.state
    subject = f"[{announced}] incident #{inc.id}: {inc.title} ({inc.service})"
    lines = [
        f"Incident #{inc.id}: {inc.title}",
        f"State: {announced}" + ("" if announced == inc.state else f" (now {inc.state})"),
        f"Service: {inc.service}   failure mode: {inc.mode}   severity: {inc.severity}",
        f"Started: {stamp(inc.started)}   detected: {stamp(inc.detected)}",
    ]
    for done in ("acknowledged", "mitigated", "resolved"):
        when = getattr(inc, done)
        if when is not None:
            lines.append(f"{done.capitalize()}: {stamp(when)} by {getattr(inc, done + '_by')}")
    budget = []
    for i in impacts:
        lines.append(
            f"SLO {i.slo} ({i.objective:g}%): {i.budget_minutes:.1f} budget minutes spent "
            f"({i.budget_share:.1%} of the period's budget), {i.failed} of {i.total} requests "
            f"failed, worst minute {i.peak_failing_share:.1%} failing"
        )
        budget.append(i.to_json())
    data = {"incident": inc.to_json(), "impact": budget, "subject": subject}
    return Message(inc.id, announced, subject, "\n".join(lines) + "\n", data)


class Notifier:
    """Sends incidents' steps to ``channels``: deduplicated, rate-limited, in a background thread.

    :param store: where incidents are read when their step is sent.
    :param channels: webhook and email channels (anything with ``send(message)``).
    :param burst: messages that may go out at once (``>= 1``).
    :param rate: messages per second refilled (``> 0``; default one a minute).
    :param impact: computes an incident's SLO impact for the message (optional).
    """

    def __init__(
        self,
        store: IncidentStore,
        channels: Sequence[Channel],
        *,
        clock: Clock = SYSTEM_CLOCK,
        burst: int = 5,
        rate: float = 1 / 60,
        impact: ImpactSource | None = None,
    ) -> None:
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigError("burst", burst, "must be an integer >= 1")
        if not rate > 0:
            raise ConfigError("rate", rate, "must be > 0 messages per second")
        self.store = store
        self.channels = list(channels)
        self.clock = clock
        self.burst, self.rate = burst, rate
        self.impact = impact
        self._tokens = float(burst)
        self._refilled = clock.monotonic()
        self._announced: set[tuple[int, str]] = set()
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[int, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.suppressed = 0
        self.duplicates = 0
        self.failed = 0

    def decide(self, incident: int, state: str) -> bool:
        """Whether the step ``(incident, state)`` is to be sent now (and take a token if so)."""
        with self._lock:
            key = (incident, state)
            if key in self._announced:
                self.duplicates += 1
                return False
            self._announced.add(key)
            now = self.clock.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
            self._refilled = now
            if self._tokens < 1:
                self.suppressed += 1
                return False
            self._tokens -= 1
            return True

    def submit(self, incident: int, state: str) -> None:
        """Queue the announcement of ``incident`` reaching ``state`` (sent if :meth:`decide`
        says so)."""
        self._start()
        self._queue.put((incident, state))

    def listener(self, pairs: Sequence[tuple[Notification, Outcome]]) -> None:
        """For :class:`~buttress.incident.receiver.Receiver`: announce opened and resolved
        incidents of a committed batch."""
        for _, outcome in pairs:
            state = _ANNOUNCED.get(outcome.action)
            if state is not None and outcome.incident is not None:
                self.submit(outcome.incident, state)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="buttress-incident-notify", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._send(*item)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _send(self, incident: int, state: str) -> None:
        if not self.decide(incident, state):
            return
        try:
            found = self.store.get(incident)
            impacts = self.impact(found) if self.impact is not None else ()
            message = render(found, impacts, step=state)
        except Exception:
            _log.exception("cannot render the notification of incident %s", incident)
            self.failed += 1
            return
        for channel in self.channels:
            try:
                channel.send(message)
                self.sent += 1
            except Exception as e:  # one channel down never stops the others
                self.failed += 1
                _log.warning("notification of incident %s by %r failed: %s", incident, channel, e)

    def flush(self) -> None:
        """Wait until every queued step has been handled."""
        self._queue.join()

    def close(self) -> None:
        """Send what is queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def stats(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "suppressed": self.suppressed,
            "duplicates": self.duplicates,
            "failed": self.failed,
        }

    def __repr__(self) -> str:
        return f"Notifier({len(self.channels)} channels, {json.dumps(self.stats())})"
