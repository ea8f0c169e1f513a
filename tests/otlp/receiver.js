#!/usr/bin/env node
/*
 * A small OTLP/HTTP trace receiver for Vulcan CI's end-to-end tests.
 *
 *   node tests/otlp/receiver.js --port N --out FILE [--host 127.0.0.1]
 *
 * Accepts POST /v1/traces with Content-Type application/json (the OTLP JSON
 * mapping) or application/x-protobuf (decoded with the official OpenTelemetry
 * proto definitions, as generated code shipped in @opentelemetry/otlp-transformer),
 * optionally gzip-encoded, and appends each span as one JSON line to FILE:
 *
 *   {"encoding":"json","resource":{"service.name":"vulcan-server",...},
 *    "scope":{"name":"vulcan","version":"0.1.0"},"traceId":"<32 hex>",
 *    "spanId":"<16 hex>","parentSpanId":"<16 hex or empty>","name":"...",
 *    "kind":2,"startTimeUnixNano":"...","endTimeUnixNano":"...",
 *    "attributes":{"key":value,...},"droppedAttributesCount":0,
 *    "status":{"code":0,"message":""}}
 *
 * Integer attributes become numbers when they are safe integers, else decimal
 * strings; times stay decimal strings (uint64 nanoseconds).
 * With --port 0 the system picks a port. Once listening it prints one line,
 * "listening on http://HOST:PORT", on stdout. SIGTERM/SIGINT stop it.
 */
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const zlib = require('node:zlib');

const root = require('@opentelemetry/otlp-transformer/build/src/generated/root');

const ExportTraceServiceRequest = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const ExportTraceServiceResponse = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse;
const SpanKind = root.opentelemetry.proto.trace.v1.Span.SpanKind;
const StatusCode = root.opentelemetry.proto.trace.v1.Status.StatusCode;

const MAX_BODY = 16 * 1024 * 1024;

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: null, out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--port') opts.port = Number(next());
    else if (a === '--out') opts.out = next();
    else if (a === '--host') opts.host = next();
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: receiver.js --port N --out FILE [--host ADDR]\n');
      process.exit(0);
    } else throw new Error(`unknown argument '${a}'`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new Error('--port N is required (0 picks a free port)');
  }
  if (!opts.out) throw new Error('--out FILE is required');
  return opts;
}

class BadRequest extends Error {}

function hexOf(v, bytes, what) {
  if (v === undefined || v === null || v === '') return '';
  let hex;
  if (typeof v === 'string') hex = v.toLowerCase();
  else if (v instanceof Uint8Array) hex = Buffer.from(v).toString('hex');
  else throw new BadRequest(`${what}: not a hex string`);
  if (hex.length === 0) return '';
  if (!/^[0-9a-f]*$/.test(hex) || hex.length !== bytes * 2) {
    throw new BadRequest(`${what}: want ${bytes * 2} hex digits, got '${String(v).slice(0, 80)}'`);
  }
  return hex;
}

/* uint64/int64 from JSON (string or number) or protobufjs (Long or number) as a decimal string. */
function int64String(v) {
  if (v === undefined || v === null) return '0';
  if (typeof v === 'object' && typeof v.toString === 'function') return v.toString();
  return String(v);
}

function intValue(v) {
  const s = int64String(v);
  if (!/^-?[0-9]+$/.test(s)) throw new BadRequest(`intValue '${s}' is not an integer`);
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : s;
}

function anyValue(v) {
  if (!v || typeof v !== 'object') return null;
  if (v.stringValue !== undefined && v.stringValue !== null) return String(v.stringValue);
  if (v.boolValue !== undefined && v.boolValue !== null) return Boolean(v.boolValue);
  if (v.intValue !== undefined && v.intValue !== null) return intValue(v.intValue);
  if (v.doubleValue !== undefined && v.doubleValue !== null) return Number(v.doubleValue);
  if (v.arrayValue) return (v.arrayValue.values || []).map(anyValue);
  if (v.kvlistValue) return attributes(v.kvlistValue.values);
  if (v.bytesValue !== undefined && v.bytesValue !== null) {
    return typeof v.bytesValue === 'string' ? v.bytesValue : Buffer.from(v.bytesValue).toString('base64');
  }
  return null;
}

function attributes(list) {
  const out = {};
  for (const kv of list || []) {
    if (!kv || typeof kv.key !== 'string') throw new BadRequest('attribute without a key');
    out[kv.key] = anyValue(kv.value);
  }
  return out;
}

/* Enums arrive as numbers (both encodings) or, in JSON, possibly as names. */
function enumValue(v, table, what) {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && Object.prototype.hasOwnProperty.call(table, v)) return table[v];
  throw new BadRequest(`${what}: unknown value '${v}'`);
}

