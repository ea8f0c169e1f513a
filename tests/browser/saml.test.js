#!/usr/bin/env node
/*
 * Single sign-on with SAML 2.0, end to end (issue 13): a real IdP (Debian's SimpleSAMLphp
 * under `php -S`, its exampleauth:UserPass login page) on one loopback port, a real
 * `vulcan server --require-auth --saml-idp-metadata FILE` on another, Debian's headless
 * Chromium driven by playwright-core. Run by CTest (tests/browser/CMakeLists.txt,
 * browser_saml):
 *
 *   VULCAN_BIN=build/vulcan SCREENSHOT_DIR=build/tests/browser/screenshots node saml.test.js
 *
 * 1. GET /api/v1/sso/saml/login redirects to the IdP's SingleSignOnService with a deflated
 *    AuthnRequest (ID, our ACS URL, our entity id) and a RelayState; the SP metadata names
 *    the ACS; a `next` that is not a console page is refused.
 * 2. The console's login page shows "Log in with SAML"; the user logs in on SimpleSAMLphp's
 *    own page and lands in the console as alice (source saml:<IdP entity id>) in team
 *    "builders" (the groups attribute says builders and not-a-team).
 * 3. Hostile Responses posted to the ACS, each refused with 401 saying why: the real one
 *    replayed; and, made by this test with the IdP's own key unless said otherwise (a
 *    well-formed one is accepted first, so each refusal is the check it names): unsigned,
 *    signed by another key, two signature-wrapping forms, wrong Audience, expired, the same
 *    assertion ID twice, InResponseTo of no pending request, a Recipient elsewhere, a DTD;
 *    and a valid Response posted from another browser (login CSRF) logs nobody in.
 * 4. An admin adds alice to team "ops"; the next SAML login takes her out again.
 */
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const zlib = require("zlib");
const crypto = require("crypto");
const { spawn, execFileSync } = require("child_process");

const { CHROMIUM, BIN, SHOTS, die, chromium, freePort, waitFor } = require("./lib");
let SignedXml;
try {
  ({ SignedXml } = require("xml-crypto"));
} catch (e) {
  die("xml-crypto is not installed: run 'npm ci' in tests/browser (scripts/install-deps.sh does)");
}
const SSP = "/usr/share/simplesamlphp";
if (!fs.existsSync(SSP + "/www/index.php")) die("SimpleSAMLphp is missing: run scripts/install-deps.sh (apt-get install simplesamlphp php-cli)");

const PASSWORD = "alice-idp-password-0123";
let base, idpBase, idpEntity, token, tmp, idpKey, idpCert, otherKey, otherCert;

async function api(method, p, body) {
  const headers = { Authorization: "Bearer " + token };
  if (body) headers["Content-Type"] = "application/json";
  const r = await fetch(base + "/api/v1" + p, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const t = await r.text();
  return { status: r.status, body: t ? JSON.parse(t) : null };
}
async function teamMembers(name) {
  const r = await api("GET", "/orgs/default/teams");
  if (r.status !== 200) throw new Error("GET teams: " + r.status + " " + JSON.stringify(r.body));
  const t = r.body.teams.find((x) => x.name === name);
  return t ? t.members : null;
}

function keyPair(name) {
  const key = path.join(tmp, name + ".key"), crt = path.join(tmp, name + ".crt");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
    "-days", "2", "-subj", "/CN=" + name], { stdio: "ignore" });
  return [fs.readFileSync(key, "utf8"), fs.readFileSync(crt, "utf8")];
}

/* SimpleSAMLphp's configuration: Debian's config.php with our directories, the IdP on,
 * one user in exampleauth:UserPass, and (written once vulcan's URL is known) vulcan as
 * the remote SP with a persistent NameID from uid. */
