// The console's live behaviour; every page also works without it (plain forms and links).
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

// "Next update promised … (in 12 min)": kept current, red once the promise is broken.
function tickCountdowns() {
  const lang = document.documentElement.lang || "en";
  const words = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
  for (const el of document.querySelectorAll(".countdown[data-due]")) {
    const minutes = Math.round((Date.parse(el.dataset.due) - Date.now()) / 60000);
    let badge = el.querySelector(".left");
    if (!badge) { badge = document.createElement("span"); badge.className = "left"; el.append(" ", badge); }
    badge.textContent = `(${words.format(minutes, "minute")})`;
    el.closest(".card")?.classList.toggle("overdue", minutes < 0);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  tickCountdowns();
  setInterval(tickCountdowns, 30000);
});

