"use strict";
// Bump bars, keyboards and keyboard-wedge scanners on the station display (docs/floor.md).
// A bump bar is a USB keyboard with a few big keys: every key press is looked up in this
// display's key map (the reference data's, /api/stations) and runs one action on the selected
// ticket. A keyboard-wedge scanner also types, but faster than any person: at least
// `scan.min_chars` characters, each within `scan.gap_ms` of the one before, ended by Enter, are
// a scan (POST /api/scans), never keys. Runs after display.js, whose state and actions it uses.
(() => {
  const DEFAULT_KEYS = {
    previous: ["ArrowLeft", "ArrowUp", "4"], next: ["ArrowRight", "ArrowDown", "6"], bump: ["Enter", "5"],
    recall: ["Backspace", "0"], page_left: ["PageUp", "7"], page_right: ["PageDown", "9"], all_day: ["Tab", "1"],
    start_batch: ["Insert", "2"], complete_batch: ["End", "3"], acknowledge: ["a", "8"],
  };
  let selected = null, selectedIndex = 0;
  const buffer = [];           // printable keys not yet known to be a scan or key presses
  let flushTimer = null;

  const keyMap = () => displaySettings().keys || DEFAULT_KEYS;
  const scanTiming = () => state.floor.scan || { gap_ms: 30, min_chars: 3 };
  // The ticket elements a key can select, in screen order: the tickets, then (Expo) the Ready lane.
  const selectable = () => [...document.querySelectorAll("#tickets .ticket[data-order-id]"), ...document.querySelectorAll("#ready .ticket[data-order-id]")]
    .filter((t) => !t.closest("[hidden]"));
  const selectedTicket = () => selectable().find((t) => t.dataset.orderId === selected) || null;

  // After each render: keep the selection on the same ticket, or on the one now in its place
  // when it left the screen (bumped), and mark it.
  window.showSelection = () => {
    const tickets = selectable();
    let index = tickets.findIndex((t) => t.dataset.orderId === selected);
    if (index < 0 && tickets.length) index = Math.min(selectedIndex, tickets.length - 1);
    selected = index >= 0 ? tickets[index].dataset.orderId : null;
    selectedIndex = Math.max(0, index);
    for (const t of document.querySelectorAll(".ticket.selected")) if (t.dataset.orderId !== selected) t.classList.remove("selected");
    if (index >= 0) tickets[index].classList.add("selected");
  };
  function select(index) {
    const tickets = selectable();
    if (!tickets.length) return;
    selectedIndex = Math.max(0, Math.min(index, tickets.length - 1));
    selected = tickets[selectedIndex].dataset.orderId;
    window.showSelection();
    tickets[selectedIndex].scrollIntoView({ block: "nearest", inline: "nearest" });
  }
  // A page: as many tickets as are fully on the screen now (at least one).
  function pageSize() {
    const height = window.innerHeight;
    return Math.max(1, selectable().filter((t) => { const r = t.getBoundingClientRect(); return r.top >= 0 && r.bottom <= height; }).length);
  }
  // A tap on a ticket selects it too, so keys and touch work on the same ticket.
  document.addEventListener("pointerdown", (e) => {
    const ticket = e.target.closest(".ticket[data-order-id]");
    if (ticket) { selected = ticket.dataset.orderId; selectedIndex = selectable().indexOf(ticket); window.showSelection(); }
  });

  const ACTIONS = {
    previous: () => select(selectedIndex - 1),
    next: () => select(selectedIndex + 1),
    page_left: () => select(selectedIndex - pageSize()),
    page_right: () => select(selectedIndex + pageSize()),
    async bump() {
      const ticket = selectedTicket();
      if (!ticket) return;
      if (station !== "all") {
        if (ticket.querySelector(".allergen:not(.acknowledged)")) throw new Error("Allergen: acknowledge it first (the acknowledge key or the banner)");
        return bump(ticket.dataset.orderId);
      }
      return orderAction(ticket, ticket.closest("#ready") ? "hand-off" : "ready");
    },
    recall: () => recall(),
    all_day() {
      const hidden = document.body.classList.toggle("no-all-day");
      localStorage.setItem("allDayHidden", hidden ? "1" : "");
    },
    start_batch() { document.querySelector("#counts .row .start")?.click(); },
    complete_batch() { document.querySelector("#counts .row .done")?.click(); },
    acknowledge() { selectedTicket()?.querySelector(".allergen:not(.acknowledged) .ack")?.click(); },
  };
  if (localStorage.getItem("allDayHidden")) document.body.classList.add("no-all-day");

  function actionFor(key, code) {
    const single = key.length === 1 ? key.toLowerCase() : null;
    for (const [action, keys] of Object.entries(keyMap())) {
      if (keys.some((k) => k === key || k === code || (single !== null && k.length === 1 && k.toLowerCase() === single))) return action;
    }
    return null;
  }
  function run(action) {
    const done = ACTIONS[action]?.();
    if (done && done.catch) done.catch((error) => toast(error.message));
  }
  // The printable keys held back: fewer than a scan's least were key presses; a scan's worth
  // this close together that Enter did not end was a scan cut short, and is dropped rather
  // than run as keys (its digits would bump and recall).
  function flush() {
    clearTimeout(flushTimer);
    const keys = buffer.splice(0);
    if (keys.length >= scanTiming().min_chars) {
      toast(`Ignored ${keys.length} keys typed too fast for a person and not ended by Enter (a scanner without its Enter suffix?)`);
      return;
    }
    for (const k of keys) { const action = actionFor(k.key, k.code); if (action) run(action); }
  }
  async function scan(code) {
    const body = station === "all" ? { code, role: "expo" } : { code, station };
    try {
      await json("/api/scans", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    } catch (error) { toast(`Scan refused: ${error.message}`); chime(); }
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.altKey || e.metaKey) return;
    const target = e.target;
    if (target && ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
    // A key held down does nothing more (a held bump key must not bump the next ticket).
    if (e.repeat) { if (actionFor(e.key, e.code)) e.preventDefault(); return; }
    const now = e.timeStamp, { gap_ms: gap, min_chars: minChars } = scanTiming();
    const last = buffer[buffer.length - 1];
    if (e.key.length === 1) {
      e.preventDefault();
      if (last && now - last.at > gap) flush();
      buffer.push({ key: e.key, code: e.code, at: now });
      clearTimeout(flushTimer);
      flushTimer = setTimeout(flush, gap + 20);
      return;
    }
    if (e.key === "Enter" && buffer.length >= minChars && now - last.at <= gap) {
      e.preventDefault();
      clearTimeout(flushTimer);
      const code = buffer.splice(0).map((k) => k.key).join("");
      scan(code);
      return;
    }
    flush();
    const action = actionFor(e.key, e.code);
    if (!action) return;
    e.preventDefault();
    run(action);
  }, true);
})();
