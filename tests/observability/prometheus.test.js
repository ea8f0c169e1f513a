#!/usr/bin/env node
/*
 * A real Prometheus (Debian's `prometheus`, on loopback, scrape interval 1 s) scrapes
 * `vulcan server`'s GET /metrics while chains run; the test then asks Prometheus's HTTP API
 * that counters and histograms moved. Fails (never skips) when prometheus is missing.
 *
 *   VULCAN_BIN=build/vulcan node tests/observability/prometheus.test.js
 */
"use strict";
const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");
const h = require("./common");

const PROM = process.env.PROMETHEUS || "/usr/bin/prometheus";

async function query(prom, q) {
  const r = await fetch(prom + "/api/v1/query?query=" + encodeURIComponent(q));
  const j = await r.json();
  if (j.status !== "success") throw new Error("query '" + q + "': " + JSON.stringify(j));
  return j.data.result; /* [{metric: {...}, value: [t, "v"]}] */
}
const sum = (res) => res.reduce((a, s) => a + Number(s.value[1]), 0);

async function main() {
  if (!fs.existsSync(PROM)) h.die(PROM + " is missing: run scripts/install-deps.sh (apt-get install -y prometheus)");
  const srv = await h.startServer("prom");
  const target = srv.base.replace("http://", "");

  /* What the server serves must be valid exposition text: promtool comes with Debian's
   * prometheus package, so its absence is a broken set-up, not a reason to skip. */
  const text = await (await fetch(srv.base + "/metrics")).text();
  const promtool = path.join(path.dirname(PROM), "promtool");
  if (!fs.existsSync(promtool)) h.die(promtool + " is missing: run scripts/install-deps.sh (apt-get install -y prometheus)");
  execFileSync(promtool, ["check", "metrics"], { input: text });
  h.check(true, "promtool check metrics accepts GET /metrics");

  const promPort = await h.freePort();
  const cfg = path.join(srv.dir, "prometheus.yml");
  fs.writeFileSync(cfg, [
    "global:",
    "  scrape_interval: 1s",
    "  evaluation_interval: 1s",
    "scrape_configs:",
    "  - job_name: vulcan",
    "    scrape_interval: 1s",
    "    scrape_timeout: 900ms",
    "    static_configs:",
    `      - targets: ["${target}"]`,
    "",
  ].join("\n"));
  const prom = "http://127.0.0.1:" + promPort;
  h.start(PROM, ["--config.file=" + cfg, "--storage.tsdb.path=" + path.join(srv.dir, "tsdb"),
    "--web.listen-address=127.0.0.1:" + promPort, "--log.level=warn"], path.join(srv.dir, "prometheus.log"));
  await h.waitFor("prometheus to be ready", async () => (await fetch(prom + "/-/ready")).ok, 30000);
  /* A first scrape before the chains: the counters' baseline. */
  await h.waitFor("a first scrape of vulcan", async () => {
    const up = await query(prom, 'up{job="vulcan"}');
    return up.length === 1 && up[0].value[1] === "1";
  }, 20000);

  /* Baselines, as Prometheus saw them before any chain ran. */
  const before = {
    chains: sum(await query(prom, "vulcan_chains_total")),
    http: sum(await query(prom, "vulcan_http_requests_total")),
    httpHist: sum(await query(prom, "vulcan_http_request_duration_seconds_count")),
  };
  h.check(before.chains === 0, "no chain counted before the chains ran");

  /* Run chains while Prometheus scrapes. */
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push(await h.submit(srv.base, {}, "echo run " + i));
  for (const id of ids) h.check((await h.chainDone(srv.base, id)) === "completed", "chain " + id + " completed");

  const want = [
    ['vulcan_chains_total{status="completed"}', 3],
    ['vulcan_fragments_total{status="completed"}', 6],
    ['vulcan_http_requests_total{route="/api/v1/parse",method="POST",status="201"}', 3],
    ['vulcan_fragment_queue_wait_seconds_count{machine_group="default"}', 6],
    ['vulcan_fragment_run_duration_seconds_count{machine_group="default",status="completed"}', 6],
    ['vulcan_chain_duration_seconds_count{status="completed"}', 3],
    ['vulcan_http_request_duration_seconds_count{route="/api/v1/parse"}', 3],
  ];
  for (const [q, n] of want) {
    const v = await h.waitFor(q + " >= " + n + " in Prometheus", async () => {
      const s = sum(await query(prom, q));
      return s >= n ? s : null;
    }, 30000, 500);
    h.check(v >= n, "prometheus: " + q + " = " + v);
  }
  /* A histogram's buckets are there and usable. */
  const q95 = await query(prom, "histogram_quantile(0.95, sum by (le) (vulcan_chain_duration_seconds_bucket))");
  h.check(q95.length === 1 && Number.isFinite(Number(q95[0].value[1])), "histogram_quantile over chain durations = " + (q95[0] && q95[0].value[1]));
  /* Counters and histograms moved between the scrapes before and after the chains. */
  const after = {
    chains: sum(await query(prom, "vulcan_chains_total")),
    http: sum(await query(prom, "vulcan_http_requests_total")),
    httpHist: sum(await query(prom, "vulcan_http_request_duration_seconds_count")),
  };
  h.check(after.chains - before.chains >= 3, `vulcan_chains_total moved ${before.chains} -> ${after.chains}`);
  h.check(after.http > before.http, `vulcan_http_requests_total moved ${before.http} -> ${after.http}`);
  h.check(after.httpHist > before.httpHist,
    `vulcan_http_request_duration_seconds_count moved ${before.httpHist} -> ${after.httpHist}`);
  /* Gauges read from the store at scrape time. */
  const alive = sum(await query(prom, 'vulcan_workers{status="alive"}'));
  h.check(alive === 1, "vulcan_workers{status=\"alive\"} = 1");
  const ready = await query(prom, 'vulcan_fragments_ready{machine_group="default"}');
  h.check(ready.length === 1, "vulcan_fragments_ready{machine_group=\"default\"} is scraped");
  /* Bounded labels: no id ever shows up as a label value. */
  const series = await (await fetch(prom + '/api/v1/series?match[]={job="vulcan"}')).json();
  const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
  const leaky = series.data.filter((s) => Object.values(s).some((v) => uuid.test(v)));
  h.check(series.data.length > 0 && leaky.length === 0, series.data.length + " series, none with an id in a label");
  await h.stop(srv.proc);
}

main().then(() => {
  h.cleanup();
  console.log("PASS");
}, (e) => h.die(e.stack || String(e)));
