// One kitchen: its state, 24 h of telemetry as inline SVG charts, its commands and their
// replies, its last diagnostics. Reloaded whenever /fleet/events says the kitchen changed.
"use strict";
(function () {
  const kitchen = document.body.dataset.kitchen;
  const api = "/api/fleet/" + encodeURIComponent(kitchen);
  const SVG = "http://www.w3.org/2000/svg";

  function bytes(n) {
    if (n === null || n === undefined) return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }
  function chart(id, points, index, format) {
    const box = document.getElementById("chart-" + id);
    const data = points.filter(function (p) { return typeof p[index] === "number"; });
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 300 120");
    svg.setAttribute("preserveAspectRatio", "none");
    if (data.length === 0) {
      const t = document.createElementNS(SVG, "text");
      t.setAttribute("x", "10"); t.setAttribute("y", "60");
      t.textContent = "no data in the last 24 h";
      svg.appendChild(t);
    } else {
      // The axis runs from the first point (at most 24 h back) to now, so an hour of history
      // fills the chart instead of its last 4 %.
      const now = Date.now();
      const from = Math.min(Math.max(data[0][0], now - 24 * 3600 * 1000), now - 60 * 1000);
      let max = 0;
      for (const p of data) max = Math.max(max, p[index]);
      if (max === 0) max = 1;
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", data.map(function (p) {
        const x = ((p[0] - from) / (now - from)) * 300;
        const y = 104 - (p[index] / max) * 86; // between the labels
        return x.toFixed(1) + "," + y.toFixed(1);
      }).join(" "));
      svg.appendChild(line);
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", "2"); label.setAttribute("y", "9");
      label.textContent = "max " + format(max) + ", last " + format(data[data.length - 1][index]);
      svg.appendChild(label);
      const start = document.createElementNS(SVG, "text");
      start.setAttribute("x", "2"); start.setAttribute("y", "119");
      start.textContent = new Date(from).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      svg.appendChild(start);
      const end = document.createElementNS(SVG, "text");
      end.setAttribute("x", "298"); end.setAttribute("y", "119");
      end.setAttribute("text-anchor", "end");
      end.textContent = "now";
      svg.appendChild(end);
    }
    box.replaceChildren(svg);
  }
  function render(detail) {
    const row = detail.row;
    const state = document.getElementById("state");
    state.textContent = row.presence + (row.presence_since ? " since " + new Date(row.presence_since).toLocaleString() : "");
    state.className = "state " + row.presence;
    const summary = document.getElementById("summary");
    const facts = [["Feed", row.feed], ["Sync", row.sync], ["Backlog", row.backlog], ["Late", row.late],
      ["Version", row.version], ["Reference", row.reference_version], ["Boot", row.boot_id]];
    const dl = document.createElement("dl");
    for (const [k, v] of facts) {
      const pair = document.createElement("div");
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v === null || v === undefined ? "—" : String(v);
      pair.appendChild(dt); pair.appendChild(dd);
      dl.appendChild(pair);
    }
    summary.replaceChildren(dl);
    const count = function (n) { return String(n); };
    chart("memory", detail.points, 1, bytes);
    chart("backlog", detail.points, 2, count);
    chart("late", detail.points, 3, count);
    chart("disk", detail.points, 4, bytes);
    const tbody = document.querySelector("#commands tbody");
    const fresh = document.createDocumentFragment();
    for (const c of detail.commands) {
      const tr = document.createElement("tr");
      tr.dataset.id = c.id;
      for (const v of [new Date(c.sent_at).toLocaleTimeString(), c.name, c.sent_by,
        c.reply ? JSON.stringify(c.reply.ok === false ? c.reply.error : c.reply.result) : (c.expired ? "expired" : "waiting…")]) {
        const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
      }
      fresh.appendChild(tr);
    }
    tbody.replaceChildren(fresh);
    const diag = document.getElementById("diagnostics");
    diag.textContent = detail.diagnostics ? JSON.stringify(detail.diagnostics.reply, null, 2) : "none yet";
  }
  function load() {
    fetch(api, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(render);
  }
  document.addEventListener("DOMContentLoaded", function () {
    for (const button of document.querySelectorAll("button.command")) {
      button.addEventListener("click", function () {
        const out = document.getElementById("command-result");
        fetch(api + "/commands/" + button.dataset.command, {
          method: "POST", credentials: "same-origin",
          headers: { "content-type": "application/json" }, body: "{}",
        }).then(function (r) { return r.json().then(function (b) { return [r.status, b]; }); })
          .then(function (answer) {
            out.textContent = answer[0] === 202 ? "sent " + answer[1].id : "not sent: " + answer[1].error;
            load();
          });
      });
    }
    load();
    const source = new EventSource("/fleet/events");
    source.addEventListener("kitchen", function (event) {
      if (JSON.parse(event.data).kitchen_id === kitchen) load();
    });
  });
})();
