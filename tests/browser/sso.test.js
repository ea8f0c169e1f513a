#!/usr/bin/env node
/*
 * Single sign-on with OpenID Connect, end to end (issue 13): a real OpenID provider
 * (npm oidc-provider, with its own login and consent pages) on one loopback port, a real
 * `vulcan server --require-auth --oidc-issuer ...` on another, Debian's headless Chromium
 * driven by playwright-core. Run by CTest (tests/browser/CMakeLists.txt, browser_sso):
 *
 *   VULCAN_BIN=build/vulcan SCREENSHOT_DIR=build/tests/browser/screenshots node sso.test.js
 *
 * SSO_ALG=ES256 makes the provider sign ID tokens with its P-256 key instead of RS256.
 *
 * 1. GET /api/v1/sso/oidc/login redirects to the provider's authorization endpoint with
 *    response_type=code, the client id, the callback as redirect_uri, the scopes, state,
 *    nonce and a PKCE S256 challenge; a `next` that is not a console page is refused.
 * 2. The console's login page shows "Log in with SSO"; clicking it leads to the provider's
 *    page, where the user logs in and consents; the browser lands in the console logged in
 *    as the provider's user, who was created with source oidc:<issuer> and is a member of
 *    team "devs" (the groups claim says devs and unknown: only existing teams count).
 * 3. The callback URL replayed (its state is used; in the browser its state cookie is gone
 *    too), the callback of a login another client started (login CSRF: this browser has
 *    not its state cookie) and a made-up state are refused (401); a client that starts 17
 *    logins has pushed out its own first one, and a made-up code is refused by the provider.
 * 4. An admin adds the user to team "ops"; the next SSO login (the provider remembers the
 *    user) takes it out again: membership is exactly the groups claim.
 */
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawn } = require("child_process");

const { CHROMIUM, BIN, SHOTS, chromium, freePort, sleep, waitFor } = require("./lib");
const CLIENT_ID = "vulcan-console";
const CLIENT_SECRET = "a-client-secret-of-the-test-0123456789";
/* The ID token's algorithm: RS256 (CTest browser_sso) or ES256 (browser_sso_es256). */
const ALG = process.env.SSO_ALG || "RS256";


let base, issuer, token;
async function api(method, p, body) {
  const headers = { Authorization: "Bearer " + token };
  if (body) headers["Content-Type"] = "application/json";
  const r = await fetch(base + "/api/v1" + p, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const t = await r.text();
  return { status: r.status, body: t ? JSON.parse(t) : null };
}
async function teamMembers(name) {
  const r = await api("GET", "/orgs/default/teams");
  if (r.status !== 200) throw new Error("GET teams: " + r.status + " " + JSON.stringify(r.body));
  const t = r.body.teams.find((x) => x.name === name);
  return t ? t.members : null;
}

/* The provider: one static client, any login accepted by oidc-provider's development
 * interactions; every account is alice with groups devs and not-a-team. */
async function startProvider(port, redirectUri) {
  const { default: Provider } = await import("oidc-provider");
  const { generateKeyPairSync } = require("crypto");
  const jwk = (type, opts, alg) => ({ ...generateKeyPairSync(type, opts).privateKey.export({ format: "jwk" }),
    kid: alg.toLowerCase() + "-key", alg, use: "sig" });
  const provider = new Provider(issuer, {
    /* Only the key of ALG is published, so logging in proves that ALG was verified. */
    jwks: { keys: [ALG === "ES256" ? jwk("ec", { namedCurve: "P-256" }, "ES256") : jwk("rsa", { modulusLength: 2048 }, "RS256")] },
    enabledJWA: { idTokenSigningAlgValues: [ALG] },
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: ALG,
    }],
    scopes: ["openid", "profile", "email", "groups"],
    claims: { openid: ["sub"], profile: ["preferred_username", "name"], email: ["email"], groups: ["groups"] },
    conformIdTokenClaims: false, /* the scopes' claims in the ID token itself */
    findAccount: async (ctx, id) => ({
      accountId: id,
      claims: async () => ({ sub: "subject-" + id, preferred_username: "alice", name: "Alice Liddell",
        email: "alice@example.com", groups: ["devs", "not-a-team"] }),
    }),
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ["test-cookie-key-0123456789abcdef"] },
  });
  provider.on("server_error", (ctx, e) => console.log("provider error: " + e.message));
  return new Promise((resolve) => {
    const srv = provider.listen(port, "127.0.0.1", () => resolve(srv));
  });
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const ctx = {};

