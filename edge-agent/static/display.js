"use strict";
// The station display. State comes from the agent's event stream (/orders/events); where an
// event does not carry what the page needs (older agents send ids only), the REST endpoints are
// refetched, debounced, so a replay of many events costs one fetch.
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));
const REFETCH_DEBOUNCE_MS = 150, STATUS_POLL_MS = 10000, TICK_MS = 5000, QUIET_HINT_MS = 45000, SOON_MS = 5 * 60000;

const state = {
  stations: [],            // [{id, name, display: {amber_minutes, red_minutes, keys}}]
  floor: {},               // /api/stations' expo, scan and allergen_words
  orders: new Map(),       // order_id -> Ticket
  batches: [],             // BatchItem of every station
  upcoming: [],            // [{order_id, fire_at_ms}]
  sessions: new Map(),     // session_id -> running batch session
  readyIds: new Set(),     // announced by order.ready
  batchEvents: false,      // the agent sends batch.updated: no need to refetch counts
};
const params = new URLSearchParams(location.search);
let station = params.get("station") || localStorage.getItem("station") || "all";
let lastEventId = null, lastMessageAt = 0, events = null, retryMs = 1000;
let lastBump = null, audio = null, seen = null, ordersLoaded = false, me = null;
const stepped = new Map();   // "station/item" -> N chosen with +/- (else the current count)
const flashing = new Map();  // order_id -> when it arrived (ms), while its ticket flashes
const FLASH_MS = 3000;       // the .new animation: 1 s, three times

// ---------- helpers ----------
async function json(url, options) {
  const r = await fetch(url, options);
  // Revoked (or the box forgot this tablet): the box answers the page with its pairing page.
  if (r.status === 401) { location.reload(); throw new Error("this tablet is not paired"); }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(body.error || `${r.status} ${r.statusText}`), { status: r.status });
  return body;
}
let toastTimer = null;
function toast(message) {
  $("toast").textContent = message; $("toast").hidden = false;
  clearTimeout(toastTimer); toastTimer = setTimeout(() => { $("toast").hidden = true; }, 6000);
}
const stationName = (id) => (state.stations.find((s) => s.id === id) || {}).name || id;
const minutes = (ms) => Math.round(ms / 60000);
function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : `${Math.floor(s / 3600)}h ${Math.floor(s / 60) % 60}m`;
}
// This display's settings from the reference data (docs/floor.md): its timers and keys.
// SOON_MS and "red once late" stand in for an agent that does not send them.
function displaySettings() {
  const own = station === "all" ? state.floor.expo : (state.stations.find((s) => s.id === station) || {}).display;
  return own || { amber_minutes: SOON_MS / 60000, red_minutes: 0, keys: null };
}
function urgency(dueMs) {
  const left = dueMs - Date.now(), { amber_minutes: amber, red_minutes: red } = displaySettings();
  return left < red * 60000 ? "late" : left < amber * 60000 ? "soon" : "fine";
}
function dueText(dueMs) {
  const left = minutes(dueMs - Date.now());
  return left < 0 ? `${-left} min late` : left === 0 ? "due now" : `due in ${left} min`;
}
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const isReady = (o) => o.ready === true || state.readyIds.has(o.order_id) ||
  (o.ready === undefined && o.stations.length > 0 && o.stations.every((s) => o.bumped_at.includes(s)));
function normalise(ticket) {
  ticket.stations = ticket.stations || [];
  ticket.bumped_at = ticket.bumped_at || [];
  ticket.lines = ticket.lines || [];
  return ticket;
}

// ---------- sound ----------
document.addEventListener("pointerdown", () => {
  if (audio) return;
  audio = new (window.AudioContext || window.webkitAudioContext)();
  // Hidden but keeping its place: the first tap must not move what is under the finger
  // (a tap-off of a line would land on the ticket instead).
  $("sound").style.visibility = "hidden";
}, { capture: true });
function chime() {
  if (!audio) return;
  const t = audio.currentTime;
  for (const [i, f] of [880, 1320].entries()) {
    const o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = f; o.connect(g); g.connect(audio.destination);
    g.gain.setValueAtTime(0.3, t + i * 0.18); g.gain.exponentialRampToValueAtTime(0.001, t + i * 0.18 + 0.3);
    o.start(t + i * 0.18); o.stop(t + i * 0.18 + 0.3);
  }
}

