/*
 * Shared helpers of the observability tests: free ports, temp dirs, child processes that
 * are always stopped, a real `vulcan server` with one local worker, the OTLP receiver.
 * Every helper fails loudly (never skips) when something it needs is missing.
 */
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const net = require("net");
const { spawn } = require("child_process");

const BIN = process.env.VULCAN_BIN;
const SRC = process.env.VK_SOURCE_DIR || path.resolve(__dirname, "../..");
const children = [];
const dirs = [];

function die(msg) {
  console.error("FAIL: " + msg);
  cleanup();
  process.exit(1);
}

function cleanup() {
  for (const c of children.splice(0)) {
    /* Each child leads its own process group: this also ends what it started (the
     * server's local workers), even when the child itself is gone. */
    try {
      process.kill(-c.pid, "SIGKILL");
    } catch (e) {
      /* gone already */
    }
  }
  if (!process.env.VK_KEEP_TMP) for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}
process.on("exit", cleanup);
process.on("SIGINT", () => die("interrupted"));
process.on("SIGTERM", () => die("terminated"));

if (!BIN || !fs.existsSync(BIN)) die("VULCAN_BIN must name the built vulcan binary (got '" + BIN + "')");

function tmpdir(tag) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "vk-obs-" + tag + "-"));
  dirs.push(d);
  return d;
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

async function waitFor(what, fn, timeoutMs = 20000, everyMs = 200) {
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

/* Start a child whose stdout/stderr go to LOG; it is killed at exit. */
function start(cmd, args, log, env) {
  const fd = fs.openSync(log, "a");
  const c = spawn(cmd, args, {
    stdio: ["ignore", fd, fd],
    env: Object.assign({}, process.env, env || {}),
    detached: true, /* its own process group, see cleanup() */
  });
  fs.closeSync(fd);
  c.on("error", (e) => die("cannot start " + cmd + ": " + e.message));
  children.push(c);
  return c;
}

/* Stop a child with SIGTERM and wait (SIGKILL to its process group after `ms`; the server
 * gives its local workers 10 s). */
function stop(c, ms = 20000) {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    const t = setTimeout(() => {
      try {
        process.kill(-c.pid, "SIGKILL");
      } catch (e) {
        /* gone already */
      }
    }, ms);
    c.on("exit", () => {
      clearTimeout(t);
      resolve();
    });
    c.kill("SIGTERM");
  });
}

/* `vulcan server --workers 1` on a free port; returns {base, proc, dir, log}. */
async function startServer(tag, extra, opts) {
  const workers = opts && opts.workers !== undefined ? opts.workers : 1;
  const dir = tmpdir(tag);
  const port = await freePort();
  const log = path.join(dir, "server.log");
  const args = ["server", "--no-auth", "--listen", "127.0.0.1:" + port, "--data-dir", path.join(dir, "data"),
    "--workers", String(workers), "--worker-sandbox", "none", "--log-format", "json"].concat(extra || []);
  const proc = start(BIN, args, log);
  const base = "http://127.0.0.1:" + port;
  await waitFor("the server at " + base, async () => {
    if (proc.exitCode !== null) throw new Error("the server exited: " + fs.readFileSync(log, "utf8").slice(-2000));
    const r = await fetch(base + "/health");
    return r.ok;
  });
  if (workers > 0) await waitForWorker(base);
  return { base, proc, dir, log };
}

/* Until an alive worker is registered. */
async function waitForWorker(base) {
  /* The local worker registers with the server. */
  await waitFor("the local worker", async () => {
    const r = await fetch(base + "/api/v1/workers");
    const j = await r.json();
    const ws = Array.isArray(j) ? j : j.workers || [];
    return ws.some((w) => w.status === "alive");
  });
}

/* Submit a small two-fragment chain; returns its id. */
async function submit(base, headers, script) {
  const content = [
    'version "0.1"',
    'name "obs"',
    'triggers "manual"',
    "chain {",
    '    machine "default"',
    `    fragment { run "${script || "echo one"}"; name "one" }`,
    '    fragment { run "echo two"; name "two" }',
    "}",
  ].join("\n");
  const r = await fetch(base + "/api/v1/parse", {
    method: "POST",
    headers: Object.assign({ "Content-Type": "application/json" }, headers || {}),
    body: JSON.stringify({ content, source_file_path: ".vulcan/obs.kdl" }),
  });
  const t = await r.text();
  if (r.status !== 201) throw new Error("parse answered " + r.status + ": " + t);
  return JSON.parse(t).chain_id;
}

async function chainDone(base, id, timeoutMs = 30000) {
  return waitFor("chain " + id + " to finish", async () => {
    const r = await fetch(base + "/api/v1/chains/" + id);
    const j = await r.json();
    const c = j.chain || j;
    return ["completed", "failed", "cancelled"].includes(c.status) ? c.status : null;
  }, timeoutMs);
}

/* The OTLP receiver of tests/otlp on `port` (0: any); returns {proc, port, out}. */
async function startReceiver(dir, port) {
  const recv = path.join(SRC, "tests/otlp/receiver.js");
  if (!fs.existsSync(path.join(SRC, "tests/otlp/node_modules/@opentelemetry/otlp-transformer")))
    die("tests/otlp/node_modules is missing: run scripts/install-deps.sh (npm ci in tests/otlp)");
  const out = path.join(dir, "spans-" + Date.now() + ".jsonl");
  const log = path.join(dir, "receiver-" + Date.now() + ".log");
  const proc = start(process.execPath, [recv, "--port", String(port), "--out", out], log);
  const line = await waitFor("the OTLP receiver", () => {
    if (proc.exitCode !== null) throw new Error("receiver exited: " + fs.readFileSync(log, "utf8"));
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(fs.readFileSync(log, "utf8"));
    return m ? Number(m[1]) : null;
  });
  return { proc, port: line, out };
}

function readSpans(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/* Parse Prometheus text: name{labels} value → [{name, labels, value}]. */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const kv of m[3].matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

function check(cond, msg) {
  if (!cond) die(msg);
  console.log("ok - " + msg);
}

module.exports = {
  BIN, SRC, die, cleanup, tmpdir, freePort, sleep, waitFor, start, stop, startServer, submit,
  chainDone, startReceiver, waitForWorker, readSpans, parseMetrics, check,
};
