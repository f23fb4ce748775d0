"""The processes a benchmark run starts: walgate, HAProxy, PgBouncer, stunnel
and the synthetic walsender, each with its own work directory, log and free
loopback port, and helpers to read their CPU time and resident memory.

Used by run_bench.py; every object has start() and stop(), and stop() is
safe to call twice or on a process that never started.
"""

import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

from pgcluster import LOOPBACK_V4, SUPERUSER, TEST_DB, TEST_PASSWORD, TEST_USER, clean_env, free_port
import walgate as walgate_mod

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


def die_with_parent():
    """preexec_fn: the kernel kills the child if this process dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def cpu_times(pid):
    """(utime, stime) of a process (all its threads), in seconds; None if it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15.
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds; None if it is gone."""
    t = cpu_times(pid)
    return None if t is None else t[0] + t[1]


def child_pids(pid):
    """The direct children of a process (all its threads'), or []."""
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def tree_cpu(pid):
    """{pid: utime + stime} of a process and its direct children (a
    synth_walsender --procs parent and its workers); {} if it is gone."""
    out = {}
    for p in [pid, *child_pids(pid)] if pid else []:
        c = cpu_seconds(p)
        if c is not None:
            out[p] = c
    return out


def thread_cpu(pid):
    """{tid: utime + stime} of every thread of a process, or {}."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (OSError, TypeError):
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def machine_cpu():
    """(busy, total) jiffies of all CPUs from /proc/stat (busy excludes idle and iowait)."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    total = sum(vals[:8])  # guest time is already in user and nice
    return total - vals[3] - vals[4], total


def rss_kib(pid):
    """VmRSS of a process in KiB, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def tail(path, nbytes=3000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - nbytes))
            return f.read().decode(errors="replace")
    except OSError:
        return "(no log)"


def wait_port(host, port, proc, what, log_path, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode} during start-up:\n"
                             f"{tail(log_path)}")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not listen on {host}:{port} within {timeout} s:\n"
                             f"{tail(log_path)}")
        time.sleep(0.05)


def stop_process(proc, pid=None, sig=signal.SIGTERM, timeout=10.0):
    """Signal our own child (or the given pid, a process we started through
    runuser) and wait for the child; SIGKILL if it does not go."""
    if proc is None or proc.poll() is not None:
        return
    target = pid or proc.pid
    try:
        os.kill(target, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        for p in {target, proc.pid}:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(10)


def spawn(argv, workdir, log_path, env=None):
    with open(log_path, "ab") as logf:
        return subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=logf, env=env, preexec_fn=die_with_parent,
                                start_new_session=True)


class HAProxy:
    """HAProxy in TCP mode in front of one upstream port."""

    def __init__(self, workdir, upstream_port, threads, name="haproxy", maxconn=2000):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.host = LOOPBACK_V4
        self.port = free_port()
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        self.log_path = os.path.join(self.dir, "haproxy.log")
        with open(self.cfg, "w") as f:
            f.write(f"""global
    maxconn {maxconn}
    nbthread {threads}

defaults
    mode tcp
    maxconn {maxconn}
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend pg
    bind {self.host}:{self.port}
    default_backend pg

backend pg
    server pg1 {LOOPBACK_V4}:{upstream_port}
""")
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        self.proc = spawn(["haproxy", "-f", self.cfg, "-db"], self.dir, self.log_path)
        wait_port(self.host, self.port, self.proc, "haproxy", self.log_path)

    def stop(self):
        stop_process(self.proc)


class Stunnel:
    """stunnel with TLS on both legs: a server-mode service that answers the
    client's SSLRequest (protocol = pgsql) and terminates TLS, chained over a
    Unix socket to a client-mode service that sends its own SSLRequest to the
    upstream (protocol = pgsql) and opens TLS again. stunnel runs a thread per
    connection; its CPU time covers both services."""

    def __init__(self, workdir, upstream_port, cert, key, name="stunnel"):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.host = LOOPBACK_V4
        self.port = free_port()
        self.conf = os.path.join(self.dir, "stunnel.conf")
        self.log_path = os.path.join(self.dir, "stunnel.log")
        chain = os.path.join(self.dir, "chain.sock")
        with open(self.conf, "w") as f:
            f.write(f"""foreground = yes
pid =
output = {self.log_path}
debug = warning
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1

[pg-in]
accept = {self.host}:{self.port}
connect = {chain}
protocol = pgsql
cert = {cert}
key = {key}

[pg-out]
client = yes
accept = {chain}
connect = {LOOPBACK_V4}:{upstream_port}
protocol = pgsql
""")
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        self.proc = spawn(["stunnel", self.conf], self.dir, self.log_path + ".stderr")
        wait_port(self.host, self.port, self.proc, "stunnel", self.log_path)

    def stop(self):
        stop_process(self.proc)


class PgBouncer:
    """PgBouncer in session mode, run as the postgres user (it refuses root)."""

    def __init__(self, workdir, cluster, pool_size):
        self.dir = os.path.join(workdir, "pgbouncer")
        os.makedirs(self.dir, exist_ok=True)
        self.host = LOOPBACK_V4
        self.port = free_port()
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        self.userlist = os.path.join(self.dir, "userlist.txt")
        self.log_path = os.path.join(self.dir, "pgbouncer.log")
        verifier = role_verifier(cluster, TEST_USER, TEST_PASSWORD)
        with open(self.userlist, "w") as f:
            f.write(f'"{TEST_USER}" "{verifier}"\n')
        with open(self.ini, "w") as f:
            f.write(f"""[databases]
{TEST_DB} = host={LOOPBACK_V4} port={cluster.port} dbname={TEST_DB}

[pgbouncer]
listen_addr = {self.host}
listen_port = {self.port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {self.userlist}
pool_mode = session
max_client_conn = 500
default_pool_size = {pool_size}
client_tls_sslmode = disable
server_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
stats_period = 3600
""")
        self.proc = None
        self.pid = None
        self._chown()

    def _chown(self):
        if os.geteuid() != 0:
            return
        pw = pwd.getpwnam(SUPERUSER)
        for path in (self.dir, self.ini, self.userlist):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(self.userlist, 0o600)

    def start(self):
        argv = ["pgbouncer", self.ini]
        if shutil.which("setpriv"):
            # If runuser is killed outright, PgBouncer goes with it.
            argv = ["setpriv", "--pdeathsig", "KILL", "--", *argv]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", SUPERUSER, "--", *argv]
        self.proc = spawn(argv, self.dir, self.log_path, env=clean_env())
        wait_port(self.host, self.port, self.proc, "pgbouncer", self.log_path)
        self.pid = self._find_pgbouncer_pid()

    def _find_pgbouncer_pid(self):
        """runuser forks: PgBouncer is its child (or runuser itself if it execs)."""
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop(0)
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "pgbouncer":
                        return pid
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
        return None

    def stop(self):
        stop_process(self.proc, pid=self.pid)


def write_auth_file(directory, user, secret):
    """An auth file of one line, readable by its owner only (walgate refuses others)."""
    path = os.path.join(directory, "users.txt")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f'"{user}" "{secret}"\n')
    return path


def role_verifier(cluster, user, password):
    """The role's SCRAM verifier as pg_authid keeps it (or the password, if md5)."""
    verifier = cluster.sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{user}'").strip()
    return verifier if verifier.startswith("SCRAM-SHA-256$") else password


class WalgateProc:
    """walgate through tests/integration/walgate.py, with an info log and a
    metrics port of its own. tls=(cert, key) puts TLS on both legs
    (client_tls = require, server_tls = require); without it both legs are
    plaintext (server_tls = disable). workers=N writes `workers = N` into
    [walgate] (else walgate's default, one per CPU). auth_user=(name, secret)
    sets `auth = scram` with that one auth-file line."""

    def __init__(self, workdir, upstream_port, name="walgate", tls=None, max_client_conn=500,
                 workers=None, auth_user=None):
        self.metrics_port = free_port()
        wdir = os.path.join(workdir, name)
        os.makedirs(wdir, exist_ok=True)
        if tls:
            tls_keys = {"client_tls": "require", "cert_file": tls[0], "key_file": tls[1],
                        "server_tls": "require"}
        else:
            tls_keys = {"client_tls": "disable", "server_tls": "disable"}
        keys = {"log_level": "info", "max_client_conn": str(max_client_conn),
                "drain_timeout": "2s"}
        if workers is not None:
            keys["workers"] = str(workers)
        self.workers = workers
        sections = {"access": {"allow": "127.0.0.0/8, ::1"},
                    "metrics": {"listen": f"{LOOPBACK_V4}:{self.metrics_port}"},
                    "tls": tls_keys}
        if auth_user:
            sections["auth"] = {"auth": "scram", "auth_file": write_auth_file(wdir, *auth_user)}
        self.wg = walgate_mod.Walgate(upstream_port=upstream_port, workdir=wdir, walgate=keys,
                                      sections=sections)
        self.host = self.wg.host
        self.port = self.wg.port
        self.log_path = self.wg.log_path

    @property
    def pid(self):
        return self.wg.proc.pid if self.wg.proc else None

    def start(self):
        self.wg.start()

    def stop(self):
        try:
            self.wg.stop(timeout=10)
        finally:
            self.wg.kill()

    def scrape(self, timeout=30):
        with urllib.request.urlopen(f"http://{LOOPBACK_V4}:{self.metrics_port}/metrics",
                                    timeout=timeout) as resp:
            return resp.read().decode()

    def bytes_relayed(self):
        """walgate_bytes_total summed over both directions, or None."""
        try:
            text = self.scrape(timeout=5)
        except OSError:
            return None
        total = 0.0
        found = False
        for line in text.splitlines():
            if line.startswith("walgate_bytes_total{"):
                total += float(line.rsplit(None, 1)[1])
                found = True
        return total if found else None


class SynthServer:
    """bench/synth_walsender: a fake walsender that accepts plaintext and TLS
    on one port and streams `budget` bytes of pgoutput per session. procs=N
    (N > 1) forks N serving processes that take one session each at a time;
    then pid is the parent's, and tree_cpu(pid) covers them all."""

    def __init__(self, workdir, binary, cert, key, budget, after="done", name="synth",
                 keepalive_ms=10000, row_size=80, txn_rows=1000, procs=1, suites=None):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.host = LOOPBACK_V4
        self.port = free_port()
        self.log_path = os.path.join(self.dir, "synth_walsender.log")
        self.argv = [binary, "--listen", f"{self.host}:{self.port}", "--cert", cert,
                     "--key", key, "--bytes", str(budget), "--after", after,
                     "--keepalive-ms", str(keepalive_ms), "--row-size", str(row_size),
                     "--txn-rows", str(txn_rows)]
        if procs > 1:
            self.argv += ["--procs", str(procs)]
        if suites:
            self.argv += ["--ciphersuites", suites]
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        self.proc = spawn(self.argv, self.dir, self.log_path)
        wait_port(self.host, self.port, self.proc, "synth_walsender", self.log_path)

    def stop(self):
        stop_process(self.proc)