test("the login route redirects to the provider with code, PKCE S256, state and nonce", async () => {
  const r = await fetch(base + "/api/v1/sso/oidc/login?next=" + encodeURIComponent("#/workers"), { redirect: "manual" });
  if (r.status !== 302) throw new Error("status " + r.status);
  const loc = new URL(r.headers.get("location"));
  if (!loc.href.startsWith(issuer + "/")) throw new Error("not to the provider: " + loc.href);
  const q = loc.searchParams;
  const want = { response_type: "code", client_id: CLIENT_ID, redirect_uri: base + "/api/v1/sso/oidc/callback",
    scope: "openid profile email groups", code_challenge_method: "S256" };
  for (const [k, v] of Object.entries(want)) if (q.get(k) !== v) throw new Error(`${k} is '${q.get(k)}', not '${v}'`);
  for (const k of ["state", "nonce", "code_challenge"]) if (!/^[A-Za-z0-9_-]{40,}$/.test(q.get(k) || "")) throw new Error(k + ": " + q.get(k));
  for (const bad of ["https://evil.example.com/", "//evil.example.com", "#/x\"><script>"]) {
    const b = await fetch(base + "/api/v1/sso/oidc/login?next=" + encodeURIComponent(bad), { redirect: "manual" });
    if (b.status !== 400) throw new Error(`next=${bad}: ${b.status}`);
  }
  const disc = await (await fetch(issuer + "/.well-known/openid-configuration")).json();
  const keys = (await (await fetch(disc.jwks_uri)).json()).keys;
  if (keys.length !== 1 || keys[0].kty !== (ALG === "ES256" ? "EC" : "RSA")) throw new Error("provider keys: " + JSON.stringify(keys));
  const s = await (await fetch(base + "/api/v1/session")).json();
  if (JSON.stringify(s.sso) !== '["oidc"]') throw new Error("session.sso: " + JSON.stringify(s.sso));
});

test("Log in with SSO: the provider's own page, back in the console as alice, in team devs", async (page) => {
  page.on("request", (req) => { if (req.url().includes("/api/v1/sso/oidc/callback")) ctx.callback = req.url(); });
  await page.goto(base + "/");
  await page.waitForSelector("#login-sso");
  await page.screenshot({ path: path.join(SHOTS, "sso-login.png"), fullPage: true });
  await page.click("#login-sso");
  await page.waitForURL((u) => u.href.startsWith(issuer));
  await page.waitForSelector("input[name=login]");
  await page.screenshot({ path: path.join(SHOTS, "sso-provider.png"), fullPage: true });
  await page.fill("input[name=login]", "alice");
  await page.fill("input[name=password]", "any password");
  await page.click("button[type=submit]");
  /* The consent page ("Continue"), then back to the console. */
  await page.waitForURL((u) => u.href.startsWith(base) || /interaction/.test(u.href));
  if (!page.url().startsWith(base)) {
    await page.waitForSelector("button[type=submit]");
    await page.click("button[type=submit]");
  }
  await page.waitForSelector("table.chains", { timeout: 20000 });
  const who = await page.textContent("#user .who");
  if (who.trim() !== "alice") throw new Error("the user menu says " + who);
  await page.screenshot({ path: path.join(SHOTS, "sso-logged-in.png"), fullPage: true });
  const c = (await page.context().cookies(base)).find((k) => k.name === "vulcan_session");
  if (!c || !c.httpOnly) throw new Error("no session cookie: " + JSON.stringify(c));
  const devs = await teamMembers("devs");
  if (!devs || !devs.includes("alice")) throw new Error("team devs: " + JSON.stringify(devs));
  const ops = await teamMembers("ops");
  if (ops.includes("alice")) throw new Error("alice is in ops");
  /* Who the session is, asked with the session itself. */
  const alice = await page.evaluate(async () => (await fetch("/api/v1/user")).json());
  if (alice.login !== "alice" || alice.source !== "oidc:" + issuer || alice.email !== "alice@example.com")
    throw new Error("user: " + JSON.stringify(alice));
  ctx.aliceId = alice.id;
});

test("a replayed callback, another browser's login and a made-up state are refused", async (page) => {
  if (!ctx.callback) throw new Error("no callback seen");
  const r = await fetch(ctx.callback, { redirect: "manual" });
  const t = await r.text();
  if (r.status !== 401 || !/state/.test(t)) throw new Error(`replay: ${r.status} ${t}`);
  /* In the browser that logged in: the state cookie is gone, and the state is used. */
  const again = await page.goto(ctx.callback);
  if (again.status() !== 401) throw new Error("replay in the browser: " + again.status());
  /* A login started by someone else (their callback URL, with their state cookie not
   * here): login CSRF is refused. */
  const other = await fetch(base + "/api/v1/sso/oidc/login", { redirect: "manual" });
  const st = new URL(other.headers.get("location")).searchParams.get("state");
  if (!/vulcan_sso_state=/.test(other.headers.get("set-cookie") || "")) throw new Error("no state cookie");
  const csrf = await page.goto(base + "/api/v1/sso/oidc/callback?code=abc&state=" + st);
  if (csrf.status() !== 401) throw new Error("login CSRF: " + csrf.status());
  /* The browser is told why on a page of its own, with the way back. */
  const why = await page.textContent("#sso-error");
  if (!/did not start/.test(why)) throw new Error("the page says: " + why);
  await page.click("text=Back to the login page");
  await page.waitForSelector("#login-sso");
  const w = await fetch(base + "/api/v1/sso/oidc/callback?code=abc&state=" + "x".repeat(43), { redirect: "manual" });
  if (w.status !== 401) throw new Error("made-up state: " + w.status);
  const e = await fetch(base + "/api/v1/sso/oidc/callback?code=abc", { redirect: "manual" });
  if (e.status !== 401) throw new Error("no state: " + e.status);
  /* One client keeps at most 16 logins pending: its 17th pushes out its own first. */
  const started = [];
  for (let i = 0; i < 17; i++) {
    const r = await fetch(base + "/api/v1/sso/oidc/login", { redirect: "manual" });
    started.push(new URL(r.headers.get("location")).searchParams.get("state"));
  }
  const cb = async (st) => {
    const r = await fetch(base + "/api/v1/sso/oidc/callback?code=made-up&state=" + st,
      { redirect: "manual", headers: { Cookie: "vulcan_sso_state=" + st } });
    return { status: r.status, text: await r.text() };
  };
  const first = await cb(started[0]);
  if (first.status !== 401 || !/unknown, used or expired state/.test(first.text)) throw new Error("the first: " + first.text);
  const last = await cb(started[16]);
  if (last.status !== 401 || !/refused the code/.test(last.text)) throw new Error("the last: " + last.text);
});

