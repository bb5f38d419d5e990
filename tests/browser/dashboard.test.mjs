// SPDX-License-Identifier: MIT
// dashboard.test.mjs — the errand server's own dashboard in a real browser: Debian's
// chromium, or Debian's firefox-esr with ERRAND_BROWSER=firefox (over WebDriver BiDi), driven
// by playwright-core. Starts an errand server with API keys and a worker
// serving the built-in tasks (ports picked by the system, read from the "listening" line),
// then uses the dashboard as an operator would: logs in, reads the overview, filters and pages
// the runs, watches a run change state live, cancels and retries from the run page. Runs whose
// task name and parameters hold markup must show as text. Screenshots of each page go to
// $ERRAND_SCREENSHOTS (default: a temporary folder, printed).
//
//   cd tests/browser && npm ci && node --test
//   ERRAND_BROWSER=firefox node --test dashboard.test.mjs
// Binaries and browsers: harness.mjs.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, firefox } from "playwright-core";
import { BIN, CHROMIUM, CHROMIUM_ARGS, FIREFOX, Processes, waitFor } from "./harness.mjs";

const BROWSER = process.env.ERRAND_BROWSER || "chromium";
const ADMIN_KEY = "admin-" + Math.random().toString(16).slice(2);
const READ_KEY = "read-" + Math.random().toString(16).slice(2);
const UI_TIMEOUT_MS = 30_000; // generous: only stops a hung test
const TEST_TIMEOUT_MS = 120_000;
// Markup in every field a run shows: it must render as the characters it is.
const XSS_TASK = `evil"><img src=x onerror="window.__xss=1">`;
const XSS_PARAMS = { html: "<script>window.__xss=2</script>", attr: `"><img src=y onerror="window.__xss=3">` };

// How each browser is launched: Debian's builds, no download. Firefox is driven over WebDriver
// BiDi (playwright's "moz-firefox" channel), which a stock Firefox speaks.
const LAUNCH = {
  chromium: { type: chromium, options: { executablePath: CHROMIUM, args: CHROMIUM_ARGS } },
  firefox: { type: firefox, options: { executablePath: FIREFOX, channel: "moz-firefox" } },
}[BROWSER];
if (!LAUNCH) throw new Error(`ERRAND_BROWSER=${BROWSER}: chromium or firefox`);

const tmp = mkdtempSync(path.join(tmpdir(), `errand-dashboard-${BROWSER}-`));
const shots = process.env.ERRAND_SCREENSHOTS || path.join(tmp, "screenshots");
mkdirSync(shots, { recursive: true });
const procs = new Processes(tmp);
let base, api, context, page, serverProc;

/** The errand API with the admin key (what a web app would do beside the dashboard). */
async function call(method, p, body) {
  const r = await fetch(`${base}/api${p}`, {
    method, headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p} -> ${r.status} ${text}`);
  return JSON.parse(text);
}

const submit = (task, parameters = {}, extra = {}) =>
  call("POST", "/task_runs", { task, parameters, ...extra });
const shot = (name) => page.screenshot({
  path: path.join(shots, BROWSER === "chromium" ? `${name}.png` : `${name}-${BROWSER}.png`) });
// Before a screenshot playwright flushes animations by adding `<style>body {}</style>`, which
// the dashboard's CSP rightly refuses; Firefox reports that as a page error naming the
// style's hash. Every other page error fails the run.
const SCREENSHOT_STYLE_HASH = "sha256-YjaKGiklmzC6wjXA513HAMmzus8VE61XCOT+SmwNZWA=";
const pageError = (e) => {
  if (!(e.name === "Content-Security-Policy" && e.message.includes(SCREENSHOT_STYLE_HASH)))
    throw e;
};

before(async () => {
  const home = path.join(tmp, "errand-home");
  serverProc = procs.start("errand-server", path.join(BIN, "errand"), ["server", "start", "--port", "0"],
    { ERRAND_HOME: home, ERRAND_API_KEY: ADMIN_KEY, ERRAND_API_KEYS_READ: READ_KEY });
  base = `http://127.0.0.1:${await procs.listeningPort(serverProc)}`;
  procs.start("worker", path.join(BIN, "errand"), ["worker", "--builtin", "--name", "dash-worker",
    "--exec", `dash.fail=sh -c 'echo "timeout after $$ ms" >&2; exit 1'`],
    { ERRAND_HOME: home, ERRAND_API_URL: `${base}/api`, ERRAND_API_KEY: ADMIN_KEY });
  await waitFor("the worker to register", async () =>
    (await call("GET", "/workers")).workers.some((w) => w.name === "dash-worker"));
  context = await LAUNCH.type.launchPersistentContext(path.join(tmp, "profile"), {
    ...LAUNCH.options, headless: true, viewport: { width: 1280, height: 860 },
  });
  page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", pageError);
  api = call;
});