// ---------- refetching (the fallback where events carry ids only) ----------
const want = { orders: false, batches: false };
let refetchTimer = null, fetching = false, generation = 0;
function refetch(what) {
  for (const w of what) want[w] = true;
  clearTimeout(refetchTimer);
  refetchTimer = setTimeout(runRefetch, REFETCH_DEBOUNCE_MS);
}
async function runRefetch() {
  if (fetching) { refetchTimer = setTimeout(runRefetch, REFETCH_DEBOUNCE_MS); return; }
  const orders = want.orders, batches = want.batches;
  want.orders = want.batches = false;
  if (!orders && !batches) return;
  fetching = true;
  const started = generation;
  try {
    const [o, b] = await Promise.all([orders ? json("/api/orders?state=open") : null, batches ? json("/api/batches") : null]);
    if (o) { state.orders = new Map(o.orders.map((t) => [t.order_id, normalise(t)])); ordersLoaded = true; }
    if (b) {
      state.batches = b.items;
      if (b.upcoming) state.upcoming = b.upcoming;
      adoptSessions(b.items);
    }
    render();
    // Events applied while this was in flight may be older than the answer: fetch once more.
    if (generation !== started) refetch([orders && "orders", batches && "batches"].filter(Boolean));
  } catch (error) {
    want.orders ||= orders; want.batches ||= batches;
    refetchTimer = setTimeout(runRefetch, 2000);
  } finally { fetching = false; }
}
function adoptSessions(items) {
  for (const item of items) {
    for (const s of item.sessions || []) {
      state.sessions.set(s.session_id, { ...s, station_id: item.station_id, item_id: item.item_id });
    }
  }
}

// ---------- events ----------
function countsChanged() { if (!state.batchEvents) refetch(["batches"]); }
const handlers = {
  "snapshot"(d) {
    state.batches = d.batches || [];
    state.upcoming = d.upcoming || [];
    state.sessions.clear();
    adoptSessions(state.batches);
    if (Array.isArray(d.orders)) { state.orders = new Map(d.orders.map((t) => [t.order_id, normalise(t)])); ordersLoaded = true; }
    else refetch(["orders"]);
    if (!d.upcoming) refetch(["batches"]);
  },
  "order.created"(d) { upsert(d); },
  "order.updated"(d) { upsert(d); },
  "order.cancelled"(d) { state.orders.delete(d.order_id); countsChanged(); },
  "order.status"(d) {
    const o = state.orders.get(d.order_id);
    if (d.state && d.state !== "open") state.orders.delete(d.order_id);
    else if (d.state === "open" && o) o.status = d.status || o.status;
    else refetch(["orders"]);
    countsChanged();
  },
  "order.bumped"(d) { changeBumps(d, true); },
  "order.recalled"(d) { changeBumps(d, false); },
  "order.ready"(d) {
    state.readyIds.add(d.order_id);
    const o = state.orders.get(d.order_id);
    if (o) o.ready = true;
  },
  // A scanner at this station (or any, on the all-stations view) read something it could not
  // act on: say why, where the cook is looking. Prep and receiving scans belong to /prep.
  "scan.rejected"(d) {
    if (d.role !== "station" || (station !== "all" && d.station_id !== station)) return;
    toast(`Scan refused (${d.device}): ${d.reason}`);
    chime();
  },
  // New menu data (from head office): stations and what each line counts as may have changed.
  // The batch.updated events that follow carry the new counts; tickets are fetched again.
  "reference.updated"() {
    loadStations().then(render);
    refetch(["orders"]);
  },
  // What the kitchen told Otter (docs/otter.md), and what the relay's calls came to.
  "order.accepted"(d) { const o = state.orders.get(d.order_id); if (o) { o.prep_minutes = d.prep_minutes; o.awaiting_accept = false; } },
  "order.prep_time"(d) { const o = state.orders.get(d.order_id); if (o) o.prep_minutes = d.prep_minutes; },
  "order.handed_off"(d) { state.orders.delete(d.order_id); countsChanged(); },
  "order.cancel_requested"(d) { state.orders.delete(d.order_id); countsChanged(); },
  "otter.call"(d) {
    const o = d.order_id && state.orders.get(d.order_id);
    if (o) {
      const same = (c) => c.record_id === d.record_id && c.store_id === d.store_id && c.kind === d.kind;
      o.otter_calls = (o.otter_calls || []).filter((c) => !same(c)).concat([d]);
    } else if (d.order_id && d.state === "failed" && station === "all") {
      // Off the screens already (handed off, cancelled): Expo still needs to hear it failed.
      toast(`Otter refused ${CALL_NAMES[d.kind] || d.kind} for order ${d.order_id.slice(0, 8)}: ${d.detail}`);
    }
    if (d.item_id) window.refresh86?.();
  },
  // The kitchen floor (docs/floor.md).
  "order.allergen_acknowledged"(d) {
    const o = state.orders.get(d.order_id);
    if (o) o.allergen_acks = [...new Set([...(o.allergen_acks || []), d.station_id])];
  },
  "order.line_done"(d) {
    const o = state.orders.get(d.order_id);
    if (!o) return;
    const others = (o.lines_done || []).filter((m) => !(m.line_no === d.line_no && m.station_id === d.station_id));
    o.lines_done = d.done ? others.concat([{ line_no: d.line_no, station_id: d.station_id }]) : others;
    countsChanged();
  },
  "order.rushed"(d) { const o = state.orders.get(d.order_id); if (o) o.rush_at_ms = d.rush ? d.rush_at_ms : undefined; },
  "item.suspended"() { window.refresh86?.(); },
  "item.unsuspended"() { window.refresh86?.(); },
  "batch.started"(d) { state.sessions.set(d.session_id, d); },
  "batch.completed"(d) { state.sessions.delete(d.session_id); countsChanged(); },
  "batch.updated"(d) {
    state.batchEvents = true;
    state.batches = state.batches.filter((b) => b.station_id !== d.station_id).concat(d.items || []);
    for (const [id, s] of state.sessions) if (s.station_id === d.station_id && !s.completed_at_ms) state.sessions.delete(id);
    adoptSessions(d.items || []);
  },
};
function upsert(d) {
  if (d.order && d.order.order_id) {
    const o = normalise(d.order);
    if (o.state && o.state !== "open") state.orders.delete(o.order_id); else state.orders.set(o.order_id, o);
  } else refetch(["orders"]);
  countsChanged();
}
function changeBumps(d, bumped) {
  const o = state.orders.get(d.order_id);
  if (o && Array.isArray(d.stations)) {
    const at = new Set(o.bumped_at);
    for (const s of d.stations) bumped ? at.add(s) : at.delete(s);
    o.bumped_at = [...at];
    if (!bumped) { o.ready = o.ready === undefined ? undefined : false; state.readyIds.delete(o.order_id); }
  } else refetch(["orders"]);
  countsChanged();
}

