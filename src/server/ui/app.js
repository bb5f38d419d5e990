// The errand dashboard: plain JavaScript, no build step, no dependency. It reads the same
// HTTP API as every client (docs/api.md) with the session cookie of its login, and follows
// GET /api/events for live changes. Every value shown is set as text (textContent), never as
// HTML: a task name or a result holding markup is shown as the characters it is.

const STATES = [
  "SCHEDULED",
  "PENDING",
  "RUNNING",
  "COMPLETED",
  "FAILED",
  "CRASHED",
  "CANCELLING",
  "CANCELLED",
];
const FINAL = new Set(["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]);
const PAGE_SIZE = 50;
const LOG_POLL_MS = 2000;

const main = document.getElementById("main");
let session = null; // GET /api/session's answer
let pageCleanup = []; // what the current page must stop when another one opens

// --- DOM ---------------------------------------------------------------------------------

// h("a", {href: "#/"}, "text", child...) — an element; strings become text nodes.
function h(tag, attrs, ...children) {
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

function badge(type) {
  return h("span", { class: `badge ${STATES.includes(type) ? type : ""}` }, type);
}

function when(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  return (
    d.toLocaleString(undefined, { hour12: false }) +
    "." +
    String(d.getMilliseconds()).padStart(3, "0")
  );
}

function ago(ts) {
  if (!ts) return "—";
  const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

function json(v) {
  return JSON.stringify(v, null, 2);
}

function show(...nodes) {
  main.replaceChildren(...nodes);
}

function errorBox(e) {
  return h("div", { class: "error", role: "alert" }, e.message || String(e));
}

// --- API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

async function api(method, path, body) {
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
    session = null;
    route();
    throw new ApiError(401, data);
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// Events a second a list page follows at most: past it the server skips events and says so,
// and the page reloads what it shows (at most every RELOAD_MS) instead of replaying them all.
const LIST_MAX_RATE = 20;
const RELOAD_MS = 2000;
const OPEN_WAIT_MS = 2000;

// A live stream of GET /api/events; onEvent(run change), onReset() when events were missed
// (the client was away too long, or the stream skipped some over its max_rate).
function follow(params, onEvent, onReset) {
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
  pageCleanup.push(() => clearTimeout(reloading));
  es.onopen = () => {
    live.hidden = false;
    live.classList.remove("off");
    live.textContent = "live";
  };
  es.onerror = () => {
    live.classList.add("off");
    live.textContent = "reconnecting";
  };
  pageCleanup.push(() => es.close());
  // Resolved once the server has subscribed the stream (or after OPEN_WAIT_MS): a page reads
  // what it shows after that, so no change falls between its read and its stream.
  return new Promise((resolve) => {
    es.addEventListener("open", resolve, { once: true });
    setTimeout(resolve, OPEN_WAIT_MS);
  });
}

// --- login --------------------------------------------------------------------------------

function loginPage(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  const input = h("input", {
    type: "password",
    name: "key",
    autocomplete: "current-password",
    required: true,
    "aria-label": "API key",
  });
  const err = h("div", { class: "error", hidden: !message, role: "alert" }, message || "");
  const form = h(
    "form",
    {
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          session = await api("POST", "/api/session", { key: input.value });
          input.value = "";
          route();
        } catch (x) {
          err.hidden = false;
          err.textContent = x.status === 401 ? "That is not one of this server's keys." : x.message;
        }
      },
    },
    h("label", {}, "API key", input),
    h("button", { class: "primary", type: "submit" }, "Log in"),
  );
  show(
    h(
      "div",
      { class: "login" },
      h("h1", {}, "Log in to errand"),
      h(
        "p",
        { class: "muted" },
        "Use one of the server's API keys (admin, submit or read). " +
          "It is exchanged for a session cookie and not kept by this page.",
      ),
      err,
      form,
    ),
  );
  input.focus();
}

async function logout() {
  try {
    await api("DELETE", "/api/session");
  } catch {
    /* the cookie is gone either way */
  }
  session = null;
  route();
}

// --- overview -----------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// A bar chart of runs finished per minute: completed stacked under failed, cancelled apart.
function finishedChart(minutes) {
  const W = 1000,
    H = 160,
    PAD = 22;
  const max = Math.max(1, ...minutes.map((m) => m.completed + m.failed + m.cancelled));
  const bw = W / minutes.length;
  const y = (v) => (H - PAD) * (1 - v / max);
  const chart = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "aria-label": "runs finished per minute",
  });
  for (const f of [0.5, 1]) {
    chart.append(
      svg("line", { x1: 0, x2: W, y1: y(max * f), y2: y(max * f), class: "grid" }),
      svg("text", { x: 2, y: y(max * f) + 12, class: "axis" }, Math.round(max * f)),
    );
  }
  minutes.forEach((m, i) => {
    const x = i * bw + bw * 0.1,
      w = Math.max(1, bw * 0.8);
    const tip = `${when(m.at)}: ${m.completed} completed, ${m.failed} failed, ${m.cancelled} cancelled`;
    let base = 0;
    for (const [k, cls] of [
      ["completed", "ok"],
      ["failed", "bad"],
      ["cancelled", "off"],
    ]) {
      if (!m[k]) continue;
      chart.append(
        svg(
          "rect",
          { x, y: y(base + m[k]), width: w, height: y(base) - y(base + m[k]), class: cls },
          svg("title", {}, tip),
        ),
      );
      base += m[k];
    }
  });
  const first = minutes[0],
    last = minutes[minutes.length - 1];
  chart.append(
    svg("text", { x: 0, y: H - 4, class: "axis" }, new Date(first.at).toLocaleTimeString()),
    svg("text", { x: W, y: H - 4, class: "axis end" }, new Date(last.at).toLocaleTimeString()),
  );
  return chart;
}

function pct(p) {
  return p ? `${duration(p.p50)} · ${duration(p.p95)} · ${duration(p.p99)}` : "—";
}

async function overviewPage(params) {
  const windowSel = params.get("window") === "day" ? "day" : "hour";
  const cards = h("div", { class: "cards" });
  const chartBox = h("div", { class: "panel chartbox" });
  const durations = h("div", { class: "cards" });
  const tasksBody = h("tbody", {});
  const workersBox = h("div", { class: "panel" });
  const recent = h("tbody", {});
  const err = h("div", {});
  const tabs = h(
    "span",
    { class: "tabs" },
    h("a", { href: "#/?window=hour", class: windowSel === "hour" ? "active" : "" }, "last hour"),
    h("a", { href: "#/?window=day", class: windowSel === "day" ? "active" : "" }, "last day"),
  );
  show(
    h("h1", {}, "Overview"),
    err,
    cards,
    h("h2", {}, "Runs finished per minute ", tabs),
    chartBox,
    h(
      "div",
      { class: "legend" },
      h("span", { class: "ok" }, "completed"),
      h("span", { class: "bad" }, "failed or crashed"),
      h("span", { class: "off" }, "cancelled"),
    ),
    durations,
    h("h2", {}, "Tasks"),
    h(
      "div",
      { class: "panel" },
      h(
        "table",
        { class: "tasks" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            [
              "Task",
              "Queued",
              "Running",
              `Completed (${windowSel})`,
              `Failed (${windowSel})`,
              "Failure rate",
              "Run time p50 · p95",
              "Last failure",
              "",
            ].map((t) => h("th", {}, t)),
          ),
        ),
        tasksBody,
      ),
    ),
    h("h2", {}, "Workers"),
    workersBox,
    h("h2", {}, "Latest changes"),
    h(
      "div",
      { class: "panel" },
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", {}, "When"),
            h("th", {}, "Run"),
            h("th", {}, "Task"),
            h("th", {}, "State"),
          ),
        ),
        recent,
      ),
    ),
  );
  recent.append(h("tr", {}, h("td", { class: "empty", colspan: 4 }, "Waiting for changes…")));

  async function togglePause(task, paused) {
    try {
      await api("POST", `/api/tasks/${paused ? "resume" : "pause"}`, { task });
      await refresh();
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  }

  async function refresh() {
    try {
      const st = await api("GET", `/api/stats?window=${windowSel}`);
      cards.replaceChildren(
        ...STATES.map((s) =>
          h(
            "a",
            { class: "card", href: `#/runs${query({ state: s })}`, "data-state": s },
            h("div", { class: "label" }, s.toLowerCase()),
            h("div", { class: "n" }, (st.counts[s] ?? 0).toLocaleString()),
          ),
        ),
      );
      chartBox.replaceChildren(finishedChart(st.minutes));
      const d = st.durations;
      durations.replaceChildren(
        h(
          "div",
          { class: "card wide" },
          h("div", { class: "label" }, "wait, due → started (p50 · p95 · p99)"),
          h("div", { class: "n small" }, pct(d.wait_ms)),
        ),
        h(
          "div",
          { class: "card wide" },
          h("div", { class: "label" }, "run time (p50 · p95 · p99)"),
          h("div", { class: "n small" }, pct(d.run_ms)),
        ),
        h(
          "div",
          { class: "card wide" },
          h("div", { class: "label" }, "sample"),
          h("div", { class: "n small" }, `latest ${d.sampled.toLocaleString()} finished runs`),
        ),
      );
      tasksBody.replaceChildren(
        ...st.tasks.map((t) =>
          h(
            "tr",
            { "data-task": t.task },
            h(
              "td",
              {},
              h("a", { href: `#/runs${query({ task: t.task })}` }, t.task),
              t.paused ? h("span", { class: "badge paused" }, "paused") : "",
            ),
            h("td", {}, t.counts.SCHEDULED.toLocaleString()),
            h("td", {}, (t.counts.PENDING + t.counts.RUNNING).toLocaleString()),
            h("td", {}, t.completed.toLocaleString()),
            h("td", {}, t.failed.toLocaleString()),
            h("td", {}, t.failure_rate === null ? "—" : `${(100 * t.failure_rate).toFixed(1)} %`),
            h("td", {}, t.run_ms ? `${duration(t.run_ms.p50)} · ${duration(t.run_ms.p95)}` : "—"),
            h(
              "td",
              {},
              t.last_failure
                ? h("a", { href: `#/runs/${t.last_failure.id}` }, ago(t.last_failure.at))
                : "—",
            ),
            h(
              "td",
              {},
              h(
                "button",
                { class: t.paused ? "" : "danger", onclick: () => togglePause(t.task, t.paused) },
                t.paused ? "Resume" : "Pause",
              ),
            ),
          ),
        ),
      );
      if (!st.tasks.length)
        tasksBody.append(
          h("tr", {}, h("td", { class: "empty", colspan: 9 }, "No task has runs yet.")),
        );
      const w = await api("GET", "/api/workers?limit=1000");
      const alive = w.workers.filter((x) => x.active);
      workersBox.replaceChildren(
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, "Alive"),
          h("dd", {}, `${alive.length} of ${w.workers.length} known`),
          h("dt", {}, "Tasks served"),
          h("dd", {}, [...new Set(alive.flatMap((x) => x.tasks))].sort().join(", ") || "none"),
        ),
      );
      err.replaceChildren();
    } catch (e) {
      if (e.status !== 401) err.replaceChildren(errorBox(e));
    }
  }
  let pending = null;
  const streaming = follow(
    { max_rate: LIST_MAX_RATE },
    (ev) => {
      if (recent.querySelector("td.empty")) recent.replaceChildren();
      recent.prepend(
        h(
          "tr",
          { class: "flash" },
          h("td", {}, when(ev.state.timestamp)),
          h("td", {}, h("a", { href: `#/runs/${ev.id}`, class: "mono" }, ev.id)),
          h("td", {}, ev.task ?? "—"),
          h("td", {}, badge(ev.state.type)),
        ),
      );
      while (recent.children.length > 20) recent.lastChild.remove();
      if (!pending)
        pending = setTimeout(() => {
          pending = null;
          refresh();
        }, 1000);
    },
    refresh,
  );
  await streaming;
  await refresh();
  const timer = setInterval(refresh, 30000); // the minutes move on even when nothing happens
  pageCleanup.push(() => {
    clearTimeout(pending);
    clearInterval(timer);
  });
}

