// SPDX-License-Identifier: MIT
// page_workers.js — the workers: tasks, last seen, alive or stale, runs held now; the
// concurrency limits with the runs holding their slots; and the tasks' webhooks with the
// deliveries not made yet.

import {
  h,
  badge,
  ago,
  when,
  errorBox,
  api,
  query,
  tablePanel,
  emptyRow,
} from "./lib.js";

// --- workers ------------------------------------------------------------------------------

export async function workersPage(page) {
  const body = h("tbody", {});
  const limitsBody = h("tbody", {});
  const hooksBody = h("tbody", {});
  const deliveriesBody = h("tbody", {});
  const deliveriesTitle = h("h2", {}, "Webhook deliveries not made yet");
  const err = h("div", {});
  page.show(
    h("h1", {}, "Workers"),
    err,
    tablePanel(
      [
        "Name",
        "Status",
        "Tasks served",
        "Last seen",
        "Runs claimed",
        "Holding now",
        "Next lease expiry",
      ],
      body,
    ),
    h("h2", {}, "Concurrency limits"),
    tablePanel(["Limit", "Max running", "Held", "Held by"], limitsBody),
    h("h2", {}, "Webhooks"),
    tablePanel(["Task", "URL"], hooksBody),
    deliveriesTitle,
    tablePanel(["Run", "URL", "Calls", "Next", "Last error"], deliveriesBody),
  );
  function hookRows(answer) {
    hooksBody.replaceChildren(
      ...answer.webhooks.map((w) =>
        h(
          "tr",
          { "data-webhook": w.task },
          h("td", { class: "mono" }, w.task),
          h("td", { class: "mono" }, w.url),
        ),
      ),
    );
    if (!answer.webhooks.length)
      hooksBody.append(emptyRow(2, "No task has a webhook: errand webhooks set TASK URL sets one."));
    deliveriesTitle.textContent = `Webhook deliveries not made yet (${answer.pending})`;
    deliveriesBody.replaceChildren(
      ...answer.deliveries.map((d) =>
        h(
          "tr",
          { "data-delivery": String(d.id) },
          h("td", {}, h("a", { href: `#/runs/${d.run_id}`, class: "mono" }, d.run_id.slice(-12))),
          h("td", { class: "mono" }, d.url),
          h("td", {}, String(d.attempts)),
          h("td", { title: d.next_at }, when(d.next_at)),
          h("td", { class: "last-error" }, d.last_error ?? "—"),
        ),
      ),
    );
    if (!answer.deliveries.length) deliveriesBody.append(emptyRow(5, "None: every call was made."));
  }
  function limitRows(limits) {
    return limits.map((l) =>
      h(
        "tr",
        { "data-limit": `${l.task !== undefined ? "task" : "tag"}:${l.task ?? l.tag}` },
        h("td", { class: "mono" }, `${l.task !== undefined ? "task" : "tag"} ${l.task ?? l.tag}`),
        h("td", {}, String(l.max_running)),
        h("td", { class: "held" }, String(l.held)),
        h(
          "td",
          { class: "holders" },
          ...l.holders.flatMap((x, i) => [
            i ? ", " : "",
            h("a", { href: `#/runs/${x.run_id}`, class: "mono", title: x.task }, x.run_id.slice(-12)),
            ` (${x.worker ?? "?"})`,
          ]),
        ),
      ),
    );
  }
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
            h(
              "td",
              { class: "mono" },
              h(
                "a",
                { href: `#/runs${query({ worker: x.name })}`, title: "the runs it ran" },
                x.name,
              ),
            ),
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
      if (!w.workers.length) body.append(emptyRow(7, "No worker has claimed yet."));
      const limits = await api("GET", "/api/limits");
      limitsBody.replaceChildren(...limitRows(limits.limits));
      if (!limits.limits.length)
        limitsBody.append(emptyRow(4, "No limit: errand limits set TAG N sets one."));
      hookRows(await api("GET", "/api/webhooks"));
    } catch (e) {
      if (e.status !== 401) err.replaceChildren(errorBox(e));
    }
  }
  await refresh();
  const timer = setInterval(refresh, 5000);
  page.atEnd(() => clearInterval(timer));
}
