// SPDX-License-Identifier: MIT
// structured_output.test.mjs — the example's web page in a real browser: Debian's chromium
// driven by playwright-core. Starts the whole stack for real (the fake chat-completions
// server, an errand server, one task worker, the web API; every port picked by the system
// and read from the "listening" log lines), then fills the form like a person would and
// watches the page show the run id, then the typed result or the failure.
//
//   cd tests/browser && npm ci && node --test
// Binaries and the browser: harness.mjs.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { BIN, CHROMIUM, CHROMIUM_ARGS, REPO, Processes, waitFor } from "./harness.mjs";

const FAKE_KEY = "sk-test-browser";
const UI_TIMEOUT_MS = 60_000; // generous: only stops a hung test
const TEST_TIMEOUT_MS = 180_000;

const tmp = mkdtempSync(path.join(tmpdir(), "errand-browser-"));
// Children see neither our ERRAND_* nor our OPENAI_* settings.
const procs = new Processes(tmp, ["ERRAND_", "OPENAI_"]);
let fakeUrl, errandUrl, appUrl, context, page;

async function json(url, options) {
  const r = await fetch(url, options);
  return { status: r.status, body: await r.json() };
}

const fake = {
  script: (match, ...responses) => json(`${fakeUrl}/_fake/rules`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ match, responses }),
  }),
  release: (gate) => json(`${fakeUrl}/_fake/release`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ gate }),
  }),
  waiting: async (gate) => (await json(`${fakeUrl}/_fake/waiting?gate=${gate}`)).body.waiting,
  calls: async (match) =>
    (await json(`${fakeUrl}/_fake/calls?match=${encodeURIComponent(match)}`)).body.calls,
};

before(async () => {
  const f = procs.start("fake-openai", "/usr/bin/python3",
    [path.join(REPO, "tests", "example", "fake_openai.py"), "--port", "0", "--api-key", FAKE_KEY], {});
  fakeUrl = `http://127.0.0.1:${await procs.listeningPort(f)}`;

  const home = path.join(tmp, "errand-home");
  const server = procs.start("errand-server", path.join(BIN, "errand"),
    ["server", "start", "--port", "0"], { ERRAND_HOME: home });
  errandUrl = `http://127.0.0.1:${await procs.listeningPort(server)}/api`;

  const common = { ERRAND_HOME: home, ERRAND_API_URL: errandUrl };
  procs.start("task", path.join(BIN, "structured-output-task"), ["--name", "browser-task"],
    { ...common, OPENAI_BASE_URL: `${fakeUrl}/v1`, OPENAI_API_KEY: FAKE_KEY });
  await waitFor("the task worker to register", async () => {
    const { body } = await json(`${errandUrl}/workers`);
    return body.workers.some((w) => w.name === "browser-task");
  });
  const api = procs.start("api", path.join(BIN, "structured-output-api"),
    ["--host", "127.0.0.1", "--port", "0"], common);
  appUrl = `http://127.0.0.1:${await procs.listeningPort(api)}/`;

  context = await chromium.launchPersistentContext(path.join(tmp, "chromium-profile"), {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
  });
  page = context.pages()[0] || (await context.newPage());
});

after(async () => {
  if (context) await context.close();
  // Every process, the fake too, must stop cleanly with 0 on SIGTERM.
  const bad = await procs.stopAll();
  rmSync(tmp, { recursive: true, force: true });
  assert.deepEqual(bad, []);
});

const token = () => "tok-" + Math.random().toString(16).slice(2, 14);

async function fillAndSubmit({ payload, instructions, targetType }) {
  await page.goto(appUrl);
  await page.fill("#payload", payload);
  await page.fill("#instructions", instructions ?? "");
  await page.fill("#target_type", targetType);
  await page.click("#submit");
}

const text = (sel) => page.textContent(sel);

test("the form shows the run id, pending, then the typed result", { timeout: TEST_TIMEOUT_MS }, async () => {
  const t = token();
  await fake.script(t, { value: ["a", "b"], hold: t });
  await fillAndSubmit({ payload: JSON.stringify({ words: `a b ${t}` }), instructions: "split",
    targetType: "list[str]" });

  await page.waitForSelector("#run:not([hidden])", { timeout: UI_TIMEOUT_MS });
  const runId = (await text("#task-run-id")).trim();
  assert.match(runId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  // The model is still answering (held at the fake): the page says pending.
  await waitFor("the task to call the model", async () => (await fake.waiting(t)) === 1, UI_TIMEOUT_MS);
  assert.equal((await text("#status")).trim(), "pending");

  await fake.release(t);
  await page.waitForSelector("#result-box:not([hidden])", { timeout: UI_TIMEOUT_MS });
  assert.equal((await text("#status")).trim(), "completed");
  assert.deepEqual(JSON.parse(await text("#result")), ["a", "b"]);
  assert.equal((await text("#result-type")).trim(), "(array)");

  // The page and the API agree.
  const { body } = await json(`${appUrl}tasks/${runId}/status`);
  assert.deepEqual(body, { task_run_id: runId, status: "completed", result: ["a", "b"] });
});

test("a float target shows a number; plain text is sent as {data}", { timeout: TEST_TIMEOUT_MS }, async () => {
  const t = token();
  await fake.script(t, { value: 3.14 });
  await fillAndSubmit({ payload: `about three point one four ${t}`, targetType: "float" });
  await page.waitForSelector("#result-box:not([hidden])", { timeout: UI_TIMEOUT_MS });
  assert.equal((await text("#result")).trim(), "3.14");
  assert.equal((await text("#result-type")).trim(), "(number)");
  const [call] = await fake.calls(t);
  assert.deepEqual(JSON.parse(call.body.messages[1].content), { data: `about three point one four ${t}` });
});

test("a JSON Schema preset gives an object", { timeout: TEST_TIMEOUT_MS }, async () => {
  const t = token();
  await fake.script(t, { value: { name: "Ada", age: 36 } });
  await page.goto(appUrl);
  await page.fill("#payload", JSON.stringify({ bio: `Ada, 36 ${t}` }));
  await page.selectOption("#preset", { label: "JSON Schema (person)" });
  assert.match(await page.inputValue("#target_type"), /"required": \["name", "age"\]/);
  await page.click("#submit");
  await page.waitForSelector("#result-box:not([hidden])", { timeout: UI_TIMEOUT_MS });
  assert.deepEqual(JSON.parse(await text("#result")), { name: "Ada", age: 36 });
});

test("a failed run shows the endpoint's message", { timeout: TEST_TIMEOUT_MS }, async () => {
  const t = token();
  await fake.script(t, { status: 401, message: `Incorrect API key provided: sk-nope ${t}.` });
  await fillAndSubmit({ payload: t, targetType: "int" });
  await page.waitForSelector("#message-box:not([hidden])", { timeout: UI_TIMEOUT_MS });
  assert.equal((await text("#status")).trim(), "error");
  assert.match(await text("#message"), new RegExp(`Incorrect API key provided: sk-nope ${t}`));
  assert.equal((await page.isHidden("#result-box")), true);
});

test("a bad target type is refused with the field named", { timeout: TEST_TIMEOUT_MS }, async () => {
  await fillAndSubmit({ payload: "{}", targetType: "banana" });
  await page.waitForSelector("#errors:not([hidden])", { timeout: UI_TIMEOUT_MS });
  assert.match(await text("#errors"), /body\.target_type: Value error, unsupported target_type 'banana'/);
});