// --- bulk actions ------------------------------------------------------------------------

// Runs a bulk action over every run the filter selects, a page at a time; the total done.
async function bulk(action, filter) {
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
function bulkBar(filter, describe, after) {
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

// --- runs ---------------------------------------------------------------------------------

function runRow(run) {
  return h(
    "tr",
    { "data-run": run.id },
    h("td", {}, h("a", { href: `#/runs/${run.id}`, class: "mono" }, run.id)),
    h("td", {}, run.task),
    h(
      "td",
      { class: "state" },
      badge(run.state.type),
      " ",
      h("span", { class: "muted" }, run.state.name),
    ),
    h("td", {}, when(run.created)),
    h(
      "td",
      {},
      run.started && run.finished ? duration(new Date(run.finished) - new Date(run.started)) : "—",
    ),
    h("td", {}, run.worker ?? "—"),
  );
}

async function runsPage(params) {
  const filters = {
    state: params.get("state") || "",
    task: params.get("task") || "",
    tag: params.get("tag") || "",
    since: params.get("since") || "",
    until: params.get("until") || "",
  };
  const stateSel = h(
    "select",
    { name: "state" },
    h("option", { value: "" }, "any state"),
    STATES.map((s) => h("option", { value: s, selected: s === filters.state }, s)),
  );
  const task = h("input", { name: "task", value: filters.task, placeholder: "task name" });
  const tag = h("input", { name: "tag", value: filters.tag, placeholder: "tag" });
  // Times are picked in local time and sent as RFC 3339 (the API's form).
  const local = (iso) =>
    iso
      ? new Date(new Date(iso) - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16)
      : "";
  const since = h("input", { name: "since", type: "datetime-local", value: local(filters.since) });
  const until = h("input", { name: "until", type: "datetime-local", value: local(filters.until) });
  const iso = (v) => (v ? new Date(v).toISOString() : "");
  const lookup = h("input", { name: "id", placeholder: "run id, or idempotency key" });
  const lookupErr = h("div", {});
  const open = async () => {
    const v = lookup.value.trim();
    if (!v) return;
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v)) {
      location.hash = `#/runs/${v}`;
      return;
    }
    // An idempotency key belongs to a task: the task filter says which.
    if (!task.value) {
      lookupErr.replaceChildren(
        errorBox(new Error("To find a run by idempotency key, fill in its task.")),
      );
      return;
    }
    try {
      const r = await api(
        "GET",
        `/api/task_runs${query({ task: task.value, idempotency_key: v })}`,
      );
      if (r.runs.length) location.hash = `#/runs/${r.runs[0].id}`;
      else
        lookupErr.replaceChildren(
          errorBox(new Error(`No run of ${task.value} has the idempotency key "${v}".`)),
        );
    } catch (e) {
      lookupErr.replaceChildren(errorBox(e));
    }
  };
  const form = h(
    "form",
    {
      class: "filters",
      onsubmit: (e) => {
        e.preventDefault();
        location.hash = `#/runs${query({
          state: stateSel.value,
          task: task.value,
          tag: tag.value,
          since: iso(since.value),
          until: iso(until.value),
        })}`;
      },
    },
    h("label", {}, "State", stateSel),
    h("label", {}, "Task", task),
    h("label", {}, "Tag", tag),
    h("label", {}, "From", since),
    h("label", {}, "To", until),
    h("button", { class: "primary", type: "submit" }, "Filter"),
    h("span", { class: "spacer" }),
    h("label", {}, "Go to run", lookup),
    h("button", { type: "button", onclick: open }, "Open"),
  );
  const body = h("tbody", {});
  const moreBtn = h("button", { hidden: true }, "Load more");
  const err = h("div", {});
  // Bulk actions take task, tag and state (not a time range): offered only for those.
  const hasFilter =
    (filters.state || filters.task || filters.tag) && !filters.since && !filters.until;
  const bulkFilter = {
    task: filters.task || undefined,
    tag: filters.tag || undefined,
    state: filters.state || undefined,
  };
  const described = [
    filters.state && `${filters.state.toLowerCase()}`,
    "runs",
    filters.task && `of ${filters.task}`,
    filters.tag && `tagged ${filters.tag}`,
  ]
    .filter(Boolean)
    .join(" ");
  show(
    h("h1", {}, "Runs"),
    form,
    lookupErr,
    hasFilter ? bulkBar(bulkFilter, described, () => load(true)) : "",
    err,
    h(
      "div",
      { class: "panel" },
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Run", "Task", "State", "Created", "Duration", "Worker"].map((t) => h("th", {}, t)),
          ),
        ),
        body,
      ),
    ),
    h("div", { class: "more" }, moreBtn),
  );

  let cursor = null;
  async function load(reset) {
    try {
      const page = await api(
        "GET",
        `/api/task_runs${query({ ...filters, limit: PAGE_SIZE, cursor: reset ? null : cursor })}`,
      );
      if (reset) body.replaceChildren();
      body.append(...page.runs.map(runRow));
      if (!body.children.length)
        body.append(h("tr", {}, h("td", { class: "empty", colspan: 6 }, "No runs match.")));
      cursor = page.next_cursor;
      moreBtn.hidden = !cursor;
      err.replaceChildren();
    } catch (e) {
      if (e.status !== 401) err.replaceChildren(errorBox(e));
    }
  }
  moreBtn.addEventListener("click", () => load(false));

  const rowSeq = new Map();
  // Live: a change to a run shown updates its row; a new run matching the filters appears on
  // top. The stream is filtered by task on the server; state and tag are checked here.
  const streaming = follow(
    { task: filters.task, max_rate: LIST_MAX_RATE },
    async (ev) => {
      const row = body.querySelector(`tr[data-run="${CSS.escape(ev.id)}"]`);
      const matchesState = !filters.state || ev.state.type === filters.state;
      if (row) {
        if (!matchesState) {
          row.remove();
          return;
        }
        // Only the latest read of a run may replace its row (reads can finish out of order).
        const seq = (rowSeq.get(ev.id) || 0) + 1;
        rowSeq.set(ev.id, seq);
        try {
          const fresh = await api("GET", `/api/task_runs/${ev.id}`);
          const current = body.querySelector(`tr[data-run="${CSS.escape(ev.id)}"]`);
          if (rowSeq.get(ev.id) === seq && current)
            current.replaceWith(Object.assign(runRow(fresh), { className: "flash" }));
        } catch {
          /* deleted meanwhile */
        }
        return;
      }
      if (!matchesState || (ev.state.type !== "SCHEDULED" && ev.state.type !== filters.state))
        return;
      if (filters.until) return; // a new run falls after a range that ends
      try {
        const run = await api("GET", `/api/task_runs/${ev.id}`);
        if (filters.tag && !run.tags.includes(filters.tag)) return;
        if (body.querySelector(`tr[data-run="${CSS.escape(run.id)}"]`)) return;
        body.querySelector("td.empty")?.parentElement.remove();
        const tr = runRow(run);
        tr.classList.add("flash");
        body.prepend(tr);
      } catch {
        /* deleted meanwhile */
      }
    },
    () => load(true),
  );
  await streaming;
  await load(true);
}

