/*
 * Shared by the browser tests (console, session, identity, sso): the binary, Chromium
 * and playwright-core they need (a missing one is a failure, never a skip), and small
 * helpers: a free loopback port, sleep, and waitFor(what, fn) that polls fn until it
 * returns something true.
 */
"use strict";
const fs = require("fs");
const net = require("net");
const path = require("path");

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

module.exports = { CHROMIUM, BIN, SHOTS, die, chromium, freePort, sleep, waitFor };
