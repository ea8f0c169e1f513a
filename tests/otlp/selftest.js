/*
 * Self-test of receiver.js: start it on a free port, POST one request in each
 * encoding (JSON, protobuf, gzip-compressed protobuf) plus some bad ones, and
 * check the JSON lines it writes. Run: npm test (or node --test selftest.js).
 */
'use strict';

const assert = require('node:assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const test = require('node:test');
const zlib = require('node:zlib');

const root = require('@opentelemetry/otlp-transformer/build/src/generated/root');

const Req = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const Resp = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse;

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';

function startReceiver(out) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'receiver.js'), '--port', '0', '--out', out], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /listening on (http:\/\/\S+)/.exec(buf);
      if (m) resolve({ child, url: m[1] });
    });
    child.on('exit', (code) => reject(new Error(`receiver exited ${code}`)));
  });
}

async function post(url, body, headers) {
  const res = await fetch(url + '/v1/traces', { method: 'POST', body, headers });
  return { status: res.status, type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
}

function readLines(file) {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

test('receiver decodes JSON and protobuf OTLP trace requests', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'otlp-'));
  const out = path.join(dir, 'spans.jsonl');
  const { child, url } = await startReceiver(out);
  try {
    const json = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'vulcan-server' } }] },
          scopeSpans: [
            {
              scope: { name: 'vulcan', version: '0.1.0' },
              spans: [
                {
                  traceId: TRACE,
                  spanId: '1111111111111111',
                  parentSpanId: PARENT,
                  name: 'POST /api/v1/parse',
                  kind: 2,
                  startTimeUnixNano: '1700000000000000001',
                  endTimeUnixNano: '1700000000000000002',
                  attributes: [
                    { key: 'http.route', value: { stringValue: '/api/v1/parse' } },
                    { key: 'http.status_code', value: { intValue: '201' } },
                  ],
                  status: { code: 2, message: 'boom' },
                },
              ],
            },
          ],
        },
      ],
    };
    let r = await post(url, JSON.stringify(json), { 'Content-Type': 'application/json' });
    assert.strictEqual(r.status, 200);
    assert.deepStrictEqual(JSON.parse(r.body), {});

    const msg = Req.fromObject({
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'vulcan-worker' } }] },
          scopeSpans: [
            {
              scope: { name: 'vulcan' },
              spans: [
                {
                  traceId: Buffer.from(TRACE, 'hex'),
                  spanId: Buffer.from('2222222222222222', 'hex'),
                  parentSpanId: Buffer.from('1111111111111111', 'hex'),
                  name: 'run fragment',
                  kind: 1,
                  startTimeUnixNano: '1700000000000000003',
                  endTimeUnixNano: '1700000000000000004',
                  attributes: [
                    { key: 'exit_code', value: { intValue: 3 } },
                    { key: 'big', value: { intValue: '9007199254740993' } },
                  ],
                },
              ],
            },
          ],
        },
      ],
    });
    const pb = Buffer.from(Req.encode(msg).finish());
    r = await post(url, pb, { 'Content-Type': 'application/x-protobuf' });
    assert.strictEqual(r.status, 200);
    assert.strictEqual(r.type, 'application/x-protobuf');
    Resp.decode(r.body);
    r = await post(url, zlib.gzipSync(pb), { 'Content-Type': 'application/x-protobuf', 'Content-Encoding': 'gzip' });
    assert.strictEqual(r.status, 200);

    /* Bad input is refused and writes nothing. */
    assert.strictEqual((await post(url, '{', { 'Content-Type': 'application/json' })).status, 400);
    assert.strictEqual((await post(url, Buffer.from([0xff, 0xff]), { 'Content-Type': 'application/x-protobuf' })).status, 400);
    assert.strictEqual((await post(url, '{}', { 'Content-Type': 'text/plain' })).status, 415);
    const bad = JSON.parse(JSON.stringify(json));
    bad.resourceSpans[0].scopeSpans[0].spans[0].traceId = 'xyz';
    assert.strictEqual((await post(url, JSON.stringify(bad), { 'Content-Type': 'application/json' })).status, 400);
    assert.strictEqual((await fetch(url + '/v1/metrics', { method: 'POST', body: '{}' })).status, 404);

    const lines = readLines(out);
    assert.strictEqual(lines.length, 3);
    assert.deepStrictEqual(lines[0], {
      encoding: 'json',
      resource: { 'service.name': 'vulcan-server' },
      scope: { name: 'vulcan', version: '0.1.0' },
      traceId: TRACE,
      spanId: '1111111111111111',
      parentSpanId: PARENT,
      name: 'POST /api/v1/parse',
      kind: 2,
      startTimeUnixNano: '1700000000000000001',
      endTimeUnixNano: '1700000000000000002',
      attributes: { 'http.route': '/api/v1/parse', 'http.status_code': 201 },
      droppedAttributesCount: 0,
      status: { code: 2, message: 'boom' },
    });
    assert.strictEqual(lines[1].encoding, 'protobuf');
    assert.strictEqual(lines[1].traceId, TRACE);
    assert.strictEqual(lines[1].spanId, '2222222222222222');
    assert.strictEqual(lines[1].parentSpanId, '1111111111111111');
    assert.strictEqual(lines[1].startTimeUnixNano, '1700000000000000003');
    assert.deepStrictEqual(lines[1].attributes, { exit_code: 3, big: '9007199254740993' });
    assert.deepStrictEqual(lines[1].resource, { 'service.name': 'vulcan-worker' });
    assert.deepStrictEqual(lines[2], lines[1]);
  } finally {
    child.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