function writeIdpConfig(dir, port) {
  for (const d of ["config", "metadata", "cert", "log", "data", "tmp", "sessions"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.copyFileSync(path.join(tmp, "idp.key"), path.join(dir, "cert", "idp.key"));
  fs.copyFileSync(path.join(tmp, "idp.crt"), path.join(dir, "cert", "idp.crt"));
  const q = (s) => JSON.stringify(s);
  fs.writeFileSync(path.join(dir, "config", "config.php"), `<?php
require '/etc/simplesamlphp/config.php';
$config = array_merge($config, [
  'baseurlpath' => ${q(`http://127.0.0.1:${port}/`)},
  'certdir' => ${q(dir + "/cert/")},
  'loggingdir' => ${q(dir + "/log/")},
  'datadir' => ${q(dir + "/data/")},
  'tempdir' => ${q(dir + "/tmp")},
  'metadatadir' => ${q(dir + "/metadata/")},
  'metadata.sources' => [['type' => 'flatfile', 'directory' => ${q(dir + "/metadata")}]],
  'secretsalt' => 'vulcan-test-salt-0123456789',
  'auth.adminpassword' => 'vulcan-test-admin-0123456789',
  'admin.checkforupdates' => false,
  'enable.saml20-idp' => true,
  'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true, 'admin' => true],
  'logging.handler' => 'file',
  'logging.logfile' => 'idp.log',
  'logging.level' => SimpleSAML\\Logger::INFO,
  'session.cookie.secure' => false,
  'session.cookie.samesite' => null,
  'session.phpsession.savepath' => ${q(dir + "/sessions")},
  'store.type' => 'phpsession',
  'timezone' => 'UTC',
  'language.default' => 'en',
  'statistics.out' => [],
]);
`);
  fs.writeFileSync(path.join(dir, "config", "authsources.php"), `<?php
$config = [
  'admin' => ['core:AdminPassword'],
  'example-userpass' => ['exampleauth:UserPass',
    'alice:${PASSWORD}' => ['uid' => ['alice'], 'email' => ['alice@example.com'],
      'displayName' => ['Alice Liddell'], 'groups' => ['builders', 'not-a-team']],
  ],
];
`);
  fs.writeFileSync(path.join(dir, "metadata", "saml20-idp-hosted.php"), `<?php
$metadata['__DYNAMIC:1__'] = [
  'host' => '__DEFAULT__',
  'privatekey' => 'idp.key',
  'certificate' => 'idp.crt',
  'auth' => 'example-userpass',
  'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
];
`);
}
function writeSpRemote(dir, entity, acs) {
  const q = (s) => JSON.stringify(s);
  fs.writeFileSync(path.join(dir, "metadata", "saml20-sp-remote.php"), `<?php
$metadata[${q(entity)}] = [
  'AssertionConsumerService' => ${q(acs)},
  'NameIDFormat' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
  'simplesaml.nameidattribute' => 'uid',
  'saml20.sign.assertion' => true,
];
`);
}

/* Start a login as a client of its own: the RelayState, the request's ID and the cookie. */
async function startLogin() {
  const r = await fetch(base + "/api/v1/sso/saml/login", { redirect: "manual" });
  if (r.status !== 302) throw new Error("login: " + r.status);
  const loc = new URL(r.headers.get("location"));
  const xml = zlib.inflateRawSync(Buffer.from(loc.searchParams.get("SAMLRequest"), "base64")).toString();
  const id = /\bID="([^"]+)"/.exec(xml)[1];
  return { relay: loc.searchParams.get("RelayState"), id, xml, cookie: (r.headers.get("set-cookie") || "").split(";")[0] };
}

/* xml-crypto writes <Signature xmlns="...xmldsig#"> (no prefix). */
const SIG_RE = /<Signature[\s\S]*<\/Signature>/;
const iso = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");
/* A Response as an IdP makes it; `o` changes one thing. Signed (the assertion) with `o.key`
 * (default the IdP's), unless o.unsigned. */
function makeResponse(login, o = {}) {
  const now = Date.now();
  const acs = base + "/api/v1/sso/saml/acs";
  const aid = o.assertionId || "_a" + crypto.randomBytes(16).toString("hex");
  const nb = iso(o.expired ? now - 3600e3 : now - 5e3), noa = iso(o.expired ? now - 1800e3 : now + 300e3);
  const assertion = `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${aid}" Version="2.0" IssueInstant="${iso(now)}">` +
    `<saml:Issuer>${idpEntity}</saml:Issuer>` +
    `<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">${o.nameId || "mallory"}</saml:NameID>` +
    `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="${noa}" ` +
    `Recipient="${o.recipient || acs}" InResponseTo="${o.inResponseTo || login.id}"/></saml:SubjectConfirmation></saml:Subject>` +
    `<saml:Conditions NotBefore="${nb}" NotOnOrAfter="${noa}"><saml:AudienceRestriction><saml:Audience>${o.audience || base + "/api/v1/sso/saml/metadata"}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
    `<saml:AuthnStatement AuthnInstant="${iso(now)}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
    `<saml:AttributeStatement><saml:Attribute Name="uid"><saml:AttributeValue>${o.nameId || "mallory"}</saml:AttributeValue></saml:Attribute>` +
    `<saml:Attribute Name="groups"><saml:AttributeValue>builders</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>` +
    `</saml:Assertion>`;
  let signed = assertion;
  if (!o.unsigned) {
    const sig = new SignedXml({ privateKey: o.key || idpKey, publicCert: o.cert || idpCert,
      signatureAlgorithm: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
      canonicalizationAlgorithm: "http://www.w3.org/2001/10/xml-exc-c14n#" });
    sig.addReference({ xpath: "//*[local-name(.)='Assertion']", digestAlgorithm: "http://www.w3.org/2001/04/xmlenc#sha256",
      transforms: ["http://www.w3.org/2000/09/xmldsig#enveloped-signature", "http://www.w3.org/2001/10/xml-exc-c14n#"] });
    sig.computeSignature(assertion, { location: { reference: "//*[local-name(.)='Issuer']", action: "after" } });
    signed = sig.getSignedXml();
  }
  if (o.wrap) signed = o.wrap(signed);
  return (o.dtd || "") + `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ` +
    `ID="_r${crypto.randomBytes(16).toString("hex")}" Version="2.0" IssueInstant="${iso(now)}" Destination="${acs}" InResponseTo="${o.inResponseTo || login.id}">` +
    `<saml:Issuer>${idpEntity}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
    signed + `</samlp:Response>`;
}
async function postAcs(relay, xml, extra = {}) {
  const body = new URLSearchParams({ SAMLResponse: Buffer.from(xml).toString("base64"), RelayState: relay });
  const r = await fetch(base + "/api/v1/sso/saml/acs", { method: "POST", redirect: "manual", body: body.toString(),
    headers: { "Content-Type": "application/x-www-form-urlencoded", Origin: idpBase, ...extra } });
  return { status: r.status, text: await r.text(), location: r.headers.get("location") };
}
async function refused(what, xml, re, login) {
  const l = login || (await startLogin());
  const r = await postAcs(l.relay, typeof xml === "function" ? xml(l) : xml);
  if (r.status !== 401 || !re.test(r.text)) throw new Error(`${what}: ${r.status} ${r.text}`);
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const ctx = {};

test("the login route redirects to the IdP with a deflated AuthnRequest; SP metadata names the ACS", async () => {
  const r = await fetch(base + "/api/v1/sso/saml/login?next=" + encodeURIComponent("#/workers"), { redirect: "manual" });
  if (r.status !== 302) throw new Error("status " + r.status);
  const loc = new URL(r.headers.get("location"));
  if (!loc.href.startsWith(idpBase + "/saml2/idp/SSOService.php?")) throw new Error("not to the IdP: " + loc.href);
  const xml = zlib.inflateRawSync(Buffer.from(loc.searchParams.get("SAMLRequest"), "base64")).toString();
  for (const want of [`AssertionConsumerServiceURL="${base}/api/v1/sso/saml/acs"`, `<saml:Issuer>${base}/api/v1/sso/saml/metadata</saml:Issuer>`,
    'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"', `Destination="${idpBase}/saml2/idp/SSOService.php"`])
    if (!xml.includes(want)) throw new Error("the AuthnRequest lacks " + want + ": " + xml);
  if (!/ID="_[A-Za-z0-9_-]{43}"/.test(xml)) throw new Error("request ID: " + xml);
  if (!/^[A-Za-z0-9_-]{43}$/.test(loc.searchParams.get("RelayState"))) throw new Error("RelayState");
  if (!/vulcan_saml_state=.*HttpOnly; SameSite=Lax/.test(r.headers.get("set-cookie") || "")) throw new Error("cookie: " + r.headers.get("set-cookie"));
  for (const bad of ["https://evil.example.com/", "//evil.example.com", "#/x\"><script>"]) {
    const b = await fetch(base + "/api/v1/sso/saml/login?next=" + encodeURIComponent(bad), { redirect: "manual" });
    if (b.status !== 400) throw new Error(`next=${bad}: ${b.status}`);
  }
  const md = await fetch(base + "/api/v1/sso/saml/metadata");
  const mt = await md.text();
  if (md.status !== 200 || !mt.includes(`entityID="${base}/api/v1/sso/saml/metadata"`) || !mt.includes(`Location="${base}/api/v1/sso/saml/acs"`))
    throw new Error("SP metadata: " + md.status + " " + mt);
  const s = await (await fetch(base + "/api/v1/session")).json();
  if (JSON.stringify(s.sso) !== '["saml"]') throw new Error("session.sso: " + JSON.stringify(s.sso));
});

test("Log in with SAML: the IdP's own page, back in the console as alice, in team builders", async (page) => {
  page.on("request", (req) => {
    if (req.url() === base + "/api/v1/sso/saml/acs" && req.method() === "POST") ctx.acsBody = req.postData();
  });
  await page.goto(base + "/");
  await page.waitForSelector("#login-saml");
  if (await page.$("#login-sso")) throw new Error("an OIDC button without OIDC");
  await page.screenshot({ path: path.join(SHOTS, "saml-login.png"), fullPage: true });
  await page.click("#login-saml");
  await page.waitForURL((u) => u.href.startsWith(idpBase));
  await page.waitForSelector("input[name=username]");
  await page.screenshot({ path: path.join(SHOTS, "saml-idp.png"), fullPage: true });
  await page.fill("input[name=username]", "alice");
  await page.fill("input[name=password]", PASSWORD);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(base), { timeout: 30000 }), page.press("input[name=password]", "Enter")]);
  await page.waitForSelector("table.chains", { timeout: 20000 });
  const who = await page.textContent("#user .who");
  if (who.trim() !== "alice") throw new Error("the user menu says " + who);
  await page.screenshot({ path: path.join(SHOTS, "saml-logged-in.png"), fullPage: true });
  if (!ctx.acsBody) throw new Error("no ACS post seen");
  const b = await teamMembers("builders");
  if (!b || !b.includes("alice")) throw new Error("team builders: " + JSON.stringify(b));
  if ((await teamMembers("ops")).includes("alice")) throw new Error("alice is in ops");
  const alice = await page.evaluate(async () => (await fetch("/api/v1/user")).json());
  if (alice.login !== "alice" || alice.source !== "saml:" + idpEntity || alice.email !== "alice@example.com")
    throw new Error("user: " + JSON.stringify(alice));
  ctx.aliceId = alice.id;
  /* SimpleSAMLphp signed what vulcan accepted. */
  const resp = Buffer.from(new URLSearchParams(ctx.acsBody).get("SAMLResponse"), "base64").toString();
  if (!/<ds:Signature/.test(resp)) throw new Error("the IdP's Response is unsigned?");
});

test("hostile Responses are refused: replayed, unsigned, another key, wrapped, audience, expired, IDs, recipient, DTD", async () => {
  if (!ctx.acsBody) throw new Error("no ACS post seen");
  /* The IdP's real post again: its RelayState is used. */
  const again = await fetch(base + "/api/v1/sso/saml/acs", { method: "POST", body: ctx.acsBody, redirect: "manual",
    headers: { "Content-Type": "application/x-www-form-urlencoded" } });
  const at = await again.text();
  if (again.status !== 401 || !/unknown, used or expired RelayState/.test(at)) throw new Error("replay: " + again.status + " " + at);
  /* The same Response for a new pending login: InResponseTo names the old request. */
  const real = new URLSearchParams(ctx.acsBody).get("SAMLResponse");
  const l0 = await startLogin();
  const r0 = await postAcs(l0.relay, Buffer.from(real, "base64").toString());
  if (r0.status !== 401 || !/InResponseTo/.test(r0.text)) throw new Error("real Response, new login: " + r0.status + " " + r0.text);

  /* A well-formed one made here with the IdP's key is accepted: so the refusals below are
   * each the check they name. */
  const good = await startLogin();
  const shared = "_a" + crypto.randomBytes(16).toString("hex");
  const ok = await postAcs(good.relay, makeResponse(good, { assertionId: shared }));
  if (ok.status !== 303 || !ok.location.startsWith("/api/v1/sso/saml/finish?state=")) throw new Error("good: " + ok.status + " " + ok.text);
  /* Login CSRF: that verified login, finished by a browser without the state cookie. */
  const csrf = await fetch(base + ok.location, { redirect: "manual" });
  const ct = await csrf.text();
  if (csrf.status !== 401 || !/did not start/.test(ct)) throw new Error("login CSRF: " + csrf.status + " " + ct);

  await refused("unsigned", (l) => makeResponse(l, { unsigned: true }), /unsigned/);
  await refused("another key", (l) => makeResponse(l, { key: otherKey, cert: otherCert }), /does not verify with the IdP's certificate/);
  /* XSW: an evil assertion (ID of its own) in the Response, the signed one hidden in
   * Extensions; and the evil one taking the signed one's ID. */
  await refused("wrapped (hidden signed assertion)", (l) => makeResponse(l, { wrap: (s) => {
    const evil = s.replace(SIG_RE, "").replace(/ID="[^"]+"/, 'ID="_evil"').replace(/mallory/g, "admin");
    return `<samlp:Extensions>${s}</samlp:Extensions>` + evil;
  } }), /exactly one Assertion/);
  await refused("wrapped (duplicate ID)", (l) => makeResponse(l, { wrap: (s) => {
    const evil = s.replace(SIG_RE, "").replace(/mallory/g, "admin");
    const sigOnly = SIG_RE.exec(s)[0];
    return evil.replace("</saml:Issuer>", "</saml:Issuer>" + sigOnly.replace(/<\/SignatureValue>/, "</SignatureValue><Object>" + s + "</Object>"));
  } }), /exactly one Assertion/);
  /* A genuine IdP signature over another element (Extensions), put into an unsigned
   * evil assertion: it verifies, but does not cover the assertion. */
  await refused("a signature of another element", (l) => makeResponse(l, { unsigned: true, nameId: "admin", wrap: (s) => {
    const ext = `<samlp:Extensions xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_ext${crypto.randomBytes(8).toString("hex")}"><samlp:Note/></samlp:Extensions>`;
    const sig = new SignedXml({ privateKey: idpKey, publicCert: idpCert,
      signatureAlgorithm: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
      canonicalizationAlgorithm: "http://www.w3.org/2001/10/xml-exc-c14n#" });
    sig.addReference({ xpath: "//*[local-name(.)='Extensions']", digestAlgorithm: "http://www.w3.org/2001/04/xmlenc#sha256",
      transforms: ["http://www.w3.org/2000/09/xmldsig#enveloped-signature", "http://www.w3.org/2001/10/xml-exc-c14n#"] });
    sig.computeSignature(ext, { location: { reference: "//*[local-name(.)='Note']", action: "after" } });
    const signedExt = sig.getSignedXml();
    const sigXml = SIG_RE.exec(signedExt)[0];
    return signedExt.replace(SIG_RE, "") + s.replace("</saml:Issuer>", "</saml:Issuer>" + sigXml);
  } }), /does not cover exactly the signed element/);
  await refused("tampered after signing", (l) => makeResponse(l, { wrap: (s) => s.replace(/mallory/g, "admin") }), /does not verify/);
  await refused("wrong audience", (l) => makeResponse(l, { audience: "https://other-sp.example.com/" }), /Audience/);
  await refused("expired", (l) => makeResponse(l, { expired: true }), /expired/);
  await refused("assertion ID used before", (l) => makeResponse(l, { assertionId: shared }), /used before/);
  await refused("InResponseTo unknown", (l) => makeResponse(l, { inResponseTo: "_" + "x".repeat(43) }), /InResponseTo/);
  await refused("recipient elsewhere", (l) => makeResponse(l, { recipient: "https://other-sp.example.com/acs" }), /Recipient/);
  await refused("a DTD", (l) => makeResponse(l, { dtd: '<!DOCTYPE r [<!ENTITY e "x">]>' }), /DTD/);
  await refused("made-up RelayState", (l) => makeResponse(l), /RelayState/, { relay: "y".repeat(43), id: "_x" });
  /* A form post the console's JSON rules would refuse: here it reached the checks above
   * with Origin: the IdP's. The body is bounded. */
  const big = await fetch(base + "/api/v1/sso/saml/acs", { method: "POST", body: "SAMLResponse=" + "A".repeat(600 * 1024),
    headers: { "Content-Type": "application/x-www-form-urlencoded" } });
  if (big.status !== 413) throw new Error("600 KiB form: " + big.status);
});

