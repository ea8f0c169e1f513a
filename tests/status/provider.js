/*
 * A fake Git host for Vulcan CI's commit-status tests, on 127.0.0.1 only.
 *
 * Every request under /github, /gitlab, /gitea and /bitbucket (the status API URLs the
 * test gives its repositories) is validated and recorded:
 *   - GitHub: against GitHub's official OpenAPI description (npm @octokit/openapi,
 *     api.github.com): the method and path template must be an operation of the
 *     description, its path parameters present, the JSON body valid against the
 *     operation's request body schema (ajv: types, enums, required) with no property the
 *     schema does not name, plus the headers GitHub's REST docs require (a User-Agent,
 *     Authorization: Bearer, Accept: application/vnd.github+json, X-GitHub-Api-Version);
 *   - GitLab (POST /projects/:id/statuses/:sha, PRIVATE-TOKEN), Gitea (POST
 *     /repos/{owner}/{repo}/statuses/{sha}, Authorization: token) and Bitbucket Cloud
 *     (POST /repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build, Bearer):
 *     against their documented payloads (fields, state enums, required fields, lengths).
 * A valid request is answered 201, an invalid one 422 (and recorded with its errors).
 *
 * Control (JSON): POST /_fail {"provider": "gitea", "count": 3} answers the next 3 requests
 * of that provider 500 (recorded as failed); GET /_requests lists what was recorded.
 *
 *   node provider.js [--port N] [--token T]   prints "listening on http://127.0.0.1:PORT"
 */
"use strict";
const http = require("http");
const Ajv = require("ajv");
/* The api.github.com description alone (the package index loads every edition, ~350 MB). */
const GITHUB = require("@octokit/openapi/generated/api.github.com.json");


const ajv = new Ajv({ strict: false, allErrors: true });

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf("--" + name);
  return i >= 0 ? args[i + 1] : dflt;
};
const TOKEN = opt("token", "t0ken");
const SHA_RE = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

const recorded = [];
const failNext = {};

