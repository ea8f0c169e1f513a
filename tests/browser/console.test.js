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
const { spawn, execFileSync } = require("child_process");

const { CHROMIUM, BIN, SHOTS, chromium, freePort, sleep, waitFor } = require("./lib");


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
  /* Fewer than a page of chains: no "Older chains" button (a hidden element stays hidden). */
  if (await page.isVisible('button:has-text("Older chains")')) throw new Error("'Older chains' is shown with no older chains");
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
  if (await page.isVisible('button:has-text("Follow the end")')) throw new Error("'Follow the end' is shown while following");
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
  if (!why.includes("has ever registered")) throw new Error("waiting reason: " + why);
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

/* A local git repository the server reads workflows from (file:// URL, branch main). */
let tmpDir;
function git(repo, ...args) {
  return execFileSync("git", ["-C", repo, "-c", "user.name=Vulcan Test", "-c", "user.email=test@vulcan.invalid",
    "-c", "commit.gpgsign=false", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}
function deployKdl(extraInput) {
  return `version "0.1"
name "deploy"
triggers {
    manual {
        input "environment" { choice "staging" "production"; default "staging"; description "where to deploy" }
        input "note" { }
${extraInput ? "        " + extraInput + "\n" : ""}    }
}
chain {
    machine "default"
    fragment {
        name "announce"
        run #"""
            echo "deploying to [$environment]"
            echo "note: [$note]"
            """#
    }
}
`;
}
function makeRepo() {
  const repo = path.join(tmpDir, "deploy-repo");
  fs.mkdirSync(path.join(repo, ".vulcan"), { recursive: true });
  git(repo, "init", "-q", "-b", "main");
  fs.writeFileSync(path.join(repo, ".vulcan", "deploy.kdl"), deployKdl(null));
  /* A second manual workflow with a required input and no default, and one that only runs on push. */
  fs.writeFileSync(path.join(repo, ".vulcan", "release.kdl"), `version "0.1"
name "release"
triggers {
    manual { input "version" { required #true; description "the version to tag" } }
}
chain {
    machine "default"
    fragment { name "tag"; run "echo tagging $version"; }
}
`);
  fs.writeFileSync(path.join(repo, ".vulcan", "ci.kdl"), `version "0.1"
name "ci"
triggers "push"
chain {
    machine "default"
    fragment { name "build"; run "echo build"; }
}
`);
  /* And one that does not load: the page says why instead of offering it. */
  fs.writeFileSync(path.join(repo, ".vulcan", "broken.kdl"),
    'version "0.1"\nname "broken"\ntriggers "manual"\nchain {\n    machine "default"\n    fragment { run "x"; retry 11; }\n}\n');
  git(repo, "add", "-A");
  git(repo, "commit", "-q", "-m", "workflows");
  return repo;
}

test("a manual run from the repository's form: inputs from the workflow, the chain followed to its log", async (page) => {
  const repo = makeRepo();
  const r = await api("POST", "/repos", { url: "file://" + repo, provider: "generic", default_branch: "main" });
  if (r.status !== 201) throw new Error("cannot register the repository: " + r.status + " " + JSON.stringify(r.body));
  const card = `section.repo[data-repo-id="${r.body.id}"]`;
  await page.goto(base + "/#/repos");
  await page.waitForSelector(`${card} form.trigger-form`, { timeout: 15000 });

  /* The workflow list offers the workflows that can be run by hand, deploy first (files in order). */
  const wfs = await page.$$eval(`${card} select[name="workflow"] option`, (o) => o.map((x) => [x.value, x.textContent]));
  const files = wfs.map((w) => w[0]);
  if (files.join(",") !== ".vulcan/deploy.kdl,.vulcan/release.kdl")
    throw new Error("workflows offered: " + JSON.stringify(wfs));
  if (!wfs[0][1].startsWith("deploy")) throw new Error("workflow label: " + wfs[0][1]);
  const broken = await page.$eval(`${card} .notice.bad[data-file=".vulcan/broken.kdl"]`, (e) => e.textContent);
  if (!/^\.vulcan\/broken\.kdl does not load:\n?.*retry/s.test(broken)) throw new Error("broken workflow: " + broken);

  /* The choice input is a list defaulting to staging; the free-text input is an empty text field. */
  const env = `${card} select[data-input="environment"]`;
  const opts = await page.$$eval(`${env} option`, (o) => o.map((x) => x.value));
  if (opts.join(",") !== "staging,production") throw new Error("environment choices: " + opts);
  if ((await page.$eval(env, (s) => s.value)) !== "staging") throw new Error("environment does not default to staging");
  const note = `${card} input[data-input="note"]`;
  if ((await page.$eval(note, (i) => i.value + "|" + i.required)) !== "|false") throw new Error("note field is not an empty optional text field");
  const labels = await page.$$eval(`${card} fieldset.inputs label`, (l) => l.map((x) => x.textContent));
  if (labels.join(",") !== "environment,note") throw new Error("input labels: " + labels);
  if (!(await page.$eval(`${card} fieldset.inputs`, (f) => f.textContent)).includes("where to deploy"))
    throw new Error("the input's description is not shown");
  if ((await page.$eval(`${card} input[name="branch"]`, (i) => i.value)) !== "main") throw new Error("branch field");

  await page.selectOption(env, "production");
  await page.fill(note, "ship it & 'quote' $HOME");
  await page.$eval(card, (e) => e.scrollIntoView());
  await page.screenshot({ path: path.join(SHOTS, "repo-run-form.png"), fullPage: true });
  await (await page.$(card)).screenshot({ path: path.join(SHOTS, "repo-run-form-card.png") });

  await page.click(`${card} form.trigger-form button[type="submit"]`);
  const started = await page.waitForSelector(`${card} .notice a[href^="#/chains/"]`, { timeout: 15000 });
  const href = await started.getAttribute("href");
  const chainId = href.slice("#/chains/".length);
  if ((await page.$$(`${card} .notice a[href^="#/chains/"]`)).length !== 1) throw new Error("more than one chain started");

  /* Follow the link to the chain, wait for it to complete, open the fragment's log. */
  await started.click();
  await page.waitForFunction((h) => location.hash === h, href);
  await page.waitForSelector('.chain-head .badge[data-status="completed"]', { timeout: 20000 });
  const meta = await page.$eval(".chain-head", (e) => e.textContent);
  if (!/deploy\.kdl/.test(meta) || !/manual/.test(meta) || !/deploy-repo/.test(meta)) throw new Error("chain head: " + meta);
  const c = await chain(chainId);
  if (c.trigger !== "manual" || c.branch !== "main" || c.commit_sha !== git(repo, "rev-parse", "HEAD"))
    throw new Error("chain context: " + JSON.stringify({ t: c.trigger, b: c.branch, sha: c.commit_sha }));
  await page.click('.frag a.frag-name');
  await page.waitForSelector('.log[data-ended="1"]', { timeout: 15000 });
  const lines = await page.$$eval(".log .line .txt", (l) => l.map((x) => x.textContent));
  /* The worker checks out the triggering commit first, then the script sees the inputs as
   * environment variables (the note verbatim: no second shell expansion). */
  const at = lines.indexOf("deploying to [production]");
  if (at < 0 || lines[at + 1] !== "note: [ship it & 'quote' $HOME]" || at !== lines.length - 2)
    throw new Error("log: " + JSON.stringify(lines));
  if (!lines.some((l) => l.includes("checkout") && l.includes(c.commit_sha))) throw new Error("no checkout of the commit: " + JSON.stringify(lines));
  if (!(await page.$eval(".log-state", (s) => s.textContent)).includes("completed")) throw new Error("fragment did not complete");
  await page.screenshot({ path: path.join(SHOTS, "repo-run-log.png"), fullPage: true });
});

test("a manual run with a required input left empty is refused, with the reason in the page", async (page) => {
  const repo = path.join(tmpDir, "deploy-repo");
  const id = (await api("GET", "/repos")).body.repos.find((x) => x.url === "file://" + repo).id;
  const card = `section.repo[data-repo-id="${id}"]`;
  const before = (await api("GET", "/chains?limit=200")).body.chains.length;
  let posts = 0;
  page.on("request", (q) => { if (q.method() === "POST" && q.url().endsWith("/trigger")) posts++; });
  await page.goto(base + "/#/repos");
  await page.waitForSelector(`${card} form.trigger-form`, { timeout: 15000 });

  /* release.kdl: its required input is marked and the browser keeps the empty form from being sent. */
  await page.selectOption(`${card} select[name="workflow"]`, ".vulcan/release.kdl");
  const version = `${card} input[data-input="version"]`;
  await page.waitForSelector(version);
  if (await page.$(`${card} [data-input="environment"]`)) throw new Error("deploy's inputs are still shown");
  if ((await page.$eval(`${card} label[for$="-in-version"]`, (l) => l.textContent)) !== "version *")
    throw new Error("the required input is not marked");
  await page.click(`${card} form.trigger-form button[type="submit"]`);
  const missing = await page.$eval(version, (i) => i.validity.valueMissing && i.matches(":invalid"));
  if (!missing) throw new Error("the empty required field was not flagged");
  await sleep(300);
  if (posts !== 0) throw new Error("the form was sent with a required input empty");

  /* The workflow changes after the page was loaded: deploy now requires an approver that the
   * form (built from the old commit) does not have. The server checks the inputs against the
   * branch head and refuses; its message is shown in the page and nothing starts. */
  fs.writeFileSync(path.join(repo, ".vulcan", "deploy.kdl"), deployKdl('input "approver" { required #true; }'));
  git(repo, "commit", "-q", "-am", "deploy needs an approver");
  await page.selectOption(`${card} select[name="workflow"]`, ".vulcan/deploy.kdl");
  await page.click(`${card} form.trigger-form button[type="submit"]`);
  const alert = await page.waitForSelector(`${card} .notice.bad[role="alert"]`, { timeout: 15000 });
  const msg = await alert.textContent();
  if (msg !== "the run was refused: missing required input 'approver'") throw new Error("message: " + msg);
  if (posts !== 1) throw new Error("trigger requests: " + posts);
  if ((await api("GET", "/chains?limit=200")).body.chains.length !== before) throw new Error("a chain was started");
  await page.screenshot({ path: path.join(SHOTS, "repo-run-refused.png"), fullPage: true });

  /* Reloaded, the form has the new required field. */
  await page.reload();
  await page.waitForSelector(`${card} input[data-input="approver"][required]`, { timeout: 15000 });
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
  tmpDir = tmp;
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const log = fs.openSync(path.join(tmp, "server.log"), "w");
  const server = spawn(BIN, ["server", "--no-auth", "--allow-file-repos", "--listen", `127.0.0.1:${port}`, "--data-dir", path.join(tmp, "data"),
    "--workers", "1", "--groups", "default", "--worker-sandbox", "none", "--log-format", "text"], { stdio: ["ignore", log, log] });
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
