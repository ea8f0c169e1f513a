#!/usr/bin/env node
/*
 * The collector is down: `vulcan server --otlp-endpoint` (and its local worker) point at a
 * closed loopback port. Chains must keep completing, the exporter must drop and count
 * (vulcan_trace_spans_dropped_total on GET /metrics), and once a receiver listens on that
 * port, new spans must arrive (recovery).
 *
 *   VULCAN_BIN=build/vulcan node tests/observability/collector_down.test.js
 */
"use strict";
const crypto = require("crypto");
const h = require("./common");

async function metric(base, name, labels) {
  const ms = h.parseMetrics(await (await fetch(base + "/metrics")).text());
  return ms.filter((m) => m.name === name && Object.entries(labels || {}).every(([k, v]) => m.labels[k] === v))
    .reduce((a, m) => a + m.value, 0);
}

async function main() {
  const port = await h.freePort(); /* closed: nothing listens there yet */
  const endpoint = "http://127.0.0.1:" + port;
  const srv = await h.startServer("down", ["--otlp-endpoint", endpoint]);

  const t0 = Date.now();
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(await h.submit(srv.base));
  for (const id of ids) h.check((await h.chainDone(srv.base, id)) === "completed", "chain " + id + " completed with the collector down");
  h.check(Date.now() - t0 < 15000, "chains were not slowed down by the exporter (" + (Date.now() - t0) + " ms for 5)");

  const dropped = await h.waitFor("vulcan_trace_spans_dropped_total > 0", async () => {
    const v = await metric(srv.base, "vulcan_trace_spans_dropped_total", { reason: "export_failed" });
    return v > 0 ? v : null;
  }, 20000, 250);
  h.check(dropped > 0, "spans dropped and counted: vulcan_trace_spans_dropped_total{reason=\"export_failed\"} = " + dropped);
  const exportedBefore = await metric(srv.base, "vulcan_trace_spans_exported_total");
  h.check(exportedBefore === 0, "nothing exported while the collector was down");

  /* The collector comes back on the same port. */
  const rx = await h.startReceiver(srv.dir, port);
  const traceId = crypto.randomBytes(16).toString("hex");
  const id = await h.submit(srv.base, { traceparent: `00-${traceId}-${crypto.randomBytes(8).toString("hex")}-01` });
  h.check((await h.chainDone(srv.base, id)) === "completed", "chain completed after the collector came back");
  const spans = await h.waitFor("spans of the new chain at the receiver", () => {
    const s = h.readSpans(rx.out).filter((x) => x.traceId === traceId);
    return s.some((x) => x.name === "chain") && s.some((x) => x.name === "execute") ? s : null;
  }, 30000, 250);
  h.check(spans.length >= 4, "recovered: " + spans.length + " spans of the new chain arrived (server and worker)");
  const exportedAfter = await h.waitFor("vulcan_trace_spans_exported_total > 0", async () => {
    const v = await metric(srv.base, "vulcan_trace_spans_exported_total");
    return v > 0 ? v : null;
  }, 10000, 250);
  h.check(exportedAfter > 0, "vulcan_trace_spans_exported_total = " + exportedAfter + " after recovery");
  await h.stop(srv.proc);
  await h.stop(rx.proc);
}

main().then(() => {
  h.cleanup();
  console.log("PASS");
}, (e) => h.die(e.stack || String(e)));