function connect() {
  // EventSource reconnects by itself and resends Last-Event-ID; only when it gives up (CLOSED)
  // do we open a new one, resuming after the last event seen.
  // `screen`: the station this screen shows, so the box knows when a station has no screen
  // left and prints its tickets on the fallback printer (printers.js shows what printed).
  const query = [lastEventId === null ? "" : "last_event_id=" + encodeURIComponent(lastEventId),
    station === "all" ? "" : "screen=" + encodeURIComponent(station)].filter(Boolean).join("&");
  events = query ? new EventSource("/orders/events?" + query) : new EventSource("/orders/events");
  events.onopen = () => { retryMs = 1000; lastMessageAt = Date.now(); showLink(); };
  events.onerror = () => {
    showLink();
    if (events.readyState === EventSource.CLOSED) {
      events.close();
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    }
  };
  for (const [kind, handle] of Object.entries(handlers)) {
    events.addEventListener(kind, (e) => {
      lastMessageAt = Date.now();
      if (e.lastEventId) lastEventId = e.lastEventId;
      generation++;
      try { handle(JSON.parse(e.data)); } catch (error) { console.error(kind, error); refetch(["orders", "batches"]); }
      render();
    });
  }
  showLink();
}
function showLink() {
  const s = events ? events.readyState : EventSource.CONNECTING;
  const pill = $("link");
  if (s === EventSource.OPEN) {
    pill.className = "pill ok";
    const quiet = Date.now() - lastMessageAt;
    pill.querySelector("small").textContent = quiet > QUIET_HINT_MS ? `live · last update ${ago(lastMessageAt)} ago` : "live";
  } else {
    pill.className = "pill bad";
    pill.querySelector("small").textContent = lastMessageAt ? `reconnecting… (last ${ago(lastMessageAt)} ago)` : "connecting…";
  }
}

