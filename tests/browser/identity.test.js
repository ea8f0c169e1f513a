#!/usr/bin/env node
/*
 * Browser tests of the console's identity pages (issue 13, docs/console.md): a real
 * `vulcan server --require-auth --workers 1` on a free loopback port and Debian's
 * headless Chromium driven by playwright-core. Run by CTest (tests/browser/CMakeLists.txt,
 * browser_identity):
 *
 *   VULCAN_BIN=build/vulcan SCREENSHOT_DIR=build/tests/browser/screenshots node identity.test.js
 *
 * 1. Before logging in, and on a server without --require-auth, there are no Tokens or
 *    Organisation links; after the admin logs in there are.
 * 2. #/tokens: a token made in the page is shown once (with Copy and the warning), works
 *    against GET /api/v1/chains (200), is gone from the page after a reload (only its
 *    fingerprint is listed), is revoked from the page (it asks first) and then gets 401.
 * 3. #/org/default/members: a team and a child team are made, a user is added to and
 *    removed from a team, a grant is given and removed, a registration token is made
 *    (shown once, listed by fingerprint with its groups and uses, refused by nothing)
 *    and revoked; every change is checked through the API with the admin token.
 * 4. A reader (made through the API) logs in: the teams are listed, but no form to change
 *    them, no grants and no registration tokens are shown, and the server refuses the
 *    grants list to their session anyway (403). A running chain's page offers them
 *    neither Cancel nor Rerun (GET /chains/{id} says `actions`), and their cancel gets 403.
 * 5. Both pages on a phone-sized screen scroll no wider than the screen.
 */
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawn, execFileSync } = require("child_process");

const { CHROMIUM, BIN, SHOTS, chromium, freePort, sleep, waitFor } = require("./lib");
const PASSWORD = "correct horse battery";
const READER_PASSWORD = "reader password 1";


