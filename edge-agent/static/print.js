"use strict";
// The label sheet's Print button (no inline handlers: the box's CSP allows its own scripts only).
document.getElementById("print").addEventListener("click", () => window.print());
