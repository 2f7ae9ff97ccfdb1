"use strict";
// The manager's device page: make a pairing code (role, and station for a cook), list every
// device ever paired, revoke one. The box checks the manager role on every call.
const $ = (id) => document.getElementById(id);

async function json(url, options) {
  const r = await fetch(url, Object.assign({ cache: "no-store" }, options));
  if (r.status === 401) { location.reload(); throw new Error("not paired"); }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
  return body;
}
const when = (ms) => new Date(ms).toLocaleString();
const text = (tag, value, cls) => { const e = document.createElement(tag); e.textContent = value; if (cls) e.className = cls; return e; };

async function load() {
  const [me, stations, list] = await Promise.all([json("/api/me"), json("/api/stations"), json("/api/devices")]);
  if (me.device) $("me").textContent = `you: ${me.device.name}`;
  const select = $("station");
  if (!select.options.length) {
    for (const s of stations.stations) select.append(new Option(s.name, s.id));
  }
  const body = $("devices");
  body.replaceChildren();
  const names = new Map(list.devices.map((d) => [d.id, d.name]));
  const how = (by) => by.startsWith("code:") ? `code from ${names.get(by.slice(5)) || by.slice(5)}`
    : by === "bootstrap" ? "provisioning code" : by;
  for (const d of list.devices) {
    const row = document.createElement("tr");
    if (d.revoked_at_ms) row.className = "revoked";
    row.append(text("td", d.name), text("td", d.role + (d.station ? ` · ${d.station}` : "")),
      text("td", d.revoked_at_ms ? `revoked ${when(d.revoked_at_ms)}` : when(d.paired_at_ms)), text("td", how(d.paired_by), "dim"));
    const cell = document.createElement("td");
    if (!d.revoked_at_ms && !(me.device && me.device.id === d.id)) {
      const button = text("button", "Revoke", "revoke");
      button.addEventListener("click", async () => {
        if (!confirm(`Revoke ${d.name}? It stops working at once and must be paired again.`)) return;
        await json(`/api/devices/${encodeURIComponent(d.id)}/revoke`, { method: "POST" }).catch((e) => alert(e.message));
        load();
      });
      cell.append(button);
    }
    row.append(cell);
    body.append(row);
  }
}

function showStation() { $("station-box").hidden = $("role").value !== "cook"; }
$("role").addEventListener("change", showStation);
$("make").addEventListener("click", async () => {
  $("make-error").hidden = true;
  const role = $("role").value;
  const request = { role };
  if (role === "cook") request.station = $("station").value;
  try {
    const made = await json("/api/devices/pairing-codes", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(request),
    });
    $("code-box").hidden = false;
    $("code").textContent = made.code;
    $("code-note").textContent = `Type it on the new device's pairing page before ${new Date(made.expires_at_ms).toLocaleTimeString()}: `
      + `it pairs one ${made.role}${made.station ? " at " + made.station : ""}.`;
  } catch (error) {
    $("make-error").hidden = false;
    $("make-error").textContent = error.message;
  }
});
showStation();
load().catch((error) => { $("make-error").hidden = false; $("make-error").textContent = error.message; });
setInterval(() => load().catch(() => {}), 10000);
