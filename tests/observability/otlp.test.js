#!/usr/bin/env node
/*
 * Traces end to end: the OTLP receiver of tests/otlp (decoding with the official
 * OpenTelemetry protocol definitions) on loopback, `vulcan server --otlp-endpoint` and a
 * separate `vulcan worker --otlp-endpoint --metrics-listen`. A workflow is submitted with a
 * W3C traceparent; one trace must link the caller's span → the API request span → the
 * chain span → each fragment's dispatch span → the worker's execute span (→ upload log).
 * Also checks the worker's own GET /metrics. Fails (never skips) when node_modules is missing.
 *
 *   VULCAN_BIN=build/vulcan node tests/observability/otlp.test.js
 */
"use strict";
const path = require("path");
const crypto = require("crypto");
const h = require("./common");

async function main() {
  const dir = h.tmpdir("otlp");
  const rx = await h.startReceiver(dir, 0);
  const endpoint = "http://127.0.0.1:" + rx.port;
  const srv = await h.startServer("otlp-srv", ["--otlp-endpoint", endpoint], { workers: 0 });
  const mport = await h.freePort();
  const worker = h.start(h.BIN, ["worker", "--server", srv.base, "--group", "default",
    "--work-dir", path.join(dir, "work"), "--sandbox", "none", "--log-format", "json",
    "--otlp-endpoint", endpoint, "--metrics-listen", "127.0.0.1:" + mport], path.join(dir, "worker.log"));
  await h.waitForWorker(srv.base);

  /* The caller's own trace: the chain must join it. */
  const traceId = crypto.randomBytes(16).toString("hex");
  const callerSpan = crypto.randomBytes(8).toString("hex");
  const id = await h.submit(srv.base, { traceparent: `00-${traceId}-${callerSpan}-01` });
  h.check((await h.chainDone(srv.base, id)) === "completed", "chain completed");

  /* Wait for every span of the trace: flushes happen at least once a second. */
  const spans = await h.waitFor("the trace's spans at the receiver", () => {
    const all = h.readSpans(rx.out).filter((s) => s.traceId === traceId);
    const n = (name) => all.filter((s) => s.name === name).length;
    return n("POST /api/v1/parse") >= 1 && n("chain") >= 1 && n("dispatch") >= 2 && n("execute") >= 2 &&
      n("upload log") >= 2 ? all : null;
  }, 20000, 250);
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const one = (name) => spans.filter((s) => s.name === name);

  const api = one("POST /api/v1/parse")[0];
  h.check(api.parentSpanId === callerSpan, "API span is a child of the caller's traceparent");
  h.check(api.resource["service.name"] === "vulcan-server" && api.kind === 2, "API span: vulcan-server, kind SERVER");
  h.check(api.attributes["http.route"] === "/api/v1/parse" && api.attributes["http.response.status_code"] === 201,
    "API span has http.route and status 201");

  const chain = one("chain")[0];
  h.check(chain.parentSpanId === api.spanId, "chain span is a child of the API request span");
  h.check(chain.attributes["vulcan.chain_id"] === id && chain.attributes["vulcan.chain.status"] === "completed",
    "chain span names the chain and its status");
  h.check(BigInt(chain.startTimeUnixNano) <= BigInt(chain.endTimeUnixNano), "chain span times are ordered");

  const dispatch = one("dispatch");
  h.check(dispatch.every((d) => d.parentSpanId === chain.spanId), "every dispatch span is a child of the chain span");
  const frags = new Set(dispatch.map((d) => d.attributes["vulcan.fragment_id"]));
  h.check(frags.size === 2, "one dispatch span per fragment");

  const exec = one("execute");
  h.check(exec.every((e) => e.resource["service.name"] === "vulcan-worker"), "execute spans come from vulcan-worker");
  for (const e of exec) {
    const d = byId.get(e.parentSpanId);
    h.check(d && d.name === "dispatch" && d.attributes["vulcan.fragment_id"] === e.attributes["vulcan.fragment_id"],
      "execute span of " + e.attributes["vulcan.fragment_id"] + " is a child of its dispatch span");
    h.check(e.attributes["vulcan.outcome"] === "completed", "execute span records the outcome");
  }
  const uploads = one("upload log");
  h.check(uploads.every((u) => byId.get(u.parentSpanId) && byId.get(u.parentSpanId).name === "execute"),
    "upload log spans are children of execute spans");
  h.check(spans.some((s) => s.encoding === "json"), "spans arrived over OTLP/HTTP (" + spans[0].encoding + ")");

  /* The worker's own /metrics. */
  const wm = h.parseMetrics(await (await fetch("http://127.0.0.1:" + mport + "/metrics")).text());
  const val = (name, labels) => wm.filter((m) => m.name === name &&
    Object.entries(labels || {}).every(([k, v]) => m.labels[k] === v)).reduce((a, m) => a + m.value, 0);
  h.check(val("vulcan_worker_fragments_total", { status: "completed" }) === 2, "worker /metrics: 2 fragments completed");
  h.check(val("vulcan_worker_fragment_run_duration_seconds_count", { status: "completed" }) === 2, "worker /metrics: run duration histogram");
  h.check(val("vulcan_worker_log_bytes_total") > 0, "worker /metrics: log bytes uploaded");
  h.check(val("vulcan_trace_spans_exported_total") >= 4, "worker /metrics: its 4 spans exported (2 execute, 2 upload log)");

  await h.stop(worker);
  await h.stop(srv.proc);
  await h.stop(rx.proc);
}

main().then(() => {
  h.cleanup();
  console.log("PASS");
}, (e) => h.die(e.stack || String(e)));
