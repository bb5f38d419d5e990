// SPDX-License-Identifier: MIT
// page_overview.js — the overview: counts, runs finished per minute, durations, tasks,
// workers, latest changes.

import {
  STATES,
  h,
  badge,
  when,
  ago,
  duration,
  errorBox,
  api,
  query,
  LIST_MAX_RATE,
  follow,
  tablePanel,
  emptyRow,
} from "./lib.js";

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

export async function overviewPage(page, params) {
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
  page.show(
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
    tablePanel(
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
      ],
      tasksBody,
      { class: "tasks" },
    ),
    h("h2", {}, "Workers"),
    workersBox,
    h("h2", {}, "Latest changes"),
    tablePanel(["When", "Run", "Task", "State"], recent),
  );
  recent.append(emptyRow(4, "Waiting for changes…"));

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
      if (!st.tasks.length) tasksBody.append(emptyRow(9, "No task has runs yet."));
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
    page,
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
  page.atEnd(() => {
    clearTimeout(pending);
    clearInterval(timer);
  });
}