const PROVISION_TEXT = document.getElementById("provision").textContent;
async function pollStatus() {
  let body;
  try { body = await json("/api/status"); } catch (error) {
    try {
      // Older agents: /readyz has the feed state (answered 503 while not connected).
      const r = await fetch("/readyz");
      body = await r.json();
      body.provisioned = body.feed !== "not provisioned";
    } catch { body = null; }
  }
  const pill = $("feed"), small = pill.querySelector("small");
  if (!body) { pill.className = "pill bad"; small.textContent = "unknown (box unreachable)"; return; }
  const gaps = (body.sequence_gaps || []).length;
  pill.className = "pill " + (body.feed === "connected" ? (gaps ? "warn" : "ok") : "bad");
  small.textContent = body.feed === "connected" ? (gaps ? `connected · ${gaps} gap${gaps > 1 ? "s" : ""}` : "connected") : body.feed;
  const notProvisioned = body.provisioned === false || body.feed === "not provisioned";
  $("provision").hidden = !(notProvisioned || body.provision_error);
  if (!$("provision").hidden) $("provision").textContent = body.provision_error
    ? (notProvisioned ? "Not provisioned: the kitchen.toml on the boot card was refused — " : "A new kitchen.toml was refused (this box keeps its previous setup): ") + body.provision_error
    : PROVISION_TEXT;
  // A link off the box refused by the TLS rule (plaintext or unverified): the box runs without it.
  const refusedLinks = body.links_refused || [];
  $("links").hidden = refusedLinks.length === 0;
  if (refusedLinks.length) $("links").textContent = "Not connecting to head office — the connection settings are not secure, fix them on the box: " + refusedLinks.join("; ");
  showScanners(body.scanners || []);
  if (typeof showPrinters === "function") showPrinters(body, station); // printers.js
  // Records on their way to head office: only worth a banner when they have waited too long.
  const sync = body.sync || {};
  $("sync").hidden = !sync.alarm;
  if (sync.alarm) $("sync").textContent = `${sync.backlog} kitchen records have not reached head office since ${new Date(sync.oldest_unsynced_ms).toLocaleTimeString()}`
    + ` (${sync.state === "connected" ? "catching up" : "no connection to the cloud database"}). The kitchen keeps working; nothing is lost.`;
  if (body.feed === "connected" && sync.state === "disconnected") {
    pill.className = "pill warn";
    small.textContent = `orders connected · records waiting (${sync.backlog})`;
  }
  // The fleet channel (head office's live view of this box): down is a warning, not a fault —
  // orders still arrive and the kitchen works on.
  const mqtt = body.mqtt || {};
  pill.title = "The kitchen box's connection to the cloud order feed" + (mqtt.state && mqtt.state !== "not configured"
    ? `\nHead office link (MQTT): ${mqtt.state}${mqtt.since ? " since " + new Date(mqtt.since).toLocaleTimeString() : ""}${mqtt.state !== "connected" && mqtt.last_error ? " — " + mqtt.last_error : ""}`
    : "");
  if (mqtt.state === "disconnected" || mqtt.state === "refused") {
    if (pill.classList.contains("ok")) pill.className = "pill warn";
    small.textContent += mqtt.state === "refused" ? " · head office link refused" : " · head office link down";
  }
  // A box without a battery-backed clock boots with the last time it saved, until NTP sets it.
  $("clock").hidden = !(body.clock && body.clock.synchronised === false);
  const reference = String(body.reference || "");
  const refused = reference.startsWith("invalid: ") || reference.startsWith("refused: ");
  $("reference").hidden = !refused;
  if (refused) $("reference").textContent = reference.startsWith("invalid: ")
    ? "Menu data refused — every item shows as Unassigned until it is fixed: " + reference.slice("invalid: ".length)
    : "New menu data refused, still using the previous copy: " + reference.slice("refused: ".length);
}

// The serial scanners (shown only when the box has some): how many are connected, and which
// are not, with why, in the tooltip.
function showScanners(scanners) {
  const pill = $("scanners");
  pill.hidden = scanners.length === 0;
  if (!scanners.length) return;
  const up = scanners.filter(s => s.state === "connected").length;
  const warned = scanners.some(s => s.warning);
  pill.className = "pill " + (up < scanners.length ? "bad" : warned ? "warn" : "ok");
  pill.querySelector("small").textContent = `${up}/${scanners.length} connected`;
  pill.title = scanners.map(s => {
    const where = s.station ? ` (${s.station})` : ` (${s.role})`;
    const why = s.state === "connected" ? "" : ` since ${new Date(s.since_ms).toLocaleTimeString()}: ${s.last_error || ""}`;
    return `${s.name}${where}: ${s.state}${why}${s.warning ? " — " + s.warning : ""}`;
  }).join("\n");
}

