// SPDX-License-Identifier: MIT
// The errand dashboard: plain JavaScript modules, no build step, no dependency. It reads the
// same HTTP API as every client (docs/api.md) with the session cookie of its login, and
// follows GET /api/events for live changes. Every value shown is set as text (textContent),
// never as HTML: a task name or a result holding markup is shown as the characters it is.
// This file: the login and the routing between the pages (page_*.js); lib.js: what they share.

import { openPage, whenUnauthorized, h, errorBox, api } from "./lib.js";
import { overviewPage } from "./page_overview.js";
import { runsPage } from "./page_runs.js";
import { runPage } from "./page_run.js";
import { failuresPage } from "./page_failures.js";
import { workersPage } from "./page_workers.js";

let session = null; // GET /api/session's answer

// --- login --------------------------------------------------------------------------------

function loginPage(page, message) {
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
  page.show(
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

// --- routing ------------------------------------------------------------------------------

async function route() {
  const page = openPage();
  document.getElementById("live").hidden = true;
  if (!session) {
    try {
      session = await api("GET", "/api/session");
    } catch (e) {
      page.show(errorBox(e));
      return;
    }
  }
  if (page.ended) return; // the reader went on while the session was read
  if (session.auth_required && !session.authenticated) {
    loginPage(page);
    return;
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = !session.auth_required;
  const [path, q] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(q || "");
  const parts = (path || "/").split("/").filter(Boolean);
  const name = parts[0] || "overview";
  for (const a of document.querySelectorAll("#nav a"))
    a.classList.toggle("active", a.dataset.page === name);
  if (name === "runs" && parts[1]) return runPage(page, parts[1]);
  if (name === "runs") return runsPage(page, params);
  if (name === "workers") return workersPage(page);
  if (name === "failures") return failuresPage(page);
  return overviewPage(page, params);
}

whenUnauthorized(() => {
  session = null;
  route();
});
document.getElementById("logout").addEventListener("click", logout);
window.addEventListener("hashchange", route);
route();
