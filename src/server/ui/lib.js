// SPDX-License-Identifier: MIT
// lib.js — what every page of the dashboard shares: the states, the DOM helper that sets
// every value as text, the API client (session cookie, CSRF header), the live event stream,
// bulk actions, and the page lifecycle.

export const STATES = [
  "SCHEDULED",
  "PENDING",
  "RUNNING",
  "COMPLETED",
  "FAILED",
  "CRASHED",
  "CANCELLING",
  "CANCELLED",
];
export const FINAL = new Set(["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]);
export const PAGE_SIZE = 50;
export const LOG_POLL_MS = 2000;

const main = document.getElementById("main");

// The page on screen. A page's code goes on after each await, so one the reader has left can
// still be running: what it would show is dropped, and what it starts (timers, streams) is
// stopped at once, so an answer that arrives late never overwrites the page opened since.
class Page {
  #cleanups = [];
  ended = false;
  show(...nodes) {
    if (!this.ended) main.replaceChildren(...nodes);
  }
  // fn stops what the page started; it runs when another page opens (at once if one has).
  atEnd(fn) {
    if (this.ended) fn();
    else this.#cleanups.push(fn);
  }
  end() {
    this.ended = true;
    for (const stop of this.#cleanups) stop();
    this.#cleanups = [];
  }
}

let current = null;
// Ends the page on screen and opens the next one.
export function openPage() {
  current?.end();
  current = new Page();
  return current;
}

// What a 401 from any call does (app.js: forget the session and show the login).
let onUnauthorized = () => {};
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

// --- DOM ---------------------------------------------------------------------------------

// h("a", {href: "#/"}, "text", child...) — an element; strings become text nodes.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// A panel holding a table: a header row of these column titles over body (a <tbody> the
// page fills); attrs go on the <table>.
export function tablePanel(titles, body, attrs = {}) {
  return h(
    "div",
    { class: "panel" },
    h(
      "table",
      attrs,
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          titles.map((t) => h("th", {}, t)),
        ),
      ),
      body,
    ),
  );
}

// The one row a table of `columns` columns shows when it has nothing to show.
export function emptyRow(columns, text) {
  return h("tr", {}, h("td", { class: "empty", colspan: columns }, text));
}

export function badge(type) {
  return h("span", { class: `badge ${STATES.includes(type) ? type : ""}` }, type);
}

export function when(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  return (
    d.toLocaleString(undefined, { hour12: false }) +
    "." +
    String(d.getMilliseconds()).padStart(3, "0")
  );
}

export function ago(ts) {
  if (!ts) return "—";
  const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function json(v) {
  return JSON.stringify(v, null, 2);
}

export function errorBox(e) {
  return h("div", { class: "error", role: "alert" }, e.message || String(e));
}

// --- API ----------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

export async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") opts.headers["X-Errand-CSRF"] = "1"; // what a cross-site page cannot send
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (r.status === 401 && path !== "/api/session") {
    onUnauthorized();
    throw new ApiError(401, data);
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// Events a second a list page follows at most: past it the server skips events and says so,
// and the page reloads what it shows (at most every RELOAD_MS) instead of replaying them all.
export const LIST_MAX_RATE = 20;
export const RELOAD_MS = 2000;
export const OPEN_WAIT_MS = 2000;

// A live stream of GET /api/events for page; onEvent(run change), onReset() when events were missed
// (the client was away too long, or the stream skipped some over its max_rate).
export function follow(page, params, onEvent, onReset) {
  const live = document.getElementById("live");
  const es = new EventSource(`/api/events${query(params)}`);
  let reloading = null;
  const reload = () => {
    if (!onReset || reloading) return;
    reloading = setTimeout(() => {
      reloading = null;
      onReset();
    }, RELOAD_MS);
  };
  es.addEventListener("run", (e) => onEvent(JSON.parse(e.data)));
  es.addEventListener("reset", reload);
  es.addEventListener("skipped", reload);
  page.atEnd(() => clearTimeout(reloading));
  es.onopen = () => {
    live.hidden = false;
    live.classList.remove("off");
    live.textContent = "live";
  };
  es.onerror = () => {
    live.classList.add("off");
    live.textContent = "reconnecting";
  };
  page.atEnd(() => es.close());
  // Resolved once the server has subscribed the stream (or after OPEN_WAIT_MS): a page reads
  // what it shows after that, so no change falls between its read and its stream.
  return new Promise((resolve) => {
    es.addEventListener("open", resolve, { once: true });
    setTimeout(resolve, OPEN_WAIT_MS);
  });
}

// --- bulk actions ------------------------------------------------------------------------

// Runs a bulk action over every run the filter selects, a page at a time; the total done.
export async function bulk(action, filter) {
  let done = 0;
  let cursor = null;
  do {
    const r = await api("POST", "/api/task_runs/bulk", { action, ...filter, cursor, limit: 500 });
    done += r.done;
    cursor = r.next_cursor;
  } while (cursor);
  return done;
}

// Buttons that apply an action to every run filter selects (after a confirmation); the bar
// says what was done, or the error.
export function bulkBar(filter, describe, after) {
  const status = h("div", {});
  const buttons = [
    ["cancel", "Cancel all"],
    ["retry", "Retry all"],
    ["delete", "Delete all"],
  ].map(([action, label]) =>
    h(
      "button",
      {
        class: action === "retry" ? "" : "danger",
        "data-bulk": action,
        onclick: async () => {
          if (!confirm(`${label} ${describe}?`)) return;
          try {
            const n = await bulk(action, filter);
            await after();
            status.replaceChildren(h("div", { class: "notice" }, `${action}: ${n} runs`));
          } catch (e) {
            status.replaceChildren(errorBox(e));
          }
        },
      },
      label,
    ),
  );
  return h(
    "div",
    {},
    h("div", { class: "actions bulk" }, h("span", { class: "muted" }, `All ${describe}:`), buttons),
    status,
  );
}
