// SPDX-License-Identifier: MIT
// page_runs.js — the runs: filters, time range, lookup, keyset paging, live rows, bulk actions.

import {
  STATES,
  PAGE_SIZE,
  h,
  badge,
  when,
  duration,
  errorBox,
  api,
  query,
  LIST_MAX_RATE,
  follow,
  bulkBar,
  tablePanel,
  emptyRow,
} from "./lib.js";

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
    h(
      "td",
      {},
      run.worker
        ? h("a", { href: `#/runs${query({ worker: run.worker })}`, class: "mono" }, run.worker)
        : "—",
    ),
  );
}

// A run id's creation time: ids are UUIDv7, their first 48 bits the Unix time in ms.
const idTime = (id) => new Date(parseInt(id.slice(0, 8) + id.slice(9, 13), 16));

// Requests one page makes at most before it waits for "Load more": filters that combine make
// the server read a bounded number of runs a request, so an answer can come back short while
// next_cursor says where to go on.
const SEARCH_CALLS = 10;

export async function runsPage(page, params) {
  const filters = {
    state: params.get("state") || "",
    task: params.get("task") || "",
    tag: params.get("tag") || "",
    worker: params.get("worker") || "",
    trace_id: params.get("trace_id") || "",
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
  const worker = h("input", { name: "worker", value: filters.worker, placeholder: "worker name" });
  const trace = h("input", {
    name: "trace_id",
    value: filters.trace_id,
    placeholder: "W3C trace id (32 hex)",
  });
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
          worker: worker.value,
          trace_id: trace.value.trim(),
          since: iso(since.value),
          until: iso(until.value),
        })}`;
      },
    },
    h("label", {}, "State", stateSel),
    h("label", {}, "Task", task),
    h("label", {}, "Tag", tag),
    h("label", {}, "Worker", worker),
    h("label", {}, "Trace", trace),
    h("label", {}, "From", since),
    h("label", {}, "To", until),
    h("button", { class: "primary", type: "submit" }, "Filter"),
    h("span", { class: "spacer" }),
    h("label", {}, "Go to run", lookup),
    h("button", { type: "button", onclick: open }, "Open"),
  );
  const body = h("tbody", {});
  const moreBtn = h("button", { hidden: true }, "Load more");
  const searched = h("span", { class: "muted" });
  const err = h("div", {});
  // Bulk actions take task, tag, worker and state (not a time range or a trace): offered only
  // for those.
  const hasFilter =
    (filters.state || filters.task || filters.tag || filters.worker) &&
    !filters.since &&
    !filters.until &&
    !filters.trace_id;
  const bulkFilter = {
    task: filters.task || undefined,
    tag: filters.tag || undefined,
    worker: filters.worker || undefined,
    state: filters.state || undefined,
  };
  const described = [
    filters.state && `${filters.state.toLowerCase()}`,
    "runs",
    filters.task && `of ${filters.task}`,
    filters.tag && `tagged ${filters.tag}`,
    filters.worker && `run by ${filters.worker}`,
    filters.trace_id && `of trace ${filters.trace_id}`,
  ]
    .filter(Boolean)
    .join(" ");
  page.show(
    h("h1", {}, "Runs"),
    form,
    lookupErr,
    hasFilter ? bulkBar(bulkFilter, described, () => load(true)) : "",
    err,
    tablePanel(["Run", "Task", "State", "Created", "Duration", "Worker"], body),
    h("div", { class: "more" }, moreBtn, " ", searched),
  );

  // A page is read until it is full or the listing ends, SEARCH_CALLS reads at most; then
  // "Load more" goes on from where the search stopped.
  let cursor = null;
  let loadSeq = 0;
  async function load(reset) {
    const seq = ++loadSeq;
    try {
      const rows = [];
      let next = reset ? null : cursor;
      for (let calls = 0; calls < SEARCH_CALLS && rows.length < PAGE_SIZE; calls++) {
        const found = await api(
          "GET",
          `/api/task_runs${query({ ...filters, limit: PAGE_SIZE - rows.length, cursor: next })}`,
        );
        rows.push(...found.runs);
        next = found.next_cursor;
        if (!next) break;
      }
      if (seq !== loadSeq) return; // a newer load replaced this one
      if (reset) body.replaceChildren();
      body.querySelector("td.empty")?.parentElement.remove();
      body.append(...rows.map(runRow));
      if (!body.children.length)
        body.append(
          emptyRow(6, next ? "No match among the runs searched so far." : "No runs match."),
        );
      cursor = next;
      moreBtn.hidden = !cursor;
      searched.textContent =
        cursor && rows.length < PAGE_SIZE ? `searched back to ${when(idTime(cursor))}` : "";
      err.replaceChildren();
    } catch (e) {
      if (e.status !== 401) err.replaceChildren(errorBox(e));
    }
  }
  moreBtn.addEventListener("click", () => load(false));

  // Puts a row where its id belongs (newest first); a run older than every row shown waits
  // for "Load more" when more rows follow.
  function placeRow(tr) {
    const id = tr.dataset.run;
    for (const other of body.querySelectorAll("tr[data-run]"))
      if (other.dataset.run < id) {
        other.before(tr);
        return;
      }
    if (!cursor) body.append(tr);
  }

  const rowSeq = new Map();
  // Live: a change to a run shown updates its row; a new run matching the filters appears in
  // its place (new runs on top). The stream is filtered by task on the server; state, tag and
  // worker are checked here (a worker's runs appear as it claims them).
  const streaming = follow(
    page,
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
      const entering =
        ev.state.type === "SCHEDULED" ||
        ev.state.type === filters.state ||
        (filters.worker && ev.state.type === "PENDING");
      if (!matchesState || !entering) return;
      if (filters.until && ev.state.type === "SCHEDULED") return; // after a range that ends
      try {
        const run = await api("GET", `/api/task_runs/${ev.id}`);
        if (filters.tag && !run.tags.includes(filters.tag)) return;
        if (filters.worker && run.worker !== filters.worker) return;
        if (filters.trace_id && (run.traceparent || "").slice(3, 35) !== filters.trace_id) return;
        const created = new Date(run.created);
        if (filters.since && created < new Date(filters.since)) return;
        if (filters.until && created > new Date(filters.until)) return;
        if (body.querySelector(`tr[data-run="${CSS.escape(run.id)}"]`)) return;
        body.querySelector("td.empty")?.parentElement.remove();
        const tr = runRow(run);
        tr.classList.add("flash");
        placeRow(tr);
      } catch {
        /* deleted meanwhile */
      }
    },
    () => load(true),
  );
  await streaming;
  await load(true);
}
