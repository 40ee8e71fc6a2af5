"""The HTML report toolkit: validated chart specs, escaping, one self-contained file."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from buttress.dashboard.report import (
    Chart,
    Mark,
    Series,
    Threshold,
    asset,
    badge,
    chart_html,
    page,
    section,
    table,
)
from buttress.errors import ConfigError

ROOT = Path(__file__).parent.parent.parent


def chart(**kw: object) -> Chart:
    base: dict[str, object] = {
        "id": "lat",
        "title": "latency",
        "x": [1.0, 2.0, 3.0],
        "series": [Series("p99", [0.1, None, float("nan")])],
    }
    base.update(kw)
    return Chart(**base)  # type: ignore[arg-type]


def test_spec_round_trip() -> None:
    c = chart(
        y_unit="s",
        y_min=0,
        marks=[Mark(1.5, 2.5, "payments +800 ms")],
        thresholds=[Threshold(0.3, "SLO")],
    )
    spec = c.to_json()
    assert [0.1, None, None] == spec["series"][0]["values"]  # NaN becomes a gap
    assert {"label": "", "unit": "s", "min": 0.0, "max": None, "soft": False} == spec["y"]
    assert [{"start": 1.5, "end": 2.5, "label": "payments +800 ms", "color": None}] == spec["marks"]
    json.dumps(spec, allow_nan=False)  # strict JSON


@pytest.mark.parametrize(
    ("kw", "parameter"),
    [
        ({"id": "1abc"}, "id"),
        ({"id": "a b"}, "id"),
        ({"series": []}, "series"),
        ({"x": [1.0, 3.0, 2.0]}, "lat.x[2]"),
        ({"x": [1.0, float("inf"), 2.0]}, "lat.x[1]"),
        ({"series": [Series("p99", [1.0])]}, "lat.series['p99']"),
        ({"series": [Series("p99", [1.0, "2", 3.0])]}, "series['p99'].values"),  # type: ignore[list-item]
        ({"y_unit": "hours"}, "y_unit"),
        ({"series": [Series("p", [1, 2, 3], color="red")]}, "color"),
        ({"marks": [Mark(3.0, 1.0)]}, "mark"),
        ({"thresholds": [Threshold(float("nan"))]}, "threshold.value"),
        ({"height": 5}, "height"),
    ],
)
def test_malformed_charts_name_the_field(kw: dict[str, object], parameter: str) -> None:
    with pytest.raises(ConfigError) as e:
        chart(**kw).to_json()
    assert parameter == e.value.parameter


def test_everything_is_escaped() -> None:
    evil = "</script><script>alert(1)</script>"
    c = chart(title=evil, series=[Series(evil, [1, 2, 3])])
    html = page(evil, section(evil, chart_html(c) + table([evil], [[evil], [None]])), subtitle=evil)
    # Only the two script elements of the page itself (the library + bootstrap, then renderAll)
    # plus one JSON data element: the payload never opens or closes one.
    assert 3 == html.count("<script")
    assert 3 == html.count("</script>")
    assert "alert(1)</script>" not in html
    assert "&lt;/script&gt;" in html
    assert "<td>\u2013</td>" in html  # None shows as a dash
    assert '<span class="badge bad">x&amp;y</span>' == badge("x&y", "bad")


def test_page_is_self_contained() -> None:
    html = page("Lab", chart_html(chart()))
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)
    assert "@import" not in html
    # uPlot itself is inlined, with its licence notice, and the chart bootstrap runs on load.
    assert "uPlot" in html
    assert "Permission is hereby granted" in html
    assert "window.ButtressCharts.renderAll(document)" in html
    spec_text = re.search(r'<script type="application/json">(.*?)</script>', html)
    assert spec_text is not None
    assert "lat" == json.loads(spec_text.group(1))["id"]


def test_vendored_library_matches_the_pinned_version() -> None:
    script = (ROOT / "scripts" / "vendor_assets.sh").read_text()
    m = re.search(r'UPLOT_VERSION="([0-9.]+)"', script)
    assert m is not None
    banner = asset("vendor/uPlot.iife.min.js").splitlines()[0]
    assert f"(v{m.group(1)})" in banner
    assert "MIT License" in asset("vendor/uPlot.LICENSE")
    assert ".uplot" in asset("vendor/uPlot.min.css")
    with pytest.raises(ConfigError, match="no such packaged file"):
        asset("vendor/missing.js")


def test_package_data_ships_the_assets() -> None:
    """pyproject's package-data globs cover every file the dashboard needs at run time."""
    from fnmatch import fnmatch

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["buttress"]
    pkg = ROOT / "src" / "buttress"
    needed = [
        p
        for p in (pkg / "dashboard").rglob("*")
        if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts
    ]
    assert len(needed) >= 8
    for p in needed:
        rel = p.relative_to(pkg).as_posix()
        assert any(fnmatch(rel, g) or fnmatch(p.name, g.removeprefix("**/")) for g in globs), rel
