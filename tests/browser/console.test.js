#!/usr/bin/env node
/*
 * Browser tests of the web console: a real `vulcan server` with one real local
 * worker on a free loopback port, driven through Debian's headless Chromium by
 * playwright-core. Run by CTest (tests/browser/CMakeLists.txt):
 *
 *   VULCAN_BIN=build/vulcan SCREENSHOT_DIR=build/tests/browser/screenshots node console.test.js
 *
 * It fails (never skips) when Chromium or node_modules are missing: install
 * them with scripts/install-deps.sh (apt-get install chromium; npm ci here).
 * Every page is saved as a PNG in SCREENSHOT_DIR.
 */
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const net = require("net");
const { spawn } = require("child_process");

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const BIN = process.env.VULCAN_BIN;
const SHOTS = process.env.SCREENSHOT_DIR || path.join(__dirname, "screenshots");

function die(msg) {
  console.error("FAIL: " + msg);
  process.exit(1);
}
if (!BIN || !fs.existsSync(BIN)) die("VULCAN_BIN must name the built vulcan binary (got '" + BIN + "')");
if (!fs.existsSync(CHROMIUM)) die(CHROMIUM + " is missing: run scripts/install-deps.sh (apt-get install -y chromium)");
let chromium;
try {
  ({ chromium } = require("playwright-core"));
} catch (e) {
  die("playwright-core is not installed: run 'npm ci' in tests/browser (scripts/install-deps.sh does)");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs = 20000, everyMs = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error("timed out waiting for " + what + (last ? ": " + last.message : ""));
}

