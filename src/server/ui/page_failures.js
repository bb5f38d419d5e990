// SPDX-License-Identifier: MIT
// page_failures.js — failed runs grouped by task and message shape, retried or deleted by group.

import {
  h,
  ago,
  errorBox,
  api,
  query,
  bulk,
  tablePanel,
  emptyRow,
} from "./lib.js";

// --- failures -----------------------------------------------------------------------------

export async function failuresPage(page) {
  const body = h("tbody", {});
  const err = h("div", {});
  page.show(
    h("h1", {}, "Failures"),
    h(
      "p",
      { class: "muted" },
      "FAILED and CRASHED runs stored, grouped by task and the shape of their message (numbers and ids left out), the latest first.",
    ),
    err,
    tablePanel(["Task", "Runs", "Message", "Last", ""], body),
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
      if (!f.groups.length) body.append(emptyRow(5, "No failed run is stored."));
    } catch (e) {
      if (e.status !== 401) err.replaceChildren(errorBox(e));
    }
  }
  await refresh();
  const timer = setInterval(refresh, 10000);
  page.atEnd(() => clearInterval(timer));
}
