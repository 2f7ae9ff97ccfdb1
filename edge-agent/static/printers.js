// The ticket printers on the station display, kept apart from display.js: a banner when a
// printer this screen relies on cannot print (paper out, cover open, unreachable…), a notice
// when this station's tickets printed on the fallback printer while its screens were down, and a
// Reprint button on Expo's Ready tickets when the box has a bag-ticket printer. display.js
// calls showPrinters with every /api/status it reads; nothing here touches its state.
"use strict";

const PRINTER_PROBLEMS = {
  paper_out: "out of paper", cover_open: "cover open", cutter_error: "cutter jammed",
  unrecoverable_error: "error — switch it off and on", recoverable_error: "error (clears by itself)",
  offline: "off-line", unreachable: "not reachable", no_reply: "not answering",
  bad_reply: "answering garbage (is it an ESC/POS printer?)", error: "connection broke",
};
let printerExpo = false;
const fallbackSeen = new Set(JSON.parse(localStorage.getItem("printer-fallback-seen") || "[]"));

function showPrinters(body, station) {
  const printers = body.printers || [];
  printerExpo = printers.length > 0;
  const problems = printers.filter((p) => PRINTER_PROBLEMS[p.state]);
  const bar = document.getElementById("printers");
  bar.hidden = problems.length === 0;
  bar.textContent = problems.map((p) => `Printer ${p.name}: ${PRINTER_PROBLEMS[p.state]}`
    + (p.waiting ? ` — ${p.waiting} ticket${p.waiting === 1 ? "" : "s"} waiting` : "")).join(" · ");
  // On a station's screen: what printed on the fallback printer while it was down.
  const notice = document.getElementById("printed");
  const ended = (body.print_fallback || []).find((f) => f.station === station && !f.active && f.tickets > 0
    && !fallbackSeen.has(`${f.station}/${f.since_ms}`));
  notice.hidden = !ended;
  if (!ended) return;
  const when = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  notice.querySelector("span").textContent = `This screen was offline from ${when(ended.since_ms)} to ${when(ended.ended_ms)}:`
    + ` ${ended.tickets} ticket${ended.tickets === 1 ? "" : "s"} went to printer ${ended.printer} instead. Check them before bumping.`;
  notice.dataset.key = `${ended.station}/${ended.since_ms}`;
}

document.getElementById("printed").addEventListener("click", (e) => {
  if (!e.target.closest("button")) return;
  const notice = document.getElementById("printed");
  fallbackSeen.add(notice.dataset.key);
  localStorage.setItem("printer-fallback-seen", JSON.stringify([...fallbackSeen].slice(-20)));
  notice.hidden = true;
});

// Expo's Ready lane: a Reprint button per ticket (the bag ticket again).
new MutationObserver(() => {
  if (!printerExpo) return;
  for (const ticket of document.querySelectorAll("#ready .ticket[data-order-id]")) {
    if (ticket.querySelector("button.reprint")) continue;
    const button = document.createElement("button");
    button.className = "reprint";
    button.textContent = "Reprint";
    ticket.appendChild(button);
  }
}).observe(document.getElementById("ready"), { childList: true, subtree: true });

document.addEventListener("click", async (e) => {
  const button = e.target.closest("button.reprint");
  if (!button) return;
  const id = button.closest("[data-order-id]").dataset.orderId;
  try {
    const r = await fetch(`/api/orders/${encodeURIComponent(id)}/reprint`, { method: "POST" });
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(answer.error || `${r.status} ${r.statusText}`);
    button.textContent = "Reprinting…";
    setTimeout(() => { button.textContent = "Reprint"; }, 3000);
  } catch (error) {
    const toastBox = document.getElementById("toast");
    toastBox.textContent = `Reprint failed: ${error.message}`;
    toastBox.hidden = false;
  }
});
