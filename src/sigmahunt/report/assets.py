# ruff: noqa: E501  (inline CSS and JavaScript)
"""The report page's inline stylesheet and script (no external resource of any kind).

The script only ever puts data into the page through ``textContent`` and attribute setters
(never ``innerHTML``), so event and rule content is always shown as text.
"""

CSS = r"""
:root { --fg:#1f2933; --muted:#66717d; --line:#e1e5ea; --bg:#ffffff; --panel:#f6f7f9; --accent:#1d4ed8;
  --critical:#7b1fa2; --high:#d32f2f; --medium:#ef8f00; --low:#2e7d32; --informational:#607d8b; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  color:var(--fg); background:var(--bg); }
header.top { padding:18px 28px 14px; background:#111827; color:#f9fafb; }
header.top h1 { margin:0 0 4px; font-size:22px; font-weight:650; }
header.top .meta { color:#cbd5e1; font-size:13px; }
header.top .meta span + span::before { content:" · "; color:#64748b; }
main { padding:8px 28px 40px; max-width:1500px; margin:0 auto; }
section { margin-top:26px; }
h2 { font-size:17px; margin:0 0 10px; padding-bottom:4px; border-bottom:1px solid var(--line); }
h3 { font-size:14px; margin:12px 0 6px; }
.muted { color:var(--muted); }
.note { background:#fff8e1; border:1px solid #f3d37a; padding:6px 10px; border-radius:6px; margin:8px 0; }
.cards { display:flex; flex-wrap:wrap; gap:12px; margin-top:16px; }
.card { min-width:130px; padding:10px 14px; border-radius:8px; background:var(--panel); border:1px solid var(--line);
  border-left:6px solid #9ca3af; cursor:pointer; text-align:left; font:inherit; color:inherit; }
.card .n { font-size:26px; font-weight:700; line-height:1.1; }
.card .l { color:var(--muted); text-transform:capitalize; }
.card.total { cursor:default; border-left-color:#111827; }
.card[aria-pressed="false"] { opacity:.45; }
.card.zero { opacity:.55; }
.kv { display:grid; grid-template-columns:max-content 1fr; gap:2px 14px; margin:0; }
.kv dt { color:var(--muted); } .kv dd { margin:0; word-break:break-word; }
.stats { display:flex; flex-wrap:wrap; gap:6px 28px; }
.stats div b { font-size:16px; }
.chart { display:block; max-width:100%; height:auto; }
.chart .mk, .chart .host { cursor:pointer; }
.chart .mk:hover { stroke:#111827; stroke-width:2; }
.legend { display:flex; gap:14px; flex-wrap:wrap; margin:6px 0; font-size:12px; color:var(--muted); }
.legend i { display:inline-block; width:11px; height:11px; border-radius:50%; margin-right:5px; vertical-align:-1px; }
.lvl { display:inline-block; padding:0 7px; border-radius:10px; color:#fff; font-size:12px; font-weight:600;
  text-transform:lowercase; white-space:nowrap; }
.lvl-critical { background:var(--critical); } .lvl-high { background:var(--high); }
.lvl-medium { background:var(--medium); } .lvl-low { background:var(--low); }
.lvl-informational { background:var(--informational); } .lvl-unknown { background:#9e9e9e; }
.matrix { display:flex; gap:6px; overflow-x:auto; padding-bottom:6px; align-items:flex-start; }
.tactic { flex:1 0 120px; max-width:200px; }
.tactic .th { background:#111827; color:#fff; padding:6px 8px; border-radius:6px 6px 0 0; font-weight:600;
  font-size:12.5px; min-height:48px; }
.tactic .th small { display:block; color:#cbd5e1; font-weight:400; }
.tech { display:block; width:100%; text-align:left; border:1px solid #fff; padding:5px 7px; font:inherit; font-size:12px;
  cursor:pointer; border-radius:3px; margin-top:2px; line-height:1.25; }
.tech b { display:block; font-size:11.5px; }
.tech .c { float:right; font-weight:700; }
.tech:hover { outline:2px solid #111827; }
.scale { display:flex; align-items:center; gap:6px; font-size:12px; color:var(--muted); margin:6px 0; }
.scale span.bar { width:160px; height:10px; border-radius:3px;
  background:linear-gradient(90deg,#fff3c4,#fdba74,#f97316,#dc2626,#7f1d1d); }
#tops .hosts { margin-top:22px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:var(--panel); font-weight:600; font-size:12.5px; white-space:nowrap; }
td.time { white-space:nowrap; font-variant-numeric:tabular-nums; }
.scroll { overflow-x:auto; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
tr.clickable { cursor:pointer; } tr.clickable:hover td { background:#eef2ff; }
.controls { display:flex; flex-wrap:wrap; gap:8px; align-items:center; margin-bottom:8px; }
.controls input[type=search] { flex:1 1 360px; padding:7px 10px; font:inherit; border:1px solid #b8c0ca; border-radius:6px; }
.controls button, .pager button, .controls select { font:inherit; padding:5px 10px; border:1px solid #b8c0ca;
  background:#fff; border-radius:6px; cursor:pointer; }
.controls .lvlbtn[aria-pressed="false"] { opacity:.4; }
.chips { display:flex; gap:6px; flex-wrap:wrap; margin:4px 0 8px; }
.chip { background:#e0e7ff; color:#1e3a8a; border-radius:12px; padding:2px 4px 2px 10px; font-size:12.5px; }
.chip button { border:0; background:transparent; cursor:pointer; font-size:13px; color:#1e3a8a; }
#det-table th.sortable { cursor:pointer; user-select:none; }
#det-table th.sortable::after { content:" ↕"; color:#9aa3ad; }
#det-table th[aria-sort="ascending"]::after { content:" ▲"; color:var(--fg); }
#det-table th[aria-sort="descending"]::after { content:" ▼"; color:var(--fg); }
#det-table td { font-size:13px; }
#det-table td.key { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px;
  max-width:0; width:36%; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
#det-table td.time { white-space:nowrap; font-variant-numeric:tabular-nums; }
tr.details > td { background:#fbfbfc; padding:10px 14px 14px; }
.dgrid { display:grid; grid-template-columns:minmax(0,1fr) minmax(0,2fr); gap:18px; }
@media (max-width: 1000px) { .dgrid { grid-template-columns:1fr; } }
table.fields td { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px;
  white-space:pre-wrap; word-break:break-all; }
table.fields td:first-child { color:#374151; white-space:nowrap; width:1%; font-weight:600; }
pre.raw { white-space:pre-wrap; word-break:break-all; font-size:12px; background:#fff; border:1px solid var(--line);
  padding:8px; max-height:420px; overflow:auto; }
.pager { display:flex; gap:8px; align-items:center; margin-top:8px; }
footer { color:var(--muted); font-size:12px; padding:18px 28px; border-top:1px solid var(--line); }
"""

