// SPDX-License-Identifier: MIT
// page_run.js — one run: state, timeline, why it waits, details, result, logs, cancel, retry.

import {
  FINAL,
  LOG_POLL_MS,
  h,
  badge,
  when,
  duration,
  json,
  errorBox,
  api,
  query,
  follow,
} from "./lib.js";

// --- one run ------------------------------------------------------------------------------

async function whyNotRunning(run) {
  if (run.state.type !== "SCHEDULED") return null;
  if (run.state.name === "Waiting")
    return `Waits for its upstream runs (${run.state.message}): it starts when they complete.`;
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

export async function runPage(page, id) {
  let run;
  try {
    run = await api("GET", `/api/task_runs/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status !== 401) page.show(h("h1", {}, "Run"), errorBox(e));
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
  page.show(
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
        fact(
          "Worker",
          run.worker &&
            h("a", { href: `#/runs${query({ worker: run.worker })}`, class: "mono" }, run.worker),
        ),
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
          "Traceparent",
          run.traceparent &&
            h(
              "span",
              {},
              h("span", { class: "mono", "data-field": "traceparent" }, run.traceparent),
              " ",
              // The other runs of the same trace: what one web request caused.
              h(
                "a",
                { href: `#/runs${query({ trace_id: run.traceparent.slice(3, 35) })}` },
                "runs of this trace",
              ),
            ),
        ),
        fact(
          "Waits for",
          run.wait_for?.length
            ? h(
                "span",
                { "data-field": "wait_for" },
                ...run.wait_for.flatMap((id, i) => [
                  i ? ", " : "",
                  h("a", { href: `#/runs/${id}`, class: "mono" }, id),
                ]),
                run.allow_upstream_failure ? " (starts even if they fail)" : "",
              )
            : null,
        ),
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
      const read = await api("GET", `/api/task_runs/${run.id}/logs?after=${after}`);
      if (!read.logs.length && !after)
        logsBox.replaceChildren(h("pre", { class: "muted" }, "No logs."));
      if (read.logs.length && !after) logsBox.replaceChildren();
      for (const l of read.logs)
        logsBox.append(
          h(
            "div",
            { class: "log" },
            h("span", { class: "muted" }, when(l.timestamp)),
            h("span", { class: l.level.toUpperCase() }, l.level),
            h("span", {}, l.message),
          ),
        );
      after = read.next_after;
    } catch {
      /* shown on the next render */
    }
  }

  // Live: this run's changes re-render it; its logs are read while it is not final. The
  // stream opens first, so a change made while the page reads the run is not missed.
  await follow(
    page,
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
  page.atEnd(() => clearInterval(timer));
}
