/* Buttress charts: turns a JSON chart spec into a uPlot chart.
 *
 * Shared by the dashboard (served from /static/charts.js) and the self-contained HTML reports
 * (inlined by buttress.dashboard.report), so a chart looks the same in both.
 *
 * Spec (see buttress.dashboard.report.Chart):
 *   {id, title, height, time, x: [...], series: [{label, values, color, unit, step, fill, width,
 *    dash, points, pointSize}], y: {label, unit, min, max}, marks: [{start, end, label, color}],
 *    thresholds: [{value, label, color}], minSpan}
 * A time axis spans at least minSpan seconds (default 60), ending at the newest sample: a chart
 * with one sample (a live chart right after the page opens) shows the last minute, not the years
 * uPlot would otherwise widen a zero-width range to.
 * Units: "fraction" shows 0.995 as 99.5%, "percent" shows 12 as 12%, "s" seconds, "ms", "" plain.
 */
(function () {
  "use strict";

  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777",
                 "#4b5563"];

  function fmt(v, unit) {
    if (v === null || v === undefined || (typeof v === "number" && !isFinite(v))) return "–";
    if (unit === "fraction") {
      var p = v * 100;
      var a = Math.abs(p);
      return (a !== 0 && a < 0.1 ? p.toPrecision(2) : a < 10 ? p.toFixed(2) : p.toFixed(1)) + "%";
    }
    if (unit === "percent") return (+v).toFixed(1) + "%";
    if (unit === "s") return v < 1 ? (v * 1000).toFixed(0) + " ms" : (+v).toFixed(2) + " s";
    if (unit === "ms") return (+v).toFixed(0) + " ms";
    if (Number.isInteger(v) || Math.abs(v) >= 1000) return (+v).toFixed(0);
    if (Math.abs(v) >= 10) return (+v).toFixed(1);
    return (+v).toPrecision(3).replace(/\.?0+$/, "");
  }

  function data(spec) {
    var out = [spec.x];
    spec.series.forEach(function (s) { out.push(s.values); });
    return out;
  }

  function drawMarks(u, spec) {
    var ctx = u.ctx, box = u.bbox, px = uPlot.pxRatio || 1;
    ctx.save();
    ctx.textAlign = "left";
    ctx.textBaseline = "alphabetic";
    (spec.marks || []).forEach(function (m) {
      var x0 = u.valToPos(m.start, "x", true), x1 = u.valToPos(m.end, "x", true);
      x0 = Math.max(x0, box.left); x1 = Math.min(x1, box.left + box.width);
      if (x1 <= x0) return;
      ctx.fillStyle = m.color || "rgba(245, 158, 11, 0.16)";
      ctx.fillRect(x0, box.top, x1 - x0, box.height);
      if (m.label) {
        ctx.fillStyle = "#92400e";
        ctx.font = (11 * px) + "px system-ui, sans-serif";
        ctx.fillText(m.label, x0 + 3 * px, box.top + 12 * px);
      }
    });
    (spec.thresholds || []).forEach(function (t) {
      var y = u.valToPos(t.value, "y", true);
      if (y < box.top || y > box.top + box.height) return;
      ctx.strokeStyle = t.color || "#6b7280";
      ctx.lineWidth = px;
      ctx.setLineDash([6 * px, 4 * px]);
      ctx.beginPath(); ctx.moveTo(box.left, y); ctx.lineTo(box.left + box.width, y); ctx.stroke();
      if (t.label) {
        ctx.setLineDash([]);
        ctx.fillStyle = t.color || "#6b7280";
        ctx.font = (11 * px) + "px system-ui, sans-serif";
        ctx.fillText(t.label, box.left + box.width - ctx.measureText(t.label).width - 4 * px,
                     y - 4 * px);
      }
    });
    ctx.restore();
  }

  var MIN_SPAN = 60;  // seconds: the shortest time axis drawn

  function timeRange(spec) {
    var span = spec.minSpan > 0 ? +spec.minSpan : MIN_SPAN;
    return function (u, lo, hi) {
      // uPlot has already widened a single x value to x + 1000 days (86400 / ms with x in
      // seconds): take the extent from the data itself.
      var xs = u.data && u.data[0];
      if (xs && xs.length) {
        lo = xs[0];
        hi = xs[xs.length - 1];
      }
      if (lo === null || hi === null || lo === undefined || hi === undefined || !isFinite(lo) ||
          !isFinite(hi)) {
        hi = Date.now() / 1000;
        lo = hi;
      }
      return hi - lo >= span ? [lo, hi] : [hi - span, hi];
    };
  }

  function options(spec, width) {
    var yUnit = (spec.y && spec.y.unit) || "";
    var series = [{ value: spec.time ? "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}" : undefined }];
    spec.series.forEach(function (s, i) {
      var color = s.color || PALETTE[i % PALETTE.length];
      var o = {
        label: s.label,
        stroke: color,
        width: s.width || 2,
        spanGaps: false,
        value: function (u, v) { return fmt(v, s.unit || yUnit); },
      };
      if (s.fill) o.fill = color + "22";
      if (s.dash) o.dash = [6, 4];
      if (s.step) o.paths = uPlot.paths.stepped({ align: 1 });
      // points: true draws every point as a dot (a lone point, e.g. the minute still filling,
      // stays visible); points: "only" draws dots without a line.
      if (s.points) o.points = { show: true, size: s.pointSize || 7, fill: color, stroke: color };
      if (s.points === "only") o.paths = function () { return null; };
      series.push(o);
    });
    var range;
    if (spec.y && (spec.y.min !== null && spec.y.min !== undefined ||
                   spec.y.max !== null && spec.y.max !== undefined)) {
      range = function (u, lo, hi) {
        var a = spec.y.min, b = spec.y.max;
        if (a === null || a === undefined) a = Math.min(lo, b === null || b === undefined ? lo : b);
        if (b === null || b === undefined || hi > b && spec.y.soft) b = Math.max(hi, a + 1e-9);
        if (lo < a && spec.y.soft) a = lo;
        return [a, b];
      };
    }
    return {
      title: spec.title || "",
      width: width,
      height: spec.height || 220,
      scales: {
        x: spec.time ? { time: true, range: timeRange(spec) } : { time: false },
        y: range ? { range: range } : {},
      },
      series: series,
      axes: [
        {},
        {
          label: (spec.y && spec.y.label) || "",
          size: 60,
          values: function (u, splits) { return splits.map(function (v) { return fmt(v, yUnit); }); },
        },
      ],
      legend: { show: true, live: true },
      hooks: { draw: [function (u) { drawMarks(u, spec); }] },
    };
  }

  var instances = [];

  function render(el, spec) {
    var width = Math.max(240, el.clientWidth || 600);
    var u = new uPlot(options(spec, width), data(spec), el);
    u.buttressSpec = spec;
    instances.push(u);
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(function () {
        var w = Math.max(240, el.clientWidth || width);
        if (Math.abs(w - u.width) > 2) u.setSize({ width: w, height: u.height });
      }).observe(el);
    }
    return u;
  }

  // Replace a chart's data; rebuild it when the series changed.
  function update(u, spec) {
    var old = u.buttressSpec;
    var same = old && old.series.length === spec.series.length &&
      old.series.every(function (s, i) { return s.label === spec.series[i].label; }) &&
      JSON.stringify(old.marks || []) === JSON.stringify(spec.marks || []) &&
      JSON.stringify(old.thresholds || []) === JSON.stringify(spec.thresholds || []);
    if (same) {
      u.buttressSpec = spec;
      u.setData(data(spec));
      return u;
    }
    var el = u.root.parentNode;
    destroy(u);
    return render(el, spec);
  }

  function destroy(u) {
    var i = instances.indexOf(u);
    if (i >= 0) instances.splice(i, 1);
    u.destroy();
  }

  // Render every figure.bt-chart that holds a JSON chart spec (an application/json script).
  function renderAll(root) {
    var out = [];
    (root || document).querySelectorAll("figure.bt-chart").forEach(function (fig) {
      if (fig.dataset.rendered) return;
      var src = fig.querySelector("script[type='application/json']");
      if (!src) return;
      var holder = document.createElement("div");
      fig.appendChild(holder);
      out.push(render(holder, JSON.parse(src.textContent)));
      fig.dataset.rendered = "1";
    });
    return out;
  }

  window.ButtressCharts = {
    render: render, update: update, destroy: destroy, renderAll: renderAll, fmt: fmt,
    instances: instances, palette: PALETTE,
  };
})();