test("the next SSO login sets the teams to exactly the groups claim", async (page) => {
  const put = await api("PUT", "/orgs/default/teams/ops/members/alice");
  if (put.status >= 300) throw new Error("add to ops: " + put.status + " " + JSON.stringify(put.body));
  if (!(await teamMembers("ops")).includes("alice")) throw new Error("not added to ops");
  await page.context().clearCookies({ name: "vulcan_session" });
  await page.goto(base + "/#/login");
  await page.waitForSelector("#login-sso");
  await page.click("#login-sso");
  /* The provider remembers alice; its consent is given: straight back, or one more click. */
  await waitFor("the console or the provider's page", async () =>
    (await page.$("table.chains")) || (await page.$("button[type=submit]")), 20000, 200);
  if (!(await page.$("table.chains"))) {
    if (await page.$("input[name=login]")) {
      await page.fill("input[name=login]", "alice");
      await page.fill("input[name=password]", "any password");
    }
    await page.click("button[type=submit]");
    await page.waitForSelector("table.chains", { timeout: 20000 });
  }
  const ops = await teamMembers("ops");
  if (ops.includes("alice")) throw new Error("alice is still in ops: " + JSON.stringify(ops));
  if (!(await teamMembers("devs")).includes("alice")) throw new Error("alice left devs");
  const again = await page.evaluate(async () => (await fetch("/api/v1/user")).json());
  if (again.id !== ctx.aliceId) throw new Error("another user: " + JSON.stringify(again));
});

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), "vulcan-sso-"));
  const port = await freePort(), idpPort = await freePort();
  base = `http://127.0.0.1:${port}`;
  issuer = `http://127.0.0.1:${idpPort}`;
  const data = path.join(tmp, "data");
  fs.writeFileSync(path.join(tmp, "secret"), CLIENT_SECRET + "\n", { mode: 0o600 });
  let idp, server, browser;
  let failed = 0;
  const t0 = Date.now();
  try {
    idp = await startProvider(idpPort, base + "/api/v1/sso/oidc/callback");
    const log = fs.openSync(path.join(tmp, "server.log"), "w");
    server = spawn(BIN, ["server", "--require-auth", "--listen", `127.0.0.1:${port}`, "--data-dir", data,
      "--log-format", "text", "--oidc-issuer", issuer, "--oidc-client-id", CLIENT_ID,
      "--oidc-client-secret-file", path.join(tmp, "secret")], { stdio: ["ignore", log, log] });
    await waitFor("the server", async () => (await fetch(base + "/health/ready")).ok, 20000, 100);
    token = fs.readFileSync(path.join(data, "initial-admin-token"), "utf8").trim();
    for (const name of ["devs", "ops"]) {
      const r = await api("POST", "/orgs/default/teams", { name });
      if (r.status !== 201 && r.status !== 200) throw new Error("team " + name + ": " + r.status + " " + JSON.stringify(r.body));
    }
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
        await page.screenshot({ path: path.join(SHOTS, "sso-failure-" + tests.indexOf(t) + ".png") }).catch(() => {});
      }
      await page.close();
    }
  } catch (e) {
    failed++;
    console.log("FAIL setup: " + e.message);
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (server) {
      server.kill("SIGTERM");
      await new Promise((r) => { const t = setTimeout(() => { server.kill("SIGKILL"); r(); }, 15000); server.on("exit", () => { clearTimeout(t); r(); }); });
    }
    if (idp) idp.close();
    const logPath = path.join(tmp, "server.log");
    const text = fs.existsSync(logPath) ? fs.readFileSync(logPath, "utf8") : "";
    if (/vk_(ses|pat|reg|wrk|job)_[0-9A-Za-z]{20}/.test(text)) { failed++; console.log("FAIL a token is in the server log"); }
    if (text.includes(CLIENT_SECRET)) { failed++; console.log("FAIL the client secret is in the server log"); }
    if (failed) console.log("server log:\n" + text.split("\n").slice(-40).join("\n"));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`ID tokens signed with ${ALG}`);
  console.log(`${tests.length - failed}/${tests.length} passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  process.exit(failed ? 1 : 0);
}
main();