/* Resolve "#/components/..." references of the description. */
function deref(node) {
  if (node && node.$ref) {
    let v = GITHUB;
    for (const part of node.$ref.replace(/^#\//, "").split("/")) v = v[part];
    return deref(v);
  }
  return node;
}

/* The OpenAPI operation whose template matches `path`, with its parameters. */
function githubOperation(method, path) {
  const segs = path.split("/");
  for (const [tpl, item] of Object.entries(GITHUB.paths)) {
    const t = tpl.split("/");
    if (t.length !== segs.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < t.length && ok; i++) {
      const m = /^\{(.+)\}$/.exec(t[i]);
      if (m) {
        if (!segs[i]) ok = false;
        else params[m[1]] = decodeURIComponent(segs[i]);
      } else ok = t[i] === segs[i];
    }
    if (ok && item[method.toLowerCase()]) return { tpl, op: item[method.toLowerCase()], params };
  }
  return null;
}

function checkGithub(req, path, body, errors) {
  const found = githubOperation(req.method, path);
  if (!found) {
    errors.push(`${req.method} ${path} is not an operation of GitHub's OpenAPI description`);
    return {};
  }
  const { tpl, op, params } = found;
  if (op.operationId !== "repos/create-commit-status")
    errors.push(`expected repos/create-commit-status, got ${op.operationId} (${tpl})`);
  for (const p of (op.parameters || []).map(deref)) {
    if (p.in === "path" && p.required && !params[p.name]) errors.push(`missing path parameter ${p.name}`);
    if (p.in === "header" && p.required && !req.headers[p.name.toLowerCase()])
      errors.push(`missing header ${p.name}`);
  }
  if (!SHA_RE.test(params.sha || "")) errors.push(`sha '${params.sha}' is not a commit id`);
  const h = req.headers;
  if (!h["user-agent"]) errors.push("GitHub requires a User-Agent header");
  if (h.authorization !== "Bearer " + TOKEN) errors.push(`Authorization is '${h.authorization}'`);
  if (h.accept !== "application/vnd.github+json") errors.push(`Accept is '${h.accept}'`);
  if (h["x-github-api-version"] !== "2022-11-28")
    errors.push(`X-GitHub-Api-Version is '${h["x-github-api-version"]}'`);
  const rb = deref(op.requestBody);
  const media = rb && rb.content && rb.content["application/json"];
  if (!media) {
    errors.push("the operation takes no JSON body");
    return params;
  }
  if (!/^application\/json/.test(h["content-type"] || ""))
    errors.push(`Content-Type is '${h["content-type"]}'`);
  const schema = deref(media.schema);
  const validate = ajv.compile(schema);
  if (!validate(body)) for (const e of validate.errors) errors.push(`body${e.instancePath} ${e.message}`);
  for (const k of Object.keys(body || {}))
    if (!schema.properties || !(k in schema.properties)) errors.push(`body has '${k}', which the schema does not name`);
  return params;
}

/* A documented payload: {field: {type, enum, max, required}}. */
function checkFields(body, spec, errors) {
  if (!body || typeof body !== "object" || Array.isArray(body)) {
    errors.push("the body is not a JSON object");
    return;
  }
  for (const k of Object.keys(body)) if (!(k in spec)) errors.push(`body has '${k}', which is not documented`);
  for (const [k, s] of Object.entries(spec)) {
    const v = body[k];
    if (v === undefined) {
      if (s.required) errors.push(`body lacks required '${k}'`);
      continue;
    }
    if (typeof v !== (s.type || "string")) errors.push(`'${k}' must be a ${s.type || "string"}`);
    if (s.enum && !s.enum.includes(v)) errors.push(`'${k}' is '${v}', not one of ${s.enum.join("|")}`);
    if (s.max && typeof v === "string" && Buffer.byteLength(v) > s.max) errors.push(`'${k}' is longer than ${s.max}`);
  }
}

/* GitLab: POST /projects/:id/statuses/:sha (docs: Commits API, "Set the pipeline status of a commit"). */
function checkGitlab(req, path, body, errors) {
  const m = /^\/projects\/([^/]+)\/statuses\/([^/]+)$/.exec(path);
  if (req.method !== "POST" || !m) {
    errors.push(`${req.method} ${path} is not POST /projects/:id/statuses/:sha`);
    return {};
  }
  if (!SHA_RE.test(m[2])) errors.push(`sha '${m[2]}' is not a commit id`);
  if (req.headers["private-token"] !== TOKEN) errors.push(`PRIVATE-TOKEN is '${req.headers["private-token"]}'`);
  checkFields(body, {
    state: { required: true, enum: ["pending", "running", "success", "failed", "canceled"] },
    ref: {}, name: { max: 255 }, context: { max: 255 }, target_url: { max: 255 }, description: { max: 255 },
    coverage: { type: "number" }, pipeline_id: { type: "number" },
  }, errors);
  return { id: decodeURIComponent(m[1]), sha: m[2] };
}

/* Gitea: POST /repos/{owner}/{repo}/statuses/{sha} (swagger: CreateStatusOption). */
function checkGitea(req, path, body, errors) {
  const m = /^\/repos\/([^/]+)\/([^/]+)\/statuses\/([^/]+)$/.exec(path);
  if (req.method !== "POST" || !m) {
    errors.push(`${req.method} ${path} is not POST /repos/{owner}/{repo}/statuses/{sha}`);
    return {};
  }
  if (!SHA_RE.test(m[3])) errors.push(`sha '${m[3]}' is not a commit id`);
  if (req.headers.authorization !== "token " + TOKEN) errors.push(`Authorization is '${req.headers.authorization}'`);
  checkFields(body, {
    state: { required: true, enum: ["pending", "success", "error", "failure", "warning"] },
    context: {}, target_url: {}, description: {},
  }, errors);
  return { owner: m[1], repo: m[2], sha: m[3] };
}

/* Bitbucket Cloud: POST /repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build. */
function checkBitbucket(req, path, body, errors) {
  const m = /^\/repositories\/([^/]+)\/([^/]+)\/commit\/([^/]+)\/statuses\/build\/?$/.exec(path);
  if (req.method !== "POST" || !m) {
    errors.push(`${req.method} ${path} is not POST /repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build`);
    return {};
  }
  if (!SHA_RE.test(m[3])) errors.push(`commit '${m[3]}' is not a commit id`);
  if (req.headers.authorization !== "Bearer " + TOKEN) errors.push(`Authorization is '${req.headers.authorization}'`);
  checkFields(body, {
    key: { required: true, max: 40 }, state: { required: true, enum: ["INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"] },
    url: { required: true }, name: {}, description: {}, refname: {},
  }, errors);
  return { workspace: m[1], repo_slug: m[2], sha: m[3] };
}

const checkers = { github: checkGithub, gitlab: checkGitlab, gitea: checkGitea, bitbucket: checkBitbucket };

function reply(res, status, obj) {
  const text = JSON.stringify(obj);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const raw = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url, "http://127.0.0.1");
    if (url.pathname === "/_requests") return reply(res, 200, recorded);
    if (url.pathname === "/_fail") {
      const j = JSON.parse(raw);
      failNext[j.provider] = j.count;
      return reply(res, 200, { ok: true });
    }
    const m = /^\/(github|gitlab|gitea|bitbucket)(\/.*)$/.exec(url.pathname);
    if (!m) return reply(res, 404, { message: "no such provider" });
    const provider = m[1];
    const path = m[2];
    const errors = [];
    let body = null;
    try {
      body = raw ? JSON.parse(raw) : null;
    } catch (e) {
      errors.push("the body is not JSON: " + e.message);
    }
    const params = checkers[provider](req, path, body, errors);
    const rec = { provider, method: req.method, path, params, body, errors, at: Date.now() };
    if (failNext[provider] > 0) {
      failNext[provider]--;
      rec.answered = 500;
      recorded.push(rec);
      return reply(res, 500, { message: "injected failure" });
    }
    rec.answered = errors.length ? 422 : 201;
    recorded.push(rec);
    if (errors.length) return reply(res, 422, { message: "Validation Failed", errors });
    reply(res, 201, { id: recorded.length, state: body.state });
  });
});

server.listen(Number(opt("port", "0")), "127.0.0.1", () => {
  console.log("listening on http://127.0.0.1:" + server.address().port);
});