after(async () => {
  if (context) await context.close();
  const bad = await procs.stopAll();
  console.log(`dashboard screenshots: ${shots}`);
  rmSync(path.join(tmp, "profile"), { recursive: true, force: true });
  assert.deepEqual(bad, []);
});

test("login: nothing but the login page without a session; a key buys a cookie, never logged",
  { timeout: TEST_TIMEOUT_MS }, async () => {
    for (const p of ["/api/task_runs", "/api/events", "/metrics"])
      assert.equal((await fetch(base + p)).status, 401, p);
    await page.goto(base + "/");
    await page.waitForSelector("input[name=key]", { timeout: UI_TIMEOUT_MS });
    await shot("login");
    await page.fill("input[name=key]", "not-a-key");
    await page.click("button[type=submit]");
    await page.waitForSelector(".login .error:not([hidden])", { timeout: UI_TIMEOUT_MS });
    assert.match(await page.textContent(".login .error"), /not one of this server's keys/);
    await page.fill("input[name=key]", ADMIN_KEY);
    await page.click("button[type=submit]");
    await page.waitForSelector(".card", { timeout: UI_TIMEOUT_MS });
    const [cookie] = (await context.cookies(base)).filter((c) => c.name === "errand_session");
    assert.ok(cookie, "a session cookie");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Strict");
    assert.ok(cookie.expires > Date.now() / 1000 && cookie.expires < Date.now() / 1000 + 13 * 3600);
    assert.ok(!cookie.value.includes(ADMIN_KEY));
    // The page keeps no key: not in its storage, not in its URL.
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) +
      JSON.stringify({ ...sessionStorage }) + location.href);
    assert.ok(!stored.includes(ADMIN_KEY));
    // A cookie-authenticated change without the CSRF header (what a cross-site form sends)
    // is refused.
    const forged = await page.evaluate(async () => {
      const r = await fetch("/api/task_runs", { method: "POST", body: '{"task":"x"}',
        headers: { "Content-Type": "application/json" } });
      return r.status;
    });
    assert.equal(forged, 403);
    const log = readFileSync(serverProc.logPath, "utf8") + serverProc.lines.join("\n");
    assert.ok(!log.includes(ADMIN_KEY), "the key appears in the server's log");
  });

test("overview counts by state, workers alive, and live changes", { timeout: TEST_TIMEOUT_MS }, async () => {
  const done = await submit("errand.noop", { n: 1 });
  await call("GET", `/task_runs/${done.id}/wait?timeout_seconds=20`);
  await page.goto(base + "/#/");
  await page.waitForSelector(".card[data-state=COMPLETED]", { timeout: UI_TIMEOUT_MS });
  await waitFor("the overview to count the completed run", async () =>
    Number((await page.textContent(".card[data-state=COMPLETED] .n")).replace(/\D/g, "")) >= 1,
  UI_TIMEOUT_MS);
  assert.match(await page.textContent("main"), /1 of 1 known/);
  const live = await submit("never.served", { live: true });
  await page.waitForSelector(`a[href="#/runs/${live.id}"]`, { timeout: UI_TIMEOUT_MS });
  // The chart has a bar for the minute the run finished in; the task table a row per task.
  await page.waitForSelector("svg.chart rect.ok", { timeout: UI_TIMEOUT_MS });
  await page.waitForSelector('tr[data-task="errand.noop"]', { timeout: UI_TIMEOUT_MS });
  await shot("overview");

  // Pausing from the task table: the run page says why the run waits; resuming runs it.
  await page.click('tr[data-task="never.served"] button');
  await page.waitForSelector('tr[data-task="never.served"] .badge.paused', { timeout: UI_TIMEOUT_MS });
  assert.equal((await call("GET", "/stats")).tasks.find((t) => t.task === "never.served").paused, true);
  await page.goto(`${base}/#/runs/${live.id}`);
  await page.waitForSelector(".why", { timeout: UI_TIMEOUT_MS });
  assert.match(await page.textContent(".why"), /is paused/);
  await page.goto(base + "/#/");
  await page.click('tr[data-task="never.served"] button');
  await waitFor("the task resumed", async () =>
    !(await call("GET", "/stats")).tasks.find((t) => t.task === "never.served").paused, UI_TIMEOUT_MS);
});