// --- one run ------------------------------------------------------------------------------

async function whyNotRunning(run) {
  if (run.state.type !== "SCHEDULED") return null;
  const due = new Date(run.scheduled_at).getTime();
  if (run.state.name === "AwaitingRetry" && due > Date.now())
    return `Awaiting retry until ${when(run.scheduled_at)} (attempt ${run.attempt} of ${
      run.max_attempts
    }).`;
  if (due > Date.now()) return `Scheduled for later: due ${when(run.scheduled_at)}.`;
  try {
    const st = await api("GET", "/api/stats");
    if (st.tasks.some((t) => t.task === run.task && t.paused))
      return `The task "${run.task}" is paused: no worker is handed its runs until it is resumed (Overview, or errand tasks resume).`;
    const w = await api("GET", "/api/workers?limit=1000");
    const serving = w.workers.filter((x) => x.active && x.tasks.includes(run.task));
    if (!serving.length)
      return `No live worker serves the task "${run.task}": start one (errand worker) that does.`;
    return `Due and waiting for a worker serving "${run.task}" (${
      serving.length
    } alive, all busy).`;
  } catch {
    return null;
  }
}

// A cache hit (state name Cached) says in its message which run computed its result.
function cacheSource(run) {
  if (run.state.name !== "Cached") return run.cache_key ? "no: it ran" : null;
  const m = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/.exec(run.state.message);
  return m
    ? h("span", {}, "yes, the result of ", h("a", { href: `#/runs/${m[0]}`, class: "mono" }, m[0]))
    : "yes";
}