// ---------- actions ----------
const stationQuery = () => station === "all" ? "" : `?station=${encodeURIComponent(station)}`;
async function bump(orderId) {
  const q = stationQuery();
  await json(`/api/orders/${encodeURIComponent(orderId)}/bump${q}`, { method: "POST" });
  lastBump = { orderId, q, station };
  const o = state.orders.get(orderId);
  if (o) o.bumped_at = station === "all" ? [...o.stations] : [...new Set([...o.bumped_at, station])];
  countsChanged();
  render();
}
async function recall() {
  if (!lastBump) return;
  const { orderId, q } = lastBump;
  await json(`/api/orders/${encodeURIComponent(orderId)}/recall${q}`, { method: "POST" });
  lastBump = null;
  refetch(["orders"]);
  countsChanged();
  render();
}
async function acknowledge(orderId) {
  await json(`/api/orders/${encodeURIComponent(orderId)}/allergen-ack${stationQuery()}`, { method: "POST" });
  const o = state.orders.get(orderId);
  if (o) o.allergen_acks = [...new Set([...(o.allergen_acks || []), station])];
  render();
}
async function markRush(orderId) {
  const o = state.orders.get(orderId);
  const answer = await json(`/api/orders/${encodeURIComponent(orderId)}/rush`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ rush: !(o && o.rush_at_ms) }) });
  if (o) o.rush_at_ms = answer.rush ? answer.rush_at_ms : undefined;
  render();
}
async function orderAction(ticket, action, body) {
  const id = ticket.dataset.orderId;
  await json(`/api/orders/${encodeURIComponent(id)}/${action}`, body
    ? { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) } : { method: "POST" });
  if (action === "hand-off" || action === "cancel" || action === "reject") { state.orders.delete(id); countsChanged(); }
  // Expo's Ready bumps every station: Recall (button or key) undoes it.
  if (action === "ready") lastBump = { orderId: id, q: "", station };
  render();
}
function otterClick(button) {
  const ticket = button.closest("[data-order-id]");
  if (!ticket) return null;
  const minutes = () => { const v = button.parentElement.querySelector(".minutes")?.value; return v ? Number(v) : undefined; };
  const reason = () => button.parentElement.querySelector(".reason")?.value;
  if (button.classList.contains("accept")) return orderAction(ticket, "accept", { prep_minutes: minutes() });
  if (button.classList.contains("preptime")) return orderAction(ticket, "prep-time", { prep_minutes: minutes() });
  if (button.classList.contains("reject")) return orderAction(ticket, "reject", { reason: reason() });
  if (button.classList.contains("cancel")) return orderAction(ticket, "cancel", { reason: reason() });
  if (button.classList.contains("ready")) return orderAction(ticket, "ready");
  if (button.classList.contains("handoff")) return orderAction(ticket, "hand-off");
  return null;
}
async function startBatch(stationId, itemId, quantity) {
  const path = `/api/batches/${encodeURIComponent(stationId)}/${encodeURIComponent(itemId)}/start`;
  let session;
  try {
    session = await json(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ quantity }) });
  } catch (error) {
    if (error.status === 404 || error.status === 405) throw new Error("This kitchen box cannot run batches yet (update the agent)");
    throw error;
  }
  state.sessions.set(session.session_id, { station_id: stationId, item_id: itemId, ...session });
  stepped.delete(`${stationId}/${itemId}`);
  render();
}
async function completeBatch(sessionId) {
  await json(`/api/batch-sessions/${encodeURIComponent(sessionId)}/complete`, { method: "POST" });
  state.sessions.delete(sessionId);
  countsChanged();
  render();
}

// A tap on one of this station's lines taps it off (or back on).
document.addEventListener("click", (e) => {
  const li = e.target.closest(".ticket li[data-line]");
  if (!li || e.target.closest("button") || station === "all") return;
  const orderId = li.closest("[data-order-id]").dataset.orderId;
  tapLine(orderId, Number(li.dataset.line), !li.classList.contains("tapped")).catch((error) => toast(error.message));
});
async function tapLine(orderId, lineNo, done) {
  const answer = await json(`/api/orders/${encodeURIComponent(orderId)}/lines/${lineNo}/done${stationQuery()}`,
    { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ done }) });
  handlers["order.line_done"](answer);
  render();
}
document.addEventListener("click", (e) => {
  const button = e.target.closest("button");
  if (!button) return;
  const row = button.closest("[data-item-id]");
  const act = (promise) => promise.catch((error) => toast(error.message));
  const otter = otterClick(button);
  if (otter) act(otter);
  else if (button.classList.contains("bump")) act(bump(button.closest("[data-order-id]").dataset.orderId));
  else if (button.classList.contains("ack")) act(acknowledge(button.closest("[data-order-id]").dataset.orderId));
  else if (button.classList.contains("rush-toggle")) act(markRush(button.closest("[data-order-id]").dataset.orderId));
  else if (button.id === "recall") act(recall());
  else if (row && button.classList.contains("step")) {
    const key = `${row.dataset.stationId}/${row.dataset.itemId}`;
    const item = state.batches.find((b) => b.station_id === row.dataset.stationId && b.item_id === row.dataset.itemId);
    const n = (stepped.get(key) ?? (item ? item.quantity : 1)) + Number(button.dataset.step);
    stepped.set(key, Math.max(1, n));
    render();
  } else if (row && button.classList.contains("start")) act(startBatch(row.dataset.stationId, row.dataset.itemId, Number(button.dataset.n)));
  else if (button.classList.contains("done")) act(completeBatch(button.dataset.session));
});
// Blurred once chosen, so a bump bar's arrows move the selection, not the station.
$("station").addEventListener("change", () => { choose($("station").value); $("station").blur(); });
function choose(id) {
  station = id;
  localStorage.setItem("station", station);
  const url = new URL(location.href);
  url.searchParams.set("station", station);
  history.replaceState(null, "", url);
  seen = null;
  window.refresh86?.();
  render();
}

// ---------- rendering ----------
// Elements are kept per key and replaced only when their content changed, so a tap in progress
// is not lost to a re-render; times are filled in by tick().
function patch(container, entries, empty) {
  const old = new Map([...container.children].filter((c) => c.dataset.key).map((c) => [c.dataset.key, c]));
  if (!entries.length) { container.innerHTML = `<div class="empty">${esc(empty)}</div>`; return; }
  const wanted = entries.map(({ key, html }) => {
    const existing = old.get(key);
    if (existing && existing.dataset.html === html) return existing;
    const holder = document.createElement("div");
    holder.innerHTML = html;
    const element = holder.firstElementChild;
    element.dataset.key = key; element.dataset.html = html;
    return element;
  });
  [...container.children].forEach((c) => { if (!wanted.includes(c)) c.remove(); });
  wanted.forEach((element, i) => { if (container.children[i] !== element) container.insertBefore(element, container.children[i] || null); });
}