test("runs: filters, keyset paging, markup shown as text, live rows", { timeout: TEST_TIMEOUT_MS }, async () => {
  await call("POST", "/task_runs/batch", {
    runs: Array.from({ length: 60 }, (_, i) => ({ task: "paged.task", parameters: { i } })),
  });
  const evil = await submit(XSS_TASK, XSS_PARAMS, { tags: ["<b>tag</b>"] });
  await page.goto(base + "/#/runs");
  await page.waitForSelector(`tr[data-run="${evil.id}"]`, { timeout: UI_TIMEOUT_MS });
  const cell = await page.textContent(`tr[data-run="${evil.id}"] td:nth-child(2)`);
  assert.equal(cell, XSS_TASK);
  assert.equal(await page.$$eval("main img", (els) => els.length), 0);
  await shot("runs");

  // Filter by task, then page with the keyset cursor: 60 runs, 50 a page.
  await page.fill("input[name=task]", "paged.task");
  await page.click("form.filters button[type=submit]");
  await waitFor("the task filter", async () => (await page.$$("tbody tr")).length === 50 &&
    (await page.$$eval("tbody tr td:nth-child(2)", (t) => t.every((c) => c.textContent === "paged.task"))),
  UI_TIMEOUT_MS);
  assert.match(page.url(), /task=paged\.task/);
  await page.click("text=Load more");
  await waitFor("the second page", async () => (await page.$$("tbody tr")).length === 60, UI_TIMEOUT_MS);
  const ids = await page.$$eval("tbody tr", (rows) => rows.map((r) => r.dataset.run));
  assert.equal(new Set(ids).size, 60);
  assert.deepEqual(ids, [...ids].sort().reverse(), "newest first");
  assert.equal(await page.isVisible("text=Load more"), false);

  // Live: a new run of the filtered task appears on top; a state change updates its row.
  const fresh = await submit("paged.task", { fresh: true });
  await page.waitForSelector(`tr[data-run="${fresh.id}"]`, { timeout: UI_TIMEOUT_MS });
  assert.equal(await page.$eval("tbody tr", (r) => r.dataset.run), fresh.id);
  await call("POST", `/task_runs/${fresh.id}/cancel`);
  await page.waitForSelector(`tr[data-run="${fresh.id}"] .badge.CANCELLED`, { timeout: UI_TIMEOUT_MS });

  // State filter from the select.
  await page.goto(base + "/#/runs?state=CANCELLED");
  await page.waitForSelector(`tr[data-run="${fresh.id}"]`, { timeout: UI_TIMEOUT_MS });
  assert.deepEqual(await page.$$eval("tbody .badge", (b) => [...new Set(b.map((x) => x.textContent))]),
    ["CANCELLED"]);
  assert.equal(await page.evaluate(() => window.__xss), undefined);

  // A time range (ids are time-ordered) and a lookup by idempotency key.
  const cut = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  const keyed = await submit("paged.task", { keyed: true }, { idempotency_key: "order-42" });
  await page.goto(`${base}/#/runs?task=paged.task&since=${encodeURIComponent(cut)}`);
  await waitFor("the time range", async () => {
    const ids = await page.$$eval("tbody tr", (rows) => rows.map((r) => r.dataset.run));
    return ids.length === 1 && ids[0] === keyed.id;
  }, UI_TIMEOUT_MS);
  await page.goto(`${base}/#/runs?task=paged.task`);
  await page.waitForSelector("tbody tr[data-run]", { timeout: UI_TIMEOUT_MS });
  await page.fill("input[name=id]", "order-42");
  await page.click("text=Open");
  await waitFor("the run found by its key", () => page.url().endsWith(`#/runs/${keyed.id}`), UI_TIMEOUT_MS);
});

