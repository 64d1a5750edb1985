{% raw %}
/* linkhealth report: renders the links, notes and hosts tables from the embedded JSON,
   one page at a time. Data is only ever put in the page with textContent and
   createElement (never innerHTML): titles and URLs come from hostile servers. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("report-data").textContent);
  // Positions of a link tuple; keep in step with html.py _link_tuple.
  var L = { url: 0, status: 1, health: 2, http: 3, final: 4, title: 5, error: 6, checked: 7,
            latency: 8, risk: 9, archive: 10, archiveService: 11, since: 12, host: 13, occ: 14,
            hist: 15, revived: 16, fidelity: 17 };
  var ST = D.statuses, FAILING = { broken: 1, soft404: 1, timeout: 1, unreachable: 1 };
  var RANK = {};
  D.order.forEach(function (s, i) { RANK[s] = i; });
  var state = { q: "", statuses: {}, health: "", risk: false, note: -1, host: -1,
                sort: "status", dir: 1, page: { links: 0, notes: 0, hosts: 0 } };
  var PAGE = 50;
  var haystack = null;

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function statusOf(row) { return row[L.status] < 0 ? null : ST[row[L.status]]; }
  function safeHref(url) {
    // Only web addresses, local files (archived copies) and relative paths become links:
    // no javascript: or data:. Decided on the URL as the browser will parse it (it drops
    // tabs and newlines anywhere and leading control characters: "java\tscript:" is
    // javascript:), never on the text.
    if (!url) return null;
    var parsed;
    try { parsed = new URL(url, document.baseURI); } catch (e) { return null; }
    if (!/^(https?|file):$/.test(parsed.protocol)) return null;
    return servedCopy(parsed);
  }
  function servedCopy(parsed) {
    // Served by the daemon (http), a local copy <archive>/<host>/<name>.html is at
    // archive/<host>/<name>.html on the same server: browsers refuse file:// links there.
    if (parsed.protocol !== "file:" || !/^https?:$/.test(location.protocol)) return parsed.href;
    return new URL("archive/" + parsed.pathname.split("/").slice(-2).join("/"), document.baseURI).href;
  }
  function link(url, text, cls) {
    var href = safeHref(url);
    var a = el(href ? "a" : "span", cls || "u", text);
    if (href) { a.href = href; a.rel = "noopener noreferrer"; a.target = "_blank"; }
    return a;
  }
  function day(ts) {
    if (!ts) return "";
    return new Date(ts * 1000).toISOString().slice(0, 10);
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function localStamp(d) {
    // The date only when it is not the UTC date shown beside it.
    var date = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
    return (date === d.toISOString().slice(0, 10) ? "" : date + " ") + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  var LOCAL_IS_UTC = new Date().getTimezoneOffset() === 0 && new Date(0).getTimezoneOffset() === 0;
  function stamp(ts) {
    if (!ts) return "";
    var d = new Date(ts * 1000), utc = d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
    return LOCAL_IS_UTC ? utc : utc + " (" + localStamp(d) + " local time)";
  }
  // The page is written in UTC; the reader's own time goes beside it, computed where it is read.
  Array.prototype.forEach.call(document.querySelectorAll("time[data-local]"), function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (LOCAL_IS_UTC || isNaN(d)) return;
    t.parentNode.insertBefore(el("span", "local", " (" + localStamp(d) + " local time)"), t.nextSibling);
  });
  function timeCell(ts) {
    var td = el("td", "nowrap");
    if (ts) { var t = el("time", null, day(ts)); t.dateTime = new Date(ts * 1000).toISOString(); t.title = stamp(ts); td.appendChild(t); }
    return td;
  }

  // ---- filtering and sorting ------------------------------------------------
  function buildHaystack() {
    haystack = D.links.map(function (r) {
      var parts = [r[L.url], r[L.title] || "", r[L.final] || "", r[L.error] || "", D.hosts[r[L.host]]];
      for (var i = 0; i < r[L.occ].length; i += 2) parts.push(D.notes[r[L.occ][i]]);
      return parts.join("\n").toLowerCase();
    });
  }
  function matches(r, i, words) {
    var st = statusOf(r);
    var anyStatus = false, okStatus = false;
    for (var k in state.statuses) {
      if (!state.statuses[k]) continue;
      anyStatus = true;
      if (k === st || (k === "failing" && FAILING[st]) || (k === "none" && st === null)) okStatus = true;
    }
    if (anyStatus && !okStatus) return false;
    if (state.health && r[L.health] !== state.health) return false;
    if (state.risk && !r[L.risk]) return false;
    if (state.host >= 0 && r[L.host] !== state.host) return false;
    if (state.note >= 0) {
      var found = false;
      for (var j = 0; j < r[L.occ].length; j += 2) if (r[L.occ][j] === state.note) { found = true; break; }
      if (!found) return false;
    }
    for (var w = 0; w < words.length; w++) if (haystack[i].indexOf(words[w]) < 0) return false;
    return true;
  }
  var KEYS = {
    status: function (r) { var s = statusOf(r); return s === null ? 99 : RANK[s]; },
    url: function (r) { return r[L.url].toLowerCase(); },
    http: function (r) { return r[L.http] || 0; },
    checked: function (r) { return r[L.checked] || 0; },
    since: function (r) { return r[L.since] || Infinity; },
    notes: function (r) { return -r[L.occ].length; }
  };
  function filtered() {
    var words = state.q.toLowerCase().split(/\s+/).filter(Boolean);
    if (words.length && !haystack) buildHaystack();
    var out = [];
    for (var i = 0; i < D.links.length; i++) if (matches(D.links[i], i, words)) out.push(D.links[i]);
    var key = KEYS[state.sort], dir = state.dir;
    var decorated = out.map(function (r) { return [key(r), r[L.url], r]; });
    decorated.sort(function (a, b) {
      if (a[0] < b[0]) return -dir;
      if (a[0] > b[0]) return dir;
      return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
    });
    return decorated.map(function (d) { return d[2]; });
  }

  // ---- links table ------------------------------------------------------------
  function statusCell(r) {
    var td = el("td", "nowrap"), st = statusOf(r);
    td.setAttribute("data-label", "Status");
    td.appendChild(el("span", "badge st-" + (st || "none"), st || "unchecked"));
    td.appendChild(document.createTextNode(" "));
    td.appendChild(el("span", "badge health", r[L.health]));
    if (r[L.risk]) { td.appendChild(document.createTextNode(" ")); td.appendChild(el("span", "badge risk", "at risk")); }
    if (r[L.hist]) {
      var h = el("div", "hist");
      h.setAttribute("aria-label", "recent checks, oldest first");
      for (var i = 0; i < r[L.hist].length; i++) {
        var name = D.history_codes[r[L.hist][i]] || "?";
        var s = el("span", "st-" + name); s.title = name; h.appendChild(s);
      }
      td.appendChild(h);
    }
    return td;
  }
  function linkCell(r) {
    var td = el("td", "link");
    td.appendChild(link(r[L.url], r[L.url]));
    if (r[L.title]) td.appendChild(el("div", "title", r[L.title]));
    if (r[L.final]) { var f = el("div", "final", "→ "); f.appendChild(link(r[L.final], r[L.final])); td.appendChild(f); }
    if (r[L.error]) td.appendChild(el("div", "err", r[L.error]));
    return td;
  }
  function citesCell(r) {
    var td = el("td", "cites"), occ = r[L.occ], n = occ.length / 2;
    td.setAttribute("data-label", "Cited in");
    for (var i = 0; i < Math.min(n, 3); i++) td.appendChild(el("div", null, D.notes[occ[2 * i]] + ":" + occ[2 * i + 1]));
    if (n > 3) {
      var all = [];
      for (var j = 0; j < n; j++) all.push(D.notes[occ[2 * j]] + ":" + occ[2 * j + 1]);
      var more = el("div", "muted", "+" + (n - 3) + " more"); more.title = all.join("\n"); td.appendChild(more);
    }
    return td;
  }
  function linkRow(r) {
    var tr = el("tr");
    tr.appendChild(statusCell(r));
    tr.appendChild(linkCell(r));
    var http = el("td", "num", r[L.http] || ""); http.setAttribute("data-label", "HTTP"); tr.appendChild(http);
    var c = timeCell(r[L.checked]); c.setAttribute("data-label", "Checked"); tr.appendChild(c);
    var s = timeCell(r[L.since]); s.setAttribute("data-label", "Failing since"); tr.appendChild(s);
    var a = el("td"); a.setAttribute("data-label", "Archive");
    if (r[L.archive]) {
      var copy = link(r[L.archive], r[L.archiveService] === "local" ? "local copy" : "Wayback");
      if (r[L.fidelity]) copy.title = r[L.fidelity];
      a.appendChild(copy);
      // A copy that lost pictures or text says so (its fidelity check, issue 11).
      if (r[L.fidelity] && r[L.fidelity].indexOf("ok") !== 0) a.appendChild(el("span", "err", " (" + r[L.fidelity].split(",")[1].trim() + ")"));
    }
    tr.appendChild(a);
    tr.appendChild(citesCell(r));
    return tr;
  }

  // ---- generic pager ---------------------------------------------------------
  function renderPage(name, rows, body, makeRow, cols) {
    var pages = Math.max(1, Math.ceil(rows.length / PAGE));
    if (state.page[name] >= pages) state.page[name] = pages - 1;
    var start = state.page[name] * PAGE, frag = document.createDocumentFragment();
    rows.slice(start, start + PAGE).forEach(function (r) { frag.appendChild(makeRow(r)); });
    if (!rows.length) { var tr = el("tr"), td = el("td", "muted", "No match."); td.colSpan = cols; tr.appendChild(td); frag.appendChild(tr); }
    body.replaceChildren(frag);
    var nav = document.querySelector('[data-pager="' + name + '"]');
    nav.replaceChildren();
    if (pages <= 1) return;
    function btn(label, page, disabled) {
      var b = el("button", null, label); b.type = "button"; b.disabled = disabled;
      b.addEventListener("click", function () { state.page[name] = page; refresh(name); body.closest("table").scrollIntoView({ block: "start" }); });
      return b;
    }
    nav.appendChild(btn("‹ Previous", state.page[name] - 1, state.page[name] === 0));
    nav.appendChild(el("span", null, "page " + (state.page[name] + 1) + " of " + pages));
    nav.appendChild(btn("Next ›", state.page[name] + 1, state.page[name] >= pages - 1));
  }

  var current = null;
  function refresh(name) {
    if (name === "links") {
      renderPage("links", current, $("links-body"), linkRow, 7);
    } else if (name === "notes") {
      renderPage("notes", D.note_stats, $("notes-body"), noteRow, 5);
    } else {
      renderPage("hosts", D.host_stats, $("hosts-body"), hostRow, 5);
    }
  }
  function update() {
    current = filtered();
    $("match-count").textContent = current.length;
    state.page.links = 0;
    refresh("links");
    var scope = $("scope");
    if (state.note >= 0 || state.host >= 0) {
      scope.hidden = false;
      $("scope-text").textContent = state.note >= 0 ? "Links cited in " + D.notes[state.note] : "Links on host " + (D.hosts[state.host] || "(none)");
    } else { scope.hidden = true; }
  }

  // ---- notes and hosts views ------------------------------------------------
  function scopeButton(text, onClick) {
    var b = el("button", "linkish", text); b.type = "button"; b.addEventListener("click", onClick); return b;
  }
  function numCells(tr, values) { values.forEach(function (v) { tr.appendChild(el("td", "num", v)); }); }
  function noteRow(n) {
    var tr = el("tr"), td = el("td");
    td.appendChild(scopeButton(D.notes[n[0]], function () { state.note = n[0]; state.host = -1; showTab("links"); update(); }));
    tr.appendChild(td); numCells(tr, [n[1], n[2], n[3], n[4]]); return tr;
  }
  function hostRow(h) {
    var tr = el("tr"), td = el("td");
    // Relative links and malformed URLs have no host: name the group instead of an empty cell.
    td.appendChild(scopeButton(D.hosts[h[0]] || "(no host: relative or malformed)",
                               function () { state.host = h[0]; state.note = -1; showTab("links"); update(); }));
    if (h[5]) { td.appendChild(document.createTextNode(" ")); td.appendChild(el("span", "badge risk", "at risk")); }
    tr.appendChild(td); numCells(tr, [h[1], h[2], h[3], h[4]]); tr.appendChild(el("td", "pace", h[6] || "")); return tr;
  }

  // ---- tabs (WAI-ARIA tabs pattern: arrow keys move between tabs) -------------
  var TABS = ["links", "notes", "hosts"], drawn = {};
  function showTab(name) {
    TABS.forEach(function (t) {
      var on = t === name, tab = $("tab-" + t);
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      $("view-" + t).hidden = !on;
    });
    if (name !== "links" && !drawn[name]) { drawn[name] = true; refresh(name); }
  }
  TABS.forEach(function (t, i) {
    var tab = $("tab-" + t);
    tab.addEventListener("click", function () { showTab(t); });
    tab.addEventListener("keydown", function (e) {
      var d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (!d) return;
      var next = TABS[(i + d + TABS.length) % TABS.length];
      showTab(next); $("tab-" + next).focus(); e.preventDefault();
    });
  });

  // ---- controls -------------------------------------------------------------
  var timer = null;
  $("q").addEventListener("input", function (e) {
    clearTimeout(timer);
    timer = setTimeout(function () { state.q = e.target.value; update(); }, 120);
  });
  $("health").addEventListener("change", function (e) { state.health = e.target.value; update(); });
  $("at-risk").addEventListener("change", function (e) { state.risk = e.target.checked; update(); });
  $("scope-clear").addEventListener("click", function () { state.note = -1; state.host = -1; update(); });
  Array.prototype.forEach.call(document.querySelectorAll(".chip[data-status]"), function (b) {
    b.addEventListener("click", function () {
      var k = b.getAttribute("data-status"), on = b.getAttribute("aria-pressed") !== "true";
      b.setAttribute("aria-pressed", on ? "true" : "false");
      state.statuses[k] = on;
      update();
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("#links th[data-sort]"), function (th) {
    th.querySelector("button").addEventListener("click", function () {
      var k = th.getAttribute("data-sort");
      state.dir = state.sort === k ? -state.dir : 1;
      state.sort = k;
      Array.prototype.forEach.call(document.querySelectorAll("#links th[data-sort]"), function (o) { o.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      update();
    });
  });
  update();
  Array.prototype.forEach.call(document.querySelectorAll('a[href^="file:"]'), function (a) {
    a.href = safeHref(a.getAttribute("href")) || "#";
  });
  document.body.setAttribute("data-ready", "true");
})();
{% endraw %}