// Whether a line, or anything in it, is made at station `s`.
const touches = (l, s) => l.station_id === s || (l.modifiers || []).some((m) => touches(m, s));
// On a station's screen (`mine` set) lines made elsewhere are dimmed and what this station
// makes inside them (the fries in a meal) stands out.
// A station's own lines can be tapped off (`tapped`: the line numbers done here): greyed out,
// their units gone from the counts.
function renderLines(lines, top, mine, tapped) {
  if (!lines.length) return "";
  return "<ul>" + lines.map((l) => {
    let cls = !mine || !("station_id" in l) ? "" : top ? (touches(l, mine) ? "" : "other") : (l.station_id === mine ? "mine" : "");
    const tap = top && mine && cls !== "other" && "line_no" in l;
    if (tap && tapped && tapped.has(l.line_no)) cls = "tapped";
    return `<li${cls ? ` class="${cls}"` : ""}${tap ? ` data-line="${esc(l.line_no)}"` : ""}>${top || l.quantity !== 1 ? `<span class="q">${esc(l.quantity)}×</span> ` : ""}${esc(l.name)}` +
      (l.note ? `<span class="note">${esc(l.note)}</span>` : "") + renderLines(l.modifiers || [], false, mine) + "</li>";
  }).join("") + "</ul>";
}
function ticketHtml(o, expo) {
  const since = o.received_at_ms || 0;
  // Coloured by the promised time; older agents do not send it (a batch item's due time is
  // the earliest over all its orders, so it cannot stand in): then the ticket stays neutral.
  const due = o.promised_at_ms || "";
  const marks = expo ? `<div class="marks">${o.stations.map((s) => `<span class="mark${o.bumped_at.includes(s) ? " done" : ""}">${esc(stationName(s))}</span>`).join("")}</div>` : "";
  const status = String(o.status || "").replace("ORDER_STATUS_", "").replaceAll("_", " ").toLowerCase();
  const unacknowledged = !expo && needsAck(o);
  return `<div class="ticket${o.rush_at_ms ? " rush" : ""}" data-order-id="${esc(o.order_id)}" data-since="${esc(since)}" data-due="${esc(due)}">
    <div class="top"><span class="friendly">${esc(o.friendly_id || o.order_id.slice(0, 6))}</span>${o.rush_at_ms ? `<span class="rush-flag">RUSH</span>` : ""}<span class="age"></span></div>
    ${allergenHtml(o, expo)}
    <div class="who">${esc(o.customer_name)}${status ? " · " + esc(status) : ""}</div>
    ${o.customer_note ? `<span class="note">${esc(o.customer_note)}</span>` : ""}
    ${otterHtml(o)}${marks}${renderLines(o.lines, true, expo ? null : station, new Set((o.lines_done || []).filter((d) => d.station_id === station).map((d) => d.line_no)))}
    ${expo ? expoActions(o) : `<button class="bump"${unacknowledged ? ` disabled title="Acknowledge the allergen first"` : ""}>Bump</button>`}</div>`;
}
// An allergen warning (docs/floor.md): the words found in the notes and the notes themselves.
// At a station the cook acknowledges it (button or key) before the ticket can be bumped; Expo
// sees which stations have.
const needsAck = (o) => (o.allergens || []).length > 0 && !(o.allergen_acks || []).includes(station);
function allergenHtml(o, expo) {
  if (!(o.allergens || []).length) return "";
  const words = [...new Set(o.allergens.flatMap((a) => a.words))];
  const notes = o.allergens.map((a) => `${a.on === "order" ? "Order" : esc(a.on)}: “${esc(a.note)}”`).join(" · ");
  const acks = o.allergen_acks || [];
  const acked = !expo && acks.includes(station);
  const action = expo ? (acks.length ? `<small>✓ ${acks.map((s) => esc(stationName(s))).join(", ")}</small>` : "")
    : acked ? `<small>✓ acknowledged</small>` : `<button class="ack">Acknowledge</button>`;
  return `<div class="allergen${acked ? " acknowledged" : ""}"><b>⚠ ALLERGEN: ${esc(words.join(", "))}</b><div class="allergen-notes">${notes}</div>${action}</div>`;
}
function readyHtml(o) {
  return `<div class="ticket" data-order-id="${esc(o.order_id)}"><span class="friendly">${esc(o.friendly_id || o.order_id.slice(0, 6))}</span>
    <div class="who">${esc(o.customer_name)}</div>${otterHtml(o)}<button class="handoff">Hand off</button></div>`;
}
// What Otter has been told about an order, so Expo knows whether the courier has been.
const CALL_NAMES = { confirm: "Accepted", ready: "Ready sent", fulfill: "Handed off", cancel: "Cancelled", prep_time: "New time" };
function otterHtml(o) {
  const time = o.awaiting_accept ? `<span class="otter wait">Waiting for Accept</span>`
    : o.prep_minutes ? `<span class="otter">${esc(o.prep_minutes)} min given</span>` : "";
  const calls = (o.otter_calls || []).map((c) => {
    const mark = c.state === "accepted" ? "✓" : c.state === "failed" ? "✗" : "…";
    return `<span class="otter ${esc(c.state)}" title="${esc(c.detail)}">Otter: ${esc(CALL_NAMES[c.kind] || c.kind)} ${mark}${c.state === "failed" && c.detail ? " " + esc(c.detail) : ""}</span>`;
  }).join("");
  return time || calls ? `<div class="otters">${time}${calls}</div>` : "";
}
const REASONS = ["RESTAURANT_TOO_BUSY", "UNAVAILABLE_ITEM", "KITCHEN_CLOSED", "CUSTOMER_CALLED_TO_CANCEL", "DUPLICATE_ORDER", "CANNOT_COMPLETE_CUSTOMER_REQUEST", "REASON_OTHER"];
const reasonSelect = () => `<select class="reason" aria-label="Reason">${REASONS.map((r) => `<option value="${r}">${r.replaceAll("_", " ").toLowerCase()}</option>`).join("")}</select>`;
// Expo's buttons: accept / reject a manual store's order, Ready, a new prep time; managers cancel.
function expoActions(o) {
  const minutes = `<input class="minutes" type="number" min="1" max="240" value="${esc(o.prep_minutes || "")}" placeholder="est." aria-label="Prep minutes (empty: the box's estimate)">`;
  const main = o.awaiting_accept
    ? `<div class="acts">${minutes}<button class="accept">Accept</button></div><div class="acts">${reasonSelect()}<button class="reject">Reject</button></div>`
    : `<button class="ready">Ready</button><div class="acts">${minutes}<button class="preptime">Change time</button></div>`;
  const cancel = me && me.role === "manager" ? `<div class="acts">${reasonSelect()}<button class="cancel">Cancel order</button></div>` : "";
  const rush = `<button class="rush-toggle">${o.rush_at_ms ? "Not rush" : "Rush"}</button>`;
  return main + rush + cancel;
}
// batch.updated gives the count of orders; snapshots and /api/batches the ids.
const orderCount = (item) => item.order_count ?? (item.order_ids || []).length;
function rowHtml(item, expo) {
  const key = `${item.station_id}/${item.item_id}`;
  const running = [...state.sessions.values()].filter((s) => s.station_id === item.station_id && s.item_id === item.item_id && !s.completed_at_ms);
  const n = stepped.get(key) ?? item.quantity;
  const actions = running.length
    ? running.map((s) => `<button class="done" data-session="${esc(s.session_id)}">Done ${esc(s.quantity)}</button>`).join("")
    : `<button class="step" data-step="-1" aria-label="One fewer">−</button><button class="start" data-n="${n}">Start ${n}</button><button class="step" data-step="1" aria-label="One more">+</button>`;
  const runningText = running.length ? `<div class="running">Cooking ${running.map((s) => `${esc(s.quantity)} since ${clock(s.started_at_ms)}`).join(", ")}</div>` : "";
  return `<div class="row" data-station-id="${esc(item.station_id)}" data-item-id="${esc(item.item_id)}" data-due="${Date.parse(item.due_at)}">
    <div class="qty">${esc(item.quantity)}</div>
    <div class="what"><div class="name">${esc(item.item_name)}</div>
      <div class="due"></div><div class="due-meta" hidden>${expo ? esc(stationName(item.station_id)) + " · " : ""}${orderCount(item)} order${orderCount(item) === 1 ? "" : "s"}</div></div>
    <div class="actions">${actions}</div>${runningText}</div>`;
}