test("run page: history, parameters as text, live state, cancel and retry buttons", { timeout: TEST_TIMEOUT_MS }, async () => {
  const evil = (await call("GET", "/task_runs?task=" + encodeURIComponent(XSS_TASK))).runs[0];
  await page.goto(`${base}/#/runs/${evil.id}`);
  await page.waitForSelector("ol.timeline", { timeout: UI_TIMEOUT_MS });
  assert.deepEqual(JSON.parse(await page.textContent(".grid2 pre")), XSS_PARAMS);
  assert.match(await page.textContent(".why"), /No live worker serves the task/);
  assert.equal(await page.$$eval("main img", (els) => els.length), 0);

  // A run that sleeps: the page follows it live to RUNNING, then its Cancel button ends it.
  const sleeper = await submit("errand.sleep", { seconds: 60 });
  await page.goto(`${base}/#/runs/${sleeper.id}`);
  await page.waitForSelector(".title .badge.RUNNING", { timeout: UI_TIMEOUT_MS });
  await waitFor("the lease expiry shown", async () => /renewed by the worker's heartbeats/.test(await page.textContent("dl.facts")), UI_TIMEOUT_MS);
  await shot("run");
  // The workers page counts the run the worker holds.
  await page.goto(base + "/#/workers");
  await page.waitForSelector('tr[data-worker="dash-worker"] td.holding', { timeout: UI_TIMEOUT_MS });
  await waitFor("the held run counted", async () =>
    (await page.textContent('tr[data-worker="dash-worker"] td.holding')).trim() === "1", UI_TIMEOUT_MS);
  await page.goto(`${base}/#/runs/${sleeper.id}`);
  await page.waitForSelector(".title .badge.RUNNING", { timeout: UI_TIMEOUT_MS });
  await page.click("#cancel");
  await page.waitForSelector(".title .badge.CANCELLED", { timeout: UI_TIMEOUT_MS });
  assert.equal((await call("GET", `/task_runs/${sleeper.id}`)).state.type, "CANCELLED");
  assert.equal(await page.isDisabled("#cancel"), true);

  // Retry makes a new run linked to this one, and the page moves to it.
  await page.click("#retry");
  await waitFor("the retried run's page", () => !page.url().endsWith(sleeper.id) &&
    /#\/runs\/[0-9a-f-]{36}$/.test(page.url()), UI_TIMEOUT_MS);
  const retryId = page.url().split("/").pop();
  await page.waitForSelector(`a[href="#/runs/${sleeper.id}"]`, { timeout: UI_TIMEOUT_MS });
  assert.equal((await call("GET", `/task_runs/${retryId}`)).retry_of, sleeper.id);
  await call("POST", `/task_runs/${retryId}/cancel`);
  await page.waitForSelector(".title .badge.CANCELLED", { timeout: UI_TIMEOUT_MS });
  assert.equal(await page.evaluate(() => window.__xss), undefined);
});

test("run page: the traceparent, and a link to the other runs of its trace", { timeout: TEST_TIMEOUT_MS }, async () => {
  const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const tp = `00-${trace}-00f067aa0ba902b7-01`;
  const first = await submit("dash.traced", {}, { traceparent: tp });
  const second = await submit("dash.traced", { n: 2 }, { traceparent: `00-${trace}-b7ad6b7169203331-01` });
  const other = await submit("dash.traced", {}, { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });
  await page.goto(`${base}/#/runs/${first.id}`);
  await page.waitForSelector('[data-field="traceparent"]', { timeout: UI_TIMEOUT_MS });
  assert.equal((await page.textContent('[data-field="traceparent"]')).trim(), tp);
  await page.click(`a[href="#/runs?trace_id=${trace}"]`);
  await page.waitForSelector(`tr[data-run="${second.id}"]`, { timeout: UI_TIMEOUT_MS });
  const shown = await page.$$eval("tr[data-run]", (rows) => rows.map((r) => r.dataset.run));
  assert.deepEqual(shown, [second.id, first.id]);
  assert.ok(!shown.includes(other.id));
  // A run without one shows none.
  const plain = await submit("dash.traced", {});
  await page.goto(`${base}/#/runs/${plain.id}`);
  await page.waitForSelector("ol.timeline", { timeout: UI_TIMEOUT_MS });
  assert.equal(await page.$('[data-field="traceparent"]'), null);
});

test("failures grouped by message, retried and deleted; bulk cancel from the runs page", { timeout: TEST_TIMEOUT_MS }, async () => {
  page.on("dialog", (d) => d.accept());
  const failed = [];
  for (let i = 0; i < 3; i++) failed.push((await submit("dash.fail", { i }, { retries: 0 })).id);
  for (const id of failed) await call("GET", `/task_runs/${id}/wait?timeout_seconds=20`);
  await page.goto(base + "/#/failures");
  const row = 'tr[data-group^="dash.fail"]';
  await page.waitForSelector(row, { timeout: UI_TIMEOUT_MS });
  assert.equal((await page.textContent(`${row} td:nth-child(2)`)).trim(), "3");
  assert.match(await page.textContent(`${row} td.message`), /^timeout after \d+ ms$/);
  await shot("failures");
  await page.click(`${row} button[data-bulk=retry]`);
  await page.waitForSelector(".notice", { timeout: UI_TIMEOUT_MS });
  assert.match(await page.textContent(".notice"), /retry: 3 runs/);
  const retried = (await call("GET", "/task_runs?task=dash.fail&limit=100")).runs.filter((r) => r.retry_of);
  assert.equal(retried.length, 3);
  for (const r of retried) await call("GET", `/task_runs/${r.id}/wait?timeout_seconds=20`);
  await page.click(`${row} button[data-bulk=delete]`);
  await waitFor("the group deleted", async () => !(await page.$(row)), UI_TIMEOUT_MS);
  assert.equal((await call("GET", "/task_runs?task=dash.fail")).runs.length, 0);

  // The runs page, filtered, cancels every run it selects.
  for (let i = 0; i < 4; i++) await submit("bulk.queued", { i });
  await page.goto(base + "/#/runs?task=bulk.queued");
  await page.waitForSelector("button[data-bulk=cancel]", { timeout: UI_TIMEOUT_MS });
  await page.click("button[data-bulk=cancel]");
  await page.waitForSelector(".notice", { timeout: UI_TIMEOUT_MS });
  assert.match(await page.textContent(".notice"), /cancel: 4 runs/);
  const states = (await call("GET", "/task_runs?task=bulk.queued")).runs.map((r) => r.state.type);
  assert.deepEqual([...new Set(states)], ["CANCELLED"]);
});

test("run page: a waiting run links to the runs it waits for", { timeout: TEST_TIMEOUT_MS }, async () => {
  const up = await submit("never.served", {});
  const down = await submit("dash.after", { x: { $result: up.id } });
  await page.goto(`${base}/#/runs/${down.id}`);
  await page.waitForSelector('[data-field="wait_for"]', { timeout: UI_TIMEOUT_MS });
  assert.match(await page.textContent(".title"), /Waiting/);
  assert.match(await page.textContent(".why"), /Waits for its upstream runs \(waiting for 1 upstream run\)/);
  await page.click(`[data-field="wait_for"] a[href="#/runs/${up.id}"]`);
  await waitFor("the upstream run's page", () => page.url().endsWith(`#/runs/${up.id}`), UI_TIMEOUT_MS);
  await call("POST", `/task_runs/${up.id}/cancel`);
  assert.equal((await call("GET", `/task_runs/${down.id}`)).state.name, "UpstreamFailed");
});

test("a page left before its answer arrives never overwrites the page opened since", { timeout: TEST_TIMEOUT_MS }, async () => {
  // The run's answer is held back (a slow network) until the reader has moved on.
  const run = await submit("never.served", {});
  let release;
  const held = new Promise((r) => (release = r));
  let delivered, asked;
  const done = new Promise((r) => (delivered = r));
  const requested = new Promise((r) => (asked = r));
  const url = `**/api/task_runs/${run.id}`;
  await page.route(url, async (r) => {
    asked();
    await held;
    await r.continue();
    delivered();
  });
  await page.goto(`${base}/#/runs/${run.id}`);
  // Left only once it asked for the run (it first reads the session: leaving before that,
  // it would never ask).
  await requested;
  await page.goto(base + "/#/workers");
  await page.waitForSelector("h2:text('Concurrency limits')", { timeout: UI_TIMEOUT_MS });
  release();
  await done;
  await new Promise((r) => setTimeout(r, 300)); // the left page's code has its answer now
  await page.unroute(url);
  assert.deepEqual(await page.$$eval("#main h1", (els) => els.map((e) => e.textContent)), ["Workers"]);
  assert.equal(await page.$("#main h2:text('Details')"), null);
  await call("POST", `/task_runs/${run.id}/cancel`);
});

test("workers page: the concurrency limits and the runs holding their slots", { timeout: TEST_TIMEOUT_MS }, async () => {
  await call("POST", "/limits", { tag: "dash-llm", max_running: 1 });
  const holder = await submit("errand.sleep", { seconds: 60 }, { tags: ["dash-llm"] });
  const waiting = await submit("errand.sleep", { seconds: 60 }, { tags: ["dash-llm"] });
  await page.goto(base + "/#/workers");
  const row = 'tr[data-limit="tag:dash-llm"]';
  await page.waitForSelector(row, { timeout: UI_TIMEOUT_MS });
  await waitFor("the slot held", async () =>
    (await page.textContent(`${row} td.held`)).trim() === "1" &&
    !!(await page.$(`${row} a[href="#/runs/${holder.id}"]`)), UI_TIMEOUT_MS);
  assert.match(await page.textContent(`${row} td.holders`), /dash-worker/);
  assert.equal((await call("GET", `/task_runs/${waiting.id}`)).state.type, "SCHEDULED");
  await call("POST", `/task_runs/${holder.id}/cancel`);
  await call("POST", `/task_runs/${waiting.id}/cancel`);
  await call("POST", "/limits", { tag: "dash-llm", max_running: 0 });
});

test("workers page: the tasks' webhooks and a failing delivery with its error", { timeout: TEST_TIMEOUT_MS }, async () => {
  await call("POST", "/webhooks", { task: "dash.hooked", url: "http://127.0.0.1:9/nobody" });
  const run = await submit("dash.hooked", {});
  await call("POST", `/task_runs/${run.id}/cancel`);
  await page.goto(base + "/#/overview");
  await page.goto(base + "/#/workers");
  await page.waitForSelector('tr[data-webhook="dash.hooked"]', { timeout: UI_TIMEOUT_MS });
  assert.match(await page.textContent('tr[data-webhook="dash.hooked"]'), /http:\/\/127\.0\.0\.1:9\/nobody/);
  // The first call is refused at once; the page shows it at its next refresh (5 s).
  await waitFor("the delivery's error", async () => {
    const row = await page.$(`tbody tr[data-delivery] a[href="#/runs/${run.id}"]`);
    if (!row) return false;
    const err = await page.textContent("tbody tr[data-delivery] td.last-error");
    return /onnect/.test(err);
  }, UI_TIMEOUT_MS);
  await call("POST", "/webhooks", { task: "dash.hooked", url: null });
});

test("workers page, the worker filter, and a read-only key's session cannot cancel", { timeout: TEST_TIMEOUT_MS }, async () => {
  await page.goto(base + "/#/workers");
  await page.waitForSelector("text=dash-worker", { timeout: UI_TIMEOUT_MS });
  assert.match(await page.textContent("tbody"), /alive/);
  assert.match(await page.textContent("tbody"), /errand\.noop/);
  await shot("workers");
  // A worker's name leads to the runs it ran: the runs page filtered by worker.
  await page.click('tr[data-worker="dash-worker"] a');
  await waitFor("the worker filter", async () => /worker=dash-worker/.test(page.url()) &&
    (await page.$$("tbody tr[data-run]")).length > 0, UI_TIMEOUT_MS);
  assert.equal(await page.inputValue("input[name=worker]"), "dash-worker");
  assert.deepEqual([...new Set(await page.$$eval("tbody tr[data-run] td:nth-child(6)",
    (cells) => cells.map((c) => c.textContent)))], ["dash-worker"]);

  await page.click("#logout");
  await page.waitForSelector("input[name=key]", { timeout: UI_TIMEOUT_MS });
  assert.equal((await context.cookies(base)).filter((c) => c.name === "errand_session").length, 0);
  await page.fill("input[name=key]", READ_KEY);
  await page.click("button[type=submit]");
  await page.waitForSelector("#nav:not([hidden])", { timeout: UI_TIMEOUT_MS });
  const run = await submit("never.served", {});
  await page.goto(`${base}/#/runs/${run.id}`);
  await page.waitForSelector("#cancel", { timeout: UI_TIMEOUT_MS });
  await page.click("#cancel");
  await page.waitForSelector(".error", { timeout: UI_TIMEOUT_MS });
  assert.match(await page.textContent(".error"), /submit scope/);
  assert.equal((await call("GET", `/task_runs/${run.id}`)).state.type, "SCHEDULED");
});