let base;
async function api(method, p, body) {
  const r = await fetch(base + "/api/v1" + p, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const t = await r.text();
  return { status: r.status, body: t ? JSON.parse(t) : null };
}
async function submit(name, script) {
  const content = [
    'version "0.1"',
    `name "${name}"`,
    'triggers "push" "manual"',
    "chain {",
    '    machine "default"',
    "    fragment {",
    `        name "${name}-step"`,
    '        run #"""',
    ...script.split("\n").map((l) => "            " + l),
    '            """#',
    "    }",
    "}",
    "",
  ].join("\n");
  const r = await api("POST", "/parse", {
    content,
    source_file_path: `.vulcan/${name}.kdl`,
    branch: "main",
    trigger: "manual",
  });
  if (r.status !== 201) throw new Error("submit failed: " + JSON.stringify(r.body));
  return r.body.chain_id;
}
async function chain(id) {
  return (await api("GET", "/chains/" + id)).body;
}

/* ------------------------------------------------------------ tests */

const tests = [];
function test(name, fn) {
  tests.push({ name, fn });
}

test("the chains list shows a chain go from running to completed without reloading", async (page) => {
  await page.goto(base + "/#/chains");
  await page.waitForSelector("table.chains tbody tr");
  await page.evaluate(() => (window.__noReload = true));
  const id = await submit("list-live", "echo start\nsleep 2\necho done");
  const row = `tr[data-chain-id="${id}"]`;
  await page.waitForSelector(`${row}[data-status="running"]`, { timeout: 15000 });
  await page.screenshot({ path: path.join(SHOTS, "chains.png"), fullPage: true });
  await page.waitForSelector(`${row}[data-status="completed"]`, { timeout: 20000 });
  if (!(await page.evaluate(() => window.__noReload === true))) throw new Error("the page was reloaded");
  const cells = await page.$$eval(`${row} td`, (tds) => tds.map((t) => t.textContent.trim()));
  if (!cells[1].includes("list-live.kdl")) throw new Error("no source file in the row: " + cells);
  if (!cells.includes("main")) throw new Error("no branch in the row: " + cells);
  if (!/^\d+(\.\d)?s$/.test(cells[6])) throw new Error("no duration in the row: " + cells[6]);
});

test("a fragment's log streams in, with ANSI colours and line links", async (page) => {
  const script =
    "for i in 1 2 3 4 5 6; do printf 'line %s \\033[32mgreen\\033[0m \\033[1;31mred\\033[0m\\n' $i; sleep 0.5; done";
  const id = await submit("log-stream", script);
  await page.goto(`${base}/#/chains/${id}`);
  const link = await page.waitForSelector(".frag a.frag-name", { timeout: 15000 });
  await link.click();
  await page.waitForSelector(".log .line", { timeout: 15000 });
  /* Lines arrive while the fragment still runs: the stream is live, not a one-shot load. */
  const early = await page.$$eval(".log .line", (l) => l.length);
  const stillRunning = await page.$eval(".log-state", (s) => s.getAttribute("data-status"));
  if (stillRunning !== "running") throw new Error("expected to watch it running, saw " + stillRunning);
  await page.waitForSelector('.log[data-ended="1"]', { timeout: 20000 });
  const lines = await page.$$eval(".log .line .txt", (l) => l.map((x) => x.textContent));
  if (lines.length !== 6 || early >= 6) throw new Error(`lines: early ${early}, final ${lines.length}`);
  if (lines[5] !== "line 6 green red") throw new Error("line 6 reads " + JSON.stringify(lines[5]));
  if ((await page.$$(".log .line .a-fg2")).length !== 6) throw new Error("green was not rendered");
  if ((await page.$$(".log .line .a-fg1.a-b")).length !== 6) throw new Error("bold red was not rendered");
  const state = await page.$eval(".log-state", (s) => s.textContent);
  if (!state.includes("completed")) throw new Error("final state: " + state);
  await page.screenshot({ path: path.join(SHOTS, "log.png"), fullPage: true });
  /* A line number is a link to that line; opening it highlights the line. */
  const href = await page.$eval("#L3 a.ln", (a) => a.getAttribute("href"));
  await page.goto(base + "/" + href);
  await page.waitForSelector("#L3.hl", { timeout: 10000 });
  /* The chain page shows it done. */
  await page.goto(`${base}/#/chains/${id}`);
  await page.waitForSelector('.frag[data-status="completed"]');
  await page.screenshot({ path: path.join(SHOTS, "chain.png"), fullPage: true });
});

test("parallel groups are side by side, waiting fragments say why", async (page) => {
  const content = `version "0.1"
name "fan-out"
triggers "manual"
chain {
    machine "default"
    fragment { name "build"; run "echo build; sleep 0.5"; }
    parallel {
        fragment { name "unit"; run "sleep 1; echo unit"; }
        fragment { name "lint"; run "sleep 1; echo lint"; }
        fragment { name "docs"; run "echo docs"; }
    }
    fragment { name "gpu-bench"; machine "gpu"; run "echo never"; }
}
`;
  const r = await api("POST", "/parse", { content, source_file_path: ".vulcan/fan-out.kdl", branch: "main", trigger: "manual" });
  if (r.status !== 201) throw new Error(JSON.stringify(r.body));
  const id = r.body.chain_id;
  await page.goto(`${base}/#/chains/${id}`);
  await page.waitForSelector(".kids.par > .frag", { timeout: 15000 });
  const boxes = await page.$$eval(".kids.par > .frag", (els) => els.map((e) => e.getBoundingClientRect().top));
  if (boxes.length !== 3) throw new Error("parallel children: " + boxes.length);
  if (Math.abs(boxes[0] - boxes[1]) > 2) throw new Error("parallel fragments are not side by side: " + boxes);
  const why = await waitFor("a waiting reason", async () => {
    const t = await page.$eval(".frag:last-child .waiting", (e) => e.textContent).catch(() => null);
    return t && t.includes("gpu") ? t : null;
  }, 20000, 250);
  if (!why.includes("no worker is registered")) throw new Error("waiting reason: " + why);
  await page.screenshot({ path: path.join(SHOTS, "chain-parallel.png"), fullPage: true });
  await api("POST", `/chains/${id}/cancel`);
});

test("a long-running chain is cancelled from its page", async (page) => {
  const id = await submit("long", "echo going to sleep\nsleep 120\necho woke up");
  await page.goto(`${base}/#/chains/${id}`);
  await page.waitForSelector('.frag[data-status="running"]', { timeout: 15000 });
  page.once("dialog", (d) => d.accept());
  const t0 = Date.now();
  await page.click('button[data-action="cancel"]');
  await page.waitForSelector('.chain-head .badge[data-status="cancelled"]', { timeout: 10000 });
  if (await page.$('button[data-action="cancel"]')) throw new Error("cancel is still offered");
  /* The worker learns it from its heartbeat and stops the script: the fragment ends long before 120 s. */
  await page.waitForSelector('.frag[data-status="cancelled"], .frag[data-status="failed"]', { timeout: 30000 });
  const c = await chain(id);
  if (c.status !== "cancelled") throw new Error("chain status " + c.status);
  if (Date.now() - t0 > 30000) throw new Error("cancel took too long");
});

test("rerun makes a new chain and opens it", async (page) => {
  const id = await submit("again", "echo once");
  await waitFor("the chain to finish", async () => (await chain(id)).status === "completed");
  await page.goto(`${base}/#/chains/${id}`);
  await page.click('button[data-action="rerun"]');
  await page.waitForFunction((old) => /^#\/chains\/[0-9a-f-]{36}$/.test(location.hash) && !location.hash.includes(old), id);
  await page.waitForSelector('.chain-head .badge[data-status="completed"]', { timeout: 20000 });
});

test("the workers page lists the local worker", async (page) => {
  await page.goto(base + "/#/workers");
  await page.waitForSelector('table.workers tbody tr[data-worker-id] .badge[data-status="alive"]');
  const cells = await page.$$eval("table.workers tbody tr[data-worker-id] td", (t) => t.map((x) => x.textContent));
  if (!cells[2].includes("default")) throw new Error("groups: " + cells[2]);
  if (!/ago$/.test(cells[3])) throw new Error("heartbeat: " + cells[3]);
  await page.screenshot({ path: path.join(SHOTS, "workers.png"), fullPage: true });
});

test("the repositories page shows each repository with its badge", async (page) => {
  await page.goto(base + "/#/repos");
  await page.waitForSelector(".repos > *");
  const empty = await page.$eval(".repos", (e) => e.textContent);
  if (!/No repository|no repositories API/.test(empty)) throw new Error("empty repositories page: " + empty);
  const r = await api("POST", "/repos", { url: "https://git.example/acme/widgets.git", provider: "generic", default_branch: "main" });
  if (r.status !== 201) throw new Error("cannot register a repository: " + r.status + " " + JSON.stringify(r.body));
  await page.goto(base + "/#/chains");
  await page.goto(base + "/#/repos");
  const card = await page.waitForSelector(`section.repo[data-repo-id="${r.body.id}"]`);
  await page.waitForFunction((id) => {
    const img = document.querySelector(`section.repo[data-repo-id="${id}"] img`);
    return img && img.complete && img.naturalWidth > 0;
  }, r.body.id);
  /* The run form, or (the repository cannot be read here) a clear message instead. */
  await page.waitForSelector(`section.repo[data-repo-id="${r.body.id}"] .trigger form, section.repo[data-repo-id="${r.body.id}"] .trigger .notice`);
  const text = await card.textContent();
  if (!text.includes("acme/widgets")) throw new Error("repository card: " + text);
  await page.screenshot({ path: path.join(SHOTS, "repos.png"), fullPage: true });
});

test("keyboard: the navigation is reachable with Tab and works with Enter", async (page) => {
  await page.goto(base + "/#/chains");
  await page.waitForSelector("table.chains");
  let found = false;
  for (let i = 0; i < 8 && !found; i++) {
    await page.keyboard.press("Tab");
    found = await page.evaluate(() => document.activeElement && document.activeElement.getAttribute("data-nav") === "workers");
  }
  if (!found) throw new Error("Tab never reached the Workers link");
  await page.keyboard.press("Enter");
  await page.waitForSelector("table.workers");
});

test("a phone-sized screen shows the chains without horizontal page scroll", async (page) => {
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(base + "/#/chains");
  await page.waitForSelector("table.chains tbody tr[data-chain-id]");
  const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (over > 1) throw new Error("the page is " + over + "px wider than the screen");
  await page.screenshot({ path: path.join(SHOTS, "chains-phone.png"), fullPage: true });
});

test("the status badge and the OpenAPI document are served", async () => {
  const b = await fetch(base + "/api/v1/repos/00000000-0000-4000-8000-000000000000/badge.svg");
  const svg = await b.text();
  if (b.status !== 200 || !svg.includes("unknown")) throw new Error("badge: " + b.status);
  const o = await (await fetch(base + "/api/v1/openapi.json")).json();
  if (!o.openapi || !o.openapi.startsWith("3.")) throw new Error("openapi: " + o.openapi);
});

/* ------------------------------------------------------------ runner */

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vulcan-browser-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const log = fs.openSync(path.join(tmp, "server.log"), "w");
  const server = spawn(BIN, ["server", "--listen", `127.0.0.1:${port}`, "--data-dir", path.join(tmp, "data"),
    "--workers", "1", "--worker-sandbox", "none", "--log-format", "text"], { stdio: ["ignore", log, log] });
  let browser, context;
  let failed = 0;
  const t0 = Date.now();
  try {
    await waitFor("the server", async () => (await fetch(base + "/health/ready")).ok, 20000, 100);
    await waitFor("the local worker", async () => (await api("GET", "/workers")).body.workers.some((w) => w.status === "alive"), 20000, 200);
    const profile = path.join(tmp, "profile");
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"],
      viewport: { width: 1280, height: 860 },
    });
    browser = context;
    for (const t of tests) {
      const page = await context.newPage();
      const errors = [];
      page.on("pageerror", (e) => errors.push(e.message));
      page.on("console", (m) => { if (m.type() === "error" && !/Failed to load resource|EventSource/.test(m.text())) errors.push(m.text()); });
      page.setDefaultTimeout(15000);
      const s = Date.now();
      try {
        await t.fn(page);
        if (errors.length) throw new Error("errors in the page: " + errors.join("; "));
        console.log(`ok   ${t.name} (${Date.now() - s} ms)`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${t.name}: ${e.message}`);
        await page.screenshot({ path: path.join(SHOTS, "failure-" + tests.indexOf(t) + ".png") }).catch(() => {});
      }
      await page.close();
    }
  } catch (e) {
    failed++;
    console.log("FAIL setup: " + e.message);
  } finally {
    if (browser) await browser.close().catch(() => {});
    server.kill("SIGTERM");
    await new Promise((r) => { const t = setTimeout(() => { server.kill("SIGKILL"); r(); }, 15000); server.on("exit", () => { clearTimeout(t); r(); }); });
    if (failed) console.log("server log:\n" + fs.readFileSync(path.join(tmp, "server.log"), "utf8").split("\n").slice(-40).join("\n"));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`${tests.length - failed}/${tests.length} passed in ${((Date.now() - t0) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
  process.exit(failed ? 1 : 0);
}
main();
