#!/usr/bin/env python3
"""Issue 22, continuous chaos with counts (docs/operations/high-availability.md).

On loopback: a PostgreSQL primary with a streaming standby (pg_basebackup -R), three
`vulcan server` replicas on a libpq multi-host URL (target_session_attrs=read-write)
behind HAProxy, four workers talking to HAProxy, and for DURATION seconds a steady
stream of signed GitHub push webhooks (one commit each) and API submissions (one marker
each). Meanwhile: `kill -9` of a random replica every 20 s (restarted 2 s later), one
`kill -9` of a worker (restarted), and one `kill -9` of the PostgreSQL primary with the
promotion of the standby. Then it waits for every chain to end and checks:

  - every accepted webhook (2xx) produced exactly one chain, every accepted submission
    (201) exactly one;
  - every chain finished, completed;
  - no attempt ran twice except on the worker that was killed;
  - no log line lost: each fragment printed LINES numbered lines, all stored;

and prints the counts, the longest time clients could not submit, and how long the
reaper's leadership took to move after each kill of its holder.

Usage: chaos.py VULCAN_BINARY DURATION_SECONDS WORK_DIR
Exit status 0 when every check holds.
"""
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

LINES = 200
HOOK_SECRET = b"chaos-hook-secret"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pg_bin():
    for d in sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: -int(v)):
        b = "/usr/lib/postgresql/%s/bin" % d
        if os.path.exists(b + "/initdb"):
            return b
    sys.exit("chaos: no PostgreSQL (scripts/install-deps.sh installs it)")