let renderQueued = false;
function render() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; draw(); });
}
function draw() {
  const expo = station === "all";
  $("eightysix").dataset.station = station;
  document.body.classList.toggle("expo", expo);
  $("title").textContent = expo ? "Expo" : stationName(station);
  $("ready-box").hidden = !expo;
  $("recall").disabled = !lastBump || lastBump.station !== station;
  $("recall").textContent = lastBump && lastBump.station === station
    ? `Recall #${(state.orders.get(lastBump.orderId) || {}).friendly_id || ""}` : "Recall";

  // Rush orders first, in the order they were marked; then oldest first.
  const open = [...state.orders.values()].sort((a, b) => (a.rush_at_ms ? 0 : 1) - (b.rush_at_ms ? 0 : 1) ||
    (a.rush_at_ms || 0) - (b.rush_at_ms || 0) || (a.received_at_ms || 0) - (b.received_at_ms || 0));
  let mine, ready = [];
  if (expo) {
    ready = open.filter(isReady);
    mine = open.filter((o) => !isReady(o));
  } else {
    mine = open.filter((o) => o.stations.includes(station) && !o.bumped_at.includes(station));
  }
  const ids = new Set(mine.map((o) => o.order_id));
  // Chime and flash only for tickets that arrive after the first load (or station change).
  const fresh = seen ? mine.filter((o) => !seen.has(o.order_id)) : [];
  if (ordersLoaded) seen = ids;
  if (fresh.length) chime();
  patch($("tickets"), mine.map((o) => ({ key: o.order_id, html: ticketHtml(o, expo) })), expo ? "No open tickets." : "No tickets for this station.");
  // Flagged new for as long as it flashes, even when the ticket is redrawn meanwhile (the
  // automatic accept that follows a new order changes it at once).
  const now = Date.now();
  for (const o of fresh) flashing.set(o.order_id, now);
  for (const [id, since] of flashing) {
    if (now - since > FLASH_MS || !ids.has(id)) { flashing.delete(id); continue; }
    $("tickets").querySelector(`[data-order-id="${CSS.escape(id)}"]`)?.classList.add("new");
  }
  $("tickets-n").textContent = mine.length ? `(${mine.length})` : "";
  patch($("ready"), ready.map((o) => ({ key: o.order_id, html: readyHtml(o) })), "Nothing ready yet.");
  $("ready-n").textContent = ready.length ? `(${ready.length})` : "";

  const items = state.batches.filter((b) => (expo || b.station_id === station) && b.quantity > 0)
    .sort((a, b) => Date.parse(a.due_at) - Date.parse(b.due_at) || b.quantity - a.quantity);
  patch($("counts"), items.map((i) => ({ key: `${i.station_id}/${i.item_id}`, html: rowHtml(i, expo) })), "Nothing to make.");
  const upcoming = state.upcoming.filter((u) => expo || (state.orders.get(u.order_id)?.stations || [station]).includes(station));
  $("upcoming-box").hidden = !upcoming.length;
  $("upcoming").innerHTML = upcoming.map((u) => {
    const o = state.orders.get(u.order_id);
    return `<li><b>#${esc(o?.friendly_id || u.order_id.slice(0, 6))}</b> fires at ${clock(u.fire_at_ms)} (in ${Math.max(0, minutes(u.fire_at_ms - Date.now()))} min)</li>`;
  }).join("");
  window.showSelection?.();
  tick();
}

