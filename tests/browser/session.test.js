#!/usr/bin/env node
/*
 * Browser tests of console sessions (issue 13): a real `vulcan server --require-auth
 * --workers 1` on a free loopback port, Debian's headless Chromium driven by
 * playwright-core, and a second loopback origin (another port, the same site) serving an
 * attacker's page. Run by CTest (tests/browser/CMakeLists.txt, browser_session):
 *
 *   VULCAN_BIN=build/vulcan SCREENSHOT_DIR=build/tests/browser/screenshots node session.test.js
 *
 * 1. The console opens at the login form; a wrong password is refused, the right one
 *    lands on the chains and the user menu names the user.
 * 2. With that session's cookie in the browser, the attacker's page posts a workflow to
 *    /api/v1/parse as a text/plain form (the cross-origin attack), posts a form to
 *    /api/v1/chains/ID/cancel, and fires a no-cors fetch to rerun it: no chain is made,
 *    none is cancelled or rerun. Port-different loopback origins are the same *site*, so
 *    SameSite=Lax does send the cookie: what refuses them is the Origin check, the CSRF
 *    token and the 415 for non-JSON bodies.
 * 3. The console's own cancel button works (it sends the CSRF token).
 * 4. Logging out ends the session: the old cookie is refused (401).
 * 5. The same attacker's page against a server WITHOUT --require-auth (the default, on
 *    loopback: the developer machine): still no chain, no cancel, no rerun, which
 *    only the Origin check and the 415 stop.
 */
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const http = require("http");
const { spawn, execFileSync } = require("child_process");

const { CHROMIUM, BIN, SHOTS, chromium, freePort, sleep, waitFor } = require("./lib");
const PASSWORD = "correct horse battery";