def as_pg(args, **kw):
    if os.getuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    return subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def http(method, url, body=None, headers=None, timeout=10):
    """(status, parsed JSON or None); status 0 when the connection failed."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    rq = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(rq, timeout=timeout) as r:
            raw = r.read()
            try:
                return r.status, json.loads(raw) if raw else None
            except ValueError:
                return r.status, raw
    except urllib.error.HTTPError as e:
        return e.code, None
    except Exception:
        return 0, None


class Chaos:
    def __init__(self, vulcan, duration, work):
        self.vulcan = vulcan
        self.duration = duration
        self.work = work
        self.procs = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.hooks_ok = {}      # sha -> delivery id
        self.hooks_unknown = 0  # never answered 2xx after all retries
        self.subs_ok = {}       # marker -> chain id
        self.subs_unknown = set()
        self.gaps = []          # seconds a client could not submit
        self.leader_moves = []  # seconds from a leader's kill to another replica leading
        self.killed_workers = []
        self.last_kill = 0.0  # when the last replica was killed
        self.events = []

    def log(self, msg):
        t = time.time() - self.t0 if hasattr(self, "t0") else 0
        self.events.append("%6.1fs %s" % (t, msg))
        print("# %6.1fs %s" % (t, msg), flush=True)

    # ------------------------------------------------------------ PostgreSQL
    def start_pg(self):
        b = pg_bin()
        self.pgb = b
        self.p1, self.p2 = free_port(), free_port()
        base = os.path.join(self.work, "pg")
        os.makedirs(base)
        if os.getuid() == 0:
            shutil.chown(base, "postgres")
        self.d1, self.d2 = os.path.join(base, "primary"), os.path.join(base, "standby")
        as_pg([b + "/initdb", "-D", self.d1, "-U", "postgres", "--auth=trust", "-N"])
        with open(os.path.join(self.d1, "postgresql.conf"), "a") as f:
            f.write("listen_addresses='127.0.0.1'\nport=%d\nunix_socket_directories='%s'\n"
                    "fsync=off\nwal_level=replica\nmax_wal_senders=5\nhot_standby=on\n"
                    "max_connections=200\n" % (self.p1, base))
        with open(os.path.join(self.d1, "pg_hba.conf"), "a") as f:
            f.write("host replication all 127.0.0.1/32 trust\n")
        as_pg([b + "/pg_ctl", "-D", self.d1, "-l", base + "/primary.log", "-w", "start"])
        as_pg([b + "/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.p1), "-U", "postgres",
               "-D", self.d2, "-R", "-X", "stream"])
        with open(os.path.join(self.d2, "postgresql.conf"), "a") as f:
            f.write("port=%d\n" % self.p2)
        as_pg([b + "/pg_ctl", "-D", self.d2, "-l", base + "/standby.log", "-w", "start"])
        self.db = ("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres"
                   "?target_session_attrs=read-write&connect_timeout=2" % (self.p1, self.p2))
        self.log("postgres primary :%d, standby :%d" % (self.p1, self.p2))

    def kill_primary(self):
        with open(os.path.join(self.d1, "postmaster.pid")) as f:
            pid = int(f.readline())
        os.kill(pid, signal.SIGKILL)
        self.log("kill -9 of the PostgreSQL primary (pid %d)" % pid)
        time.sleep(1)
        as_pg([self.pgb + "/pg_ctl", "-D", self.d2, "-w", "promote"])
        self.log("standby promoted")

    def stop_pg(self):
        for d in (self.d1, self.d2):
            subprocess.run((["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []) +
                           [self.pgb + "/pg_ctl", "-D", d, "-m", "immediate", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # ------------------------------------------------------------ processes
    def spawn(self, name, args):
        logf = open(os.path.join(self.work, name + ".log"), "ab")
        p = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)
        with self.lock:
            self.procs[name] = p
        return p

    def start_replica(self, i):
        port = self.ports[i]
        self.spawn("replica%d" % i, [
            self.vulcan, "server", "--listen", "127.0.0.1:%d" % port, "--database", self.db,
            "--data-dir", os.path.join(self.work, "r%d" % i), "--secrets-key-file",
            os.path.join(self.work, "secrets.key"), "--no-auth", "--workers", "0",
            "--allow-file-repos", "--log-format", "text"])
        for _ in range(200):
            if http("GET", "http://127.0.0.1:%d/health/ready" % port, timeout=2)[0] == 200:
                return True
            time.sleep(0.05)
        return False

    def start_worker(self, i):
        self.spawn("worker%d" % i, [
            self.vulcan, "worker", "--server", self.lb, "--group", "default", "--sandbox",
            "none", "--cgroups", "never", "--concurrency", "2", "--wait", "5",
            "--work-dir", os.path.join(self.work, "w%d" % i), "--name", "chaos-w%d" % i])

    def start_haproxy(self):
        self.hport = free_port()
        cfg = os.path.join(self.work, "haproxy.cfg")
        servers = "".join("    server r%d 127.0.0.1:%d check inter 300ms fall 2 rise 1\n" % (i, p)
                          for i, p in enumerate(self.ports))
        with open(cfg, "w") as f:
            f.write("""global
    maxconn 2000
defaults
    mode http
    timeout connect 1s
    timeout client 90s
    timeout server 90s
    retries 3
    option redispatch
frontend ci
    bind 127.0.0.1:%d
    default_backend vulcan
backend vulcan
    option httpchk GET /health/ready
    http-check expect status 200
