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

// A quick choice (+15 min…) fills its field; the server reads "+15" as "in 15 minutes".
function quickChoices() {
  for (const group of document.querySelectorAll(".quick[data-for]")) {
    const input = document.getElementById(group.dataset.for);
    group.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button || !input) return;
      input.value = button.value;
      input.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;  // never innerHTML: customers' and staff's text stays text
  return el;
}

function showFindings(box, findings, severityWords) {
  box.replaceChildren();
  if (!findings.length) return;
  box.append(element("h2", "", box.dataset.title || "The crisis linter says"));
  const list = element("ul", "findings");
  for (const f of findings) {
    const item = element("li", f.severity);
    item.append(element("strong", "", severityWords[f.severity] || f.severity), " ");
    if (f.locale) item.append(`(${f.locale}) `);
    if (f.excerpt) item.append(element("mark", "", f.excerpt), " — ");
    item.append(f.message);
    list.append(item);
  }
  box.append(list);
}

function showPreviews(box, renders) {
  box.replaceChildren();
  for (const [channel, perLocale] of Object.entries(renders)) {
    for (const [locale, message] of Object.entries(perLocale)) {
      const card = element("article", "preview");
      card.dataset.channel = channel;
      card.append(element("h3", "", `${channel} · ${locale}`));
      if (message.title) card.append(element("p", "subject", message.title));
      message.parts.forEach((part, i) => {
        const shown = element("pre", "", part);
        if (message.parts.length > 1) shown.dataset.part = `${i + 1}/${message.parts.length}`;
        card.append(shown);
      });
      box.append(card);
    }
  }
}

// The previews of every channel, and the linter's findings, as the community manager types.
function livePreview(form) {
  const previews = document.getElementById("previews");
  const findings = document.getElementById("findings");
  const severityWords = JSON.parse(findings.dataset.severities || "{}");
  const texts = [...form.querySelectorAll("textarea[name^=message_]")];
  const first = texts.find((t) => t.required) || texts[0];
  const main = first.name.slice("message_".length);
  let timer = 0;
  let asked = 0;
  async function refresh() {
    const data = new FormData(form);
    const others = (prefix) => Object.fromEntries(
      texts.map((t) => t.name.slice("message_".length))
        .filter((loc) => loc !== main && (data.get(prefix + loc) || "").trim())
        .map((loc) => [loc, data.get(prefix + loc)]));
    const body = {
      title: data.get("title") || "", impact: data.get("impact"), status: data.get("status"),
      components: data.getAll("components"), channels: data.getAll("channels"),
      message: data.get("message_" + main) || "", translations: others("message_"),
      title_translations: others("title_"), alternative: data.get("alternative_" + main) || null,
      alternative_translations: others("alternative_"),
    };
    if (!body.title || !body.components.length) return;
    const mine = ++asked;
    const response = await fetch(form.dataset.preview, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body),
    });
    if (mine !== asked || !response.ok) return;  // an older answer, or a form the API refuses
    const document_ = await response.json();
    showPreviews(previews, document_.renders);
    showFindings(findings, document_.findings, severityWords);
  }
  const later = () => { clearTimeout(timer); timer = setTimeout(refresh, 300); };
  form.addEventListener("input", later);
  form.addEventListener("change", later);
}

// The incident page's bars move as messages go out: each delivery event of this incident re-reads it.
function liveProgress(section) {
  const incident = Number(section.dataset.incident);
  const events = new EventSource(section.dataset.events, { withCredentials: true });
  let reading = false;
  async function reread() {
    if (reading) return;
    reading = true;
    try {
      const response = await fetch(section.dataset.detail, { credentials: "same-origin" });
      if (!response.ok) return;
      const detail = await response.json();
      for (const [channel, statuses] of Object.entries(detail.deliveries)) {
        const row = section.querySelector(`tr[data-channel="${CSS.escape(channel)}"]`);
        if (!row) continue;
        const total = Object.values(statuses).reduce((a, b) => a + b, 0);
        const done = ["sent", "failed", "dead", "captured"].reduce((a, s) => a + (statuses[s] || 0), 0);
        const bar = row.querySelector("progress");
        bar.max = total; bar.value = done;
        row.querySelector(".count").textContent = `${done} / ${total}`;
      }
    } finally { reading = false; }
  }
  events.addEventListener("delivery", (event) => {
    if (JSON.parse(event.data).incident_id === incident) reread();
  });
  events.addEventListener("open", reread);  // what went out between the page and the stream
}

// The inbox list and a thread follow new messages: on each event the page is read again and the
// part that changed is swapped in (the server renders it, escaped, as without script).
function liveRegion(region, wanted) {
  const events = new EventSource(region.dataset.events, { withCredentials: true });
  let pending = false;
  async function reread() {
    if (pending) return;
    pending = true;
    try {
      const response = await fetch(location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById(region.id);
      if (fresh) region.replaceChildren(...fresh.childNodes);
    } finally { pending = false; }
  }
  for (const name of ["message", "conversation"]) {
    events.addEventListener(name, (event) => { if (wanted(JSON.parse(event.data))) reread(); });
  }
  events.addEventListener("open", reread);  // what arrived between the page and the stream
}

function typing(event) {
  return event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey;
}

function inboxKeys(list) {
  document.addEventListener("keydown", (event) => {
    if (typing(event) || !["j", "k"].includes(event.key)) return;
    const links = [...list.querySelectorAll("li a")];
    if (!links.length) return;
    const at = links.indexOf(document.activeElement);
    const next = event.key === "j" ? Math.min(at + 1, links.length - 1) : Math.max(at - 1, 0);
    links[at === -1 ? 0 : next].focus();
    event.preventDefault();
  });
}

function threadKeys() {
  document.addEventListener("keydown", (event) => {
    if (typing(event)) return;
    if (event.key === "r") { document.getElementById("reply")?.focus(); event.preventDefault(); }
    if (event.key === "e") { document.getElementById("close-form")?.requestSubmit(); event.preventDefault(); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  tickCountdowns();
  setInterval(tickCountdowns, 30000);
  quickChoices();
  const composer = document.getElementById("composer");
  if (composer) livePreview(composer);
  const progress = document.getElementById("progress");
  if (progress && progress.dataset.events) liveProgress(progress);
  const list = document.getElementById("conversations");
  if (list) { liveRegion(list, () => true); inboxKeys(list); }
  const thread = document.getElementById("thread");
  if (thread) {
    const id = Number(thread.dataset.conversation);
    liveRegion(thread, (data) => data.conversation_id === id || data.object === `conversation:${id}`);
    threadKeys();
  }
});