JS = r"""
(function () {
  "use strict";
  var dataEl = document.getElementById("report-data");
  var data = JSON.parse(dataEl.textContent);
  var rules = data.rules, rows = data.rows;
  var RANK = {critical: 4, high: 3, medium: 2, low: 1, informational: 0};
  var SORT_KEYS = ["time", "level", "rule", "computer", "channel", "eventid", "key"];
  var state = {q: "", levels: new Set(data.levels), host: null, from: null, to: null, technique: null,
               rule: null, sortKey: null, sortDir: 1, page: 0, pageSize: 100, open: new Set()};
  var hay = null;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) { for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, attrs[k]); } }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function lvlClass(level) { return "lvl lvl-" + (RANK.hasOwnProperty(level) ? level : "unknown"); }
  function ruleKey(ri) { var r = rules[ri]; return r[0] || r[5] || r[1]; }
  function timeText(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "").replace(/Z$/, "") : ""; }

  function haystack(i) {
    if (!hay) hay = new Array(rows.length);
    if (hay[i] === undefined) {
      var r = rows[i], rule = rules[r[2]], parts = [r[0], r[1], rule[0], rule[1], rule[4].join(" "), r[3], r[4], r[5], r[6], r[7], r[8]];
      var ev = r[10] || {};
      for (var k in ev) { if (Object.prototype.hasOwnProperty.call(ev, k)) parts.push(k + "=" + ev[k]); }
      if (r[11]) parts.push(JSON.stringify(r[11]));
      hay[i] = parts.join("\n").toLowerCase();
    }
    return hay[i];
  }

  function tokens(q) {
    var out = [], re = /(-?)(?:([A-Za-z0-9_.@#-]+):)?(?:"([^"]*)"|(\S+))/g, m;
    while ((m = re.exec(q)) !== null) {
      var value = (m[3] !== undefined ? m[3] : m[4]) || "";
      if (!value && !m[2]) continue;
      out.push({neg: m[1] === "-", key: m[2] ? m[2].toLowerCase() : null, value: value.toLowerCase()});
    }
    return out;
  }

  function fieldValues(i, key) {
    var r = rows[i], rule = rules[r[2]];
    switch (key) {
      case "level": return [r[1]];
      case "rule": case "title": return [rule[1], rule[0]];
      case "computer": case "host": return [r[3]];
      case "channel": return [r[4]];
      case "eventid": case "event_id": case "id": return [r[5]];
      case "source": case "file": return [r[6]];
      case "tag": case "tags": return rule[4];
      case "technique": return rule[10];
      case "time": return [r[0] || ""];
    }
    var ev = r[10] || {}, vals = [];
    for (var k in ev) { if (Object.prototype.hasOwnProperty.call(ev, k) && k.toLowerCase() === key) vals.push(ev[k]); }
    return vals;
  }

  function matchesQuery(i, toks) {
    for (var t = 0; t < toks.length; t++) {
      var tok = toks[t], hit;
      if (tok.key) {
        var vals = fieldValues(i, tok.key);
        hit = false;
        for (var v = 0; v < vals.length; v++) {
          if (vals[v] !== null && vals[v] !== undefined && String(vals[v]).toLowerCase().indexOf(tok.value) !== -1) { hit = true; break; }
        }
      } else {
        hit = haystack(i).indexOf(tok.value) !== -1;
      }
      if (hit === tok.neg) return false;
    }
    return true;
  }

  function techniqueMatch(ri, tech) {
    var list = rules[ri][10];
    for (var i = 0; i < list.length; i++) { if (list[i].toUpperCase() === tech) return true; }
    return false;
  }

  function matching() {
    var toks = tokens(state.q), out = [];
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (!state.levels.has(r[1])) continue;
      if (state.host !== null && r[3] !== state.host) continue;
      if (state.from !== null && !(r[0] && r[0] >= state.from && r[0] < state.to)) continue;
      if (state.rule !== null && ruleKey(r[2]) !== state.rule) continue;
      if (state.technique !== null && !techniqueMatch(r[2], state.technique)) continue;
      if (toks.length && !matchesQuery(i, toks)) continue;
      out.push(i);
    }
    if (state.sortKey) {
      var key = state.sortKey, dir = state.sortDir;
      var val = function (i) {
        var r = rows[i];
        switch (key) {
          case "time": return r[0] || "";
          case "level": return RANK.hasOwnProperty(r[1]) ? RANK[r[1]] : -1;
          case "rule": return rules[r[2]][1].toLowerCase();
          case "computer": return r[3].toLowerCase();
          case "channel": return r[4].toLowerCase();
          case "eventid": var n = parseInt(r[5], 10); return isNaN(n) ? -1 : n;
          case "key": return r[9].toLowerCase();
        }
        return i;
      };
      out.sort(function (a, b) { var x = val(a), y = val(b); return x < y ? -dir : x > y ? dir : a - b; });
    }
    return out;
  }

  function kvTable(pairs) {
    var table = el("table", {"class": "fields"}), body = el("tbody");
    pairs.forEach(function (p) {
      var tr = el("tr"); tr.appendChild(el("td", null, p[0])); tr.appendChild(el("td", null, p[1])); body.appendChild(tr);
    });
    table.appendChild(body);
    return table;
  }

  function details(i) {
    var r = rows[i], rule = rules[r[2]], box = el("div", {"class": "dgrid"});
    var left = el("div"), right = el("div");
    left.appendChild(el("h3", null, "Rule"));
    var dl = el("dl", {"class": "kv"});
    function add(k, v) { if (v === null || v === undefined || v === "" || (Array.isArray(v) && !v.length)) return;
      dl.appendChild(el("dt", null, k)); var dd = el("dd", null, Array.isArray(v) ? v.join(", ") : v); dl.appendChild(dd); return dd; }
    add("title", rule[1]); add("id", rule[0]);
    var lv = add("level", ""); if (!lv) { dl.appendChild(el("dt", null, "level")); lv = el("dd"); dl.appendChild(lv); }
    lv.appendChild(el("span", {"class": lvlClass(rule[2])}, rule[2]));
    add("status", rule[3]); add("tags", rule[4]); add("file", rule[5]); add("description", rule[6]);
    add("author", rule[7]); add("false positives", rule[8]);
    if (rule[9] && rule[9].length) {
      dl.appendChild(el("dt", null, "references")); var refs = el("dd");
      rule[9].forEach(function (u) {
        var line = el("div");
        if (/^https?:\/\//i.test(u)) { var a = el("a", {rel: "noopener noreferrer", target: "_blank"}, u); a.href = u; line.appendChild(a); }
        else { line.textContent = u; }
        refs.appendChild(line);
      });
      dl.appendChild(refs);
    }
    left.appendChild(dl);
    left.appendChild(el("h3", null, "Where"));
    var where = [["time (UTC)", timeText(r[0])], ["computer", r[3]], ["channel", r[4]], ["EventID", r[5]],
                 ["source", r[6]], ["position", r[7]], ["record id", r[8]]].filter(function (p) { return p[1]; });
    left.appendChild(kvTable(where));
    if (r[11]) {
      var c = r[11];
      right.appendChild(el("h3", null, "Correlation (" + c.type + ")"));
      var cinfo = [["group", c.group === null ? "" : JSON.stringify(c.group)], ["window", timeText(c.window_start) + " – " + timeText(c.window_end)],
                   ["value", c.value === null ? "" : String(c.value)], ["events", String(c.count)]].filter(function (p) { return p[1]; });
      right.appendChild(kvTable(cinfo));
      if (c.events && c.events.length) {
        var et = el("table", {"class": "fields"}), eb = el("tbody");
        c.events.forEach(function (ev) {
          var tr = el("tr"), key = "";
          ["CommandLine", "Image", "NewProcessName", "TargetUserName", "IpAddress", "QueryName", "TargetFilename"].some(function (k) {
            if (ev[k]) { key = k + ": " + ev[k]; return true; } return false; });
          tr.appendChild(el("td", null, timeText(ev.TimeCreated || "")));
          tr.appendChild(el("td", null, [ev.Computer || "", "EventID " + (ev.EventID || ""), key].join("  ")));
          eb.appendChild(tr);
        });
        et.appendChild(eb); right.appendChild(et);
        if (c.count > c.events.length) right.appendChild(el("p", {"class": "muted"}, (c.count - c.events.length) + " more events not listed (see the JSONL output)"));
      }
    }
    right.appendChild(el("h3", null, "Event fields"));
    var ev = r[10] || {}, pairs = [];
    for (var k in ev) { if (Object.prototype.hasOwnProperty.call(ev, k)) pairs.push([k, ev[k] === null ? "" : String(ev[k])]); }
    right.appendChild(kvTable(pairs));
    var raw = el("details"); raw.appendChild(el("summary", null, "raw JSON"));
    raw.appendChild(el("pre", {"class": "raw"}, JSON.stringify(ev, null, 2)));
    right.appendChild(raw);
    box.appendChild(left); box.appendChild(right);
    return box;
  }

  var body = document.getElementById("det-body"), status = document.getElementById("det-status");
  var chips = document.getElementById("det-chips"), pageInfo = document.getElementById("det-page");

  function render() {
    var list = matching(), pages = Math.max(1, Math.ceil(list.length / state.pageSize));
    if (state.page >= pages) state.page = pages - 1;
    var start = state.page * state.pageSize, slice = list.slice(start, start + state.pageSize);
    while (body.firstChild) body.removeChild(body.firstChild);
    slice.forEach(function (i) {
      var r = rows[i], tr = el("tr", {"class": "clickable det", "data-idx": String(i)});
      tr.appendChild(el("td", {"class": "time when"}, timeText(r[0])));
      var lc = el("td"); lc.appendChild(el("span", {"class": lvlClass(r[1])}, r[1])); tr.appendChild(lc);
      tr.appendChild(el("td", null, rules[r[2]][1] + (r[11] ? "  [" + r[11].type + "]" : "")));
      tr.appendChild(el("td", null, r[3]));
      tr.appendChild(el("td", null, r[4]));
      tr.appendChild(el("td", {"class": "num"}, r[5]));
      var key = el("td", {"class": "key"}, r[9]); key.title = r[9]; tr.appendChild(key);
      tr.addEventListener("click", function () { if (state.open.has(i)) state.open.delete(i); else state.open.add(i); render(); });
      body.appendChild(tr);
      if (state.open.has(i)) {
        var dtr = el("tr", {"class": "details"}), td = el("td", {colspan: "7"});
        td.appendChild(details(i)); dtr.appendChild(td); body.appendChild(dtr);
      }
    });
    if (!slice.length) {
      var none = el("tr"); none.appendChild(el("td", {colspan: "7", "class": "muted"}, "No detection matches.")); body.appendChild(none);
    }
    var shownNote = data.shown < data.total ? " (the table holds the " + data.shown.toLocaleString("en-US") + " most severe of " + data.total.toLocaleString("en-US") + ")" : "";
    status.textContent = (list.length ? "Showing " + (start + 1) + "–" + (start + slice.length) + " of " : "Showing 0 of ") +
      list.length.toLocaleString("en-US") + " matching detections" + shownNote;
    status.setAttribute("data-matching", String(list.length));
    pageInfo.textContent = "page " + (state.page + 1) + " of " + pages;
    document.getElementById("det-prev").disabled = state.page === 0;
    document.getElementById("det-next").disabled = state.page >= pages - 1;
    renderChips();
    writeHash();
  }

  function renderChips() {
    while (chips.firstChild) chips.removeChild(chips.firstChild);
    function chip(label, clear) {
      var c = el("span", {"class": "chip"}, label), b = el("button", {type: "button", title: "remove this filter"}, "×");
      b.addEventListener("click", function () { clear(); state.page = 0; render(); });
      c.appendChild(b); chips.appendChild(c);
    }
    if (state.host !== null) chip("computer: " + (state.host || "(none)"), function () { state.host = null; });
    if (state.from !== null) chip("time: " + timeText(state.from) + " – " + timeText(state.to), function () { state.from = state.to = null; });
    if (state.technique !== null) chip("technique: " + state.technique, function () { state.technique = null; });
    if (state.rule !== null) {
      var title = state.rule;
      for (var i = 0; i < rules.length; i++) { if (ruleKey(i) === state.rule) { title = rules[i][1]; break; } }
      chip("rule: " + title, function () { state.rule = null; });
    }
  }

  function writeHash() {
    var parts = [];
    if (state.q) parts.push("q=" + encodeURIComponent(state.q));
    if (state.levels.size !== data.levels.length) parts.push("level=" + encodeURIComponent(Array.from(state.levels).join(",")));
    if (state.host !== null) parts.push("host=" + encodeURIComponent(state.host));
    if (state.technique !== null) parts.push("technique=" + encodeURIComponent(state.technique));
    if (state.rule !== null) parts.push("rule=" + encodeURIComponent(state.rule));
    if (state.sortKey) parts.push("sort=" + (state.sortDir < 0 ? "-" : "") + state.sortKey);
    var hash = parts.length ? "#" + parts.join("&") : "";
    if (hash !== location.hash && !(hash === "" && location.hash === "")) {
      try { history.replaceState(null, "", hash || location.pathname + location.search); } catch (e) { /* file: URLs in some browsers */ }
    }
  }

  function readHash() {
    var h = location.hash.replace(/^#/, "");
    if (!h) return;
    h.split("&").forEach(function (part) {
      var eq = part.indexOf("="); if (eq < 0) return;
      var k = part.slice(0, eq), v;
      try { v = decodeURIComponent(part.slice(eq + 1).replace(/\+/g, " ")); } catch (e) { return; }
      if (k === "q") state.q = v;
      else if (k === "level") state.levels = new Set(v.split(",").filter(function (x) { return data.levels.indexOf(x) !== -1; }));
      else if (k === "host") state.host = v;
      else if (k === "technique") state.technique = v.toUpperCase();
      else if (k === "rule") state.rule = v;
      else if (k === "sort" && SORT_KEYS.indexOf(v.replace(/^-/, "")) !== -1) {
        state.sortDir = v.charAt(0) === "-" ? -1 : 1; state.sortKey = v.replace(/^-/, "");
      }
      else if (k === "open") v.split(",").forEach(function (x) { var n = parseInt(x, 10); if (n >= 0 && n < rows.length) state.open.add(n); });
    });
  }

  function syncLevelButtons() {
    document.querySelectorAll("[data-level]").forEach(function (b) {
      b.setAttribute("aria-pressed", state.levels.has(b.getAttribute("data-level")) ? "true" : "false");
    });
  }
  function toggleLevel(level) {
    if (state.levels.has(level)) state.levels.delete(level); else state.levels.add(level);
    if (!state.levels.size) state.levels = new Set(data.levels);
    state.page = 0; syncLevelButtons(); render();
  }
  function showTable() { var t = document.getElementById("detections"); if (t && t.scrollIntoView) t.scrollIntoView({block: "start"}); }

  var search = document.getElementById("det-search"), timer = null;
  search.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { state.q = search.value; state.page = 0; render(); }, 120);
  });
  document.querySelectorAll("[data-level]").forEach(function (b) {
    b.addEventListener("click", function () { toggleLevel(b.getAttribute("data-level")); });
  });
  document.querySelectorAll("#det-table th.sortable").forEach(function (th) {
    th.addEventListener("click", function () {
      var key = th.getAttribute("data-sort");
      if (state.sortKey === key) state.sortDir = -state.sortDir; else { state.sortKey = key; state.sortDir = key === "level" ? -1 : 1; }
      document.querySelectorAll("#det-table th.sortable").forEach(function (o) { o.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", state.sortDir > 0 ? "ascending" : "descending");
      state.page = 0; render();
    });
  });
  document.getElementById("det-prev").addEventListener("click", function () { state.page = Math.max(0, state.page - 1); render(); });
  document.getElementById("det-next").addEventListener("click", function () { state.page += 1; render(); });
  document.getElementById("det-size").addEventListener("change", function (e) { state.pageSize = parseInt(e.target.value, 10) || 100; state.page = 0; render(); });
  document.getElementById("det-reset").addEventListener("click", function () {
    state.q = ""; search.value = ""; state.levels = new Set(data.levels); state.host = state.from = state.to = null;
    state.technique = state.rule = null; state.sortKey = null; state.open.clear(); state.page = 0;
    document.querySelectorAll("#det-table th.sortable").forEach(function (o) { o.removeAttribute("aria-sort"); });
    syncLevelButtons(); render();
  });
  document.querySelectorAll("#timeline-svg .mk").forEach(function (m) {
    m.addEventListener("click", function () {
      state.host = m.getAttribute("data-host"); state.from = m.getAttribute("data-from"); state.to = m.getAttribute("data-to");
      state.page = 0; render(); showTable();
    });
  });
  document.querySelectorAll("[data-host]:not(.mk)").forEach(function (h) {
    h.addEventListener("click", function () { state.host = h.getAttribute("data-host"); state.from = state.to = null; state.page = 0; render(); showTable(); });
  });
  document.querySelectorAll("[data-technique]").forEach(function (c) {
    c.addEventListener("click", function () { state.technique = c.getAttribute("data-technique"); state.page = 0; render(); showTable(); });
  });
  document.querySelectorAll("[data-rule]").forEach(function (c) {
    c.addEventListener("click", function () { state.rule = c.getAttribute("data-rule"); state.page = 0; render(); showTable(); });
  });

  readHash();
  search.value = state.q;
  if (state.sortKey) {
    var sorted = document.querySelector('#det-table th[data-sort="' + state.sortKey + '"]');
    if (sorted) sorted.setAttribute("aria-sort", state.sortDir > 0 ? "ascending" : "descending");
  }
  syncLevelButtons();
  render();
  window.sigmahuntReport = {
    state: state,
    matching: matching,
    search: function (q) { state.q = q; search.value = q; state.page = 0; render(); return matching().length; },
    open: function (i) { state.open.add(i); render(); }
  };
  document.documentElement.setAttribute("data-ready", "1");
})();
"""