%s""" % (self.hport, servers))
        self.spawn("haproxy", ["haproxy", "-db", "-f", cfg])
        self.lb = "http://127.0.0.1:%d" % self.hport
        for _ in range(100):
            if http("GET", self.lb + "/health/ready", timeout=2)[0] == 200:
                return
            time.sleep(0.1)
        sys.exit("chaos: haproxy does not answer")

    # ------------------------------------------------------------ the repository
    def make_repo(self, n):
        self.repo = os.path.join(self.work, "src", "chaos")
        os.makedirs(os.path.join(self.repo, ".vulcan"))
        with open(os.path.join(self.repo, ".vulcan", "ci.kdl"), "w") as f:
            f.write('version "0.1"\ntriggers "push"\nchain {\n    machine "default"\n'
                    '    fragment { name "lines"; run "seq 1 %d | sed s/^/line-/"; }\n}\n' % LINES)
        env = dict(os.environ, GIT_AUTHOR_NAME="c", GIT_AUTHOR_EMAIL="c@c",
                   GIT_COMMITTER_NAME="c", GIT_COMMITTER_EMAIL="c@c")
        subprocess.run(["git", "init", "-q", "-b", "main", self.repo], check=True)
        subprocess.run(["git", "-C", self.repo, "add", "."], check=True)
        subprocess.run(["git", "-C", self.repo, "commit", "-q", "-m", "ci"], check=True, env=env)
        # One commit per webhook, made cheaply with commit-tree.
        tree = subprocess.check_output(["git", "-C", self.repo, "rev-parse", "HEAD^{tree}"]).decode().strip()
        parent = subprocess.check_output(["git", "-C", self.repo, "rev-parse", "HEAD"]).decode().strip()
        self.shas = []
        for i in range(n):
            parent = subprocess.check_output(
                ["git", "-C", self.repo, "commit-tree", tree, "-p", parent, "-m", "c%d" % i],
                env=env).decode().strip()
            self.shas.append(parent)
        subprocess.run(["git", "-C", self.repo, "update-ref", "refs/heads/main", parent], check=True)

    # ------------------------------------------------------------ load
    def hook_loop(self):
        i = 0
        while not self.stop.is_set() and i < len(self.shas):
            sha = self.shas[i]
            i += 1
            body = json.dumps({
                "ref": "refs/heads/main", "before": "0" * 40, "after": sha, "created": False,
                "deleted": False, "forced": False, "commits": [], "head_commit": None,
                "repository": {"name": "chaos", "full_name": "org/chaos",
                               "clone_url": "file://" + self.repo, "html_url": "file://" + self.repo},
                "sender": {"login": "chaos"}}).encode()
            sig = "sha256=" + hmac.new(HOOK_SECRET, body, hashlib.sha256).hexdigest()
            delivery = str(uuid.uuid4())
            headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
                       "X-Hub-Signature-256": sig}
            ok = False
            for attempt in range(40):  # the Git host redelivers the same delivery
                st, _ = http("POST", self.lb + "/hooks/github", body, headers, timeout=30)
                if 200 <= st < 300:
                    ok = True
                    break
                time.sleep(0.5)
            if ok:
                self.hooks_ok[sha] = delivery
            else:
                self.hooks_unknown += 1
            time.sleep(0.25)

    def submit_loop(self):
        n = 0
        last_ok = time.time()
        while not self.stop.is_set():
            n += 1
            marker = "sub-%d-%s" % (n, uuid.uuid4().hex[:8])
            content = ('version "0.1"\ntriggers "manual"\nchain {\n    machine "default"\n'
                       '    fragment { name "%s"; run "seq 1 %d | sed s/^/line-/"; }\n}\n' % (marker, LINES))
            st, a = http("POST", self.lb + "/api/v1/parse", {"content": content}, timeout=30)
            now = time.time()
            if st == 201 and a and a.get("chain_id"):
                self.subs_ok[marker] = a["chain_id"]
                if now - last_ok > 1.0:
                    self.gaps.append(now - last_ok)
                last_ok = now
            else:
                self.subs_unknown.add(marker)  # may or may not have been made: not counted
            time.sleep(0.25)
        if time.time() - last_ok > 1.0:
            self.gaps.append(time.time() - last_ok)

    def leader_of(self, holder=False):
        """The index of the replica leading the reaper (or, with holder, the pair of the
        index and its lease holder name, which a restarted replica does not share)."""
        for i, p in enumerate(self.ports):
            st, a = http("GET", "http://127.0.0.1:%d/health/ready" % p, timeout=1)
            if st == 200 and a and "reaper" in a.get("leads", []):
                return (i, a.get("replica")) if holder else i
        return None

    # ------------------------------------------------------------ chaos
    def chaos_loop(self):
        start = time.time()
        primary_at = self.duration * 0.5
        worker_at = self.duration * 0.3
        next_kill = 10.0
        did_primary = did_worker = False
        while not self.stop.is_set():
            t = time.time() - start
            if not did_worker and t >= worker_at:
                did_worker = True
                i = random.randrange(4)
                self.procs["worker%d" % i].kill()
                self.killed_workers.append("chaos-w%d" % i)
                self.log("kill -9 of worker %d" % i)
                time.sleep(1)
                self.start_worker(i)
            if not did_primary and t >= primary_at:
                did_primary = True
                self.kill_primary()
            if t >= next_kill and t < self.duration - 5:
                next_kill += 20.0
                lh = self.leader_of(holder=True)
                leader, dead_holder = lh if lh else (None, None)
                i = leader if leader is not None and random.random() < 0.5 else random.randrange(3)
                self.procs["replica%d" % i].kill()
                self.procs["replica%d" % i].wait()
                k = self.last_kill = time.time()
                self.log("kill -9 of replica %d%s" % (i, " (the leader)" if i == leader else ""))
                if i == leader:
                    threading.Thread(target=self.watch_leader, args=(dead_holder, k), daemon=True).start()
                time.sleep(2)
                ok = self.start_replica(i)
                self.log("replica %d restarted%s" % (i, "" if ok else " BUT NOT READY"))
            time.sleep(0.2)

    def watch_leader(self, dead, since):
        # by holder name: the killed replica's index is soon a new process that may lead
        while time.time() - since < 30:
            lh = self.leader_of(holder=True)
            if lh is not None and lh[1] != dead:
                self.leader_moves.append(time.time() - since)
                self.log("reaper leadership moved to replica %d in %.1f s" % (lh[0], time.time() - since))
                return
            time.sleep(0.1)
        self.leader_moves.append(float("inf"))

    # ------------------------------------------------------------ counting
    def all_chains(self):
        out, cursor = [], None
        while True:
            url = self.lb + "/api/v1/chains?limit=200" + ("&cursor=" + cursor if cursor else "")
            st, a = http("GET", url, timeout=30)
            if st != 200:
                raise RuntimeError("chain listing answered %d" % st)
            out += a["chains"]
            cursor = a.get("next_cursor")
            if not cursor:
                return out

    def run(self):
        self.t0 = time.time()
        os.makedirs(self.work, exist_ok=True)
        self.start_pg()
        self.make_repo(int(self.duration * 4) + 50)
        self.ports = [free_port() for _ in range(3)]
        for i in range(3):
            if not self.start_replica(i):
                sys.exit("chaos: replica %d does not start (see %s)" % (i, self.work))
        self.start_haproxy()
        st, a = http("POST", self.lb + "/api/v1/repos", {
            "url": "file://" + self.repo, "provider": "github",
            "webhook_secret": HOOK_SECRET.decode()})
        if st not in (200, 201):
            sys.exit("chaos: cannot add the repository (%d)" % st)
        for i in range(4):
            self.start_worker(i)
        self.log("3 replicas behind haproxy %s, 4 workers; load for %d s" % (self.lb, self.duration))
        threads = [threading.Thread(target=f, daemon=True)
                   for f in (self.hook_loop, self.submit_loop, self.chaos_loop)]
        for t in threads:
            t.start()
        time.sleep(self.duration)
        self.stop.set()
        for t in threads:
            t.join(timeout=120)
        self.log("load stopped: %d webhooks and %d submissions accepted" %
                 (len(self.hooks_ok), len(self.subs_ok)))
        # Every chain ends. A webhook a killed replica was handling makes its chain only once
        # another replica took the request over (the dead one's lease expired): wait past it.
        deadline = time.time() + 180
        settled = self.last_kill + 10
        while True:
            chains = self.all_chains()
            live = [c for c in chains if c["status"] not in ("completed", "failed", "cancelled")
                    or not c.get("finished_at")]
            if (not live and time.time() > settled) or time.time() > deadline:
                break
            time.sleep(1)
        return self.check(chains, live)

    def check(self, chains, live):
        ok = True

        def verdict(cond, what):
            nonlocal ok
            print("%s: %s" % ("ok" if cond else "FAILED", what), flush=True)
            ok = ok and cond

        by_sha, by_marker = {}, {}
        details = {}
        for c in chains:
            st, d = http("GET", self.lb + "/api/v1/chains/" + c["id"], timeout=30)
            if st != 200:
                verdict(False, "chain %s readable (%d)" % (c["id"], st))
                continue
            details[c["id"]] = d
            if c.get("trigger") == "push" or d.get("trigger") == "push":
                by_sha.setdefault(d.get("commit_sha"), []).append(c["id"])
            for f in d["fragments"]:
                by_marker.setdefault(f.get("name"), []).append(c["id"])
        dup_hooks = [s for s in self.hooks_ok if len(by_sha.get(s, [])) != 1]
        verdict(not dup_hooks, "every accepted webhook made exactly one chain (%d accepted, %d "
                "not exactly one: %s)" % (len(self.hooks_ok), len(dup_hooks),
                                          [(s[:8], len(by_sha.get(s, []))) for s in dup_hooks[:5]]))
        dup_subs = [m for m in self.subs_ok if len(by_marker.get(m, [])) != 1]
        verdict(not dup_subs, "every accepted submission made exactly one chain (%d accepted, "
                "%d not exactly one)" % (len(self.subs_ok), len(dup_subs)))
        verdict(not live, "every chain finished (%d chains, %d not finished)" % (len(chains), len(live)))
        failed = [c["id"] for c in chains if c["status"] != "completed"]
        verdict(not failed, "every chain completed (%d did not: %s)" % (len(failed), failed[:3]))
        reruns = []
        lost = []
        for cid, d in details.items():
            for f in d["fragments"]:
                if f.get("attempt", 1) > 1:
                    reruns.append((cid, f["id"]))
                if f.get("status") == "completed":
                    st, text = http("GET", self.lb + "/api/v1/fragments/%s/log" % f["id"], timeout=30)
                    text = text.decode() if isinstance(text, bytes) else (json.dumps(text) if text else "")
                    want = ["line-%d" % n for n in range(1, LINES + 1)]
                    got = [l for l in text.splitlines() if l.startswith("line-")]
                    if got != want:
                        lost.append((f["id"], len(got)))
        verdict(len(reruns) <= 2 * len(self.killed_workers),
                "attempts ran twice only where a worker died (%d fragments with a second attempt; "
                "the killed worker ran at most %d)" % (len(reruns), 2 * len(self.killed_workers)))
        verdict(not lost, "no log line lost (%d logs short: %s)" % (len(lost), lost[:3]))
        verdict(all(m <= 5.0 for m in self.leader_moves),
                "the reaper's leadership moved within 5 s of each kill of its holder (%s)" %
                ", ".join("%.1f s" % m for m in self.leader_moves) or "none killed")
        print("# figures: %d chains; webhooks %d accepted (%d never answered 2xx); submissions %d "
              "accepted (%d not); longest time clients could not submit: %.1f s; leader moves: %s"
              % (len(chains), len(self.hooks_ok), self.hooks_unknown, len(self.subs_ok),
                 len(self.subs_unknown), max(self.gaps) if self.gaps else 0.0,
                 ", ".join("%.1f s" % m for m in self.leader_moves) or "none"), flush=True)
        return ok

    def cleanup(self):
        for name, p in list(self.procs.items()):
            if p.poll() is None:
                p.kill()
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except Exception:
                pass
        if hasattr(self, "d1"):
            self.stop_pg()


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    for tool in ("haproxy", "git"):
        if not shutil.which(tool):
            sys.exit("chaos: %s is missing (scripts/install-deps.sh installs it)" % tool)
    work = os.path.realpath(sys.argv[3])
    shutil.rmtree(work, ignore_errors=True)
    # A copy of the binary: a rebuild during a long run must not change what restarts.
    os.makedirs(work)
    binary = os.path.join(work, "vulcan")
    shutil.copy2(os.path.realpath(sys.argv[1]), binary)
    c = Chaos(binary, int(sys.argv[2]), work)
    ok = False
    try:
        ok = c.run()
    finally:
        c.cleanup()
    if ok:
        shutil.rmtree(work, ignore_errors=True)  # kept on failure: the processes' logs
    else:
        print("# logs of every process are in %s" % work)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
