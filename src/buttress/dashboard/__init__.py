"""The dashboard: a local web UI for a store, the live-state feed, and HTML report helpers.

* :mod:`buttress.dashboard.publish`: :class:`Publisher`, which writes a process's policy states
  (breakers, bulkheads, limits, health checks, endpoints) into the store;
* :mod:`buttress.dashboard.feed`: the two feed tables, their writer and reader;
* :mod:`buttress.dashboard.app`: the Starlette app behind ``buttress dashboard`` (live by SSE);
* :mod:`buttress.dashboard.report`: self-contained HTML pages with uPlot charts (for reports);
* :mod:`buttress.dashboard.slos`, :mod:`~buttress.dashboard.journals`,
  :mod:`~buttress.dashboard.state`: what the page shows, as JSON-ready data.

Importing this package needs only the standard library; the web app needs
``buttress[dashboard]`` (Starlette, uvicorn, Jinja2, numpy).
"""

from __future__ import annotations

from .feed import FeedReader, FeedWriter, StateEvent, StateRow
from .publish import Publisher, Sample
from .report import Chart, Mark, Series, Threshold, chart_html, page, section, table

__all__ = [
    "Chart",
    "FeedReader",
    "FeedWriter",
    "Mark",
    "Publisher",
    "Sample",
    "Series",
    "StateEvent",
    "StateRow",
    "Threshold",
    "chart_html",
    "page",
    "section",
    "table",
]
