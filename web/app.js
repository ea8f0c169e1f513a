/*
 * Vulcan CI console: a small single-page app over the JSON API.
 *
 * Pages (hash routes, so every view has a link and the server serves one file):
 *   #/chains                      chains, newest first, refreshed every 2 s
 *   #/chains/ID                   a chain: its fragment tree, cancel, rerun
 *   #/chains/ID/log/FRAG[/LN]     a fragment's log, streamed (Server-Sent Events)
 *   #/fragments/FRAG[/LN]         the same without the chain context
 *   #/workers                     workers, refreshed every 3 s
 *   #/repos                       repositories, badges, manual-trigger forms
 *   #/login                       the login form (a server with --require-auth)
 *   #/tokens                      the user's personal access tokens (with --require-auth)
 *   #/org/ORG/members             teams and members; grants and worker registration
 *                                 tokens for the org's admins (with --require-auth)
 *   #/settings                    goes to the first org's page
 *
 * Sessions: with --require-auth the console logs in with POST /api/v1/login, which sets
 * the HttpOnly session cookie; the CSRF token it answers (and GET /api/v1/session
 * repeats after a reload) goes with every state-changing call as X-CSRF-Token. Nothing
 * is kept in localStorage. A 401 from any call shows the login form.
 *
 * DOM is built with h() and textContent only: nothing from the API is ever
 * parsed as HTML. Timers and streams belong to the current page and are
 * stopped when the route changes.
 */
