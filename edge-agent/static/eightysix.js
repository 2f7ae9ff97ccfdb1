"use strict";
// 86 on the station, Expo and prep displays (docs/otter.md): what is 86'd and until when, with
// what Otter was told; 86 an item (with a staff PIN when the kitchen uses them) and put it back.
// The prep display also shows what it proposes to 86 (stock at zero, nothing being made).
// The page calls window.refresh86() when its event stream says something changed.
(() => {
  const box = document.getElementById("eightysix");
  if (!box) return;
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]);
  const at = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  let data = null, loading = false, again = false;
  const CALL = { pending: "…", sent: "…", accepted: "✓", failed: "✗" };

  async function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      const r = await fetch("/api/availability", { cache: "no-store" });
      if (r.ok) { data = await r.json(); draw(); }
    } catch (error) { console.error(error); }
    loading = false;
    if (again) { again = false; refresh(); }
  }
  window.refresh86 = refresh;
  // The station display says which station it shows in data-station.
  new MutationObserver(() => { if (data) draw(); }).observe(box, { attributes: true, attributeFilter: ["data-station"] });

  function draw() {
    const station = box.dataset.station || "all";
    const mine = (i) => station === "all" || i.station_id === station;
    const suspended = data.suspended.filter(mine);
    const list = suspended.map((s) => {
      const otter = s.calls.length ? s.calls.map((c) => `<span class="otter ${esc(c.state)}" title="${esc(c.detail)}">Otter ${esc(c.kind)} ${CALL[c.state] || ""}${c.state === "failed" ? " " + esc(c.detail) : ""}</span>`).join("")
        : s.on_otter ? `<span class="otter pending">Otter …</span>` : `<span class="otter">this kitchen only</span>`;
      return `<li data-item="${esc(s.item_id)}"><b>${esc(s.name)}</b> 86'd ${s.until_ms ? "until " + at(s.until_ms) : "until back"}
        <small>by ${esc(s.staff || s.device)}${s.note ? " · " + esc(s.note) : ""}</small> ${otter}
        <button class="unsuspend">Back on</button></li>`;
    }).join("");
    const proposals = box.dataset.proposals !== undefined ? data.proposals.filter(mine).map((p) =>
      `<li data-item="${esc(p.item_id)}" class="proposal"><b>${esc(p.name)}</b> is out and nothing is being made. <button class="suspend-now">86 it</button></li>`).join("") : "";
    const taken = new Set(data.suspended.map((s) => s.item_id));
    const options = data.items.filter(mine).filter((i) => !taken.has(i.item_id))
      .map((i) => `<option value="${esc(i.item_id)}">${esc(i.name)}</option>`).join("");
    box.innerHTML = `<h2>86 <span class="n">${suspended.length ? `(${suspended.length})` : ""}</span></h2>
      <ul class="eightysix">${proposals}${list || `<li class="none">Nothing 86'd.</li>`}</ul>
      <div class="eightysix-form">
        <select class="item" aria-label="Item to 86">${options}</select>
        <select class="until" aria-label="For how long"><option value="end_of_day">until end of day</option>
          <option value="1">for 1 hour</option><option value="2">for 2 hours</option><option value="4">for 4 hours</option>
          <option value="back">until back</option></select>
        ${data.pin_required ? `<input class="pin" type="password" inputmode="numeric" autocomplete="off" placeholder="PIN" aria-label="Staff PIN">` : ""}
        <button class="suspend"${options ? "" : " disabled"}>86</button></div>`;
  }

  async function post(path, body) {
    const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    if (r.status === 401) { location.reload(); return; }
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(answer.error || `${r.status}`);
  }
  const pin = () => box.querySelector(".pin")?.value || undefined;
  const say = (message) => {
    const toast = document.getElementById("toast");
    if (toast) { toast.textContent = message; toast.hidden = false; setTimeout(() => { toast.hidden = true; }, 6000); }
    else alert(message);
  };
  box.addEventListener("click", (e) => {
    const button = e.target.closest("button");
    if (!button) return;
    const item = button.closest("[data-item]")?.dataset.item || box.querySelector(".item")?.value;
    if (!item) return;
    const path = (what) => `/api/items/${encodeURIComponent(item)}/${what}`;
    let done;
    if (button.classList.contains("unsuspend")) done = post(path("unsuspend"), { pin: pin() });
    else if (button.classList.contains("suspend-now")) done = post(path("suspend"), { until: "back", pin: pin(), note: "Out of stock" });
    else if (button.classList.contains("suspend")) {
      const until = box.querySelector(".until").value, hours = Number(until);
      done = post(path("suspend"), hours ? { until: "hours", hours, pin: pin() } : { until, pin: pin() });
    } else return;
    button.disabled = true;
    done.then(refresh, (error) => { say(`86: ${error.message}`); button.disabled = false; });
  });
  refresh();
})();
