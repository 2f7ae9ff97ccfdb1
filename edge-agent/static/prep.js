"use strict";
document.getElementById("print").addEventListener("click", () => window.print());
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const REFRESH_MS = 60000;
let view = null, events = null, lastEventId = null, retryMs = 1000, loading = null, again = false;

async function load() {
  // One request at a time; a change during a request asks for one more afterwards.
  if (loading) { again = true; return loading; }
  loading = (async () => {
    try {
      const r = await fetch("/api/prep", { cache: "no-store" });
      if (r.status === 401) { location.reload(); return; }
      if (r.ok) { view = await r.json(); render(); }
    } catch (error) { console.error(error); }
  })();
  await loading;
  loading = null;
  if (again) { again = false; load(); }
}

// The transfer-unit view: what came in today, what is open, what is used up (or thrown away).
let transfersLoading = null, transfersAgain = false;
async function loadTransfers() {
  if (transfersLoading) { transfersAgain = true; return transfersLoading; }
  transfersLoading = (async () => {
    try {
      const r = await fetch("/api/transfers", { cache: "no-store" });
      if (r.ok) renderTransfers(await r.json());
    } catch (error) { console.error(error); }
  })();
  await transfersLoading;
  transfersLoading = null;
  if (transfersAgain) { transfersAgain = false; loadTransfers(); }
}
function transferRows(units, empty, note) {
  if (!units.length) return `<tr><td class="none" colspan="6">${esc(empty)}</td></tr>`;
  return units.map((t) => {
    const item = t.item_name || (t.gtin ? `GTIN ${t.gtin}` : "–");
    const extra = note ? note(t) : "";
    return `<tr class="${t.state}" data-sscc="${esc(t.sscc)}"><td class="sscc">${esc(t.sscc)}</td><td>${esc(item)}${extra}</td>
      <td class="n">${t.count ?? ""}</td><td>${esc(t.lot ?? "")}</td><td class="day">${esc(t.use_by ?? "")}</td>
      <td class="day">${t.received_on === t.today ? "" : esc(t.received_on) + " "}${esc(t.received_time)}</td></tr>`;
  }).join("");
}
function renderTransfers(body) {
  const units = body.transfers.map((t) => ({ ...t, today: body.today }));
  const states = { open: "open", used: "used up", discarded: "discarded", unlinked: "no stock" };
  $("tu-today").innerHTML = transferRows(units.filter((t) => t.received_on === body.today),
    "No transfer units received today.", (t) => ` <small>(${states[t.state]})</small>`);
  $("tu-open").innerHTML = transferRows(units.filter((t) => t.state === "open"), "No transfer units open.");
  $("tu-used").innerHTML = transferRows(units.filter((t) => t.state === "used" || t.state === "discarded"),
    `None used up in the last ${body.days} days.`, (t) => t.state === "discarded" ? " <small>(discarded)</small>" : "");
}

function unitText(n, unit) { return unit ? `${n} × ${esc(unit)}` : String(n); }
function render() {
  if (!view) return;
  $("clock").hidden = view.clock_synchronised !== false;
  $("when").textContent = `${view.today}${view.day_part ? " · " + view.day_part : ""}`;
  $("printed").textContent = `Prep list printed ${new Date().toLocaleString()} · ${view.day_part || "all day"}`;
  const byId = new Map(view.items.map((i) => [i.item_id, i]));
  $("list").innerHTML = view.prep_list.length ? view.prep_list.map((e) => {
    const i = byId.get(e.item_id) || {};
    const labels = `/labels/prep?item=${encodeURIComponent(e.item_id)}&copies=${Math.min(e.to_make, 50)}`;
    return `<div class="row"><div class="qty">${e.to_make}</div><div class="what"><div class="name">${esc(e.name)}</div>
      <div class="sub">${e.unit ? esc(e.unit) + " · " : ""}PAR ${i.par ?? "–"} · on hand ${i.on_hand ?? 0}</div></div>
      <a class="button" href="${labels}" target="_blank">Labels</a></div>`;
  }).join("") : `<div class="empty">Everything is at PAR.</div>`;
  const names = new Map(view.items.map((i) => [i.item_id, i.name]));
  $("expired").innerHTML = view.expired.length ? view.expired.map((l) => `<div class="row expired">
      <div class="qty">${l.quantity}</div><div class="what"><div class="name">${esc(names.get(l.item_id) || l.item_id)}</div>
      <div class="sub">use by ${esc(l.use_by)}${l.lot ? " · lot " + esc(l.lot) : ""}</div></div>
      <button data-discard="${esc(l.stock_id)}">Discard</button></div>`).join("")
    : `<div class="empty">No expired stock.</div>`;
  $("stock").innerHTML = view.items.map((i) => {
    const next = i.lots.find((l) => !l.expired && l.use_by);
    return `<tr><td>${esc(i.name)}${i.unit ? ` <small>(${esc(i.unit)})</small>` : ""}</td><td class="n">${i.par ?? "–"}</td>
      <td class="n ${i.to_make ? "short" : ""}">${i.on_hand}${i.expired ? ` <small>+${i.expired} expired</small>` : ""}</td>
      <td class="day">${next ? esc(next.use_by) : ""}</td></tr>`;
  }).join("");
}

