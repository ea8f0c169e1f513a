/*
 * End to end: commit statuses from a real `vulcan server` (with its local workers) to a fake
 * Git host on loopback (provider.js) that validates every GitHub request against GitHub's
 * official OpenAPI description and the GitLab, Gitea and Bitbucket requests against their
 * documented payloads.
 *
 * 1. GitHub (its own push webhook), GitLab and Gitea (the generic webhook): a push starts a
 *    passing and a failing chain in each repository; each provider sees a valid pending (or
 *    running) status, then success, resp. failure, with context/name "vulcan/<workflow>" and
 *    the link <public-url>/#/chains/<id>. Gitea answers 500 three times first: the
 *    reporter retries with backoff, and the chains' results are not affected.
 * 2. Bitbucket answers 500 to everything while its chains run and end; the server is then
 *    killed (SIGKILL) between two retries and started again on the same data: the
 *    restarted server reports the final states, nothing is lost.
 */
"use strict";
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const { execFileSync } = require("child_process");
const c = require("../observability/common.js");

const TOKEN = "tok-" + crypto.randomBytes(6).toString("hex");
const SECRET = "hook-secret";
const PUBLIC = "https://ci.example.test:8443/vulcan";

if (!fs.existsSync(path.join(__dirname, "node_modules/@octokit/openapi")))
  c.die("tests/status/node_modules is missing: run scripts/install-deps.sh (npm ci in tests/status)");

function git(cwd, ...args) {
  return execFileSync("git", args, {
    cwd,
    encoding: "utf8",
    env: Object.assign({}, process.env, {
      GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.test",
      GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.test",
    }),
  }).trim();
}

/* A repository <root>/<provider>/org/app with a passing and a failing workflow. */
function makeRepo(root, provider) {
  const dir = path.join(root, provider, "org", "app");
  fs.mkdirSync(path.join(dir, ".vulcan"), { recursive: true });
  const wf = (name, script) =>
    `version "0.1"\nname "${name}"\ntriggers "push"\nchain {\n    machine "default"\n` +
    `    fragment { run "${script}" }\n}\n`;
  fs.writeFileSync(path.join(dir, ".vulcan/pass.kdl"), wf("pass", "sleep 2"));
  fs.writeFileSync(path.join(dir, ".vulcan/fail.kdl"), wf("fail", "sleep 2; exit 3"));
  git(dir, "init", "-q", "-b", "main");
  git(dir, "add", ".");
  git(dir, "commit", "-q", "-m", "ci");
  return { dir, url: "file://" + dir, sha: git(dir, "rev-parse", "HEAD") };
}

