"use strict";
// The pairing page: a code from a manager device (or the provisioning code) and a name in; the
// box answers with an HttpOnly cookie this page never sees, then the page the tablet wanted loads.
const $ = (id) => document.getElementById(id);

fetch("/api/me", { cache: "no-store" }).then((r) => r.json()).then((me) => {
  if (me.revoked) $("revoked").hidden = false;
  if (!me.provisioned || me.provision_error) {
    $("provision").hidden = false;
    $("provision").textContent = me.provision_error
      ? "This box's kitchen.toml was refused: " + me.provision_error
      : "This box is not provisioned yet: put a kitchen.toml (with pairing_code for the first manager device) on its boot card.";
  }
}).catch(() => {});

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").hidden = true;
  $("submit").disabled = true;
  try {
    const r = await fetch("/api/pair", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ code: $("code").value, name: $("name").value }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
    const d = body.device;
    $("form").hidden = true;
    $("done").hidden = false;
    $("done").textContent = `Paired as ${d.name} (${d.role}${d.station ? " at " + d.station : ""}). Opening…`;
    // The page this tablet asked for (/, /prep), now served for real.
    const page = location.pathname === "/prep" || (location.pathname === "/devices" && d.role === "manager")
      ? location.pathname : "/";
    setTimeout(() => location.replace(page), 800);
  } catch (error) {
    $("error").hidden = false;
    $("error").textContent = error.message;
  } finally {
    $("submit").disabled = false;
  }
});