document.addEventListener("click", async (e) => {
  const id = e.target.dataset && e.target.dataset.discard;
  if (id) {
    e.target.disabled = true;
    const r = await fetch(`/api/stock/${encodeURIComponent(id)}/discard`, { method: "POST" }).catch(() => null);
    if (r && r.status === 401) { location.reload(); return; }
    if (!r || !r.ok) alertScan(`Discard failed: ${r ? (await r.json().catch(() => ({}))).error || r.status : "box unreachable"}`);
    load();
  }
  if (e.target.dataset && e.target.dataset.dismiss !== undefined) e.target.parentElement.remove();
});

function alertScan(text) {
  const div = document.createElement("div");
  div.className = "alert";
  div.innerHTML = `<span>${esc(text)}</span><button data-dismiss>OK</button>`;
  $("alerts").prepend(div);
  while ($("alerts").children.length > 5) $("alerts").lastElementChild.remove();
  try {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const o = ctx.createOscillator(); o.frequency.value = 330; o.connect(ctx.destination); o.start(); o.stop(ctx.currentTime + 0.4);
  } catch { /* no sound before the first tap */ }
}
// What a scan was, in words: the item of a prep label, the GTIN of a product, else the code.
function describe(d) {
  const p = d.parsed || {};
  const name = (id) => (view && (view.items.find((i) => i.item_id === id) || {}).name) || id;
  if (p.prep_label) return `${name(p.prep_label.item_id)} ×${p.prep_label.quantity} · batch ${p.prep_label.batch_id}`;
  if (p.product) return `GTIN ${p.product.gtin14}`;
  if (p.gs1) return `GTIN ${p.gs1.gtin || "?"}${p.gs1.count ? " ×" + p.gs1.count : ""}`;
  if (p.transfer_unit) return `transfer unit ${p.transfer_unit.sscc}`;
  return d.code.trim().replace(/\x1d/g, " · ");
}
function recent(d, ok) {
  const li = document.createElement("li");
  const t = new Date(d.scanned_at_ms).toLocaleTimeString();
  li.innerHTML = `${t} · ${esc(d.device)} · <b>${esc(d.action === "none" ? "refused" : d.action)}</b> ${esc(describe(d))}`
    + (ok ? (d.reason ? ` — ${esc(d.reason)}` : "") : ` <span class="no">— ${esc(d.reason)}</span>`);
  $("scans").querySelector(".none")?.remove();
  $("scans").prepend(li);
  while ($("scans").children.length > 12) $("scans").lastElementChild.remove();
}

function connect() {
  events = new EventSource(lastEventId === null ? "/orders/events"
    : "/orders/events?last_event_id=" + encodeURIComponent(lastEventId));
  events.onopen = () => { retryMs = 1000; showLink(); load(); loadTransfers(); };
  events.onerror = () => {
    showLink();
    if (events.readyState === EventSource.CLOSED) { events.close(); setTimeout(connect, retryMs); retryMs = Math.min(retryMs * 2, 30000); }
  };
  const on = (kind, handle) => events.addEventListener(kind, (e) => {
    if (e.lastEventId) lastEventId = e.lastEventId;
    try { handle(JSON.parse(e.data)); } catch (error) { console.error(kind, error); }
  });
  on("stock.changed", () => { load(); loadTransfers(); window.refresh86?.(); });
  for (const kind of ["item.suspended", "item.unsuspended", "otter.call", "batch.started", "batch.completed"]) on(kind, () => window.refresh86?.());
  on("scan.recorded", (d) => {
    if (d.role !== "station" || d.stock_id) recent(d, true);
    // A transfer unit whose contents are no item's moves no stock, but it was received.
    if (d.action === "receive") loadTransfers();
  });
  on("scan.rejected", (d) => {
    if (d.role === "station" && !(d.parsed && d.parsed.prep_label)) return;
    recent(d, false);
    alertScan(`Scan refused (${d.device}): ${d.reason}`);
  });
  showLink();
}
function showLink() {
  const pill = $("link");
  const open = events && events.readyState === EventSource.OPEN;
  pill.className = "pill " + (open ? "ok" : "bad");
  pill.querySelector("small").textContent = open ? "live" : "reconnecting…";
}

load();
loadTransfers();
connect();
setInterval(() => { load(); loadTransfers(); }, REFRESH_MS);

fetch("/api/me", { cache: "no-store" }).then((r) => r.json()).then((me) => {
  if (me.device) $("paired-as").textContent = `${me.device.name} · ${me.device.role}`;
}).catch(() => {});