let base, open, adminToken;
async function api(method, p, body, tok = adminToken, at = base) {
  const headers = tok ? { Authorization: "Bearer " + tok } : {};
  if (body) headers["Content-Type"] = "application/json";
  const r = await fetch(at + "/api/v1" + p, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const t = await r.text();
  let b = null;
  try { b = t ? JSON.parse(t) : null; } catch (e) { b = t; }
  return { status: r.status, body: b };
}
function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}
async function navLinks(page) {
  return page.evaluate(() => Array.from(document.querySelectorAll("[data-auth]"))
    .filter((li) => !li.hidden).map((li) => li.querySelector("a").getAttribute("data-nav")));
}
async function login(page, user, password) {
  /* A full load, never a same-document hash change: after one, the form found could be
   * the previous page's, replaced (empty) by the router just before the click. */
  await page.goto("about:blank");
  await page.goto(base + "/#/login");
  await page.waitForSelector("form.login");
  await page.fill("#login-user", user);
  await page.fill("#login-pass", password);
  await page.click("form.login button[type=submit]");
  await page.waitForSelector("table.chains");
  await page.waitForFunction((u) => document.querySelector("#user .who") &&
    document.querySelector("#user .who").textContent === u, user);
}
async function logout(page) {
  await page.goto(base + "/#/chains");
  await page.waitForSelector("#user button");
  await page.click("#user button");
  await page.waitForSelector("form.login");
}
async function noWiderThanScreen(page, what) {
  const [sw, iw] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  expect(sw <= iw, `${what} scrolls sideways on a phone: ${sw} > ${iw}`);
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const ctx = {};

test("no identity links without a login or without --require-auth; both after the admin logs in", async (page) => {
  await page.goto(open + "/#/chains");
  await page.waitForSelector("table.chains");
  await sleep(300);
  expect((await navLinks(page)).length === 0, "links on a server without --require-auth: " + (await navLinks(page)));
  await page.goto(open + "/#/tokens");
  await page.waitForSelector("main .notice");
  expect(/without --require-auth/.test(await page.textContent("main .notice")), "the open server's tokens page");
  await page.goto(base + "/");
  await page.waitForSelector("form.login");
  expect((await navLinks(page)).length === 0, "links before logging in: " + (await navLinks(page)));
  await login(page, "admin", PASSWORD);
  const links = await navLinks(page);
  expect(links.join() === "tokens,org", "links after logging in: " + links);
  expect((await page.getAttribute("#nav-org", "href")) === "#/org/default/members", "the org link");
});

test("#/tokens makes a token shown once, which works until it is revoked in the page", async (page) => {
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  page.on("dialog", (d) => d.accept());
  await page.goto(base + "/#/tokens");
  await page.waitForSelector("table.tokens tr[data-token-id]");
  /* Keyboard only: the name field, the scopes, then Enter submits. */
  await page.focus("#tok-name");
  await page.keyboard.type("laptop");
  await page.check("input[name=scope][value=write]");
  const expiry = await page.$$eval("#tok-exp option", (os) => os.map((o) => o.textContent));
  expect(expiry.includes("never") && expiry.includes("1 year"),
    "the expiry choices of a session (it may make tokens of any lifetime): " + expiry);
  await page.selectOption("#tok-org", "default");
  await page.press("#tok-name", "Enter");
  const once = await page.waitForSelector("[data-once] input.secret");
  const value = await once.inputValue();
  expect(/^vk_pat_[0-9A-Za-z]{49}$/.test(value), "the new token: " + value);
  const warn = await page.textContent("[data-once]");
  expect(/will not be shown again/.test(warn), "no warning: " + warn);
  await page.click("[data-once] [data-action=copy]");
  await page.waitForFunction(() => /Copied/.test(document.querySelector("[data-once]").textContent));
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  expect(copied === value, "the clipboard holds " + copied);
  await page.screenshot({ path: path.join(SHOTS, "identity-token-once.png"), fullPage: true });

  const r = await fetch(base + "/api/v1/chains", { headers: { Authorization: "Bearer " + value } });
  expect(r.status === 200, "the new token got " + r.status);
  const mine = (await api("GET", "/tokens", undefined, value)).body.tokens.find((t) => t.name === "laptop");
  expect(mine && mine.scopes === "read,write" && mine.org === "default" && mine.expires_at, "listed as " + JSON.stringify(mine));

  /* Shown once: after a reload only the fingerprint is on the page. */
  await page.goto(base + "/#/chains");
  await page.waitForSelector("table.chains");
  await page.goto(base + "/#/tokens");
  const row = `tr[data-fingerprint="${mine.fingerprint}"]`;
  await page.waitForSelector(row);
  const html = await page.content();
  expect(!html.includes(value) && !html.includes(value.slice(7, 30)), "the token is on the page again");
  expect((await page.textContent(row + " [data-state]")) === "active", "state before revoking");
  await page.click(row + " [data-action=revoke]");
  await page.waitForSelector(row + ' [data-state="revoked"]');
  expect(!(await page.$(row + " [data-action=revoke]")), "a revoked token still has a Revoke button");
  await page.screenshot({ path: path.join(SHOTS, "identity-tokens.png"), fullPage: true });
  const r2 = await fetch(base + "/api/v1/chains", { headers: { Authorization: "Bearer " + value } });
  expect(r2.status === 401, "the revoked token got " + r2.status);
});

test("#/org/default/members: teams, members, grants and registration tokens", async (page) => {
  page.on("dialog", (d) => d.accept());
  const made = await api("POST", "/users", { login: "rita", password: READER_PASSWORD });
  expect(made.status === 201, "user rita: " + made.status + " " + JSON.stringify(made.body));
  const made2 = await api("POST", "/users", { login: "sam", password: READER_PASSWORD });
  expect(made2.status === 201, "user sam: " + made2.status);
  await page.goto(base + "/#/org/default/members");
  await page.waitForSelector("#team-create");
  expect(await page.$("#grants") && await page.$("#registration-tokens"), "the admin sections are missing");

  /* Teams: a team, then a child of it. */
  await page.fill("#team-name", "devs");
  await page.click("#team-create button[type=submit]");
  await page.waitForSelector('tr[data-team="devs"]');
  await page.waitForSelector('#team-parent option[value="devs"]', { state: "attached" });
  await page.fill("#team-name", "front");
  await page.selectOption("#team-parent", "devs");
  await page.click("#team-create button[type=submit]");
  await page.waitForSelector('tr[data-team="front"]');
  expect((await page.textContent('tr[data-team="front"] td:nth-child(2)')).trim() === "devs", "front's parent");

  /* Members: add two, remove one. */
  for (const who of ["rita", "sam"]) {
    await page.fill('form[data-add-member="front"] input', who);
    await page.click('form[data-add-member="front"] button');
    await page.waitForSelector(`tr[data-team="front"] [data-member="${who}"]`);
  }
  await page.click('tr[data-team="front"] [data-member="sam"] [data-action=remove-member]');
  await page.waitForSelector('tr[data-team="front"] [data-member="sam"]', { state: "detached" });
  const teams = (await api("GET", "/orgs/default/teams")).body.teams;
  const front = teams.find((t) => t.name === "front");
  expect(front && front.parent === "devs" && front.members.join() === "rita", "teams: " + JSON.stringify(teams));

  /* Grants: reader to rita; developer to the team devs, then removed. */
  await page.waitForSelector("table.grants tr[data-grant-id]");
  await page.selectOption("#grant-kind", "user");
  await page.fill("#grant-user", "rita");
  await page.selectOption("#grant-role", "reader");
  await page.click("#grant-create button[type=submit]");
  await waitFor("rita's grant in the page", async () => (await page.$$("table.grants tr[data-grant-id]")).length === 2);
  await page.selectOption("#grant-kind", "team");
  await page.selectOption("#grant-team", "devs");
  await page.selectOption("#grant-role", "developer");
  await page.click("#grant-create button[type=submit]");
  await waitFor("the team's grant in the page", async () => (await page.$$("table.grants tr[data-grant-id]")).length === 3);
  let grants = (await api("GET", "/orgs/default/grants")).body.grants;
  expect(grants.some((g) => g.user === "rita" && g.role === "reader" && !g.repository), "rita's grant: " + JSON.stringify(grants));
  const teamGrant = grants.find((g) => g.team === "devs" && g.role === "developer");
  expect(teamGrant, "the team's grant: " + JSON.stringify(grants));
  await page.screenshot({ path: path.join(SHOTS, "identity-org.png"), fullPage: true });
  await page.click(`tr[data-grant-id="${teamGrant.id}"] [data-action=remove-grant]`);
  await page.waitForSelector(`tr[data-grant-id="${teamGrant.id}"]`, { state: "detached" });
  grants = (await api("GET", "/orgs/default/grants")).body.grants;
  expect(!grants.some((g) => g.id === teamGrant.id), "the removed grant is still there");

  /* A registration token: shown once, listed without its value, revoked. */
  await page.fill("#reg-name", "farm");
  await page.fill("#reg-groups", "default, gpu");
  await page.fill("#reg-uses", "2");
  await page.selectOption("#reg-exp", String(7 * 86400));
  await page.click("#reg-create button[type=submit]");
  const once = await page.waitForSelector("#registration-tokens [data-once] input.secret");
  const value = await once.inputValue();
  expect(/^vk_reg_[0-9A-Za-z]{49}$/.test(value), "the registration token: " + value);
  const regs = (await api("GET", "/orgs/default/registration-tokens")).body.registration_tokens;
  const reg = regs.find((t) => t.name === "farm");
  expect(reg && reg.groups.join() === "default,gpu" && reg.uses_left === 2 && reg.expires_at, "listed as " + JSON.stringify(reg));
  const row = `tr[data-registration-id="${reg.id}"]`;
  await page.waitForSelector(row);
  expect(/default, gpu/.test(await page.textContent(row)) && /vk_reg_\./.test(await page.textContent(row)), "the row: " + await page.textContent(row));
  await page.screenshot({ path: path.join(SHOTS, "identity-registration.png"), fullPage: true });
  await page.goto(base + "/#/chains");
  await page.goto(base + "/#/org/default/members");
  await page.waitForSelector(row);
  expect(!(await page.content()).includes(value), "the registration token is on the page again");
  await page.click(row + " [data-action=revoke-registration]");
  await page.waitForSelector(row + ' [data-state="revoked"]');
  const after = (await api("GET", "/orgs/default/registration-tokens")).body.registration_tokens.find((t) => t.id === reg.id);
  expect(after.revoked_at, "not revoked: " + JSON.stringify(after));

  /* A phone-sized screen. */
  await page.setViewportSize({ width: 390, height: 800 });
  await page.reload();
  await page.waitForSelector(row);
  await noWiderThanScreen(page, "the org page");
  await page.screenshot({ path: path.join(SHOTS, "identity-org-phone.png"), fullPage: true });
  await page.goto(base + "/#/tokens");
  await page.waitForSelector("table.tokens tr[data-token-id]");
  await noWiderThanScreen(page, "the tokens page");
  await page.screenshot({ path: path.join(SHOTS, "identity-tokens-phone.png"), fullPage: true });
  await logout(page);
});

test("a reader sees the teams but no admin section, and the server refuses them anyway", async (page) => {
  await login(page, "rita", READER_PASSWORD);
  expect((await navLinks(page)).join() === "tokens,org", "a reader's links: " + (await navLinks(page)));
  await page.goto(base + "/#/settings"); /* the first org's page */
  await page.waitForFunction(() => location.hash === "#/org/default/members");
  await page.waitForSelector('tr[data-team="front"] [data-member="rita"]');
  expect((await page.getAttribute("[data-role]", "data-role")) === "reader", "the role shown");
  for (const sel of ["#team-create", "#grants", "#registration-tokens", "form[data-add-member]", "[data-action=remove-member]"])
    expect(!(await page.$(sel)), sel + " is shown to a reader");
  await page.screenshot({ path: path.join(SHOTS, "identity-reader.png"), fullPage: true });
  const st = await page.evaluate(async () => (await fetch("/api/v1/orgs/default/grants")).status);
  expect(st === 403, "the reader's session listed the grants: " + st);
  /* A running chain: the admin's page offers Cancel and Rerun, the reader's neither. */
  const wf = ['version "0.1"', 'name "long"', 'triggers "manual"', "chain {", '    machine "default"',
    '    fragment { name "long"; run "sleep 20"; }', "}", ""].join("\n");
  const chain = (await api("POST", "/parse", { content: wf })).body.chain_id;
  expect(chain, "no chain submitted");
  const asAdmin = (await api("GET", "/chains/" + chain)).body.actions;
  expect(asAdmin && asAdmin.cancel && asAdmin.rerun, "the admin's actions: " + JSON.stringify(asAdmin));
  await page.goto(base + "/#/chains/" + chain);
  await page.waitForSelector(".chain-head h1");
  expect(!(await page.$("[data-action=cancel]")) && !(await page.$("[data-action=rerun]")),
    "Cancel or Rerun is offered to a reader");
  const cancel = await page.evaluate(async (id) => {
    const csrf = (await (await fetch("/api/v1/session")).json()).csrf_token;
    const r = await fetch("/api/v1/chains/" + id + "/cancel",
      { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf } });
    return r.status + " " + (await r.text());
  }, chain);
  expect(/^403 .*needs the developer role/.test(cancel), "the reader's cancel: " + cancel);
  await api("POST", "/chains/" + chain + "/cancel");
  /* Their own tokens page works, without the admin scope to choose. */
  await page.goto(base + "/#/tokens");
  await page.waitForSelector("table.tokens");
  await logout(page);
});

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vk-identity-"));
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
    adminToken = fs.readFileSync(path.join(data, "initial-admin-token"), "utf8").trim();
    execFileSync(BIN, ["admin", "set-password", "--database", `sqlite:${data}/vulcan.db`, "admin"], { input: PASSWORD + "\n" });
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
      page.setDefaultTimeout(10000);
      const s = Date.now();
      try {
        await t.fn(page);
        if (errors.length) throw new Error("errors in the page: " + errors.join("; "));
        console.log(`ok   ${t.name} (${Date.now() - s} ms)`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${t.name}: ${e.message}`);
        await page.screenshot({ path: path.join(SHOTS, "identity-failure-" + tests.indexOf(t) + ".png"), fullPage: true }).catch(() => {});
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