"use strict";
(function () {
  var API = "/api/v1";
  var FINAL_CHAIN = { completed: 1, failed: 1, cancelled: 1 };
  var FINAL_FRAG = { completed: 1, failed: 1, skipped: 1, cancelled: 1 };
  var main = document.getElementById("main");
  var page = null; /* {timers: [], streams: [], gone: bool} of the current view */
  var session = { authenticated: false, require_auth: false }; /* GET /api/v1/session */

  /* ------------------------------------------------------------ helpers */

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") el.textContent = v;
        else if (k === "class") el.className = v;
        else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? "" : v);
      });
    }
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  function add(el, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { add(el, x); }); return; }
    el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

  function api(method, path, body) {
    var opts = { method: method, headers: { "Accept": "application/json" },
      credentials: "same-origin" };
    if (method !== "GET" && session.csrf_token) opts.headers["X-CSRF-Token"] = session.csrf_token;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(API + path, opts).then(function (r) {
      setConn(true);
      return r.text().then(function (t) {
        var data = null;
        try { data = t ? JSON.parse(t) : null; } catch (e) { data = { message: t }; }
        if (!r.ok) {
          var err = new Error((data && data.message) || ("HTTP " + r.status));
          err.status = r.status;
          if (r.status === 401 && path !== "/login" && location.hash.indexOf("#/login") !== 0) {
            session.authenticated = false;
            location.hash = "#/login?next=" + encodeURIComponent(location.hash || "#/chains");
          }
          throw err;
        }
        return data;
      });
    }, function (e) { setConn(false); throw e; });
  }

  function setConn(ok) {
    var c = document.getElementById("conn");
    c.textContent = ok ? "" : "server unreachable, retrying…";
    c.className = ok ? "conn" : "conn bad";
  }

  function every(ms, fn) {
    var p = page, busy = false;
    function tick() {
      if (p.gone || busy || document.hidden) return;
      busy = true;
      Promise.resolve().then(fn).catch(function () {}).then(function () { busy = false; });
    }
    p.timers.push(setInterval(tick, ms));
  }

  function shortId(id) { return id ? id.slice(-8) : ""; }
  function parseTime(s) { return s ? Date.parse(s) : 0; }
  function fmtDur(ms) {
    if (ms === null || ms === undefined || ms < 0) return "–";
    var s = Math.round(ms / 100) / 10;
    if (s < 60) return s.toFixed(1) + "s";
    var m = Math.floor(s / 60), r = Math.round(s - m * 60);
    if (m < 60) return m + "m " + r + "s";
    return Math.floor(m / 60) + "h " + (m % 60) + "m";
  }
  function fragDur(f) {
    var a = parseTime(f.started_at), b = parseTime(f.finished_at) || (a ? Date.now() : 0);
    return a ? fmtDur(b - a) : "–";
  }
  function ago(s) {
    var t = parseTime(s);
    if (!t) return "never";
    var d = Math.max(0, Date.now() - t);
    if (d < 60000) return Math.round(d / 1000) + "s ago";
    if (d < 3600000) return Math.round(d / 60000) + "m ago";
    if (d < 86400000) return Math.round(d / 3600000) + "h ago";
    return new Date(t).toISOString().slice(0, 16).replace("T", " ");
  }
  function when(s) {
    var t = parseTime(s);
    return t ? h("time", { datetime: s, title: s, text: ago(s) }) : "–";
  }
  function badge(status) {
    return h("span", { class: "badge st-" + status, "data-status": status, text: status });
  }
  function basename(p) { return p ? String(p).split("/").pop() : ""; }
  function repoName(url) {
    if (!url) return "–";
    return String(url).replace(/^[a-z]+:\/\/[^/]*\//, "").replace(/\.git$/, "");
  }
  function errorBox(e, what) {
    return h("p", { class: "notice bad", role: "alert" },
      (what ? what + ": " : "") + (e && e.message ? e.message : String(e)));
  }
  function safeDecode(s) { try { return decodeURIComponent(s); } catch (e) { return s; } }
  function title(t) { document.title = t + " · Vulcan CI"; }

  /* ------------------------------------------------------------ chains list */

  function chainsPage(query) {
    title("Chains");
    var filters = {
      status: query.get("status") || "", repository: query.get("repository") || "",
      branch: query.get("branch") || "", trigger: query.get("trigger") || ""
    };
    var form = h("form", { class: "filters", role: "search", onsubmit: function (ev) {
      ev.preventDefault();
      var q = new URLSearchParams();
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name && el.value) q.set(el.name, el.value);
      });
      location.hash = "#/chains" + (q.toString() ? "?" + q : "");
    } },
      h("label", null, "Status ", h("select", { name: "status" },
        ["", "pending", "running", "completed", "failed", "cancelled"].map(function (s) {
          return h("option", { value: s, selected: s === filters.status, text: s || "any" });
        }))),
      h("label", null, "Branch ", h("input", { name: "branch", value: filters.branch, size: 12 })),
      h("label", null, "Trigger ", h("input", { name: "trigger", value: filters.trigger, size: 10 })),
      filters.repository ? h("input", { type: "hidden", name: "repository", value: filters.repository }) : null,
      h("button", { type: "submit" }, "Filter"),
      (filters.status || filters.branch || filters.trigger || filters.repository)
        ? h("a", { href: "#/chains", class: "button-link" }, "Clear") : null);
    var tbody = h("tbody");
    var table = h("table", { class: "chains", "aria-label": "Chains" },
      h("thead", null, h("tr", null,
        h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Chain"),
        h("th", { scope: "col", class: "opt" }, "Repository"), h("th", { scope: "col" }, "Branch"),
        h("th", { scope: "col", class: "opt" }, "Trigger"), h("th", { scope: "col", class: "opt" }, "Created"),
        h("th", { scope: "col", class: "num" }, "Duration"))),
      tbody);
    var more = h("button", { type: "button", hidden: true }, "Older chains");
    var status = h("p", { class: "muted", role: "status" });
    clear(main);
    add(main, [h("h1", null, "Chains"), form, h("div", { class: "scroll" }, table), more, status]);

    var extra = []; /* rows of older pages, loaded on demand */
    var next = null;
    function qs(cursor) {
      var q = new URLSearchParams();
      Object.keys(filters).forEach(function (k) { if (filters[k]) q.set(k, filters[k]); });
      q.set("limit", "50");
      if (cursor) q.set("cursor", cursor);
      return "?" + q;
    }
    function row(c) {
      var name = basename(c.source_file) || shortId(c.id);
      return h("tr", { "data-chain-id": c.id, "data-status": c.status },
        h("td", null, badge(c.status)),
        h("td", null, h("a", { href: "#/chains/" + c.id, title: c.id }, name),
          h("span", { class: "muted small" }, " " + shortId(c.id))),
        h("td", { class: "opt" }, repoName(c.repository_url)),
        h("td", null, c.branch || "–"),
        h("td", { class: "opt" }, c.trigger || "–"),
        h("td", { class: "opt" }, when(c.created_at)),
        h("td", { class: "num" }, fmtDur(c.duration_ms)));
    }
    function render(first) {
      clear(tbody);
      first.concat(extra).forEach(function (c) { tbody.appendChild(row(c)); });
      if (!tbody.firstChild)
        tbody.appendChild(h("tr", null, h("td", { colspan: 7, class: "muted" },
          "No chains yet. Submit one with 'vulcan submit FILE' or from the Repositories page.")));
    }
    var firstPage = [];
    function load() {
      return api("GET", "/chains" + qs(null)).then(function (d) {
        firstPage = d.chains;
        if (!extra.length) next = d.next_cursor;
        more.hidden = !next;
        status.textContent = "Updated " + new Date().toLocaleTimeString();
        render(firstPage);
      }, function (e) { status.textContent = ""; status.appendChild(errorBox(e, "cannot list chains")); });
    }
    more.addEventListener("click", function () {
      if (!next) return;
      api("GET", "/chains" + qs(next)).then(function (d) {
        extra = extra.concat(d.chains);
        next = d.next_cursor;
        more.hidden = !next;
        render(firstPage);
      });
    });
    load();
    every(2000, load);
  }

  /* ------------------------------------------------------------ one chain */

  function chainPage(id) {
    title("Chain " + shortId(id));
    var head = h("div", { class: "chain-head" });
    var tree = h("div", { class: "tree", "aria-label": "Fragments" });
    var graph = h("div", { class: "needs-box" });
    var msg = h("div", { role: "status", "aria-live": "polite" });
    clear(main);
    add(main, [h("p", { class: "crumbs" }, h("a", { href: "#/chains" }, "Chains"), " / ", shortId(id)),
      head, msg, graph, tree]);
    var last = null;
    var opened = {}; /* matrix group id -> expanded: kept across the page's refreshes */

    function act(kind) {
      var btn = head.querySelector("[data-action=" + kind + "]");
      if (btn) btn.disabled = true;
      if (kind === "cancel" && !window.confirm("Cancel this chain? Running fragments are stopped."))
        { if (btn) btn.disabled = false; return; }
      api("POST", "/chains/" + id + "/" + kind).then(function (d) {
        clear(msg);
        if (kind === "rerun") location.hash = "#/chains/" + d.chain_id;
        else { msg.appendChild(h("p", { class: "notice" }, "Chain cancelled.")); load(); }
      }, function (e) { clear(msg); msg.appendChild(errorBox(e, kind + " failed")); if (btn) btn.disabled = false; });
    }

    function renderHead(c) {
      clear(head);
      var running = !FINAL_CHAIN[c.status];
      var may = c.actions || { cancel: true, rerun: true }; /* the caller's role, from the server */
      add(head, [
        h("h1", null, basename(c.source_file) || "Chain", " ", badge(c.status)),
        h("dl", { class: "meta" },
          h("dt", null, "Chain"), h("dd", null, h("code", null, c.id)),
          c.repository_url ? [h("dt", null, "Repository"), h("dd", null, repoName(c.repository_url))] : null,
          h("dt", null, "Branch"), h("dd", null, c.branch || "–"),
          c.commit_sha ? [h("dt", null, "Commit"), h("dd", null, h("code", null, c.commit_sha.slice(0, 12)))] : null,
          h("dt", null, "Trigger"), h("dd", null, c.trigger || "–"),
          h("dt", null, "Created"), h("dd", null, when(c.created_at)),
          h("dt", null, "Duration"), h("dd", null, fmtDur(c.duration_ms)),
          c.error ? [h("dt", null, "Error"), h("dd", { class: "bad" }, c.error)] : null),
        h("div", { class: "actions" },
          running && may.cancel ? h("button", { type: "button", class: "danger", "data-action": "cancel",
            onclick: function () { act("cancel"); } }, "Cancel") : null,
          may.rerun ? h("button", { type: "button", "data-action": "rerun",
            onclick: function () { act("rerun"); } }, "Rerun") : null)]);
    }

    /* `when` and `allow-failure` as badges, `max-parallel` and `fail-fast #false` as a
     * note, each only when not the default. */
    function policyNote(f) {
      var bits = [];
      if (f.max_parallel) bits.push("max " + f.max_parallel + " at once");
      if (f.fail_fast === false) bits.push("no fail-fast");
      var pills = [];
      if (f.when && f.when !== "success")
        pills.push(h("span", { class: "pill", "data-badge": "when", title: f.when === "failure"
          ? "runs only once something has failed" : "runs whether or not something failed" }, "when " + f.when));
      if (f.allow_failure)
        pills.push(h("span", { class: "pill", "data-badge": "allow-failure",
          title: "its failure fails neither its group nor the chain" },
          f.status === "failed" ? "failure allowed" : "may fail"));
      if (!bits.length && !pills.length) return null;
      return h("span", { class: "policy", "data-policy": bits.join(", ") }, pills,
        bits.length ? h("span", { class: "muted small" }, " " + bits.join(" · ")) : null);
    }

    /* Why a fragment was skipped: `skip_reason` when the server gives one, else its
     * error ("skipped: `build` failed"). */
    function skipReason(f) {
      if (f.status !== "skipped") return null;
      if (f.skip_reason) return f.skip_reason;
      return f.error && f.error.indexOf("skipped: ") === 0 ? f.error.slice(9) : null;
    }
    function skipNote(f) {
      var why = skipReason(f);
      return why ? h("p", { class: "skip-reason small", "data-skip-reason": why }, "Skipped: " + why) : null;
    }
    /* The error, unless it is only the skip reason shown already. */
    function errorNote(f) {
      return f.error && !skipReason(f) ? h("p", { class: "bad small" }, f.error) : null;
    }
    /* What the fragment needs (names, as in the workflow): each a button to the fragment. */
    function needsNote(f) {
      var needs = Array.isArray(f.needs) ? f.needs : [];
      if (!needs.length) return null;
      return h("p", { class: "needs small", "data-needs": needs.join(",") }, "needs ",
        needs.map(function (n, i) {
          return [i ? ", " : "", h("button", { type: "button", class: "link", "data-need": n,
            onclick: function () { showFrag(n); } }, n)];
        }));
    }
    function showFrag(name) {
      var el = Array.prototype.filter.call(tree.querySelectorAll("[data-fragment-name]"), function (x) {
        return x.getAttribute("data-fragment-name") === name;
      })[0];
      if (!el) return;
      el.scrollIntoView({ block: "center" });
      el.classList.add("flash");
      setTimeout(function () { el.classList.remove("flash"); }, 1500);
    }
    /* The fragment's outputs: a table of names and values (masked by the server already). */
    function outputsNote(f) {
      var o = f.outputs && typeof f.outputs === "object" ? f.outputs : null;
      var keys = o ? Object.keys(o) : [];
      if (!keys.length) return null;
      return h("table", { class: "outputs small", "aria-label": "Outputs of " + (f.name || "the fragment") },
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Output"), h("th", { scope: "col" }, "Value"))),
        h("tbody", null, keys.map(function (k) {
          return h("tr", { "data-output": k }, h("th", { scope: "row" }, h("code", null, k)),
            h("td", null, h("code", null, o[k] === null || o[k] === undefined ? "" : String(o[k]))));
        })));
    }
    /* A matrix copy's combination: cc=gcc · os=deb. */
    function matrixNote(f) {
      var mv = f.matrix_values && typeof f.matrix_values === "object" ? f.matrix_values : null;
      var keys = mv ? Object.keys(mv) : [];
      if (!keys.length) return null;
      return h("span", { class: "mv small" }, keys.map(function (k) {
        return h("span", { class: "chip", "data-mv": k }, k + "=" + mv[k]);
      }));
    }
    var STATUS_ORDER = ["completed", "failed", "running", "ready", "pending", "skipped", "cancelled"];
    /* "4 completed, 1 failed, 1 skipped" of a matrix's copies. */
    function countLine(kids) {
      var n = {};
      kids.forEach(function (k) { n[k.status] = (n[k.status] || 0) + 1; });
      return STATUS_ORDER.concat(Object.keys(n).filter(function (s) { return STATUS_ORDER.indexOf(s) < 0; }))
        .filter(function (s) { return n[s]; }).map(function (s) { return n[s] + " " + s; }).join(", ");
    }

    /* A matrix: one row "test — matrix of 6: 4 completed, 1 failed, 1 skipped" that
     * expands into its copies (folded at first; the choice survives refreshes). */
    function matrixNode(f) {
      var kids = f.children || [];
      var open = !!opened[f.id];
      var listId = "mx-" + f.id;
      var list = h("div", { class: "kids par matrix-copies", id: listId, hidden: !open });
      kids.forEach(function (k) { list.appendChild(fragNode(k)); });
      var summary = (f.name || "matrix") + " — matrix of " + kids.length + ": " + countLine(kids);
      var toggle = h("button", { type: "button", class: "matrix-toggle", "aria-expanded": open ? "true" : "false",
        "aria-controls": listId, onclick: function () {
          opened[f.id] = !opened[f.id];
          list.hidden = !opened[f.id];
          toggle.setAttribute("aria-expanded", opened[f.id] ? "true" : "false");
        } }, h("span", { class: "caret", "aria-hidden": "true" }), h("span", { class: "matrix-summary" }, summary));
      return h("section", { class: "group matrix", "data-fragment-id": f.id, "data-status": f.status,
        "data-fragment-name": f.name || "", "data-matrix": kids.length },
        h("div", { class: "group-head" },
          h("span", { class: "kind" }, "matrix"), toggle, " ", badge(f.status),
          policyNote(f),
          h("span", { class: "muted small" }, " " + fragDur(f))),
        needsNote(f), skipNote(f), errorNote(f), outputsNote(f),
        list);
    }

    function fragNode(f) {
      if (f.type === "group" && f.matrix) return matrixNode(f);
      if (f.type === "group") {
        var kids = h("div", { class: f.is_parallel ? "kids par" : "kids seq" });
        (f.children || []).forEach(function (k) { kids.appendChild(fragNode(k)); });
        return h("section", { class: "group", "data-fragment-id": f.id, "data-status": f.status,
          "data-fragment-name": f.name || "" },
          h("div", { class: "group-head" },
            h("span", { class: "kind" }, f.is_parallel ? "parallel" : "group"),
            f.name ? h("strong", null, f.name) : null, " ", badge(f.status),
            policyNote(f), matrixNote(f),
            h("span", { class: "muted small" }, " " + fragDur(f))),
          needsNote(f), skipNote(f), errorNote(f), outputsNote(f),
          kids);
      }
      var logHref = "#/chains/" + id + "/log/" + f.id;
      var started = f.status !== "pending" && f.status !== "ready" && f.status !== "skipped" &&
        !(f.status === "cancelled" && !f.started_at);
      return h("article", { class: "frag st-" + f.status, "data-fragment-id": f.id, "data-status": f.status,
        "data-fragment-name": f.name || "" },
        h("div", { class: "frag-head" },
          started ? h("a", { href: logHref, class: "frag-name" }, f.name || "fragment")
            : h("span", { class: "frag-name" }, f.name || "fragment"),
          badge(f.status)),
        h("div", { class: "frag-meta small" },
          h("span", { title: "duration" }, fragDur(f)),
          f.attempt > 1 ? h("span", { title: "attempt" }, "attempt " + f.attempt) : null,
          f.exit_code !== null && f.exit_code !== undefined ? h("span", null, "exit " + f.exit_code) : null,
          f.worker_id ? h("a", { href: "#/workers", title: f.worker_id }, "worker " + shortId(f.worker_id)) : null,
          f.machine ? h("span", { class: "muted" }, f.machine) : null,
          policyNote(f), matrixNote(f)),
        needsNote(f),
        f.waiting_reason ? h("p", { class: "waiting small" }, f.waiting_reason) : null,
        skipNote(f), errorNote(f), outputsNote(f));
    }

    /* The `needs` graph: every fragment that needs another or is needed, in layers. A
     * matrix is one node (its copies are not named in `needs`). */
    function renderGraph(c) {
      clear(graph);
      var all = [];
      (function walk(list, inMatrix) {
        (list || []).forEach(function (f) {
          if (!inMatrix) all.push(f);
          walk(f.children, inMatrix || !!f.matrix);
        });
      })(c.fragments, false);
      var edges = [], used = {};
      all.forEach(function (f) {
        (Array.isArray(f.needs) ? f.needs : []).forEach(function (n) {
          if (!f.name) return;
          edges.push([n, f.name]);
          used[n] = used[f.name] = true;
        });
      });
      if (!edges.length) return;
      var seen = {}, nodes = [];
      all.forEach(function (f) {
        if (f.name && used[f.name] && !seen[f.name]) { seen[f.name] = 1; nodes.push({ name: f.name, status: f.status }); }
      });
      add(graph, h("section", { class: "card needs-graph", "aria-labelledby": "needs-h" },
        h("h2", { id: "needs-h" }, "Needs"),
        h("div", { class: "needs-scroll" }, window.VulcanGraph.svg(nodes, edges,
          { title: "what each fragment needs: " + edges.map(function (e) { return e[1] + " needs " + e[0]; }).join("; ") }))));
    }

    function load() {
      return api("GET", "/chains/" + id).then(function (c) {
        last = c;
        renderHead(c);
        renderGraph(c);
        clear(tree);
        var top = h("div", { class: "kids seq" });
        c.fragments.forEach(function (f) { top.appendChild(fragNode(f)); });
        tree.appendChild(top);
      }, function (e) {
        clear(tree);
        tree.appendChild(errorBox(e, e.status === 404 ? "no such chain" : "cannot load the chain"));
      });
    }
    load();
    every(1500, function () {
      if (last && FINAL_CHAIN[last.status] && !hasRunning(last.fragments)) return null;
      return load();
    });
  }

  function hasRunning(list) {
    return (list || []).some(function (f) {
      return f.status === "running" || hasRunning(f.children);
    });
  }
  function findFrag(list, fid) {
    for (var i = 0; list && i < list.length; i++) {
      if (list[i].id === fid) return list[i];
      var r = findFrag(list[i].children, fid);
      if (r) return r;
    }
    return null;
  }

  /* ------------------------------------------------------------ a fragment's log */

  function logPage(chainId, fid, line) {
    title("Log " + shortId(fid));
    var base = chainId ? "#/chains/" + chainId + "/log/" + fid : "#/fragments/" + fid;
    var info = h("div", { class: "log-head" });
    var state = h("span", { class: "log-state", role: "status", "aria-live": "polite" }, "connecting…");
    var followBtn = h("button", { type: "button", hidden: true }, "Follow the end");
    var box = h("div", { class: "log", tabindex: 0, role: "log", "aria-label": "Log output" });
    clear(main);
    add(main, [
      h("p", { class: "crumbs" }, h("a", { href: "#/chains" }, "Chains"), " / ",
        chainId ? [h("a", { href: "#/chains/" + chainId }, shortId(chainId)), " / "] : null, "log"),
      info, h("div", { class: "log-tools" }, state, followBtn), box]);

    if (chainId) {
      api("GET", "/chains/" + chainId).then(function (c) {
        var f = findFrag(c.fragments, fid);
        if (!f) return;
        headBadge = badge(lastStatus || f.status);
        add(info, h("h1", null, f.name || "fragment", " ", headBadge));
        title((f.name || "fragment") + " log");
      }).catch(function () {});
    }

    var headBadge = null, lastStatus = null;
    function showStatus(st) {
      lastStatus = st;
      if (!headBadge) return;
      var b = badge(st);
      headBadge.replaceWith(b);
      headBadge = b;
    }
    var ansi = new window.VulcanAnsi.State();
    var n = 0, partial = "", partialEl = null, follow = !line, lastAttempt = 0;
    function lineEl(num) {
      var el = h("div", { class: "line", id: "L" + num },
        h("a", { class: "ln", href: base + "/L" + num, tabindex: -1, "aria-label": "line " + num }, String(num)));
      return el;
    }
    function append(text) {
      var frag = document.createDocumentFragment();
      var s = partial + text;
      var parts = s.split("\n");
      partial = parts.pop();
      if (partialEl) { partialEl.remove(); partialEl = null; }
      var saved = null;
      parts.forEach(function (p) {
        n++;
        var el = lineEl(n), code = h("span", { class: "txt" });
        ansi.renderLine(p, code);
        el.appendChild(code);
        frag.appendChild(el);
      });
      if (partial) {
        /* Show an unfinished line now, with a copy of the colour state so its rest renders right. */
        saved = Object.assign(new window.VulcanAnsi.State(), ansi);
        partialEl = lineEl(n + 1);
        var code = h("span", { class: "txt" });
        saved.renderLine(partial, code);
        partialEl.appendChild(code);
        frag.appendChild(partialEl);
      }
      box.appendChild(frag);
      if (follow) box.scrollTop = box.scrollHeight;
      else if (line && n >= line) highlight();
    }
    var highlighted = false;
    function highlight() {
      if (highlighted) return;
      var el = document.getElementById("L" + line);
      if (!el) return;
      highlighted = true;
      el.classList.add("hl");
      el.scrollIntoView({ block: "center" });
    }
    box.addEventListener("scroll", function () {
      var atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 40 ||
        box.scrollHeight <= box.clientHeight;
      follow = atEnd;
      followBtn.hidden = atEnd;
    });
    followBtn.addEventListener("click", function () {
      follow = true; followBtn.hidden = true; box.scrollTop = box.scrollHeight; box.focus();
    });

    var es = new EventSource(API + "/fragments/" + fid + "/log?follow=1");
    page.streams.push(es);
    es.addEventListener("status", function (ev) {
      var d = JSON.parse(ev.data);
      state.textContent = "attempt " + d.attempt + ": " + d.status +
        (d.exit_code !== null && d.exit_code !== undefined ? " (exit " + d.exit_code + ")" : "") +
        (FINAL_FRAG[d.status] ? "" : ", streaming…");
      state.setAttribute("data-status", d.status);
      showStatus(d.status);
    });
    es.addEventListener("attempt", function (ev) {
      var d = JSON.parse(ev.data);
      if (d.attempt !== lastAttempt) {
        if (partial) append("\n");
        box.appendChild(h("div", { class: "attempt-sep" }, "— attempt " + d.attempt + " —"));
        lastAttempt = d.attempt;
      }
    });
    es.addEventListener("log", function (ev) {
      var d = JSON.parse(ev.data);
      lastAttempt = d.attempt;
      append(d.text);
    });
    es.addEventListener("end", function (ev) {
      var d = JSON.parse(ev.data);
      es.close();
      if (partial) { var p = partial; partial = ""; if (partialEl) { partialEl.remove(); partialEl = null; } append(p + "\n"); }
      state.textContent = "attempt " + d.attempt + ": " + d.status + " · " + n + " lines · " + d.offset + " bytes";
      state.setAttribute("data-status", d.status);
      showStatus(d.status);
      box.setAttribute("data-ended", "1");
      if (line) highlight();
    });
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) state.textContent = "the log stream is closed";
      else state.textContent = "reconnecting…";
    };
  }

  /* ------------------------------------------------------------ workers */

  function workersPage() {
    title("Workers");
    var tbody = h("tbody");
    var status = h("p", { class: "muted", role: "status" });
    clear(main);
    add(main, [h("h1", null, "Workers"), h("div", { class: "scroll" }, h("table", { class: "workers", "aria-label": "Workers" },
      h("thead", null, h("tr", null, h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Name"),
        h("th", { scope: "col" }, "Groups"), h("th", { scope: "col" }, "Heartbeat"),
        h("th", { scope: "col" }, "Current work"), h("th", { scope: "col", class: "opt" }, "Version"))),
      tbody)), status]);
    function load() {
      return api("GET", "/workers").then(function (d) {
        clear(tbody);
        d.workers.forEach(function (w) {
          tbody.appendChild(h("tr", { "data-worker-id": w.id },
            h("td", null, badge(w.status)),
            h("td", { title: w.id }, w.name || shortId(w.id)),
            h("td", null, (w.machine_groups || []).join(", ")),
            h("td", null, when(w.last_heartbeat)),
            h("td", null, w.current_fragment_id
              ? h("a", { href: "#/fragments/" + w.current_fragment_id }, "fragment " + shortId(w.current_fragment_id))
              : h("span", { class: "muted" }, "idle")),
            h("td", { class: "opt" }, w.version || "–")));
        });
        if (!d.workers.length)
          tbody.appendChild(h("tr", null, h("td", { colspan: 6, class: "muted" },
            "No worker has registered. Start one with 'vulcan worker --server URL --group default'.")));
        status.textContent = "Updated " + new Date().toLocaleTimeString();
      }, function (e) { clear(tbody); status.textContent = ""; status.appendChild(errorBox(e, "cannot list workers")); });
    }
    load();
    every(3000, load);
  }

  /* ------------------------------------------------------------ repositories */

  function reposPage() {
    title("Repositories");
    var list = h("div", { class: "repos" });
    clear(main);
    add(main, [h("h1", null, "Repositories"), list]);
    api("GET", "/repos").then(function (d) {
      var repos = d.repos || [];
      if (!repos.length) {
        list.appendChild(h("p", { class: "muted" }, "No repository is registered yet (POST /api/v1/repos)."));
        return;
      }
      repos.forEach(function (r) { list.appendChild(repoCard(r)); });
    }, function (e) {
      list.appendChild(errorBox(e, e.status === 404 || e.status === 405
        ? "this server has no repositories API" : "cannot list repositories"));
    });
  }

  function repoCard(r) {
    var branch = r.default_branch || "main";
    var badgeUrl = API + "/repos/" + r.id + "/badge.svg?branch=" + encodeURIComponent(branch);
    var formBox = h("div", { class: "trigger" }, h("p", { class: "muted small" }, "Loading workflows…"));
    var card = h("section", { class: "repo", "data-repo-id": r.id },
      h("h2", null, repoName(r.url), " ", h("img", { src: badgeUrl, alt: "status of " + branch, height: 20 })),
      h("p", { class: "small muted" }, (r.provider || "git") + " · " + r.url + " · default branch " + branch +
        (r.workflow_glob ? " · workflows " + r.workflow_glob : "")),
      h("p", null, h("a", { href: "#/chains?repository=" + encodeURIComponent(r.id) }, "Chains of this repository")),
      formBox, secretsBox(r));
    api("GET", "/repos/" + r.id + "/workflows").then(function (d) {
      clear(formBox);
      /* Only workflows with a manual trigger can be run; a file that does not load says why. */
      var all = d.workflows || [];
      var runnable = all.filter(function (w) { return w.manual; });
      all.forEach(function (w) {
        if (w.error) formBox.appendChild(h("div", { class: "notice bad small", "data-file": w.file },
          w.file + " does not load:", h("pre", { class: "diag" }, w.error)));
      });
      if (runnable.length) formBox.appendChild(triggerForm(r, runnable));
      else formBox.appendChild(h("p", { class: "notice" },
        "No workflow on " + (d.branch || branch) + " has a manual trigger, so there is nothing to run by hand."));
    }, function (e) {
      clear(formBox);
      if (e.status === 404 || e.status === 405)
        formBox.appendChild(h("p", { class: "notice" },
          "This server cannot list the repository's workflows, so no run form can be built. " +
          "Start a run with 'vulcan submit' instead."));
      else formBox.appendChild(errorBox(e, "cannot read the workflows"));
    });
    return card;
  }

  /* The repository's secrets (see secretsPanel). */
  function secretsBox(r) {
    return secretsPanel({ path: "/repos/" + r.id + "/secrets", key: r.id, attr: "data-repo-secrets",
      scope: "repository", cli: "--repo " + r.id });
  }

  /* Secrets of an org or a repository (docs/secrets.md): names, protected, version, who
   * changed them when; never a value (the API answers none). When the listing's
   * `actions` allow it: a form that sets or replaces one (PUT; the value goes in a
   * password field that is emptied as soon as it is sent and never shown again) and a
   * Delete button per secret (DELETE, asks first). A developer sees the list only. */
  var secretSeq = 0;
  function secretsPanel(o) {
    var attrs = { class: "secrets" };
    attrs[o.attr] = o.key;
    var box = h("div", attrs);
    var uid = "sec" + (++secretSeq);
    var msg = h("div", { role: "status", "aria-live": "polite" });
    var listBox = h("div");
    var name = h("input", { id: uid + "-name", name: "name", maxlength: "128", required: true, size: 16,
      pattern: "[A-Z_][A-Z0-9_]*", title: "capital letters, digits and '_', not starting with a digit (NPM_TOKEN)",
      autocomplete: "off", spellcheck: "false", placeholder: "NPM_TOKEN" });
    var value = h("input", { id: uid + "-value", name: "value", type: "password", required: true, size: 20,
      autocomplete: "new-password", spellcheck: "false" });
    var prot = h("input", { id: uid + "-prot", name: "protected", type: "checkbox" });
    var submit = h("button", { type: "submit" }, "Set secret");
    var form = h("form", { class: "create secret-form", "data-secret-form": o.scope, hidden: true,
      "aria-label": "Set a secret", onsubmit: function (ev) {
        ev.preventDefault();
        clear(msg);
        var n = name.value;
        var body = { value: value.value, protected: prot.checked };
        value.value = ""; /* out of the page at once, whatever the answer */
        submit.disabled = true;
        api("PUT", o.path + "/" + encodeURIComponent(n), body).then(function (d) {
          body.value = "";
          name.value = ""; prot.checked = false;
          msg.appendChild(h("p", { class: "notice", "data-set": d.name },
            "Secret " + d.name + (d.version > 1 ? " replaced (version " + d.version + ")." : " set.")));
          return load();
        }, function (e) { body.value = ""; msg.appendChild(errorBox(e, "not set")); })
          .then(function () { submit.disabled = false; });
      } },
      h("h4", null, "Set or replace a secret"),
      h("div", { class: "row" },
        h("div", { class: "field" }, h("label", { for: uid + "-name" }, "Name"), name),
        h("div", { class: "field" }, h("label", { for: uid + "-value" }, "Value"), value),
        h("label", { class: "check", for: uid + "-prot" }, prot, " protected (protected refs only)")),
      submit);
    function row(x, may) {
      var del = may.delete ? h("button", { type: "button", class: "danger", "data-action": "delete-secret",
        "aria-label": "Delete " + x.name, onclick: function () {
          if (!window.confirm("Delete the secret " + x.name + "? Chains that use it will fail to start.")) return;
          del.disabled = true;
          api("DELETE", o.path + "/" + encodeURIComponent(x.name)).then(function () {
            clear(msg); msg.appendChild(h("p", { class: "notice" }, "Secret " + x.name + " deleted."));
            return load();
          }, function (e) { del.disabled = false; clear(msg); msg.appendChild(errorBox(e, "not deleted")); });
        } }, "Delete") : null;
      var rep = may.set ? h("button", { type: "button", "data-action": "replace-secret",
        "aria-label": "Replace " + x.name, onclick: function () {
          name.value = x.name; prot.checked = !!x.protected; value.focus();
        } }, "Replace") : null;
      return h("tr", { "data-secret": x.name },
        h("td", null, h("code", null, x.name)),
        h("td", null, x.protected ? "yes" : "no"),
        h("td", { class: "num" }, x.version ? String(x.version) : "–"),
        h("td", { class: "opt" }, x.updated_by || "–"),
        h("td", { title: x.updated_at || "" }, x.updated_at ? ago(x.updated_at) : "–"),
        may.set || may.delete ? h("td", { class: "secret-actions" }, rep, " ", del) : null);
    }
    function load() {
      return api("GET", o.path).then(function (d) {
        var list = d.secrets || [];
        var may = d.actions || { set: true, delete: true }; /* the caller's role, from the server */
        form.hidden = !may.set;
        clear(listBox);
        if (!list.length) {
          listBox.appendChild(h("p", { class: "muted small" }, o.scope === "repository"
            ? "No repository secret (the org's apply)." : "No org secret.",
            may.set ? null : " The maintainer role sets them (or 'vulcan secrets set " + o.cli + " NAME')."));
          return;
        }
        listBox.appendChild(h("div", { class: "scroll" }, h("table", { class: "list small secrets-list" },
          h("thead", null, h("tr", null, th("Name"), th("Protected"), th("Version", "num"), th("Changed by", "opt"),
            th("Changed"), may.set || may.delete ? th("") : null)),
          h("tbody", null, list.map(function (x) { return row(x, may); })))));
      }, function (e) {
        clear(listBox);
        form.hidden = true;
        if (e.status === 403) listBox.appendChild(h("p", { class: "muted small" }, "Listing secrets needs the developer role."));
        else if (e.status !== 404 && e.status !== 405) listBox.appendChild(errorBox(e, "cannot list the secrets"));
      });
    }
    add(box, [h("h3", null, "Secrets"), msg, listBox, form]);
    load();
    return box;
  }

  function triggerForm(r, workflows) {
    var out = h("div", { role: "status", "aria-live": "polite" });
    var inputsBox = h("fieldset", { class: "inputs" });
    var uid = "t" + r.id.slice(-6);
    var wfSel = h("select", { name: "workflow", id: uid + "-wf" },
      workflows.map(function (w, i) {
        return h("option", { value: w.file, selected: i === 0 }, w.name ? w.name + " (" + w.file + ")" : w.file);
      }));
    function renderInputs() {
      clear(inputsBox);
      var w = workflows.filter(function (x) { return x.file === wfSel.value; })[0];
      var ins = (w && w.inputs) || [];
      inputsBox.hidden = !ins.length;
      if (!ins.length) return;
      inputsBox.appendChild(h("legend", null, "Inputs"));
      ins.forEach(function (inp) {
        var fid = uid + "-in-" + inp.name;
        var field;
        if (inp.choices && inp.choices.length) {
          field = h("select", { id: fid, "data-input": inp.name, required: !!inp.required },
            inp.choices.map(function (c) { return h("option", { value: c, selected: c === inp.default }, c); }));
        } else if (inp.type === "boolean") {
          field = h("input", { id: fid, type: "checkbox", "data-input": inp.name, checked: inp.default === true || inp.default === "true" });
        } else {
          field = h("input", { id: fid, "data-input": inp.name, value: inp.default === undefined || inp.default === null ? "" : String(inp.default),
            required: !!inp.required });
        }
        inputsBox.appendChild(h("div", { class: "field" },
          h("label", { for: fid }, inp.name, inp.required ? " *" : ""), field,
          inp.description ? h("span", { class: "muted small" }, inp.description) : null));
      });
    }
    wfSel.addEventListener("change", renderInputs);
    var br = h("input", { name: "branch", id: uid + "-br", value: r.default_branch || "main", required: true });
    var form = h("form", { class: "trigger-form", onsubmit: function (ev) {
      ev.preventDefault();
      var inputs = {};
      inputsBox.querySelectorAll("[data-input]").forEach(function (el) {
        inputs[el.getAttribute("data-input")] = el.type === "checkbox" ? String(el.checked) : el.value;
      });
      var body = { branch: br.value, inputs: inputs };
      if (wfSel.value) body.workflow = wfSel.value;
      clear(out);
      api("POST", "/repos/" + r.id + "/trigger", body).then(function (d) {
        var ids = d.chains || (d.chain_id ? [d.chain_id] : []);
        out.appendChild(h("p", { class: "notice" }, ids.length ? "Started: " : "No chain was started.",
          ids.map(function (id, i) { return [i ? ", " : "", h("a", { href: "#/chains/" + id }, shortId(id))]; })));
      }, function (e) { out.appendChild(errorBox(e, "the run was refused")); });
    } },
      h("div", { class: "field" }, h("label", { for: uid + "-br" }, "Branch"), br),
      workflows.length ? h("div", { class: "field" }, h("label", { for: uid + "-wf" }, "Workflow"), wfSel) : null,
      inputsBox,
      h("button", { type: "submit" }, "Run"), out);
    renderInputs();
    return form;
  }

  /* ------------------------------------------------------------ identity */

  /* GET /api/v1/user of the logged-in user: {login, site_admin, scopes, token_org,
   * orgs: [{slug, role}]}; null when not logged in or without --require-auth. It only
   * decides what the console shows: the server checks every call itself. */
  var me = null;

  function loadMe() {
    if (!session.require_auth || !session.authenticated) { me = null; return Promise.resolve(null); }
    return api("GET", "/user").then(function (u) { me = u; return u; }, function () { me = null; return null; });
  }
  function hasScope(s) {
    return !!me && String(me.scopes || "").split(",").indexOf(s) >= 0;
  }
  function orgOf(slug) {
    return me ? (me.orgs || []).filter(function (o) { return o.slug === slug; })[0] || null : null;
  }
  /* Admin of an org: the role there and a credential whose scopes allow it. */
  function isOrgAdmin(slug) {
    var o = orgOf(slug);
    return !!o && o.role === "admin" && hasScope("admin");
  }
  function authNav() {
    var on = !!(session.require_auth && session.authenticated && me);
    document.querySelectorAll("[data-auth]").forEach(function (li) { li.hidden = !on; });
    var org = document.getElementById("nav-org");
    if (org && on) {
      var first = (me.orgs || [])[0];
      org.parentNode.hidden = !first;
      if (first) org.setAttribute("href", "#/org/" + encodeURIComponent(first.slug) + "/members");
    }
  }

  /* Expiry choices for a new credential: only choices within `limit` (an absolute time in
   * ms, 0 for none, as for the console's session, which may make tokens of any lifetime)
   * are offered, and then one up to the limit itself. */
  function expirySelect(id, limit) {
    var now = Date.now();
    var choices = [["1 hour", 3600], ["1 day", 86400], ["7 days", 7 * 86400], ["30 days", 30 * 86400],
      ["90 days", 90 * 86400], ["1 year", 365 * 86400]];
    var opts = [];
    choices.forEach(function (c) {
      if (!limit || now + c[1] * 1000 <= limit - 60000) opts.push(h("option", { value: String(c[1]) }, c[0]));
    });
    if (limit) {
      var left = Math.floor((limit - now) / 1000) - 60;
      if (left > 0)
        opts.push(h("option", { value: String(left), "data-limit": "1" },
          "until this session ends (" + new Date(limit).toISOString().slice(0, 16).replace("T", " ") + " UTC)"));
    } else {
      opts.push(h("option", { value: "" }, "never"));
    }
    var sel = h("select", { id: id, name: "expires" }, opts);
    /* Default: 30 days when allowed, else the longest choice. */
    var want = Array.prototype.filter.call(sel.options, function (o) { return o.value === String(30 * 86400); })[0];
    if (want) want.selected = true;
    else if (sel.options.length) sel.options[sel.options.length - 1].selected = true;
    return sel;
  }

  /* A secret shown once: the value, a copy button and the warning. */
  function secretOnce(label, value) {
    var field = h("input", { class: "secret", readonly: true, value: value, "aria-label": label,
      spellcheck: "false", autocomplete: "off", onfocus: function () { field.select(); } });
    var said = h("span", { class: "small", role: "status", "aria-live": "polite" });
    var copy = h("button", { type: "button", "data-action": "copy", onclick: function () {
      function fallback() {
        field.focus(); field.select();
        var ok = false;
        try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
        said.textContent = ok ? "Copied." : "Select it and copy it by hand.";
      }
      if (navigator.clipboard && navigator.clipboard.writeText)
        navigator.clipboard.writeText(value).then(function () { said.textContent = "Copied."; }, fallback);
      else fallback();
    } }, "Copy");
    return h("div", { class: "notice once", role: "alert", "data-once": "1" },
      h("p", null, h("strong", null, label + ": "),
        "copy it now. It will not be shown again: the server keeps only its hash."),
      h("div", { class: "secret-row" }, field, copy, said));
  }

  function credState(c) {
    if (c.revoked_at) return h("span", { class: "badge st-cancelled", "data-state": "revoked" }, "revoked");
    if (c.uses_left === 0) return h("span", { class: "badge st-skipped", "data-state": "used-up" }, "used up");
    if (c.expires_at && parseTime(c.expires_at) <= Date.now())
      return h("span", { class: "badge st-failed", "data-state": "expired" }, "expired");
    return h("span", { class: "badge st-completed", "data-state": "active" }, "active");
  }
  function until(s) {
    return s ? h("time", { datetime: s, title: s, text: s.slice(0, 16).replace("T", " ") }) : "never";
  }
  function th(t, cls) { return h("th", { scope: "col", class: cls }, t); }
  function emptyRow(cols, text) {
    return h("tr", null, h("td", { colspan: cols, class: "muted" }, text));
  }
  function needLogin() {
    if (!session.require_auth) {
      add(main, h("p", { class: "notice" },
        "This server runs without --require-auth: there are no users, tokens or organisations to manage."));
      return true;
    }
    return false;
  }

  /* #/tokens: the user's personal access tokens. */
  function tokensPage() {
    title("Tokens");
    clear(main);
    add(main, h("h1", null, "Personal access tokens"));
    if (needLogin()) return;
    var tbody = h("tbody");
    var msg = h("div", { role: "status", "aria-live": "polite" });
    var once = h("div");
    function load() {
      return api("GET", "/tokens").then(function (d) {
        clear(tbody);
        (d.tokens || []).forEach(function (t) {
          var btn = t.revoked_at ? null : h("button", { type: "button", class: "danger", "data-action": "revoke",
            "aria-label": "Revoke " + (t.name || t.fingerprint), onclick: function () {
              if (!window.confirm("Revoke the token " + (t.name || "") + " (" + t.fingerprint +
                ")? Anything using it stops working at its next request.")) return;
              btn.disabled = true;
              api("DELETE", "/tokens/" + encodeURIComponent(t.id)).then(function () {
                clear(msg); msg.appendChild(h("p", { class: "notice" }, "Token " + t.fingerprint + " revoked."));
                return load();
              }, function (e) { btn.disabled = false; clear(msg); msg.appendChild(errorBox(e, "not revoked")); });
            } }, "Revoke");
          tbody.appendChild(h("tr", { "data-token-id": t.id, "data-fingerprint": t.fingerprint },
            h("td", null, t.name || h("span", { class: "muted" }, "unnamed")),
            h("td", null, h("code", null, t.fingerprint)),
            h("td", null, t.scopes),
            h("td", { class: "opt" }, t.org || "any"),
            h("td", { class: "opt" }, when(t.created_at)),
            h("td", { class: "opt" }, when(t.last_used_at)),
            h("td", null, until(t.expires_at)),
            h("td", null, credState(t)),
            h("td", null, btn)));
        });
        if (!tbody.firstChild) tbody.appendChild(emptyRow(9, "No token yet."));
      }, function (e) { clear(tbody); tbody.appendChild(h("tr", null, h("td", { colspan: 9 }, errorBox(e, "cannot list tokens")))); });
    }

    var name = h("input", { id: "tok-name", name: "name", maxlength: "128", required: true, placeholder: "laptop" });
    var scopes = ["read", "write", "admin"].map(function (s) {
      return h("label", { class: "check" }, h("input", { type: "checkbox", name: "scope", value: s,
        checked: s === "read", disabled: !hasScope(s) }), " " + s);
    });
    var exp = expirySelect("tok-exp", 0);
    var org = h("select", { id: "tok-org", name: "org" }, h("option", { value: "" }, "any of mine"),
      ((me && me.orgs) || []).map(function (o) { return h("option", { value: o.slug }, o.slug); }));
    var form = h("form", { class: "create", "aria-label": "New token", onsubmit: function (ev) {
      ev.preventDefault();
      clear(once); clear(msg);
      var chosen = scopes.map(function (l) { return l.firstChild; })
        .filter(function (c) { return c.checked; }).map(function (c) { return c.value; });
      if (!chosen.length) { msg.appendChild(errorBox("choose at least one scope")); return; }
      var body = { name: name.value, scopes: chosen };
      if (exp.value) body.expires_in_s = parseInt(exp.value, 10);
      if (org.value) body.org = org.value;
      api("POST", "/tokens", body).then(function (d) {
        name.value = "";
        once.appendChild(secretOnce("New token " + d.fingerprint, d.token));
        once.querySelector("input.secret").focus();
        return load();
      }, function (e) { msg.appendChild(errorBox(e, "no token made")); });
    } },
      h("h2", null, "New token"),
      h("div", { class: "row" },
        h("div", { class: "field" }, h("label", { for: "tok-name" }, "Name"), name),
        h("fieldset", { class: "scopes" }, h("legend", null, "Scopes"), scopes),
        h("div", { class: "field" }, h("label", { for: "tok-exp" }, "Expires"), exp),
        h("div", { class: "field" }, h("label", { for: "tok-org" }, "Organisation"), org)),
      h("button", { type: "submit" }, "Create token"));
    add(main, [h("p", { class: "muted" }, "Tokens for the API and the CLI (Authorization: Bearer, or VULCAN_TOKEN). " +
      "A token has at most the scopes and lifetime of the session that makes it."),
      once, msg,
      h("div", { class: "scroll" }, h("table", { class: "tokens", "aria-label": "Tokens" },
        h("thead", null, h("tr", null, th("Name"), th("Fingerprint"), th("Scopes"), th("Org", "opt"),
          th("Created", "opt"), th("Last used", "opt"), th("Expires"), th("State"), th("", null))),
        tbody)),
      h("section", { class: "card" }, form)]);
    load();
  }

  /* #/org/ORG/members: teams and their members (any member of the org); grants and
   * worker registration tokens (org admins only). */
  function orgPage(slug) {
    title("Organisation " + slug);
    clear(main);
    add(main, h("h1", null, "Organisation ", h("code", null, slug)));
    if (needLogin()) return;
    var admin = isOrgAdmin(slug);
    var o = orgOf(slug);
    var base = "/orgs/" + encodeURIComponent(slug);
    var orgs = (me && me.orgs) || [];
    if (orgs.length > 1) {
      var pick = h("select", { id: "org-pick", onchange: function () {
        location.hash = "#/org/" + encodeURIComponent(pick.value) + "/members";
      } }, orgs.map(function (x) { return h("option", { value: x.slug, selected: x.slug === slug }, x.slug); }));
      add(main, h("div", { class: "field inline" }, h("label", { for: "org-pick" }, "Organisation"), pick));
    }
    add(main, h("p", { class: "muted", "data-role": o ? o.role : "none" },
      o ? "Your role here: " + o.role + (admin ? "." : ". Only org admins manage teams, grants and registration tokens.")
        : "You have no role in this organisation."));

    /* --- teams */
    var teams = [];
    var teamBox = h("div", { class: "scroll" });
    var teamMsg = h("div", { role: "status", "aria-live": "polite" });
    var parentSel = h("select", { id: "team-parent", name: "parent" });
    var grantTeamSel = h("select", { id: "grant-team", name: "team" });
    function fillTeamSelects() {
      clear(parentSel);
      add(parentSel, h("option", { value: "" }, "none"));
      clear(grantTeamSel);
      teams.forEach(function (t) {
        add(parentSel, h("option", { value: t.name }, t.name));
        add(grantTeamSel, h("option", { value: t.name }, t.name));
      });
    }
    function memberChip(t, login) {
      return h("li", { class: "chip", "data-member": login }, login,
        admin ? h("button", { type: "button", class: "link", "data-action": "remove-member",
          "aria-label": "Remove " + login + " from " + t.name, onclick: function () {
            if (!window.confirm("Remove " + login + " from the team " + t.name + "?")) return;
            api("DELETE", base + "/teams/" + encodeURIComponent(t.name) + "/members/" + encodeURIComponent(login))
              .then(function () { clear(teamMsg); return loadTeams(); },
                function (e) { clear(teamMsg); teamMsg.appendChild(errorBox(e, "not removed")); });
          } }, "remove") : null);
    }
    function addMemberForm(t) {
      var fid = "add-" + t.id.slice(-8);
      var who = h("input", { id: fid, name: "login", maxlength: "64", required: true, size: 12,
        placeholder: "login", "aria-label": "Login to add to " + t.name });
      return h("form", { class: "inline-form", "data-add-member": t.name, onsubmit: function (ev) {
        ev.preventDefault();
        clear(teamMsg);
        api("PUT", base + "/teams/" + encodeURIComponent(t.name) + "/members/" + encodeURIComponent(who.value))
          .then(function () { return loadTeams(); },
            function (e) { teamMsg.appendChild(errorBox(e, "not added")); });
      } }, who, h("button", { type: "submit" }, "Add"));
    }
    function loadTeams() {
      return api("GET", base + "/teams").then(function (d) {
        teams = d.teams || [];
        fillTeamSelects();
        var tbody = h("tbody");
        teams.forEach(function (t) {
          tbody.appendChild(h("tr", { "data-team": t.name },
            h("td", null, h("strong", null, t.name)),
            h("td", null, t.parent || h("span", { class: "muted" }, "–")),
            h("td", { class: "wrap" },
              h("ul", { class: "chips" }, (t.members || []).map(function (m) { return memberChip(t, m); })),
              (t.members || []).length ? null : h("span", { class: "muted" }, "no members"),
              admin ? addMemberForm(t) : null)));
        });
        if (!teams.length) tbody.appendChild(emptyRow(3, "No team yet."));
        clear(teamBox);
        teamBox.appendChild(h("table", { class: "teams", "aria-label": "Teams" },
          h("thead", null, h("tr", null, th("Team"), th("Parent"), th("Members"))), tbody));
      }, function (e) { clear(teamBox); teamBox.appendChild(errorBox(e, "cannot list teams")); });
    }
    var teamSection = h("section", { class: "card", id: "teams", "aria-labelledby": "teams-h" },
      h("h2", { id: "teams-h" }, "Teams"), teamMsg, teamBox);
    if (admin) {
      var tname = h("input", { id: "team-name", name: "name", maxlength: "64", required: true });
      teamSection.appendChild(h("form", { class: "create", id: "team-create", "aria-label": "New team", onsubmit: function (ev) {
        ev.preventDefault();
        clear(teamMsg);
        var body = { name: tname.value };
        if (parentSel.value) body.parent = parentSel.value;
        api("POST", base + "/teams", body).then(function () { tname.value = ""; return loadTeams(); },
          function (e) { teamMsg.appendChild(errorBox(e, "no team made")); });
      } },
        h("h3", null, "New team"),
        h("div", { class: "row" },
          h("div", { class: "field" }, h("label", { for: "team-name" }, "Name"), tname),
          h("div", { class: "field" }, h("label", { for: "team-parent" }, "Parent team"), parentSel)),
        h("button", { type: "submit" }, "Create team")));
    }
    add(main, teamSection);
    loadTeams();
    /* --- the org's secrets: listed for developers, set and deleted by maintainers */
    if (o) add(main, h("section", { class: "card", id: "org-secrets" },
      secretsPanel({ path: base + "/secrets", key: slug, attr: "data-org-secrets", scope: "org",
        cli: "--org " + slug })));
    if (!admin) return;

    /* --- grants */
    var grantBody = h("tbody");
    var grantMsg = h("div", { role: "status", "aria-live": "polite" });
    var repos = {};
    function loadGrants() {
      return api("GET", base + "/grants").then(function (d) {
        clear(grantBody);
        (d.grants || []).forEach(function (g) {
          var btn = h("button", { type: "button", class: "danger", "data-action": "remove-grant",
            "aria-label": "Remove the grant of " + g.role + " to " + (g.user || g.team), onclick: function () {
              if (!window.confirm("Remove the " + g.role + " grant of " + (g.user ? "user " + g.user : "team " + g.team) + "?")) return;
              btn.disabled = true;
              api("DELETE", base + "/grants/" + encodeURIComponent(g.id)).then(function () { clear(grantMsg); return loadGrants(); },
                function (e) { btn.disabled = false; clear(grantMsg); grantMsg.appendChild(errorBox(e, "not removed")); });
            } }, "Remove");
          grantBody.appendChild(h("tr", { "data-grant-id": g.id },
            h("td", null, g.user ? ["user ", h("strong", null, g.user)] : ["team ", h("strong", null, g.team)]),
            h("td", null, g.role),
            h("td", null, g.repository ? (repos[g.repository] || h("code", null, g.repository)) : h("span", { class: "muted" }, "the whole org")),
            h("td", { class: "opt" }, when(g.created_at)),
            h("td", null, btn)));
        });
        if (!grantBody.firstChild) grantBody.appendChild(emptyRow(5, "No grant."));
      }, function (e) { clear(grantBody); grantBody.appendChild(h("tr", null, h("td", { colspan: 5 }, errorBox(e, "cannot list grants")))); });
    }
    var kind = h("select", { id: "grant-kind", name: "kind" }, h("option", { value: "user" }, "user"), h("option", { value: "team" }, "team"));
    var gUser = h("input", { id: "grant-user", name: "user", maxlength: "64", placeholder: "login" });
    var userField = h("div", { class: "field" }, h("label", { for: "grant-user" }, "User"), gUser);
    var teamField = h("div", { class: "field", hidden: true }, h("label", { for: "grant-team" }, "Team"), grantTeamSel);
    kind.addEventListener("change", function () {
      userField.hidden = kind.value !== "user";
      teamField.hidden = kind.value !== "team";
    });
    var role = h("select", { id: "grant-role", name: "role" },
      ["reader", "developer", "maintainer", "admin"].map(function (r) { return h("option", { value: r }, r); }));
    var repoSel = h("select", { id: "grant-repo", name: "repository" }, h("option", { value: "" }, "the whole org"));
    var grantForm = h("form", { class: "create", id: "grant-create", "aria-label": "New grant", onsubmit: function (ev) {
      ev.preventDefault();
      clear(grantMsg);
      var body = { role: role.value };
      if (kind.value === "user") {
        if (!gUser.value) { grantMsg.appendChild(errorBox("give the user's login")); return; }
        body.user = gUser.value;
      } else {
        if (!grantTeamSel.value) { grantMsg.appendChild(errorBox("make a team first")); return; }
        body.team = grantTeamSel.value;
      }
      if (repoSel.value) body.repository = repoSel.value;
      api("POST", base + "/grants", body).then(function () { gUser.value = ""; return loadGrants(); },
        function (e) { grantMsg.appendChild(errorBox(e, "not granted")); });
    } },
      h("h3", null, "New grant"),
      h("div", { class: "row" },
        h("div", { class: "field" }, h("label", { for: "grant-kind" }, "To a"), kind),
        userField, teamField,
        h("div", { class: "field" }, h("label", { for: "grant-role" }, "Role"), role),
        h("div", { class: "field" }, h("label", { for: "grant-repo" }, "On"), repoSel)),
      h("button", { type: "submit" }, "Grant"));
    add(main, h("section", { class: "card", id: "grants", "aria-labelledby": "grants-h" },
      h("h2", { id: "grants-h" }, "Grants"),
      h("p", { class: "muted small" }, "A role on the whole org or on one repository, given to a user or to a team " +
        "(and so to the members of the teams below it)."),
      grantMsg,
      h("div", { class: "scroll" }, h("table", { class: "grants", "aria-label": "Grants" },
        h("thead", null, h("tr", null, th("Who"), th("Role"), th("Repository"), th("Created", "opt"), th(""))),
        grantBody)),
      grantForm));
    /* Repository names for the grants, when this org's repositories can be listed. */
    api("GET", "/repos").then(function (d) {
      (d.repos || []).forEach(function (r) {
        repos[r.id] = repoName(r.url);
        repoSel.appendChild(h("option", { value: r.id }, repoName(r.url)));
      });
    }, function () {}).then(loadGrants);

    /* --- registration tokens */
    var regBody = h("tbody");
    var regMsg = h("div", { role: "status", "aria-live": "polite" });
    var regOnce = h("div");
    function loadRegs() {
      return api("GET", base + "/registration-tokens").then(function (d) {
        clear(regBody);
        (d.registration_tokens || []).forEach(function (t) {
          var btn = t.revoked_at ? null : h("button", { type: "button", class: "danger", "data-action": "revoke-registration",
            "aria-label": "Revoke " + (t.name || t.fingerprint), onclick: function () {
              if (!window.confirm("Revoke the registration token " + (t.name || "") + " (" + t.fingerprint +
                ")? No new worker can register with it; workers registered already keep their own tokens.")) return;
              btn.disabled = true;
              api("DELETE", base + "/registration-tokens/" + encodeURIComponent(t.id)).then(function () { clear(regMsg); return loadRegs(); },
                function (e) { btn.disabled = false; clear(regMsg); regMsg.appendChild(errorBox(e, "not revoked")); });
            } }, "Revoke");
          regBody.appendChild(h("tr", { "data-registration-id": t.id, "data-fingerprint": t.fingerprint },
            h("td", null, t.name || h("span", { class: "muted" }, "unnamed")),
            h("td", null, h("code", null, t.fingerprint)),
            h("td", null, (t.groups || []).length ? t.groups.join(", ") : h("span", { class: "muted" }, "any")),
            h("td", { class: "num" }, t.uses_left === -1 || t.uses_left === null ? "unlimited" : String(t.uses_left)),
            h("td", { class: "opt" }, when(t.created_at)),
            h("td", { class: "opt" }, when(t.last_used_at)),
            h("td", null, until(t.expires_at)),
            h("td", null, credState(t)),
            h("td", null, btn)));
        });
        if (!regBody.firstChild) regBody.appendChild(emptyRow(9, "No registration token."));
      }, function (e) { clear(regBody); regBody.appendChild(h("tr", null, h("td", { colspan: 9 }, errorBox(e, "cannot list registration tokens")))); });
    }
    var rName = h("input", { id: "reg-name", name: "name", maxlength: "128", placeholder: "build farm" });
    var rGroups = h("input", { id: "reg-groups", name: "groups", placeholder: "default, gpu",
      pattern: "^\\s*[A-Za-z0-9._-]{1,64}(\\s*,\\s*[A-Za-z0-9._-]{1,64}){0,15}\\s*$",
      title: "up to 16 machine groups separated by commas" });
    var rUses = h("input", { id: "reg-uses", name: "uses", type: "number", min: "1", max: "1000000", placeholder: "unlimited" });
    var rExp = expirySelect("reg-exp", 0);
    var regForm = h("form", { class: "create", id: "reg-create", "aria-label": "New registration token", onsubmit: function (ev) {
      ev.preventDefault();
      clear(regMsg); clear(regOnce);
      var body = {};
      if (rName.value) body.name = rName.value;
      var groups = rGroups.value.split(",").map(function (g) { return g.trim(); }).filter(Boolean);
      if (groups.length) body.groups = groups;
      body.uses = rUses.value ? parseInt(rUses.value, 10) : -1;
      if (rExp.value) body.expires_in_s = parseInt(rExp.value, 10);
      api("POST", base + "/registration-tokens", body).then(function (d) {
        rName.value = ""; rGroups.value = ""; rUses.value = "";
        regOnce.appendChild(secretOnce("New registration token " + d.fingerprint, d.token));
        regOnce.appendChild(h("p", { class: "small muted" }, "Start a worker with it: vulcan worker --server URL " +
          "--registration-token-file FILE (or VULCAN_REGISTRATION_TOKEN)."));
        regOnce.querySelector("input.secret").focus();
        return loadRegs();
      }, function (e) { regMsg.appendChild(errorBox(e, "no registration token made")); });
    } },
      h("h3", null, "New registration token"),
      h("div", { class: "row" },
        h("div", { class: "field" }, h("label", { for: "reg-name" }, "Name"), rName),
        h("div", { class: "field" }, h("label", { for: "reg-groups" }, "Machine groups"), rGroups),
        h("div", { class: "field" }, h("label", { for: "reg-uses" }, "Uses"), rUses),
        h("div", { class: "field" }, h("label", { for: "reg-exp" }, "Expires"), rExp)),
      h("button", { type: "submit" }, "Create registration token"));
    add(main, h("section", { class: "card", id: "registration-tokens", "aria-labelledby": "reg-h" },
      h("h2", { id: "reg-h" }, "Worker registration tokens"),
      h("p", { class: "muted small" }, "A worker registers with one of these and gets its own worker token; " +
        "it then claims only work of this org and of the machine groups the token names."),
      regOnce, regMsg,
      h("div", { class: "scroll" }, h("table", { class: "registration-tokens", "aria-label": "Registration tokens" },
        h("thead", null, h("tr", null, th("Name"), th("Fingerprint"), th("Groups"), th("Uses left", "num"),
          th("Created", "opt"), th("Last used", "opt"), th("Expires"), th("State"), th(""))),
        regBody)),
      regForm));
    loadRegs();
  }

  /* ------------------------------------------------------------ sessions */

  function userMenu() {
    var box = document.getElementById("user");
    if (!box) return;
    clear(box);
    authNav();
    if (!session.require_auth) return;
    if (!session.authenticated) {
      box.appendChild(h("a", { href: "#/login" }, "Log in"));
      return;
    }
    box.appendChild(h("span", { class: "who", text: session.login }));
    box.appendChild(h("button", { type: "button", class: "link", onclick: function () {
      api("POST", "/logout").then(function () {
        session = { authenticated: false, require_auth: true, sso: session.sso };
        me = null;
        userMenu();
        location.hash = "#/login";
      }, function () {});
    } }, "Log out"));
  }

  function loginPage(query) {
    title("Log in");
    clear(main);
    var next = query.get("next") || "#/chains";
    if (next.charAt(0) !== "#") next = "#/chains"; /* only a page of the console */
    var user = h("input", { id: "login-user", name: "login", autocomplete: "username",
      required: true, maxlength: "64" });
    var pass = h("input", { id: "login-pass", name: "password", type: "password",
      autocomplete: "current-password", required: true, maxlength: "1024" });
    var out = h("div", { role: "status", "aria-live": "polite" });
    var form = h("form", { class: "login", onsubmit: function (ev) {
      ev.preventDefault();
      clear(out);
      api("POST", "/login", { login: user.value, password: pass.value }).then(function (d) {
        session = { authenticated: true, require_auth: true, login: d.login,
          site_admin: d.site_admin, csrf_token: d.csrf_token, expires_at: d.expires_at };
        pass.value = "";
        return loadMe().then(function () {
          userMenu();
          if (location.hash === next) route();
          else location.hash = next;
        });
      }, function (e) { out.appendChild(errorBox(e, "not logged in")); });
    } },
      h("div", { class: "field" }, h("label", { for: "login-user" }, "Login"), user),
      h("div", { class: "field" }, h("label", { for: "login-pass" }, "Password"), pass),
      h("button", { type: "submit" }, "Log in"), out);
    var sso = null;
    var methods = session.sso || [];
    /* The server redirects to the identity provider and back to `next` (a "#/" page). */
    var back = next.indexOf("#/") === 0 ? next : "#/chains";
    if (methods.indexOf("oidc") >= 0 || methods.indexOf("saml") >= 0) {
      sso = h("p", { class: "sso" },
        methods.indexOf("oidc") >= 0 ? h("a", { id: "login-sso", class: "button",
          href: "/api/v1/sso/oidc/login?next=" + encodeURIComponent(back) }, "Log in with SSO") : null,
        methods.length > 1 ? " " : null,
        methods.indexOf("saml") >= 0 ? h("a", { id: "login-saml", class: "button",
          href: "/api/v1/sso/saml/login?next=" + encodeURIComponent(back) }, "Log in with SAML") : null);
    }
    add(main, [h("h1", null, "Log in to Vulcan CI"), sso, form]);
    user.focus();
  }

  /* ------------------------------------------------------------ router */

  function route() {
    if (page) {
      page.gone = true;
      page.timers.forEach(clearInterval);
      page.streams.forEach(function (s) { s.close(); });
    }
    page = { timers: [], streams: [], gone: false };
    var hash = location.hash.replace(/^#/, "") || "/chains";
    var q = hash.indexOf("?");
    var query = new URLSearchParams(q >= 0 ? hash.slice(q + 1) : "");
    var parts = (q >= 0 ? hash.slice(0, q) : hash).split("/").filter(Boolean);
    var section = parts[0] || "chains";
    document.querySelectorAll("[data-nav]").forEach(function (a) {
      if (a.getAttribute("data-nav") === section) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    var lineOf = function (s) { return s && /^L\d+$/.test(s) ? parseInt(s.slice(1), 10) : 0; };
    if (section === "login") loginPage(query);
    else if (section === "chains" && parts.length === 1) chainsPage(query);
    else if (section === "chains" && parts.length === 2) chainPage(parts[1]);
    else if (section === "chains" && parts[2] === "log" && parts[3]) logPage(parts[1], parts[3], lineOf(parts[4]));
    else if (section === "fragments" && parts[1]) logPage(null, parts[1], lineOf(parts[2]));
    else if (section === "workers") workersPage();
    else if (section === "repos") reposPage();
    else if (section === "tokens" && parts.length === 1) tokensPage();
    else if (section === "org" && parts[1] && (parts[2] === "members" || !parts[2]))
      orgPage(safeDecode(parts[1]));
    else if (section === "settings") {
      /* #/settings: the page of the user's first org (the header's Organisation link). */
      var first = me && (me.orgs || [])[0];
      location.replace(first ? "#/org/" + encodeURIComponent(first.slug) + "/members" : "#/tokens");
    }
    else { clear(main); add(main, [h("h1", null, "Not found"), h("p", null, h("a", { href: "#/chains" }, "Back to the chains"))]); }
  }

  window.addEventListener("hashchange", function () {
    /* A link to a line of the log that is open already just highlights it. */
    route();
    main.focus({ preventScroll: true });
  });
  /* Who we are first, so that a console behind --require-auth starts at the login form
   * rather than at a failing page. */
  api("GET", "/session").then(function (s) { session = s || session; }, function () {})
    .then(loadMe)
    .then(function () {
      userMenu();
      if (session.require_auth && !session.authenticated && location.hash.indexOf("#/login") !== 0)
        location.hash = "#/login?next=" + encodeURIComponent(location.hash || "#/chains");
      else route();
    });
})();
