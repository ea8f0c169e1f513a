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
    var msg = h("div", { role: "status", "aria-live": "polite" });
    clear(main);
    add(main, [h("p", { class: "crumbs" }, h("a", { href: "#/chains" }, "Chains"), " / ", shortId(id)),
      head, msg, tree]);
    var last = null;

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
          running ? h("button", { type: "button", class: "danger", "data-action": "cancel",
            onclick: function () { act("cancel"); } }, "Cancel") : null,
          h("button", { type: "button", "data-action": "rerun",
            onclick: function () { act("rerun"); } }, "Rerun"))]);
    }

    function fragNode(f) {
      if (f.type === "group") {
        var kids = h("div", { class: f.is_parallel ? "kids par" : "kids seq" });
        (f.children || []).forEach(function (k) { kids.appendChild(fragNode(k)); });
        return h("section", { class: "group", "data-fragment-id": f.id, "data-status": f.status },
          h("div", { class: "group-head" },
            h("span", { class: "kind" }, f.is_parallel ? "parallel" : "group"),
            f.name ? h("strong", null, f.name) : null, " ", badge(f.status),
            h("span", { class: "muted small" }, " " + fragDur(f))),
          kids);
      }
      var logHref = "#/chains/" + id + "/log/" + f.id;
      var started = f.status !== "pending" && f.status !== "ready" && f.status !== "skipped" &&
        !(f.status === "cancelled" && !f.started_at);
      return h("article", { class: "frag st-" + f.status, "data-fragment-id": f.id, "data-status": f.status },
        h("div", { class: "frag-head" },
          started ? h("a", { href: logHref, class: "frag-name" }, f.name || "fragment")
            : h("span", { class: "frag-name" }, f.name || "fragment"),
          badge(f.status)),
        h("div", { class: "frag-meta small" },
          h("span", { title: "duration" }, fragDur(f)),
          f.attempt > 1 ? h("span", { title: "attempt" }, "attempt " + f.attempt) : null,
          f.exit_code !== null && f.exit_code !== undefined ? h("span", null, "exit " + f.exit_code) : null,
          f.worker_id ? h("a", { href: "#/workers", title: f.worker_id }, "worker " + shortId(f.worker_id)) : null,
          f.machine ? h("span", { class: "muted" }, f.machine) : null),
        f.waiting_reason ? h("p", { class: "waiting small" }, f.waiting_reason) : null,
        f.error ? h("p", { class: "bad small" }, f.error) : null);
    }

    function load() {
      return api("GET", "/chains/" + id).then(function (c) {
        last = c;
        renderHead(c);
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
      formBox);
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

  /* ------------------------------------------------------------ sessions */

  function userMenu() {
    var box = document.getElementById("user");
    if (!box) return;
    clear(box);
    if (!session.require_auth) return;
    if (!session.authenticated) {
      box.appendChild(h("a", { href: "#/login" }, "Log in"));
      return;
    }
    box.appendChild(h("span", { class: "who", text: session.login }));
    box.appendChild(h("button", { type: "button", class: "link", onclick: function () {
      api("POST", "/logout").then(function () {
        session = { authenticated: false, require_auth: true, sso: session.sso };
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
          site_admin: d.site_admin, csrf_token: d.csrf_token };
        pass.value = "";
        userMenu();
        location.hash = next;
      }, function (e) { out.appendChild(errorBox(e, "not logged in")); });
    } },
      h("div", { class: "field" }, h("label", { for: "login-user" }, "Login"), user),
      h("div", { class: "field" }, h("label", { for: "login-pass" }, "Password"), pass),
      h("button", { type: "submit" }, "Log in"), out);
    var sso = null;
    if (session.sso && session.sso.indexOf("oidc") >= 0) {
      /* The server redirects to the identity provider and back to `next` (a "#/" page). */
      var back = next.indexOf("#/") === 0 ? next : "#/chains";
      sso = h("p", { class: "sso" }, h("a", { id: "login-sso", class: "button",
        href: "/api/v1/sso/oidc/login?next=" + encodeURIComponent(back) }, "Log in with SSO"));
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
    .then(function () {
      userMenu();
      if (session.require_auth && !session.authenticated && location.hash.indexOf("#/login") !== 0)
        location.hash = "#/login?next=" + encodeURIComponent(location.hash || "#/chains");
      else route();
    });
})();
