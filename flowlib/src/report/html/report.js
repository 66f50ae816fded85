"use strict";
(function () {
  var D = JSON.parse(document.getElementById("report-data").textContent);
  var S = D.s, A = D.a, STEPS = D.steps;
  // attempt fields (see render.rs data_json)
  var F = { step: 0, index: 1, attempt: 2, status: 3, start: 4, end: 5, load: 6, body: 7,
    store: 8, error: 9, host: 10, reused: 11, artifacts: 12, logs: 13, card: 14, lane: 15, source: 16, metrics: 17 };
  var PAGE = 50;
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function taskId(a) { var n = STEPS[a[F.step]].name; return a[F.index] ? n + "/" + a[F.index] : n; }
  function ms(x) {
    if (x === null || x === undefined) return "\u2014";
    if (x < 1000) return Math.round(x) + "ms";
    if (x < 60000) return (x / 1000).toFixed(1) + "s";
    return Math.floor(x / 60000) + "m" + String(Math.floor(x / 1000) % 60).padStart(2, "0") + "s";
  }
  function failed(a) { return a[F.status] !== "ok" && a[F.status] !== "caught"; }
  function bytes(n) {
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  }

  // ---- timeline: one group of rows per step, one row per lane (concurrent attempts)
  function gantt() {
    var box = document.getElementById("gantt");
    var timed = A.filter(function (a) { return a[F.start] !== null && a[F.end] !== null; });
    if (!timed.length) { box.appendChild(el("p", { "class": "note" }, "no timed attempts (reused or fenced only)")); return; }
    var lanes = STEPS.map(function () { return 0; });
    timed.forEach(function (a) { lanes[a[F.step]] = Math.max(lanes[a[F.step]], a[F.lane] + 1); });
    // from the first attempt's start (the driver's own start-up is not on it)
    var t0 = timed.reduce(function (m, a) { return Math.min(m, a[F.start]); }, Infinity);
    var t1 = timed.reduce(function (m, a) { return Math.max(m, a[F.end]); }, -Infinity);
    var rowH = 14, maxRows = 40, left = 140, width = 1000, span = Math.max(t1 - t0, 1);
    var base = [], y = 20;
    STEPS.forEach(function (s, i) { base.push(y); if (lanes[i]) y += Math.min(lanes[i], maxRows) * rowH + 6; });
    var NS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + (left + width + 10) + " " + (y + 10));
    svg.setAttribute("id", "gantt-svg");
    function sv(tag, attrs, text) {
      var e = document.createElementNS(NS, tag);
      for (var k in attrs) e.setAttribute(k, attrs[k]);
      if (text !== undefined) e.textContent = text;
      svg.appendChild(e); return e;
    }
    for (var t = 0; t <= 10; t++) {
      var x = left + width * t / 10;
      sv("line", { x1: x, x2: x, y1: 14, y2: y, stroke: "#eee" });
      sv("text", { x: x, y: 11, "font-size": 10, "text-anchor": "middle", fill: "#666" }, (t === 0 ? "+" : "") + ms(span * t / 10));
    }
    STEPS.forEach(function (s, i) {
      if (lanes[i]) sv("text", { x: 4, y: base[i] + 11, "font-size": 12, "data-step": s.name }, s.name + (lanes[i] > 1 ? " \u00d7" + lanes[i] : ""));
    });
    var few = timed.length <= 1500, paths = {};
    timed.forEach(function (a) {
      var lane = Math.min(a[F.lane], maxRows - 1);
      var x = left + width * (a[F.start] - t0) / span, w = Math.max(width * (a[F.end] - a[F.start]) / span, 1);
      var yy = base[a[F.step]] + lane * rowH, cls = failed(a) ? "bad" : (a[F.attempt] > 0 ? "retry" : "ok");
      if (few) {
        var r = sv("rect", { x: x.toFixed(1), y: yy, width: w.toFixed(1), height: rowH - 3, rx: 2,
          fill: failed(a) ? "#e57373" : "#81c784", stroke: a[F.attempt] > 0 ? "#37474f" : "none",
          "data-task": taskId(a), "data-attempt": a[F.attempt] });
        var title = document.createElementNS(NS, "title");
        title.textContent = taskId(a) + " attempt " + a[F.attempt] + " " + a[F.status] + " " + ms(a[F.end] - a[F.start]);
        r.appendChild(title);
      } else {
        paths[cls] = (paths[cls] || "") + "M" + x.toFixed(1) + " " + yy + "h" + w.toFixed(1) + "v" + (rowH - 3) + "h" + (-w).toFixed(1) + "z";
      }
    });
    var fill = { ok: "#81c784", retry: "#4db6ac", bad: "#e57373" };
    for (var c in paths) sv("path", { d: paths[c], fill: fill[c], "data-class": c });
    box.appendChild(svg);
  }

  // ---- task table, filtered and paged
  var state = { page: 0, rows: A.map(function (a, i) { return i; }), open: null };
  function applyFilter() {
    var st = document.getElementById("f-step").value, ss = document.getElementById("f-status").value;
    var q = document.getElementById("f-text").value.toLowerCase();
    state.rows = [];
    A.forEach(function (a, i) {
      if (st !== "" && String(a[F.step]) !== st) return;
      if (ss !== "" && a[F.status] !== ss) return;
      if (q) {
        var hay = taskId(a).toLowerCase() + " " + (a[F.error] !== null ? S[a[F.error]].toLowerCase() : "");
        if (hay.indexOf(q) < 0) return;
      }
      state.rows.push(i);
    });
    state.page = 0; table();
  }
  function table() {
    var body = document.getElementById("task-rows");
    body.textContent = "";
    var pages = Math.max(1, Math.ceil(state.rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    state.rows.slice(state.page * PAGE, state.page * PAGE + PAGE).forEach(function (i) {
      var a = A[i], tr = el("tr", { "data-task": taskId(a), "data-attempt": a[F.attempt], "data-status": a[F.status] });
      tr.appendChild(el("td", null, taskId(a)));
      tr.appendChild(el("td", null, a[F.attempt]));
      var td = el("td"); td.appendChild(el("span", { "class": "st " + a[F.status] }, a[F.reused] == 2 ? a[F.status] + " (cached)" : a[F.reused] ? a[F.status] + " (reused)" : a[F.status])); tr.appendChild(td);
      tr.appendChild(el("td", null, ms(a[F.start])));
      tr.appendChild(el("td", null, a[F.start] !== null ? ms(a[F.end] - a[F.start]) : "\u2014"));
      tr.appendChild(el("td", null, S[a[F.host]]));
      tr.appendChild(el("td", { "class": "err" }, a[F.error] !== null ? S[a[F.error]] : ""));
      tr.addEventListener("click", function () { location.hash = "task=" + taskId(a) + "@" + a[F.attempt]; });
      body.appendChild(tr);
    });
    document.getElementById("page").textContent = "page " + (state.page + 1) + " of " + pages;
    document.getElementById("count").textContent = state.rows.length + " of " + A.length + " attempts";
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
  }
  function details(i) {
    var a = A[i], box = document.getElementById("task-details");
    box.textContent = "";
    var d = el("div", { "class": "detail", "data-task": taskId(a), "data-attempt": a[F.attempt] });
    d.appendChild(el("h3", null, taskId(a) + " \u2014 attempt " + a[F.attempt]));
    var st = STEPS[a[F.step]];
    var facts = el("table", { "class": "kv" });
    function fact(k, v, cls) { var tr = el("tr"); tr.appendChild(el("th", null, k)); tr.appendChild(el("td", cls ? { "class": cls } : null, v)); facts.appendChild(tr); }
    fact("status", a[F.status] + (a[F.reused] == 2 ? " (cached from run " + S[a[F.source]] + ")" : a[F.reused] ? " (reused from run " + S[a[F.source]] + ")" : ""));
    if (a[F.error] !== null) fact("error", S[a[F.error]], "error");
    fact("started", ms(a[F.start]) + " after the run's start");
    fact("phases", "load " + ms(a[F.load]) + ", step " + ms(a[F.body]) + ", store " + ms(a[F.store]));
    fact("host", S[a[F.host]]);
    fact("resources", st.attrs || "\u2014 (the report's binary is not the one that ran)");
    var others = A.filter(function (b) { return b[F.step] === a[F.step] && b[F.index] === a[F.index]; });
    fact("attempts", others.map(function (b) { return b[F.attempt] + ": " + b[F.status]; }).join(", "));
    d.appendChild(facts);
    if (a[F.metrics].length) {
      d.appendChild(el("h4", null, "Metrics"));
      var mt = el("table", { "class": "metrics" }), mh = el("tr");
      ["metric", "last", "min", "max", "points"].forEach(function (h) { mh.appendChild(el("th", null, h)); }); mt.appendChild(mh);
      a[F.metrics].forEach(function (m) {
        var tr = el("tr"); tr.appendChild(el("td", null, S[m[0]]));
        for (var k = 1; k < 5; k++) tr.appendChild(el("td", { title: String(m[k]) }, k < 4 && typeof m[k] === "number" ? Number(m[k].toPrecision(6)) : m[k]));
        mt.appendChild(tr);
      });
      d.appendChild(mt);
    }
    if (a[F.artifacts].length) {
      d.appendChild(el("h4", null, "Artifacts"));
      var t = el("table", { "class": "artifacts" }), hr = el("tr");
      ["name", "size", "digest"].forEach(function (h) { hr.appendChild(el("th", null, h)); }); t.appendChild(hr);
      a[F.artifacts].forEach(function (x) {
        var tr = el("tr"); tr.appendChild(el("td", null, S[x[0]])); tr.appendChild(el("td", null, bytes(x[2])));
        var c = el("td"); c.appendChild(el("code", null, S[x[1]])); tr.appendChild(c); t.appendChild(tr);
      });
      d.appendChild(t);
    }
    if (a[F.logs]) {
      ["stdout", "stderr"].forEach(function (name, k) {
        if (!a[F.logs][k]) return;
        d.appendChild(el("h4", null, name + " (last lines)"));
        d.appendChild(el("pre", { "class": "log " + name }, a[F.logs][k]));
      });
    }
    if (a[F.card] === -1) {
      d.appendChild(el("h4", null, "Card"));
      d.appendChild(el("p", { "class": "note" }, "not embedded (the report's cards reached their size budget): write this task's own report with `report " + D.run + " --task " + taskId(a) + "`"));
    } else if (a[F.card] !== null) {
      d.appendChild(el("h4", null, "Card"));
      var c = el("div"); c.innerHTML = D.cards[a[F.card]]; d.appendChild(c);
    }
    box.appendChild(d);
    d.scrollIntoView({ block: "nearest" });
  }
  // #task=fit/3 (last attempt) or #task=fit/3@1; #step=fit filters the table
  function route() {
    var h = decodeURIComponent(location.hash.replace(/^#/, ""));
    if (h.indexOf("task=") === 0) {
      var want = h.slice(5), at = want.lastIndexOf("@"), attempt = null;
      if (at > 0) { attempt = Number(want.slice(at + 1)); want = want.slice(0, at); }
      var found = -1;
      A.forEach(function (a, i) { if (taskId(a) === want && (attempt === null || a[F.attempt] === attempt)) found = i; });
      if (found >= 0) {
        var pos = state.rows.indexOf(found);
        if (pos < 0) { document.getElementById("f-step").value = ""; document.getElementById("f-status").value = ""; document.getElementById("f-text").value = ""; applyFilter(); pos = state.rows.indexOf(found); }
        state.page = Math.floor(pos / PAGE); table(); details(found);
      } else {
        document.getElementById("task-details").textContent = "no task " + want + " in this run";
      }
    } else if (h.indexOf("step=") === 0) {
      var i = STEPS.map(function (s) { return s.name; }).indexOf(h.slice(5));
      if (i >= 0) { document.getElementById("f-step").value = String(i); applyFilter(); document.getElementById("tasks").scrollIntoView(); }
    }
  }
  var fs = document.getElementById("f-step");
  STEPS.forEach(function (s, i) { fs.appendChild(el("option", { value: String(i) }, s.name)); });
  var seen = {};
  A.forEach(function (a) { seen[a[F.status]] = 1; });
  Object.keys(seen).sort().forEach(function (s) { document.getElementById("f-status").appendChild(el("option", { value: s }, s)); });
  ["f-step", "f-status"].forEach(function (id) { document.getElementById(id).addEventListener("change", applyFilter); });
  document.getElementById("f-text").addEventListener("input", applyFilter);
  document.getElementById("prev").addEventListener("click", function () { state.page--; table(); });
  document.getElementById("next").addEventListener("click", function () { state.page++; table(); });
  window.addEventListener("hashchange", route);
  if (D.only) document.getElementById("tasks").insertBefore(el("p", { "class": "note" }, "only the attempts of " + D.only + " (report --task)"), document.querySelector("#tasks .controls"));
  gantt();
  table();
  route();
  document.body.setAttribute("data-ready", "1");
})();