async function api(base, method, p, body, headers) {
  const r = await fetch(base + p, {
    method,
    headers: Object.assign({ "Content-Type": "application/json" }, headers || {}),
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const t = await r.text();
  return { status: r.status, json: t ? JSON.parse(t) : null, text: t };
}

async function startProvider(dir) {
  const log = path.join(dir, "provider.log");
  const proc = c.start(process.execPath, [path.join(__dirname, "provider.js"), "--token", TOKEN], log);
  const port = await c.waitFor("the fake provider", () => {
    if (proc.exitCode !== null) throw new Error("provider exited: " + fs.readFileSync(log, "utf8"));
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(fs.readFileSync(log, "utf8"));
    return m ? Number(m[1]) : null;
  });
  return { proc, base: "http://127.0.0.1:" + port };
}

/* `vulcan server` with two local workers on `dir` (kept across restarts). */
async function startServer(dir, port) {
  const log = path.join(dir, "server.log");
  const proc = c.start(c.BIN, ["server", "--no-auth", "--allow-file-repos", "--listen", "127.0.0.1:" + port, "--data-dir", path.join(dir, "data"),
    "--workers", "2", "--worker-sandbox", "none", "--log-format", "json", "--public-url", PUBLIC], log);
  const base = "http://127.0.0.1:" + port;
  await c.waitFor("the server at " + base, async () => {
    if (proc.exitCode !== null) throw new Error("the server exited: " + fs.readFileSync(log, "utf8").slice(-2000));
    return (await fetch(base + "/health")).ok;
  });
  await c.waitForWorker(base);
  return { proc, base, log };
}

async function addRepo(base, provider, repo, providerBase) {
  const r = await api(base, "POST", "/api/v1/repos", {
    url: repo.url, provider, webhook_secret: SECRET, status_token: TOKEN,
    status_api_url: providerBase + "/" + provider,
  });
  if (r.status !== 201) c.die("repos add answered " + r.status + ": " + r.text);
  c.check(r.json.has_status_token === true && !r.text.includes(TOKEN),
    `${provider}: the answer says has_status_token and never shows the token`);
  return r.json.id;
}

const hmac = (body) => crypto.createHmac("sha256", SECRET).update(body).digest("hex");

/* A push webhook: GitHub's own format for GitHub, the generic webhook for the others. */
async function push(base, provider, repoId, repo) {
  let r;
  if (provider === "github") {
    const body = JSON.stringify({
      ref: "refs/heads/main", before: "0".repeat(40), after: repo.sha, created: true, deleted: false,
      forced: false, commits: [], head_commit: null,
      repository: { name: "app", full_name: "org/app", clone_url: repo.url, html_url: repo.url },
      sender: { login: "t" },
    });
    r = await api(base, "POST", "/hooks/github", body, {
      "X-GitHub-Event": "push", "X-GitHub-Delivery": crypto.randomUUID(),
      "X-Hub-Signature-256": "sha256=" + hmac(body),
    });
  } else {
    const body = JSON.stringify({ event: "push", ref: "refs/heads/main", after: repo.sha, repository: { url: repo.url } });
    r = await api(base, "POST", "/hooks/generic/" + repoId, body, {
      "X-Vulcan-Signature": "sha256=" + hmac(body), "X-Vulcan-Delivery": crypto.randomUUID(),
    });
  }
  if (r.status !== 200 || !r.json.chains || r.json.chains.length !== 2)
    c.die(`${provider} webhook answered ${r.status}: ${r.text}`);
  const out = {};
  for (const id of r.json.chains) {
    const ch = (await api(base, "GET", "/api/v1/chains/" + id)).json;
    out[path.basename((ch.chain || ch).source_file, ".kdl")] = id;
  }
  return out; /* {pass: id, fail: id} */
}

const requests = async (prov) => (await api(prov.base, "GET", "/_requests")).json;

const STATES = {
  github: { start: ["pending"], pass: "success", fail: "failure", key: "context" },
  gitea: { start: ["pending"], pass: "success", fail: "failure", key: "context" },
  gitlab: { start: ["pending", "running"], pass: "success", fail: "failed", key: "name" },
  bitbucket: { start: ["INPROGRESS"], pass: "SUCCESSFUL", fail: "FAILED", key: "name" },
};

/* The recorded requests of `provider` for chain `id` (by its link). */
function ofChain(recs, provider, id) {
  return recs.filter((r) => r.provider === provider && r.body &&
    (r.body.target_url || r.body.url) === PUBLIC + "/#/chains/" + id);
}

/* Wait until `provider` accepted the final state of both chains; check the whole story. */
async function checkProvider(prov, provider, chains, repo, root, opts) {
  const st = STATES[provider];
  await c.waitFor(provider + " final statuses", async () => {
    const recs = await requests(prov);
    return ["pass", "fail"].every((w) => ofChain(recs, provider, chains[w]).some((r) => r.answered === 201 && r.body.state === st[w]));
  }, 60000, 250);
  const recs = await requests(prov);
  const mine = recs.filter((r) => r.provider === provider);
  const invalid = mine.filter((r) => r.errors.length);
  c.check(invalid.length === 0, `${provider}: every request is valid` +
    (invalid.length ? ": " + JSON.stringify(invalid[0].errors) : ""));
  for (const w of ["pass", "fail"]) {
    const rs = ofChain(recs, provider, chains[w]).filter((r) => r.answered === 201);
    const states = rs.map((r) => r.body.state);
    c.check(states[states.length - 1] === st[w] && states.indexOf(st[w]) === states.length - 1,
      `${provider}/${w}: the last status is ${st[w]}, reported once (${states.join(" -> ")})`);
    if (!opts || !opts.finalOnly)
      c.check(states.length >= 2 && st.start.includes(states[0]),
        `${provider}/${w}: a ${st.start.join("/")} status came first`);
    const b = rs[rs.length - 1].body;
    c.check(b[st.key] === "vulcan/" + w, `${provider}/${w}: ${st.key} is vulcan/${w}`);
    if (provider === "bitbucket") c.check(b.key === "vulcan-" + w, `bitbucket/${w}: key is vulcan-${w}`);
    const p = rs[rs.length - 1].params;
    c.check(p.sha === repo.sha, `${provider}/${w}: the status is for the pushed commit`);
    if (provider === "gitlab")
      c.check(p.id === path.join(root, "gitlab/org/app").replace(/^\//, ""), "gitlab: the project is the URL's path, URL-encoded");
    else
      c.check((p.owner || p.workspace) === "org" && (p.repo || p.repo_slug) === "app", `${provider}: owner/repo is org/app`);
  }
}

async function chainStatus(base, id) {
  const ch = (await api(base, "GET", "/api/v1/chains/" + id)).json;
  return (ch.chain || ch).status;
}

(async () => {
  const dir = c.tmpdir("status");
  const root = path.join(dir, "src");
  const prov = await startProvider(dir);
  const port = await c.freePort();
  let srv = await startServer(dir, port);

  /* 1. GitHub, GitLab, Gitea; Gitea fails three times first. */
  await api(prov.base, "POST", "/_fail", { provider: "gitea", count: 3 });
  const runs = {};
  for (const p of ["github", "gitlab", "gitea"]) {
    const repo = makeRepo(root, p);
    const id = await addRepo(srv.base, p, repo, prov.base);
    runs[p] = { repo, chains: await push(srv.base, p, id, repo) };
  }
  for (const p of Object.keys(runs)) {
    await checkProvider(prov, p, runs[p].chains, runs[p].repo, root);
    c.check(await chainStatus(srv.base, runs[p].chains.pass) === "completed" &&
      await chainStatus(srv.base, runs[p].chains.fail) === "failed", `${p}: the chains' own results stand`);
  }
  const giteaFails = (await requests(prov)).filter((r) => r.provider === "gitea" && r.answered === 500);
  c.check(giteaFails.length === 3, "gitea: three answers of 500 were retried");
  /* Each failed post of a chain is followed by its next try no sooner than the backoff
   * (1 s, then 2 s, ...). */
  const all = (await requests(prov)).filter((r) => r.provider === "gitea");
  const gaps = [];
  for (const f of giteaFails) {
    const next = all.find((r) => r.at > f.at && r.body.target_url === f.body.target_url);
    if (next) gaps.push(next.at - f.at);
  }
  c.check(gaps.length === 3 && Math.min(...gaps) >= 900,
    "gitea: each retry waited for its backoff (" + gaps.join(", ") + " ms)");
  const log = fs.readFileSync(srv.log, "utf8");
  c.check(!log.includes(TOKEN), "the token is never logged");
  c.check(log.includes("commit status failed, will retry"), "the retries are logged");

  /* 2. Bitbucket fails while its chains run and end; the server dies between retries. */
  await api(prov.base, "POST", "/_fail", { provider: "bitbucket", count: 1000000 });
  const repo = makeRepo(root, "bitbucket");
  const id = await addRepo(srv.base, "bitbucket", repo, prov.base);
  const chains = await push(srv.base, "bitbucket", id, repo);
  await c.waitFor("the bitbucket chains to end", async () =>
    (await chainStatus(srv.base, chains.pass)) === "completed" && (await chainStatus(srv.base, chains.fail)) === "failed", 60000);
  const failed = await c.waitFor("a failed bitbucket post after the chains ended", async () => {
    const recs = (await requests(prov)).filter((r) => r.provider === "bitbucket" && r.answered === 500);
    const done = ["pass", "fail"].every((w) => ofChain(recs, "bitbucket", chains[w]).some((r) => r.body.state === STATES.bitbucket[w]));
    return done ? recs[recs.length - 1] : null;
  }, 60000, 100);
  c.check(!!failed, "bitbucket: the final states failed to post before the crash");
  /* Kill between two retries: the reporter has recorded its retry within milliseconds
   * of the 500, and the next try is at least a second later. */
  await c.sleep(Math.max(0, failed.at + 300 - Date.now()));
  process.kill(-srv.proc.pid, "SIGKILL");
  await c.waitFor("the server to die", () => srv.proc.exitCode !== null || srv.proc.signalCode !== null);
  await api(prov.base, "POST", "/_fail", { provider: "bitbucket", count: 0 });
  srv = await startServer(dir, port);
  await checkProvider(prov, "bitbucket", chains, repo, root, { finalOnly: true });
  c.check(await chainStatus(srv.base, chains.pass) === "completed", "bitbucket: the chain's result stands after the restart");
  await c.stop(srv.proc);
  await c.stop(prov.proc);
  console.log("status: all checks passed");
  c.cleanup();
  process.exit(0);
})().catch((e) => c.die(e.stack || String(e)));
