/* The Buttress dashboard page: renders the payloads streamed by /api/stream (server-sent events).
 *
 * Events: "slos", "states", "journals", "assessment", "lab", "incidents", "error"
 * (see buttress/dashboard/sse.py).
 * Charts are drawn by ButtressCharts (charts.js, on uPlot); tables are rebuilt from each payload.
 */
(function () {
  "use strict";

  var C = window.ButtressCharts;
  var boot = JSON.parse(document.getElementById("boot").textContent);
  var charts = {};          // chart id -> uPlot instance
  var limitHistory = {};    // component key -> {x: [], inflight: [], limit: []}
  var HISTORY = 600;        // points kept per live limit chart
  var BREAKER_NAMES = ["closed", "half-open", "open"];

  window.ButtressDashboard = { charts: charts, received: {}, boot: boot };

  function esc(v) {
    if (v === null || v === undefined) return "–";
    return String(v).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function pct(v) { return C.fmt(v, "fraction"); }
  function num(v) { return v === null || v === undefined ? "–" : C.fmt(v, ""); }
  function dur(s) {
    if (s === null || s === undefined) return "never";
    if (s < 90) return s.toFixed(0) + " s";
    if (s < 5400) return (s / 60).toFixed(0) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }
  function badge(text, level) {
    return '<span class="badge ' + esc(level || "plain") + '">' + esc(text) + "</span>";
  }
  function levelOfBudget(r) { return r <= 0 ? "bad" : r < 0.25 ? "warn" : "ok"; }
  function idOf(prefix, key) { return prefix + "-" + key.replace(/[^A-Za-z0-9_-]/g, "_"); }

  // Draw or update the chart with this id inside container (created when missing).
  function chart(container, spec) {
    var u = charts[spec.id];
    if (u && document.body.contains(u.root)) {
      charts[spec.id] = C.update(u, spec);
      return;
    }
    var fig = document.getElementById("fig-" + spec.id);
    if (!fig) {
      fig = document.createElement("figure");
      fig.className = "bt-chart";
      fig.id = "fig-" + spec.id;
      container.appendChild(fig);
    }
    fig.innerHTML = "";
    charts[spec.id] = C.render(fig, spec);
  }

  function dropCharts(prefix, keep) {
    Object.keys(charts).forEach(function (id) {
      if (id.indexOf(prefix) === 0 && !keep[id]) {
        var u = charts[id];
        var fig = u.root.parentNode;
        C.destroy(u);
        delete charts[id];
        if (fig && fig.parentNode) fig.parentNode.removeChild(fig);
      }
    });
  }

  // ---- SLOs -------------------------------------------------------------------------------------

  function renderSlos(p) {
    var list = document.getElementById("slo-list");
    if (!p.has_spec) {
      list.innerHTML = '<p class="note">No spec given (<code>--spec reliability.yaml</code>): ' +
        "SLIs are shown without objectives.</p>";
    } else if (!p.slos.length) {
      list.innerHTML = '<p class="note">The spec declares no SLOs.</p>';
    }
    var seen = {};
    var order = [];
    p.slos.forEach(function (s) {
      var key = idOf("slo", s.name);
      order.push(key);
      var card = document.getElementById(key);
      if (!card) {
        card = document.createElement("div");
        card.className = "slo";
        card.id = key;
        card.dataset.slo = s.name;
        card.innerHTML = '<div class="slo-head"></div><div class="grid charts"></div>' +
          '<div class="tiers"></div>';
        list.appendChild(card);
      }
      var firing = s.firing.length ? s.firing.map(function (t) { return badge(t, "bad"); })
        .join(" ") : badge("no alert firing", "ok");
      // Headline events and SLI count the minute still filling (so_far), marked partial, so a
      // run younger than a minute does not read "0 events"; the budget badge stays settled.
      var sf = s.so_far || { sli: s.sli, total: s.total, partial: false };
      var partial = sf.partial ? " " + badge("incl. current minute (partial)", "warn") : "";
      card.querySelector(".slo-head").innerHTML =
        '<span class="name">' + esc(s.name) + "</span>" +
        badge("budget " + pct(s.budget_remaining) + " left", levelOfBudget(s.budget_remaining)) +
        " " + firing + partial +
        '<span class="figures muted"><span>objective ' + esc(s.objective) + "%</span>" +
        '<span class="sli">SLI ' + pct(sf.sli) + (sf.partial ? " so far" : "") + "</span>" +
        '<span class="events">' + num(sf.total) + " events" + (sf.partial ? " so far" : "") +
        "</span>" + (sf.partial ? '<span class="budget-so-far">budget so far ' +
          pct(sf.budget_remaining) + "</span>" : "") +
        "<span>" + esc(s.window) + "</span><span>exhausted in " +
        dur(s.time_to_exhaustion) + "</span></span>";
      card.dataset.partial = sf.partial ? "1" : "";
      var charts_ = card.querySelector(".charts");
      var bd = s.burndown;
      // The settled whole-minute series, then one dot for the minute still filling.
      var bx = bd.x.slice(), bRem = bd.remaining.slice(), bNow = bd.x.map(function () {
        return null;
      });
      if (sf.partial) {
        if (!bx.length) {  // no whole minute yet: anchor at the minute's start (the settled status)
          bx.push(Math.floor(sf.at / 60) * 60); bRem.push(s.budget_remaining); bNow.push(null);
        }
        var last = bx[bx.length - 1];
        bx.push(Math.max(sf.at, last + 1)); bRem.push(null); bNow.push(sf.budget_remaining);
      }
      chart(charts_, {
        id: key + "-burndown", title: "Error budget remaining", time: true, height: 200,
        x: bx, series: [{ label: "budget remaining", values: bRem, color: "#2563eb", fill: true },
                        { label: "so far (minute filling)", values: bNow, color: "#d97706",
                          points: "only", pointSize: 9 }],
        y: { unit: "fraction", min: 0, max: 1, soft: true },
        thresholds: [{ value: 0, label: "exhausted", color: "#b91c1c" }],
      });
      var r = s.recent;
      chart(charts_, {
        id: key + "-errors", title: "Error ratio per minute (last hour; last minute filling)",
        time: true, height: 200,
        x: r.x, series: [{ label: "error ratio", values: r.error_ratio, color: "#dc2626",
                           points: true, pointSize: 7 }],
        y: { unit: "fraction", min: 0, max: null },
        thresholds: [{ value: s.budget_ratio, label: "budget rate (burn 1×)", color: "#6b7280" }],
      });
      var rows = s.tiers.map(function (t) {
        return '<tr class="' + (t.firing ? "bad" : "ok") + '"><td>' + esc(t.name) + "</td><td>" +
          esc(t.severity) + "</td><td>" + esc(t.long_window) + " / " + esc(t.short_window) +
          "</td><td>" + num(t.threshold) + "× (" + pct(t.error_ratio_threshold) + ")</td><td>" +
          num(t.long_burn) + "×</td><td>" + num(t.short_burn) + "×</td><td>" +
          (t.firing ? badge("firing", "bad") : badge("ok", "ok")) + "</td></tr>";
      }).join("");
      card.querySelector(".tiers").innerHTML = s.tiers.length ?
        "<table class=\"alerts\"><thead><tr><th>alert tier</th><th>severity</th>" +
        "<th>windows (long / short)</th><th>threshold</th><th>burn (long)</th>" +
        "<th>burn (short)</th><th>state</th></tr></thead><tbody>" + rows + "</tbody></table>" :
        '<p class="note">No alert tiers.</p>';
      seen[key + "-burndown"] = seen[key + "-errors"] = true;
    });
    // Keep the cards in budget order; drop SLOs that disappeared.
    order.forEach(function (k) { list.appendChild(document.getElementById(k)); });
    Array.prototype.slice.call(list.querySelectorAll(".slo")).forEach(function (el) {
      if (order.indexOf(el.id) < 0) list.removeChild(el);
    });
    Array.prototype.slice.call(list.querySelectorAll(".note")).forEach(function (el) {
      if (p.slos.length) list.removeChild(el);
    });
    var um = document.getElementById("unmeasured");
    if (p.unmeasured.length) {
      if (!um.querySelector("h3")) um.innerHTML = "<h3>SLIs without an SLO</h3><div class=grid></div>";
      p.unmeasured.forEach(function (s) {
        var key = idOf("sli", s.name);
        seen[key] = true;
        chart(um.querySelector(".grid"), {
          id: key, title: s.name + ": error ratio per minute", time: true, height: 180,
          x: s.recent.x, series: [{ label: "error ratio", values: s.recent.error_ratio,
                                    points: true, pointSize: 7 }],
          y: { unit: "fraction", min: 0, max: null },
        });
      });
    }
    dropCharts("slo-", seen);
    dropCharts("sli-", seen);
  }

  // ---- policy states ----------------------------------------------------------------------------

  function keyOf(s) { return s.source + "|" + s.scope + "|" + s.name; }

  function stateRow(s, cells) {
    return '<tr class="' + (s.stale ? "stale " : "") + esc(s.level) + '" data-key="' +
      esc(s.policy_type + "|" + keyOf(s)) + '" data-state="' + esc(s.state) + '">' +
      cells.map(function (c) { return "<td>" + c + "</td>"; }).join("") + "</tr>";
  }

  function tableOf(head, rows) {
    return "<table><thead><tr>" + head.map(function (h) { return "<th>" + esc(h) + "</th>"; })
      .join("") + "</tr></thead><tbody>" + rows.join("") + "</tbody></table>";
  }

  function renderStates(p) {
    var breakers = [], limits = [], health = [];
    p.states.forEach(function (s) {
      var f = s.fields || {};
      var st = badge(s.state, s.level) + (s.stale ? " " + badge("stale", "warn") : "");
      if (s.policy_type === "circuit_breaker") {
        breakers.push(stateRow(s, [esc(s.scope), esc(s.name), '<span class="state">' + st +
          "</span>", pct(f.failure_rate), num(f.calls), num(f.failures), num(f.rejected),
          f.retry_after === null || f.retry_after === undefined ? "–" : dur(f.retry_after),
          esc(s.source)]));
      } else if (["bulkhead", "adaptive_limit", "rate_limiter", "load_shedder"]
                 .indexOf(s.policy_type) >= 0) {
        var load = f.inflight !== undefined ? num(f.inflight) + " / " + num(f.limit) :
          num(f.rate) + " per " + num(f.per) + " s (burst " + num(f.burst) + ")";
        limits.push(stateRow(s, [esc(s.policy_type.replace("_", " ")), esc(s.scope),
          esc(s.name), '<span class="state">' + st + "</span>", load,
          f.queued === undefined ? "–" : num(f.queued), num(f.rejected), esc(s.source)]));
        if (f.inflight !== undefined) trackLimit(s, p.at);
      } else {
        health.push(stateRow(s, [esc(s.policy_type), esc(s.scope), esc(s.name),
          '<span class="state">' + st + "</span>",
          esc(f.output === undefined ? "" : f.output) +
          (f.observed_value !== undefined && f.observed_value !== null ?
            " (" + esc(f.observed_value) + (f.observed_unit ? " " + esc(f.observed_unit) : "") +
            ")" : ""), esc(s.source)]));
      }
    });
    document.getElementById("breakers").innerHTML = breakers.length ? tableOf(
      ["pipeline", "breaker", "state", "failure rate", "calls", "failures", "rejected",
       "retry after", "source"], breakers) : '<p class="note">No breaker published yet.</p>';
    document.getElementById("limits").innerHTML = limits.length ? tableOf(
      ["kind", "pipeline", "name", "state", "in flight / limit", "queued", "rejected", "source"],
      limits) : '<p class="note">No bulkhead or limiter published yet.</p>';
    document.getElementById("endpoints").innerHTML = health.length ? tableOf(
      ["kind", "scope", "name", "state", "detail", "source"], health) :
      '<p class="note">No health check or endpoint published yet.</p>';

    var keep = {};
    var bc = document.getElementById("breaker-charts");
    p.timelines.forEach(function (t) {
      var id = idOf("brk", t.key);
      keep[id] = true;
      chart(bc, {
        id: id, title: t.scope + " / " + t.name + " (" + t.source + ")", time: true, height: 150,
        x: t.x, series: [{ label: "state (0 closed, 1 half-open, 2 open)", values: t.y,
                           color: "#b91c1c", step: true }],
        y: { unit: "", min: 0, max: 2 },
      });
    });
    dropCharts("brk-", keep);
    var lc = document.getElementById("limit-charts");
    var keepL = {};
    Object.keys(limitHistory).forEach(function (k) {
      var h = limitHistory[k];
      var id = idOf("lim", k);
      keepL[id] = true;
      chart(lc, {
        id: id, title: h.title + " (since this page opened)", time: true, height: 150, x: h.x,
        series: [{ label: "in flight", values: h.inflight, color: "#2563eb" },
                 { label: "limit", values: h.limit, color: "#6b7280", step: true, dash: true }],
        y: { unit: "", min: 0, max: null },
      });
    });
    dropCharts("lim-", keepL);

    renderChanges(p.changes || []);

    document.getElementById("sources").innerHTML = p.sources.length ? tableOf(
      ["source", "state", "last heartbeat", "components"], p.sources.map(function (s) {
        return '<tr class="' + (s.alive ? "ok" : "warn") + '"><td>' + esc(s.source) +
          "</td><td>" + badge(s.alive ? "up" : s.state === "up" ? "silent" : s.state,
                              s.alive ? "ok" : "warn") + "</td><td>" + dur(s.age) +
          " ago</td><td>" + num((s.fields || {}).watching) + "</td></tr>";
      })) : '<p class="note">No process publishes states into this store.</p>';
  }

  // "Recent state changes": the server groups repeated changes of one component (a bulkhead
  // flapping between ok, saturated and rejecting) into one row with a count and a time span
  // (state.py, coalesce_events); a row lists its changes in a <details>, kept open across updates.
  var CHANGE_ROWS = 50;

  function clock(t) { return new Date(t * 1000).toLocaleTimeString(); }
  function tally(counts, level) {
    return Object.keys(counts).map(function (k) {
      return '<span class="tally" data-name="' + esc(k) + '">' + (level ? badge(k, level[k]) :
        esc(k)) + " ×" + esc(counts[k]) + "</span>";
    }).join(" ");
  }

  function renderChanges(changes) {
    var el = document.getElementById("events");
    if (!changes.length) { el.innerHTML = '<p class="note">Nothing has changed yet.</p>'; return; }
    var open = {};
    el.querySelectorAll("tr[data-change] details[open]").forEach(function (d) {
      open[d.closest("tr").dataset.change] = true;
    });
    var rows = changes.slice(0, CHANGE_ROWS).map(function (c) {
      var key = [c.source, c.policy_type, c.scope, c.name, c.first_seq].join("|");
      var many = c.count > 1;
      var when = many ? '<span class="span">' + esc(clock(c.first)) + " – " + esc(clock(c.last)) +
        "</span>" : esc(clock(c.last));
      var change = many ? "<details" + (open[key] ? " open" : "") + '><summary><b class="count">' +
        esc(c.count) + " changes</b> in " + esc(dur(c.last - c.first)) + " " +
        '<span class="kinds muted">' + tally(c.kinds) + "</span></summary><ol>" +
        c.members.map(function (m) {
          return "<li>" + esc(clock(m.time)) + " " + esc(m.kind) + " " + badge(m.state, m.level) +
            "</li>";
        }).join("") + "</ol>" + (c.count > c.members.length ? '<p class="note">the newest ' +
          esc(c.members.length) + " of " + esc(c.count) + " shown</p>" : "") + "</details>" :
        esc(c.kind);
      var state = badge(c.state, c.level) + (many ? '<div class="states">' +
        tally(c.states, c.levels) + "</div>" : "");
      return '<tr class="' + esc(c.worst) + (many ? " coalesced" : "") + '" data-change="' +
        esc(key) + '" data-count="' + esc(c.count) + '" data-policy="' + esc(c.policy_type) +
        '"><td>' + when + "</td><td>" + esc(c.policy_type) + "</td><td>" + esc(c.scope) +
        "</td><td>" + esc(c.name) + "</td><td>" + change + "</td><td>" + state + "</td><td>" +
        esc(c.source) + "</td></tr>";
    });
    el.innerHTML = tableOf(["time", "kind", "pipeline", "name", "change", "state", "source"],
                           rows) + (changes.length > CHANGE_ROWS ? '<p class="note">' +
      esc(changes.length - CHANGE_ROWS) + " older rows not shown.</p>" : "");
  }

  function trackLimit(s, at) {
    var k = s.policy_type + "|" + keyOf(s);
    var h = limitHistory[k];
    if (!h) h = limitHistory[k] = { title: s.scope + " / " + s.name, x: [], inflight: [], limit: [] };
    var t = at;
    if (h.x.length && t <= h.x[h.x.length - 1]) t = h.x[h.x.length - 1] + 0.001;
    h.x.push(t); h.inflight.push(s.fields.inflight); h.limit.push(s.fields.limit);
    if (h.x.length > HISTORY) { h.x.shift(); h.inflight.shift(); h.limit.shift(); }
  }

  // ---- journals and assessment ------------------------------------------------------------------

  function renderJournals(p) {
    var el = document.getElementById("journals");
    if (!p.enabled) return;
    if (!p.runs.length) { el.innerHTML = '<p class="note">No journal in the directory yet.</p>'; return; }
    var lv = { passed: "ok", deviated: "bad", failed: "bad", aborted: "bad", interrupted: "warn",
               unreadable: "warn" };
    el.innerHTML = p.runs.map(function (r) {
      var head = badge(r.verdict, lv[r.verdict] || "warn") + " <b>" + esc(r.title || r.file) +
        "</b> <span class=muted>" + esc(r.start || "") + " · " +
        (r.duration === null ? "–" : r.duration.toFixed(1) + " s") + " · " + esc(r.file) + "</span>";
      if (r.error) return '<details class="journal"><summary>' + head + "</summary><p>" +
        esc(r.error) + "</p></details>";
      var acts = r.activities.concat(r.rollbacks.map(function (a) {
        return Object.assign({}, a, { type: "rollback " + a.type });
      }));
      return '<details class="journal"><summary>' + head + "</summary>" +
        "<p>steady state before: " + esc(r.hypothesis_before) + " · after: " +
        esc(r.hypothesis_after) + (r.abort_reason ? " · aborted: " + esc(r.abort_reason) : "") +
        "</p>" + tableOf(["activity", "type", "status", "duration"],
          acts.map(function (a) {
            return '<tr class="' + (a.status === "succeeded" ? "ok" : "bad") + '"><td>' +
              esc(a.name) + "</td><td>" + esc(a.type) + "</td><td>" + esc(a.status) + "</td><td>" +
              (a.duration === null || a.duration === undefined ? "–" : (+a.duration).toFixed(2) +
               " s") + "</td></tr>";
          })) + "</details>";
    }).join("");
  }

  function renderAssessment(p) {
    var el = document.getElementById("assess");
    if (!p.enabled) return;
    if (p.error) { el.innerHTML = '<p class="error">' + esc(p.error) + "</p>"; return; }
    var s = p.summary;
    el.innerHTML = tableOf(["journey", "target", "availability", "nines", "downtime / year",
                            "meets target", "single points of failure"],
      s.journeys.map(function (j) {
        return '<tr class="' + (j.meets_target ? "ok" : "bad") + '"><td>' + esc(j.name) +
          "</td><td>" + pct(j.target) + "</td><td>" + pct(j.availability) + "</td><td>" +
          num(j.nines) + "</td><td>" + num(j.downtime_minutes_per_year) + " min</td><td>" +
          badge(j.meets_target ? "yes" : "no", j.meets_target ? "ok" : "bad") + "</td><td>" +
          esc(j.spofs.join("; ") || "none") + "</td></tr>";
      })) + '<p class="note">' + esc(s.components) + " components; with a single point of " +
      "failure of their own: " + esc(s.single_points.join(", ") || "none") + ".</p>" +
      s.journeys.map(function (j) {
        if (!j.risks.length) return "";
        return "<h3>Top risks: " + esc(j.name) + "</h3>" + tableOf(
          ["failure mode", "event", "bad minutes / year", "RPN"], j.risks.map(function (r) {
            return "<tr><td>" + esc(r.mode) + "</td><td>" + esc(r.event) + "</td><td>" +
              num(r.bad_minutes_per_year) + "</td><td>" + num(r.rpn) + "</td></tr>";
          }));
      }).join("");
  }

  // ---- the lab's runs side by side --------------------------------------------------------------

  function renderLab(p) {
    var el = document.getElementById("lab");
    if (!p.enabled) return;
    if (p.note) { el.innerHTML = '<p class="note">' + esc(p.file) + ": " + esc(p.note) + "</p>"; return; }
    var lv = { passed: "ok", failed: "bad", inconclusive: "warn" };
    var marks = { "true": ["held", "ok"], "false": ["FAILED", "bad"], "null": ["inconclusive", "warn"] };
    el.innerHTML = "<p>" + badge(p.verdict, lv[p.verdict] || "warn") + " <span class=muted>" +
      esc(p.file) + "</span></p>" +
      tableOf([""].concat(p.columns), p.rows.map(function (r) {
        return "<tr>" + r.map(function (c) { return "<td>" + esc(c) + "</td>"; }).join("") + "</tr>";
      })) +
      tableOf(["hypothesis", "observed", ""], p.hypotheses.map(function (h) {
        var m = marks[String(h.passed)];
        return '<tr class="' + m[1] + '"><td>' + esc(h.hypothesis) + "</td><td>" + esc(h.observed) +
          "</td><td>" + badge(m[0], m[1]) + "</td></tr>";
      })) +
      (p.notes.length ? '<ul class="notes">' + p.notes.map(function (n) {
        return "<li>" + esc(n) + "</li>"; }).join("") + "</ul>" : "");
  }

  // ---- incidents: open ones with state, age and impact; time to x over the history ----------------

  var STATE_LEVEL = { detected: "bad", acknowledged: "warn", mitigated: "warn", resolved: "ok" };
  var MTTX_NAMES = { time_to_detect: "time to detect", time_to_acknowledge: "time to acknowledge",
                     time_to_mitigate: "time to mitigate", time_to_recover: "time to recover",
                     time_between_failures: "time between failures" };

  // An age that ticks: the element keeps its start time, tickAges() rewrites it every second.
  function age(since) {
    return '<span class="age" data-since="' + esc(since) + '">' +
      esc(dur(Math.max(0, Date.now() / 1000 - since))) + "</span>";
  }
  function tickAges() {
    var now = Date.now() / 1000;
    Array.prototype.forEach.call(document.querySelectorAll(".age[data-since]"), function (el) {
      el.textContent = dur(Math.max(0, now - parseFloat(el.getAttribute("data-since"))));
    });
  }
  setInterval(tickAges, 1000);

  function stepsOf(i) {
    return ["acknowledged", "mitigated"].filter(function (k) { return i[k] !== null; })
      .map(function (k) { return k + " by " + esc(i[k + "_by"]) + " after " +
        esc(dur(i[k] - i.detected)); }).join("<br>");
  }
  function impactOf(i) {
    if (!i.impact.length) return '<span class="muted">none recorded</span>';
    return i.impact.map(function (x) {
      return esc(x.slo) + ": " + esc(x.failed) + " failed, " + num(x.budget_minutes) +
        " budget min (" + pct(x.budget_share) + " of the period's), worst minute " +
        pct(x.peak_failing_share) + " failing";
    }).join("<br>");
  }
  function interval(e) {
    if (!e) return "–";
    var lo = e.low === null ? "?" : dur(e.low), hi = e.high === null ? "?" : dur(e.high);
    return esc(dur(e.value)) + ' <span class="muted">[' + esc(lo) + ", " + esc(hi) + "]</span>";
  }

  function renderIncidents(p) {
    var el = document.getElementById("incidents");
    if (!p.enabled) return;
    if (p.note) { el.innerHTML = '<p class="note">' + esc(p.file) + ": " + esc(p.note) + "</p>"; return; }
    var open = p.open.length ? tableOf(["#", "incident", "state", "age", "impact", "response"],
      p.open.map(function (i) {
        return '<tr class="incident" data-incident="' + esc(i.id) + '"><td>#' + esc(i.id) +
          "</td><td><b>" + esc(i.title) + '</b><br><span class="muted">' + esc(i.service) + " / " +
          esc(i.mode) + " · " + esc(i.severity) + "</span></td><td>" +
          badge(i.state, STATE_LEVEL[i.state]) + "</td><td>" + age(i.started) +
          '<br><span class="muted small">detected ' + age(i.detected) + " ago</span></td><td>" +
          impactOf(i) + "</td><td>" + (stepsOf(i) || '<span class="muted">nobody yet</span>') +
          "</td></tr>";
      })) : '<p class="note" id="no-open-incident">No open incident.</p>';
    var metrics = Object.keys(MTTX_NAMES).filter(function (k) { return p.mttx[k]; });
    var mttx = tableOf(["over " + p.total + " incident(s)", "n", "median [95% CI]", "p90 [95% CI]",
                        "mean (for comparison)"],
      metrics.map(function (k) {
        var s = p.mttx[k];
        return '<tr data-metric="' + esc(k) + '"><td>' + esc(MTTX_NAMES[k]) + "</td><td>" +
          esc(s.n) + "</td><td>" + interval(s.median) + "</td><td>" + interval(s.p90) +
          "</td><td>" + (s.mean === null ? "–" : esc(dur(s.mean))) + "</td></tr>";
      }));
    var resolved = p.resolved.length ? "<h3>Recently resolved</h3>" + tableOf(
      ["#", "incident", "resolved", "time to recover"], p.resolved.map(function (i) {
        return '<tr class="resolved" data-incident="' + esc(i.id) + '"><td>#' + esc(i.id) +
          "</td><td>" + esc(i.title) + "</td><td>by " + esc(i.resolved_by) + ", " +
          age(i.resolved) + " ago</td><td>" + esc(dur(i.resolved - i.started)) + "</td></tr>";
      })) : "";
    el.innerHTML = "<h3>Open incidents (" + p.open.length + ")</h3>" + open + resolved +
      "<h3>Time to x</h3>" + mttx;
  }

  // ---- the stream -------------------------------------------------------------------------------

  var handlers = { slos: renderSlos, states: renderStates, journals: renderJournals,
                   assessment: renderAssessment, lab: renderLab, incidents: renderIncidents };
  var conn = document.getElementById("conn");

  function connect() {
    var es = new EventSource("/api/stream");
    es.onopen = function () { conn.textContent = "live"; conn.className = "badge ok"; };
    es.onerror = function () { conn.textContent = "reconnecting"; conn.className = "badge warn"; };
    Object.keys(handlers).forEach(function (name) {
      es.addEventListener(name, function (ev) {
        var p = JSON.parse(ev.data);
        window.ButtressDashboard.received[name] = (window.ButtressDashboard.received[name] || 0) + 1;
        try { handlers[name](p); } catch (e) { showError(name + ": " + e); }
        if (p.at) document.getElementById("updated").textContent =
          "updated " + new Date(p.at * 1000).toLocaleTimeString();
      });
    });
    es.addEventListener("error", function (ev) {
      if (ev.data) showError(JSON.parse(ev.data).message);
    });
    window.ButtressDashboard.source = es;
  }

  function showError(msg) {
    var el = document.getElementById("error");
    el.textContent = msg;
    el.hidden = false;
  }

  connect();
})();