let base, token;
async function api(method, p, body, at = base) {
  const headers = at === base ? { Authorization: "Bearer " + token } : {};
  if (body) headers["Content-Type"] = "application/json";
  const r = await fetch(at + "/api/v1" + p, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const t = await r.text();
  return { status: r.status, body: t ? JSON.parse(t) : null };
}
function workflow(name, script) {
  return ['version "0.1"', `name "${name}"`, 'triggers "manual"', "chain {", '    machine "default"',
    `    fragment { name "${name}"; run "${script}"; }`, "}", ""].join("\n");
}
async function chainCount(at = base) {
  return (await api("GET", "/chains?limit=200", undefined, at)).body.chains.length;
}

/* The attacker's page: three cross-origin attempts at the console's server. */
function evilPage(target, victim) {
  const wf = JSON.stringify(workflow("pwned", "id")).replace(/"/g, "&quot;");
  return `<!doctype html><html><body>
<form id="f1" method="POST" action="${target}/api/v1/parse" enctype="text/plain" target="sink1">
<input name='{"content":${wf},"x":"' value='"}'></form>
<form id="f2" method="POST" action="${target}/api/v1/chains/${victim}/cancel" target="sink2"></form>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe>
<script>
document.getElementById("f1").submit();
document.getElementById("f2").submit();
fetch("${target}/api/v1/chains/${victim}/rerun", { method: "POST", mode: "no-cors", credentials: "include" })
  .finally(function () { document.title = "done"; });
</script></body></html>`;
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const ctx = {};

test("the console asks to log in, refuses a wrong password and logs in with the right one", async (page) => {
  await page.goto(base + "/");
  await page.waitForSelector("form.login");
  if (!page.url().includes("#/login")) throw new Error("not at the login form: " + page.url());
  await page.screenshot({ path: path.join(SHOTS, "login.png"), fullPage: true });
  await page.fill("#login-user", "admin");
  await page.fill("#login-pass", "wrong password!");
  await page.click("form.login button[type=submit]");
  await page.waitForSelector("form.login .notice.bad");
  const msg = await page.textContent("form.login .notice.bad");
  if (!/wrong login or password/.test(msg)) throw new Error("unexpected message: " + msg);
  await page.fill("#login-pass", PASSWORD);
  await page.click("form.login button[type=submit]");
  await page.waitForSelector("table.chains");
  const who = await page.textContent("#user .who");
  if (who.trim() !== "admin") throw new Error("the user menu says " + who);
  const cookies = await page.context().cookies(base);
  const c = cookies.find((k) => k.name === "vulcan_session");
  if (!c || !c.httpOnly || c.sameSite !== "Lax") throw new Error("session cookie: " + JSON.stringify(c));
  if (await page.evaluate(() => document.cookie.includes("vulcan_session"))) throw new Error("the page script can read the cookie");
  ctx.cookie = c.value;
});

/* Serve the attacker's page against `target` on another loopback port, open it and
 * wait for its requests to land. */
async function attack(page, target, victim, shot) {
  const evil = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end(evilPage(target, victim));
  });
  await new Promise((r) => evil.listen(0, "127.0.0.1", r));
  const evilUrl = `http://127.0.0.1:${evil.address().port}/`;
  try {
    await page.goto(evilUrl);
    await page.waitForFunction(() => document.title === "done", null, { timeout: 10000 });
    await sleep(1500); /* let the two form posts land */
    await page.screenshot({ path: path.join(SHOTS, shot), fullPage: true });
  } finally {
    evil.close();
  }
}

test("a page on another loopback origin cannot submit, cancel or rerun with the session", async (page) => {
  const victim = (await api("POST", "/parse", { content: workflow("victim", "sleep 30") })).body.chain_id;
  await waitFor("the victim chain to run", async () => (await api("GET", "/chains/" + victim)).body.status === "running");
  const before = await chainCount();
  await attack(page, base, victim, "cross-origin.png");
  const after = await chainCount();
  if (after !== before) throw new Error(`a chain was made: ${before} -> ${after}`);
  const st = (await api("GET", "/chains/" + victim)).body.status;
  if (st !== "running") throw new Error("the victim chain is " + st);
  ctx.victim = victim;
});

test("the console's own cancel button works (it sends the CSRF token)", async (page) => {
  page.on("dialog", (d) => d.accept());
  await page.goto(`${base}/#/chains/${ctx.victim}`);
  const btn = await page.waitForSelector("[data-action=cancel]");
  await btn.click();
  await waitFor("the chain to be cancelled", async () => (await api("GET", "/chains/" + ctx.victim)).body.status === "cancelled", 15000);
});

test("logging out ends the session: its cookie is refused afterwards", async (page) => {
  await page.goto(base + "/#/chains");
  await page.waitForSelector("#user button");
  await page.click("#user button");
  await page.waitForSelector("form.login");
  const r = await fetch(base + "/api/v1/chains", { headers: { Cookie: "vulcan_session=" + ctx.cookie } });
  if (r.status !== 401) throw new Error("the old cookie got " + r.status);
});

let open; /* a server without --require-auth */
test("without --require-auth the same page can neither submit nor cancel", async (page) => {
  const victim = (await api("POST", "/parse", { content: workflow("victim", "sleep 30") }, open)).body.chain_id;
  const before = await chainCount(open);
  await attack(page, open, victim, "cross-origin-open.png");
  const after = await chainCount(open);
  if (after !== before) throw new Error(`a chain was made: ${before} -> ${after}`);
  const st = (await api("GET", "/chains/" + victim, undefined, open)).body.status;
  if (st === "cancelled") throw new Error("the victim chain was cancelled");
  /* The console of that server still works from its own origin. */
  await page.goto(open + "/#/chains");
  await page.waitForSelector(`tr[data-chain-id="${victim}"]`);
});

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vk-session-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const data = path.join(tmp, "data");
  const log = fs.openSync(path.join(tmp, "server.log"), "w");
  const server = spawn(BIN, ["server", "--require-auth", "--listen", `127.0.0.1:${port}`, "--data-dir", data,
    "--workers", "1", "--worker-sandbox", "none", "--log-format", "text"], { stdio: ["ignore", log, log] });
  const port2 = await freePort();
  open = `http://127.0.0.1:${port2}`;
  const log2 = fs.openSync(path.join(tmp, "open.log"), "w");
  const server2 = spawn(BIN, ["server", "--no-auth", "--listen", `127.0.0.1:${port2}`, "--data-dir", path.join(tmp, "open"),
    "--log-format", "text"], { stdio: ["ignore", log2, log2] });
  let browser;
  let failed = 0;
  const t0 = Date.now();
  try {
    await waitFor("the server", async () => (await fetch(base + "/health/ready")).ok, 20000, 100);
    await waitFor("the second server", async () => (await fetch(open + "/health/ready")).ok, 20000, 100);
    token = fs.readFileSync(path.join(data, "initial-admin-token"), "utf8").trim();
    execFileSync(BIN, ["admin", "set-password", "--database", `sqlite:${data}/vulcan.db`, "admin"], { input: PASSWORD + "\n" });
    await waitFor("the local worker", async () => (await api("GET", "/workers")).body.workers.some((w) => w.status === "alive"), 20000, 200);
    browser = await chromium.launchPersistentContext(path.join(tmp, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"],
      viewport: { width: 1280, height: 860 },
    });
    for (const t of tests) {
      const page = await browser.newPage();
      const errors = [];
      page.on("pageerror", (e) => errors.push(e.message));
      page.setDefaultTimeout(15000);
      const s = Date.now();
      try {
        await t.fn(page);
        if (errors.length) throw new Error("errors in the page: " + errors.join("; "));
        console.log(`ok   ${t.name} (${Date.now() - s} ms)`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${t.name}: ${e.message}`);
        await page.screenshot({ path: path.join(SHOTS, "session-failure-" + tests.indexOf(t) + ".png") }).catch(() => {});
      }
      await page.close();
    }
  } catch (e) {
    failed++;
    console.log("FAIL setup: " + e.message);
  } finally {
    if (browser) await browser.close().catch(() => {});
    server.kill("SIGTERM");
    server2.kill("SIGKILL");
    await new Promise((r) => { const t = setTimeout(() => { server.kill("SIGKILL"); r(); }, 15000); server.on("exit", () => { clearTimeout(t); r(); }); });
    const text = fs.readFileSync(path.join(tmp, "server.log"), "utf8");
    if (/vk_(ses|pat|reg|wrk|job)_[0-9A-Za-z]{20}/.test(text)) { failed++; console.log("FAIL a token is in the server log"); }
    if (failed) console.log("server log:\n" + text.split("\n").slice(-40).join("\n"));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`${tests.length - failed}/${tests.length} passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  process.exit(failed ? 1 : 0);
}
main();
