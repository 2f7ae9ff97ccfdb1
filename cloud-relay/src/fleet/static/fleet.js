// The fleet list: a snapshot, then one event per changed kitchen (SSE, /fleet/events).
// Problems first (offline, then feed or sync down, then late tickets or a backlog) unless a
// column header was clicked. No framework, no inline script (the page's CSP forbids it).
"use strict";
(function () {
  const rows = new Map();
  let sortKey = null;
  let sortDir = 1;

  function down(state) {
    return state && state !== "connected" && state !== "not configured";
  }
  function rank(row) {
    if (row.presence !== "online") return 0;
    if (down(row.feed) || down(row.sync)) return 1;
    if ((row.late || 0) > 0 || (row.backlog || 0) > 0) return 2;
    return 3;
  }
  function rowClass(row) {
    if (row.presence === "offline") return "offline";
    if (row.presence !== "online") return "unknown";
    const r = rank(row);
    return r === 1 ? "degraded" : r === 2 ? "attention" : "ok";
  }
  function ago(ms) {
    if (!ms) return "";
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.round(s / 60) + " min";
    if (s < 86400) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }
  function text(value) {
    return value === null || value === undefined ? "" : String(value);
  }
  function clock(value) {
    return value === true ? "synced" : value === false ? "not synced" : "";
  }
  function compare(a, b) {
    if (sortKey) {
      const x = a[sortKey], y = b[sortKey];
      if (x !== y) {
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * sortDir;
      }
    } else {
      const d = rank(a) - rank(b);
      if (d !== 0) return d;
    }
    return a.kitchen_id < b.kitchen_id ? -1 : a.kitchen_id > b.kitchen_id ? 1 : 0;
  }
  function cell(tr, value, title) {
    const td = document.createElement("td");
    td.textContent = value;
    if (title) td.title = title;
    tr.appendChild(td);
    return td;
  }
  function render() {
    const tbody = document.querySelector("#fleet tbody");
    const sorted = Array.from(rows.values()).sort(compare);
    const fresh = document.createDocumentFragment();
    for (const row of sorted) {
      const tr = document.createElement("tr");
      tr.className = rowClass(row);
      tr.dataset.kitchen = row.kitchen_id;
      const name = document.createElement("td");
      const link = document.createElement("a");
      link.href = "/fleet/" + encodeURIComponent(row.kitchen_id);
      link.textContent = row.kitchen_id;
      name.appendChild(link);
      tr.appendChild(name);
      const since = row.presence_since ? new Date(row.presence_since).toISOString() : "";
      const state = cell(tr, row.presence + (row.presence_since ? " for " + ago(row.presence_since) : ""), since);
      state.className = "presence";
      cell(tr, text(row.feed));
      cell(tr, text(row.sync));
      cell(tr, text(row.backlog));
      cell(tr, text(row.late));
      cell(tr, text(row.version));
      cell(tr, text(row.reference_version));
      cell(tr, clock(row.clock_synced));
      cell(tr, row.telemetry_at ? ago(row.telemetry_at) + " ago" : "");
      fresh.appendChild(tr);
    }
    tbody.replaceChildren(fresh);
    for (const th of document.querySelectorAll("#fleet th[data-key]")) {
      th.classList.toggle("sorted-asc", th.dataset.key === sortKey && sortDir === 1);
      th.classList.toggle("sorted-desc", th.dataset.key === sortKey && sortDir === -1);
    }
  }
  function connect() {
    const link = document.getElementById("link");
    const source = new EventSource("/fleet/events");
    source.addEventListener("open", function () {
      link.textContent = "live";
      link.classList.add("live");
    });
    source.addEventListener("error", function () {
      link.textContent = "reconnecting…";
      link.classList.remove("live");
    });
    source.addEventListener("snapshot", function (event) {
      rows.clear();
      for (const row of JSON.parse(event.data)) rows.set(row.kitchen_id, row);
      render();
    });
    source.addEventListener("kitchen", function (event) {
      const row = JSON.parse(event.data);
      rows.set(row.kitchen_id, row);
      render();
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    for (const th of document.querySelectorAll("#fleet th[data-key]")) {
      th.addEventListener("click", function () {
        if (sortKey === th.dataset.key) sortDir = -sortDir;
        else { sortKey = th.dataset.key; sortDir = 1; }
        render();
      });
    }
    connect();
    setInterval(render, 10000);
  });
})();
