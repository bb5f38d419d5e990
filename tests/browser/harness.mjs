// SPDX-License-Identifier: MIT
// harness.mjs — what the browser tests share: where the binaries and the browsers are, the
// processes a test starts (their stderr lines kept, and copied to <dir>/<name>.log; ports
// read from their "listening" lines), and polling for a condition.
// Binaries come from $ERRAND_BUILD/bin (default <repo>/build/bin); chromium from $CHROMIUM
// (default /usr/bin/chromium), firefox from $FIREFOX (default /usr/bin/firefox-esr).
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, "..", "..");
export const BIN = path.join(process.env.ERRAND_BUILD || path.join(REPO, "build"), "bin");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";
// Without the background-networking flags Chromium keeps trying hosts a closed network
// refuses.
export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
export const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 60_000;
const POLL_MS = 50;

/** Polls fn until it returns something truthy (returned), or throws after timeoutMs. */
export async function waitFor(what, fn, timeoutMs = START_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The processes of one test file. Children get our environment without the variables that
 * start with one of dropPrefixes, and without proxies. */
export class Processes {
  constructor(dir, dropPrefixes = ["ERRAND_"]) {
    this.dir = dir;
    this.dropPrefixes = dropPrefixes;
    this.all = [];
  }

  env(extra) {
    const env = {};
    for (const [k, v] of Object.entries(process.env))
      if (!this.dropPrefixes.some((p) => k.startsWith(p)) && !/proxy/i.test(k)) env[k] = v;
    return { ...env, ...extra };
  }

  /** Starts cmd; returns { name, child, lines, exited, logPath }. */
  start(name, cmd, args, env) {
    const child = spawn(cmd, args, { env: this.env(env), stdio: ["ignore", "ignore", "pipe"] });
    const logPath = path.join(this.dir, `${name}.log`);
    const log = createWriteStream(logPath);
    const proc = { name, child, lines: [], exited: null, logPath };
    let partial = "";
    child.stderr.on("data", (chunk) => {
      log.write(chunk);
      const parts = (partial + chunk.toString("utf8")).split("\n");
      partial = parts.pop();
      proc.lines.push(...parts);
    });
    child.on("exit", (code, signal) => { proc.exited = { code, signal }; log.end(); });
    this.all.push(proc);
    return proc;
  }

  /** The port from the process's `msg="listening" ... port=P` line. */
  async listeningPort(proc) {
    const line = await waitFor(`${proc.name} to listen`, () => {
      if (proc.exited) throw new Error(`${proc.name} exited: ${proc.lines.slice(-20).join("\n")}`);
      return proc.lines.find((l) => l.includes('msg="listening"'));
    });
    return Number(/ port=(\d+)/.exec(line)[1]);
  }

  async stop(proc) {
    if (!proc.exited) proc.child.kill("SIGTERM");
    await waitFor(`${proc.name} to exit`, () => proc.exited, STOP_TIMEOUT_MS);
    return proc.exited;
  }

  /** Stops every process, the last started first; what did not exit with 0, and its last
   * lines. */
  async stopAll() {
    const bad = [];
    for (const proc of [...this.all].reverse()) {
      const { code, signal } = await this.stop(proc);
      if (code !== 0)
        bad.push(`${proc.name} exited with ${code ?? signal}:\n` + proc.lines.slice(-20).join("\n"));
    }
    return bad;
  }
}