/* ExportTraceServiceRequest (plain object, either encoding) -> span records. */
function flatten(req, encoding) {
  if (!req || typeof req !== 'object') throw new BadRequest('body is not an object');
  const records = [];
  for (const rs of req.resourceSpans || []) {
    const resource = attributes(rs.resource && rs.resource.attributes);
    for (const ss of rs.scopeSpans || []) {
      const scope = {
        name: (ss.scope && ss.scope.name) || '',
        version: (ss.scope && ss.scope.version) || '',
      };
      for (const sp of ss.spans || []) {
        const traceId = hexOf(sp.traceId, 16, 'traceId');
        const spanId = hexOf(sp.spanId, 8, 'spanId');
        if (!traceId || !spanId) throw new BadRequest('span without traceId or spanId');
        records.push({
          encoding,
          resource,
          scope,
          traceId,
          spanId,
          parentSpanId: hexOf(sp.parentSpanId, 8, 'parentSpanId'),
          name: sp.name || '',
          kind: enumValue(sp.kind, SpanKind, 'kind'),
          startTimeUnixNano: int64String(sp.startTimeUnixNano),
          endTimeUnixNano: int64String(sp.endTimeUnixNano),
          attributes: attributes(sp.attributes),
          droppedAttributesCount: sp.droppedAttributesCount || 0,
          status: {
            code: enumValue(sp.status && sp.status.code, StatusCode, 'status.code'),
            message: (sp.status && sp.status.message) || '',
          },
        });
      }
    }
  }
  return records;
}

function decode(body, contentType) {
  const type = (contentType || '').split(';')[0].trim().toLowerCase();
  if (type === 'application/json') {
    let req;
    try {
      req = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw new BadRequest(`invalid JSON: ${e.message}`);
    }
    return { encoding: 'json', records: flatten(req, 'json') };
  }
  if (type === 'application/x-protobuf' || type === 'application/protobuf') {
    let msg;
    try {
      msg = ExportTraceServiceRequest.decode(body);
    } catch (e) {
      throw new BadRequest(`invalid protobuf: ${e.message}`);
    }
    /* Keep bytes as Buffers (hex-encoded by flatten) and 64-bit ints as strings. */
    const obj = ExportTraceServiceRequest.toObject(msg, { longs: String, enums: Number, bytes: Buffer, defaults: false });
    return { encoding: 'protobuf', records: flatten(obj, 'protobuf') };
  }
  const err = new BadRequest(`unsupported Content-Type '${contentType || ''}'`);
  err.status = 415;
  throw err;
}

function reply(res, status, encoding, message) {
  if (encoding === 'protobuf' && status === 200) {
    const buf = ExportTraceServiceResponse.encode(ExportTraceServiceResponse.create({})).finish();
    res.writeHead(200, { 'Content-Type': 'application/x-protobuf', 'Content-Length': buf.length });
    res.end(Buffer.from(buf));
    return;
  }
  const body = JSON.stringify(status === 200 ? {} : { code: status, message });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function handle(opts, req, res) {
  const path = req.url.split('?')[0];
  if (path !== '/v1/traces') return reply(res, 404, 'json', `no route '${path}'`);
  if (req.method !== 'POST') return reply(res, 405, 'json', 'POST only');
  const chunks = [];
  let size = 0;
  let tooBig = false;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) tooBig = true;
    else chunks.push(c);
  });
  req.on('end', () => {
    if (tooBig) return reply(res, 413, 'json', 'body too large');
    let body = Buffer.concat(chunks);
    const type = req.headers['content-type'];
    const wantsProto = /protobuf/i.test(type || '');
    try {
      const enc = (req.headers['content-encoding'] || 'identity').toLowerCase();
      if (enc === 'gzip') body = zlib.gunzipSync(body, { maxOutputLength: MAX_BODY });
      else if (enc !== 'identity') throw new BadRequest(`unsupported Content-Encoding '${enc}'`);
      const { encoding, records } = decode(body, type);
      if (records.length) fs.appendFileSync(opts.out, records.map((r) => JSON.stringify(r) + '\n').join(''));
      reply(res, 200, encoding);
    } catch (e) {
      if (!(e instanceof BadRequest) && !(e && e.code && String(e.code).startsWith('Z_'))) {
        process.stderr.write(`otlp receiver: ${e.stack || e}\n`);
        return reply(res, 500, wantsProto ? 'protobuf' : 'json', 'internal error');
      }
      reply(res, e.status || 400, wantsProto ? 'protobuf' : 'json', e.message);
    }
  });
  req.on('error', () => res.destroy());
}

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`receiver.js: ${e.message}\n`);
    process.exit(2);
  }
  fs.writeFileSync(opts.out, '', { flag: 'a' });
  const server = http.createServer((req, res) => handle(opts, req, res));
  server.on('error', (e) => {
    process.stderr.write(`receiver.js: ${e.message}\n`);
    process.exit(1);
  });
  server.listen(opts.port, opts.host, () => {
    process.stdout.write(`listening on http://${opts.host}:${server.address().port}\n`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) main();

module.exports = { decode, flatten };