async function runPage(id) {
  let run;
  try {
    run = await api("GET", `/api/task_runs/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status !== 401) show(h("h1", {}, "Run"), errorBox(e));
    return;
  }
  const head = h("div", {});
  const why = h("div", {});
  const facts = h("div", { class: "panel" });
  const timeline = h("div", { class: "panel" });
  const params = h("div", { class: "panel" });
  const result = h("div", { class: "panel" });
  const logsBox = h("div", { class: "panel logs" });
  const err = h("div", {});
  show(
    head,
    err,
    why,
    h(
      "div",
      { class: "grid2" },
      h("div", {}, h("h2", {}, "Details"), facts, h("h2", {}, "Parameters"), params),
      h("div", {}, h("h2", {}, "State history"), timeline, h("h2", {}, "Result"), result),
    ),
    h("h2", {}, "Logs"),
    logsBox,
  );

  async function act(what) {
    try {
      const r = await api("POST", `/api/task_runs/${run.id}/${what}`);
      if (what === "retry") location.hash = `#/runs/${r.id}`;
      else await render();
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
  }

  // Renders can overlap (a button's and an event's): each reads everything first, and only
  // the latest one begun writes the page, so an older answer never overwrites a newer one.
  let renderSeq = 0;
  async function render() {
    const mine = ++renderSeq;
    const fresh = await api("GET", `/api/task_runs/${run.id}`);
    const reason = await whyNotRunning(fresh);
    const states = await api("GET", `/api/task_runs/${run.id}/states`);
    if (mine !== renderSeq) return;
    run = fresh;
    const final = FINAL.has(run.state.type);
    head.replaceChildren(
      h(
        "div",
        { class: "title" },
        h("h1", { class: "mono" }, run.id),
        badge(run.state.type),
        h("span", { class: "muted" }, run.state.name),
      ),
      h(
        "div",
        { class: "actions" },
        h(
          "button",
          { class: "danger", id: "cancel", disabled: final, onclick: () => act("cancel") },
          "Cancel",
        ),
        h(
          "button",
          {
            id: "retry",
            disabled: !["FAILED", "CRASHED", "CANCELLED"].includes(run.state.type),
            onclick: () => act("retry"),
          },
          "Retry",
        ),
      ),
    );
    why.replaceChildren(...(reason ? [h("div", { class: "why" }, reason)] : []));
    const fact = (k, v) => [h("dt", {}, k), h("dd", {}, v ?? "—")];
    facts.replaceChildren(
      h(
        "dl",
        { class: "facts" },
        fact("Task", run.task),
        fact("Message", run.state.message || "—"),
        fact(
          "Attempt",
          `${run.attempt} of ${run.max_attempts}` +
            (run.retries
              ? ` (retries ${run.retries}, delays ${run.retry_delay_seconds.join(", ") || "0"} s)`
              : ""),
        ),
        fact("Redeliveries", run.redeliveries),
        fact("Worker", run.worker),
        fact(
          "Lease expires",
          run.lease_expires
            ? `${when(run.lease_expires)} (renewed by the worker's heartbeats)`
            : null,
        ),
        fact("Created", when(run.created)),
        fact("Scheduled at", when(run.scheduled_at)),
        fact("Started", when(run.started)),
        fact("Finished", when(run.finished)),
        fact(
          "Waited",
          run.started ? duration(new Date(run.started) - new Date(run.scheduled_at)) : "—",
        ),
        fact(
          "Ran",
          run.started && run.finished
            ? duration(new Date(run.finished) - new Date(run.started))
            : "—",
        ),
        fact("Priority", run.priority),
        fact("Tags", run.tags.join(", ") || "—"),
        fact("Timeout", run.timeout_seconds ? `${run.timeout_seconds} s` : "none"),
        fact("Idempotency key", run.idempotency_key),
        fact("Cache key", run.cache_key ? run.cache_key : null),
        fact("Cache hit", cacheSource(run)),
        fact(
          "Retry of",
          run.retry_of
            ? h("a", { href: `#/runs/${run.retry_of}`, class: "mono" }, run.retry_of)
            : null,
        ),
      ),
    );
    params.replaceChildren(h("pre", {}, json(run.parameters)));
    if (run.state.type !== "COMPLETED") {
      result.replaceChildren(
        h(
          "pre",
          { class: "muted" },
          final ? "No result: the run did not complete." : "Not finished yet.",
        ),
      );
    } else if ("result" in run) {
      result.replaceChildren(h("pre", {}, json(run.result)));
    } else {
      result.replaceChildren(
        h("pre", {}, "Persisted to result storage. "),
        h(
          "div",
          { class: "more" },
          h(
            "a",
            { href: `/api/task_runs/${run.id}/result`, download: `${run.id}.json` },
            "Download the result",
          ),
        ),
      );
    }
    timeline.replaceChildren(
      h(
        "ol",
        { class: "timeline" },
        states.states.map((s, i) => {
          const next = states.states[i + 1];
          return h(
            "li",
            {},
            h("span", {}, badge(s.type)),
            h(
              "span",
              {},
              s.name,
              s.message ? h("span", { class: "muted" }, ` — ${s.message}`) : "",
            ),
            h(
              "span",
              { class: "muted", title: s.timestamp },
              when(s.timestamp),
              next ? ` · ${duration(new Date(next.timestamp) - new Date(s.timestamp))}` : "",
            ),
          );
        }),
      ),
    );
  }

  let after = 0;
  // One read of the logs at a time (an event and the timer may ask together): each goes on
  // from where the last one stopped, so no line is shown twice.
  let logsChain = Promise.resolve();
  const moreLogs = () => (logsChain = logsChain.then(readLogs));
  async function readLogs() {
    try {
      const page = await api("GET", `/api/task_runs/${run.id}/logs?after=${after}`);
      if (!page.logs.length && !after)
        logsBox.replaceChildren(h("pre", { class: "muted" }, "No logs."));
      if (page.logs.length && !after) logsBox.replaceChildren();
      for (const l of page.logs)
        logsBox.append(
          h(
            "div",
            { class: "log" },
            h("span", { class: "muted" }, when(l.timestamp)),
            h("span", { class: l.level.toUpperCase() }, l.level),
            h("span", {}, l.message),
          ),
        );
      after = page.next_after;
    } catch {
      /* shown on the next render */
    }
  }

  // Live: this run's changes re-render it; its logs are read while it is not final. The
  // stream opens first, so a change made while the page reads the run is not missed.
  await follow(
    { run: run.id },
    () =>
      render()
        .then(moreLogs)
        .catch(() => {}),
    () => render().catch(() => {}),
  );
  try {
    await render();
    await moreLogs();
  } catch (e) {
    err.replaceChildren(errorBox(e));
  }
  const timer = setInterval(() => {
    if (!FINAL.has(run.state.type)) moreLogs();
  }, LOG_POLL_MS);
  pageCleanup.push(() => clearInterval(timer));
}

// --- failures -----------------------------------------------------------------------------

async function failuresPage() {
  const body = h("tbody", {});
  const err = h("div", {});
  show(
    h("h1", {}, "Failures"),
    h(
      "p",
      { class: "muted" },
      "FAILED and CRASHED runs stored, grouped by task and the shape of their message (numbers and ids left out), the latest first.",
    ),
    err,
    h(
      "div",
      { class: "panel" },
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Task", "Runs", "Message", "Last", ""].map((t) => h("th", {}, t)),
          ),
        ),
        body,
      ),
    ),
  );
  async function refresh() {
    try {
      const f = await api("GET", "/api/failures?limit=200");
      body.replaceChildren(
        ...f.groups.map((g) =>
          h(
            "tr",
            { "data-group": `${g.task}\n${g.fingerprint}` },
            h(
              "td",
              {},
              h("a", { href: `#/runs${query({ task: g.task, state: "FAILED" })}` }, g.task),
            ),
            h("td", {}, g.count.toLocaleString()),
            h("td", { class: "message" }, g.message),
            h("td", {}, h("a", { href: `#/runs/${g.last_run}`, title: g.last_at }, ago(g.last_at))),
            h(
              "td",
              { class: "nowrap" },
              ...[
                ["retry", "Retry all", ""],
                ["delete", "Delete all", "danger"],
              ].map(([action, label, cls]) =>
                h(
                  "button",
                  {
                    class: cls,
                    "data-bulk": action,
                    onclick: async () => {
                      if (!confirm(`${label} ${g.count} failed runs of ${g.task}?`)) return;
                      try {
                        const n = await bulk(action, { task: g.task, fingerprint: g.fingerprint });
                        err.replaceChildren(h("div", { class: "notice" }, `${action}: ${n} runs`));
                        await refresh();
                      } catch (e) {
                        err.replaceChildren(errorBox(e));
                      }
                    },
                  },
                  label,
                ),
              ),
            ),
          ),
        ),
      );
      if (!f.groups.length)
        body.append(
          h("tr", {}, h("td", { class: "empty", colspan: 5 }, "No failed run is stored.")),
        );
    } catch (e) {
      if (e.status !== 401) err.replaceChildren(errorBox(e));
    }
  }
  await refresh();
  const timer = setInterval(refresh, 10000);
  pageCleanup.push(() => clearInterval(timer));
}

