// SPDX-License-Identifier: MIT
// structured_output.test.mjs — the example's web page in a real browser: Debian's chromium
// driven by playwright-core. Starts the whole stack for real (the fake chat-completions
// server, an errand server, one task worker, the web API; every port picked by the system
// and read from the "listening" log lines), then fills the form like a person would and
// watches the page show the run id, then the typed result or the failure.
//
//   cd tests/browser && npm ci && node --test
// Binaries come from $ERRAND_BUILD/bin (default <repo>/build/bin); chromium from
// $CHROMIUM (default /usr/bin/chromium).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..", "..");
const BIN = path.join(process.env.ERRAND_BUILD || path.join(REPO, "build"), "bin");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const FAKE_KEY = "sk-test-browser";
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 60_000;
const UI_TIMEOUT_MS = 60_000; // generous: only stops a hung test
const POLL_MS = 50;
const TEST_TIMEOUT_MS = 180_000;
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

const tmp = mkdtempSync(path.join(tmpdir(), "errand-browser-"));
const children = [];
let fakeUrl, errandUrl, appUrl, context, page;

/** The environment of a child: ours without ERRAND_*, OPENAI_* or proxies, plus extra. */
function childEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("ERRAND_") && !k.startsWith("OPENAI_") && !/proxy/i.test(k)) env[k] = v;
  }
  return { ...env, ...extra };
}

/** Starts a process; its stderr lines are kept (and copied to tmp/<name>.log). */
function start(name, cmd, args, env) {
  const child = spawn(cmd, args, { env: childEnv(env), stdio: ["ignore", "ignore", "pipe"] });
  const log = createWriteStream(path.join(tmp, `${name}.log`));
  const proc = { name, child, lines: [], exited: null };
  let partial = "";
  child.stderr.on("data", (chunk) => {
    log.write(chunk);
    const parts = (partial + chunk.toString("utf8")).split("\n");
    partial = parts.pop();
    proc.lines.push(...parts);
  });
  child.on("exit", (code, signal) => { proc.exited = { code, signal }; log.end(); });
  children.push(proc);
  return proc;
}

async function waitFor(what, fn, timeoutMs = START_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The port from the process's `msg="listening" ... port=P` line. */
async function listeningPort(proc) {
  const line = await waitFor(`${proc.name} to listen`, () => {
    if (proc.exited) throw new Error(`${proc.name} exited: ${proc.lines.slice(-20).join("\n")}`);
    return proc.lines.find((l) => l.includes('msg="listening"'));
  });
  return Number(/ port=(\d+)/.exec(line)[1]);
}

async function stop(proc) {
  if (!proc.exited) proc.child.kill("SIGTERM");
  await waitFor(`${proc.name} to exit`, () => proc.exited, STOP_TIMEOUT_MS);
  return proc.exited;
}

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
  const f = start("fake-openai", "/usr/bin/python3",
    [path.join(REPO, "tests", "example", "fake_openai.py"), "--port", "0", "--api-key", FAKE_KEY], {});
  fakeUrl = `http://127.0.0.1:${await listeningPort(f)}`;

  const home = path.join(tmp, "errand-home");
  const server = start("errand-server", path.join(BIN, "errand"),
    ["server", "start", "--port", "0"], { ERRAND_HOME: home });
  errandUrl = `http://127.0.0.1:${await listeningPort(server)}/api`;

  const common = { ERRAND_HOME: home, ERRAND_API_URL: errandUrl };
  start("task", path.join(BIN, "structured-output-task"), ["--name", "browser-task"],
    { ...common, OPENAI_BASE_URL: `${fakeUrl}/v1`, OPENAI_API_KEY: FAKE_KEY });
  await waitFor("the task worker to register", async () => {
    const { body } = await json(`${errandUrl}/workers`);
    return body.workers.some((w) => w.name === "browser-task");
  });
  const api = start("api", path.join(BIN, "structured-output-api"),
    ["--host", "127.0.0.1", "--port", "0"], common);
  appUrl = `http://127.0.0.1:${await listeningPort(api)}/`;

  context = await chromium.launchPersistentContext(path.join(tmp, "chromium-profile"), {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
  });
  page = context.pages()[0] || (await context.newPage());
});

after(async () => {
  if (context) await context.close();
  const bad = [];
  for (const proc of [...children].reverse()) {
    const { code, signal } = await stop(proc);
    // The fake exits on SIGTERM by itself; everything else must stop cleanly with 0.
    if (code !== 0) bad.push(`${proc.name} exited with ${code ?? signal}:\n` +
      proc.lines.slice(-20).join("\n"));
  }
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