test("the next SAML login sets the teams to exactly the groups attribute", async (page) => {
  const put = await api("PUT", "/orgs/default/teams/ops/members/alice");
  if (put.status >= 300) throw new Error("add to ops: " + put.status + " " + JSON.stringify(put.body));
  if (!(await teamMembers("ops")).includes("alice")) throw new Error("not added to ops");
  await page.context().clearCookies({ name: "vulcan_session" });
  await page.goto(base + "/#/login");
  await page.waitForSelector("#login-saml");
  await page.click("#login-saml");
  /* The IdP remembers alice (its session): straight back, or its login page again. */
  await waitFor("the console or the IdP's page", async () =>
    (await page.$("table.chains")) || (await page.$("input[name=username]")), 30000, 200);
  if (!(await page.$("table.chains"))) {
    await page.fill("input[name=username]", "alice");
    await page.fill("input[name=password]", PASSWORD);
    await page.press("input[name=password]", "Enter");
    await page.waitForSelector("table.chains", { timeout: 20000 });
  }
  if ((await teamMembers("ops")).includes("alice")) throw new Error("alice is still in ops");
  if (!(await teamMembers("builders")).includes("alice")) throw new Error("alice left builders");
  const again = await page.evaluate(async () => (await fetch("/api/v1/user")).json());
  if (again.id !== ctx.aliceId) throw new Error("another user: " + JSON.stringify(again));
});

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  tmp = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), "vulcan-saml-"));
  const port = await freePort(), idpPort = await freePort();
  base = `http://127.0.0.1:${port}`;
  idpBase = `http://127.0.0.1:${idpPort}`;
  idpEntity = idpBase + "/saml2/idp/metadata.php";
  const data = path.join(tmp, "data");
  let idp, server, browser;
  let failed = 0;
  const t0 = Date.now();
  const idpDir = path.join(tmp, "idp");
  try {
    [idpKey, idpCert] = keyPair("idp");
    [otherKey, otherCert] = keyPair("other");
    writeIdpConfig(idpDir, idpPort);
    const ilog = fs.openSync(path.join(tmp, "php.log"), "w");
    idp = spawn("php", ["-S", `127.0.0.1:${idpPort}`, "-t", SSP + "/www"], {
      stdio: ["ignore", ilog, ilog], env: { ...process.env, SIMPLESAMLPHP_CONFIG_DIR: path.join(idpDir, "config") } });
    const md = await waitFor("the IdP's metadata", async () => {
      const r = await fetch(idpEntity);
      const t = await r.text();
      return r.ok && t.includes("IDPSSODescriptor") ? t : null;
    }, 20000, 200);
    fs.writeFileSync(path.join(tmp, "idp-metadata.xml"), md);
    const log = fs.openSync(path.join(tmp, "server.log"), "w");
    server = spawn(BIN, ["server", "--require-auth", "--listen", `127.0.0.1:${port}`, "--data-dir", data,
      "--log-format", "text", "--saml-idp-metadata", path.join(tmp, "idp-metadata.xml")], { stdio: ["ignore", log, log] });
    await waitFor("the server", async () => (await fetch(base + "/health/ready")).ok, 20000, 100);
    writeSpRemote(idpDir, base + "/api/v1/sso/saml/metadata", base + "/api/v1/sso/saml/acs");
    token = fs.readFileSync(path.join(data, "initial-admin-token"), "utf8").trim();
    for (const name of ["builders", "ops"]) {
      const r = await api("POST", "/orgs/default/teams", { name });
      if (r.status !== 201 && r.status !== 200) throw new Error("team " + name + ": " + r.status + " " + JSON.stringify(r.body));
    }
    browser = await chromium.launchPersistentContext(path.join(tmp, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"],
      viewport: { width: 1280, height: 860 },
    });
    for (const t of tests) {
      const page = await browser.newPage();
      const errors = [];
      page.on("pageerror", (e) => errors.push(e.message));
      page.setDefaultTimeout(15000);
      const s = Date.now();
      try {
        await t.fn(page);
        if (errors.length) throw new Error("errors in the page: " + errors.join("; "));
        console.log(`ok   ${t.name} (${Date.now() - s} ms)`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${t.name}: ${e.message}`);
        await page.screenshot({ path: path.join(SHOTS, "saml-failure-" + tests.indexOf(t) + ".png") }).catch(() => {});
      }
      await page.close();
    }
  } catch (e) {
    failed = tests.length;
    console.log("FAIL setup: " + e.message);
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (server) {
      server.kill("SIGTERM");
      await new Promise((r) => { const t = setTimeout(() => { server.kill("SIGKILL"); r(); }, 15000); server.on("exit", () => { clearTimeout(t); r(); }); });
    }
    if (idp) idp.kill("SIGTERM");
    const logPath = path.join(tmp, "server.log");
    const text = fs.existsSync(logPath) ? fs.readFileSync(logPath, "utf8") : "";
    if (/vk_(ses|pat|reg|wrk|job)_[0-9A-Za-z]{20}/.test(text)) { failed++; console.log("FAIL a token is in the server log"); }
    if (failed) {
      console.log("server log:\n" + text.split("\n").slice(-40).join("\n"));
      for (const f of [path.join(tmp, "php.log"), path.join(idpDir, "log", "idp.log")])
        if (fs.existsSync(f)) console.log(f + ":\n" + fs.readFileSync(f, "utf8").split("\n").filter((l) => !/Accepted|Closing/.test(l)).slice(-30).join("\n"));
    }
    if (!process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`${tests.length - failed}/${tests.length} passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  process.exit(failed ? 1 : 0);
}
main();