// --- workers ------------------------------------------------------------------------------

async function workersPage() {
  const body = h("tbody", {});
  const err = h("div", {});
  show(
    h("h1", {}, "Workers"),
    err,
    h(
      "div",
      { class: "panel" },
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            [
              "Name",
              "Status",
              "Tasks served",
              "Last seen",
              "Runs claimed",
              "Holding now",
              "Next lease expiry",
            ].map((t) => h("th", {}, t)),
          ),
        ),
        body,
      ),
    ),
  );
  async function refresh() {
    try {
      const w = await api("GET", "/api/workers?limit=1000");
      // The runs held now (leased: PENDING, RUNNING, CANCELLING), read through the lease index.
      const held = await api("GET", "/api/task_runs?state=PENDING,RUNNING,CANCELLING&limit=1000");
      const holding = {};
      for (const r of held.runs) {
        const e = (holding[r.worker] ??= { n: 0, next: null });
        e.n++;
        if (r.lease_expires && (!e.next || r.lease_expires < e.next)) e.next = r.lease_expires;
      }
      const inSeconds = (ts) =>
        `in ${Math.max(0, Math.round((new Date(ts) - Date.now()) / 1000))} s`;
      body.replaceChildren(
        ...w.workers.map((x) =>
          h(
            "tr",
            { "data-worker": x.name },
            h("td", { class: "mono" }, x.name),
            h(
              "td",
              {},
              h(
                "span",
                { class: `badge ${x.active ? "alive" : "stale"}` },
                x.active ? "alive" : "stale",
              ),
            ),
            h("td", {}, x.tasks.join(", ")),
            h("td", { title: x.last_seen }, ago(x.last_seen)),
            h("td", {}, x.claimed.toLocaleString()),
            h("td", { class: "holding" }, String(holding[x.name]?.n ?? 0)),
            h("td", {}, holding[x.name]?.next ? inSeconds(holding[x.name].next) : "—"),
          ),
        ),
      );
      if (!w.workers.length)
        body.append(
          h("tr", {}, h("td", { class: "empty", colspan: 7 }, "No worker has claimed yet.")),
        );
    } catch (e) {
      if (e.status !== 401) err.replaceChildren(errorBox(e));
    }
  }
  await refresh();
  const timer = setInterval(refresh, 5000);
  pageCleanup.push(() => clearInterval(timer));
}

// --- routing ------------------------------------------------------------------------------

async function route() {
  for (const stop of pageCleanup) stop();
  pageCleanup = [];
  document.getElementById("live").hidden = true;
  if (!session) {
    try {
      session = await api("GET", "/api/session");
    } catch (e) {
      show(errorBox(e));
      return;
    }
  }
  if (session.auth_required && !session.authenticated) {
    loginPage();
    return;
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = !session.auth_required;
  const [path, q] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(q || "");
  const parts = (path || "/").split("/").filter(Boolean);
  const page = parts[0] || "overview";
  for (const a of document.querySelectorAll("#nav a"))
    a.classList.toggle("active", a.dataset.page === page);
  if (page === "runs" && parts[1]) return runPage(parts[1]);
  if (page === "runs") return runsPage(params);
  if (page === "workers") return workersPage();
  if (page === "failures") return failuresPage();
  return overviewPage(params);
}

document.getElementById("logout").addEventListener("click", logout);
window.addEventListener("hashchange", route);
route();