// Time-dependent text and colours, refreshed every few seconds without rebuilding elements.
function tick() {
  for (const row of document.querySelectorAll(".row[data-due]")) {
    const due = Number(row.dataset.due), meta = row.querySelector(".due-meta").textContent;
    row.classList.remove("fine", "soon", "late");
    if (Number.isFinite(due)) row.classList.add(urgency(due));
    row.querySelector(".due").textContent = Number.isFinite(due) ? `${dueText(due)} · ${meta}` : meta;
  }
  for (const t of document.querySelectorAll("#tickets .ticket[data-since]")) {
    const since = Number(t.dataset.since), due = Number(t.dataset.due);
    t.classList.remove("fine", "soon", "late");
    if (due) t.classList.add(urgency(due));
    t.querySelector(".age").textContent = since ? ago(since) : "";
  }
  showLink();
}

// ---------- start ----------
async function loadStations() {
  for (;;) {
    try {
      const answer = await json("/api/stations");
      state.stations = answer.stations; state.floor = answer;
      break;
    } catch (error) {
      $("banner").hidden = false; $("banner").textContent = "Cannot reach the kitchen box: " + error.message + " — retrying";
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
  $("banner").hidden = true;
  $("station").innerHTML = '<option value="all">Expo (all stations)</option>' +
    state.stations.map((s) => `<option value="${esc(s.id)}">${esc(s.name)}</option>`).join("");
  if (![...$("station").options].some((o) => o.value === station)) station = "all";
  $("station").value = station;
  localStorage.setItem("station", station);
}
const stationsLoaded = loadStations();
stationsLoaded.then(() => { connect(); render(); });
pollStatus(); setInterval(pollStatus, STATUS_POLL_MS);
setInterval(tick, TICK_MS);

// ---------- who this tablet is ----------
// Once the stations are known, so a cook's station shows by its name.
stationsLoaded.then(() => json("/api/me")).then((answer) => {
  if (!answer.device) return;
  me = answer.device;
  const d = me;
  render();
  $("paired-as").textContent = `${d.name} · ${d.role}${d.station ? " at " + stationName(d.station) : ""}`;
  $("paired-as").title = `This tablet is paired with the kitchen box as ${$("paired-as").textContent}`;
  $("devices-link").hidden = d.role !== "manager";
}).catch(() => {});
