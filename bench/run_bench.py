#!/usr/bin/python3
"""walgate benchmarks: a direct connection, walgate, HAProxy and PgBouncer side by side.

    /usr/bin/python3 bench/run_bench.py            # full run, about 8-10 minutes
    /usr/bin/python3 bench/run_bench.py --quick    # about 2 minutes
    meson test -C build --benchmark                # --quick, report in the build dir

One throwaway PostgreSQL 15 (tests/integration/pgcluster.py) runs on loopback;
in front of it run walgate, HAProxy (mode tcp) and PgBouncer (session mode).
Every scenario runs against every target, the order of the targets rotating
from one repetition to the next, and the report gives medians, minima, maxima
and each target's median divided by the direct connection's median.

Scenarios (see bench/README.md):
  1. round trips: pgbench -S -n -M simple, 1 client and 16 clients (-j 2)
  2. snapshot:    COPY <1M-row table> TO STDOUT read by psql into /dev/null
  3. replication backlog: pg_recvlogical (pgoutput) reading a copy of a slot
     that holds one large transaction, up to the LSN after it

The CPU time of walgate and HAProxy (/proc/PID/stat utime+stime) is read
around every run. This is a benchmark, not a test: nothing is asserted about
time. The exit status is 1 only when a run failed (its error is in the report).

Every process started here (PostgreSQL, walgate, HAProxy, PgBouncer and the
clients) is stopped on the way out, also on an error, Ctrl-C or SIGTERM.
"""

import argparse
import contextlib
import ctypes
import datetime
import json
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True  # import tests/integration modules without writing there

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "integration"))

from pgcluster import (LOOPBACK_V4, SUPERUSER, TEST_DB, TEST_PASSWORD, TEST_USER,  # noqa: E402
                       PgCluster, clean_env, free_port, pg_bin)
import walgate as walgate_mod  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
GIB = float(1 << 30)
TARGETS = ("direct", "walgate", "haproxy", "pgbouncer")
PROXIES_WITH_CPU = ("walgate", "haproxy", "pgbouncer")

SNAP_TABLE = "bench_snapshot"
REPL_TABLE = "bench_repl"
PUBLICATION = "bench_pub"
SOURCE_SLOT = "bench_src"
RUN_SLOT = "bench_run"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------
# Processes

def _die_with_parent():
    """preexec_fn: the kernel kills the child if this process dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def cpu_seconds(pid):
    """utime + stime of a process, in seconds; None if it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


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


def tail(path, nbytes=3000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - nbytes))
            return f.read().decode(errors="replace")
    except OSError:
        return "(no log)"


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


class HAProxy:
    def __init__(self, workdir, upstream_port, threads):
        self.dir = os.path.join(workdir, "haproxy")
        os.makedirs(self.dir, exist_ok=True)
        self.host = LOOPBACK_V4
        self.port = free_port()
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        self.log_path = os.path.join(self.dir, "haproxy.log")
        self.threads = threads
        with open(self.cfg, "w") as f:
            f.write(f"""global
    maxconn 2000
    nbthread {threads}

defaults
    mode tcp
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
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(["haproxy", "-f", self.cfg, "-db"], cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         preexec_fn=_die_with_parent, start_new_session=True)
        wait_port(self.host, self.port, self.proc, "haproxy", self.log_path)

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
        verifier = cluster.sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{TEST_USER}'"
                               ).strip()
        if not verifier.startswith("SCRAM-SHA-256$"):
            verifier = TEST_PASSWORD  # plaintext works with scram-sha-256 as well
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
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf, env=clean_env(),
                                         preexec_fn=_die_with_parent, start_new_session=True)
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


class WalgateProc:
    """walgate through tests/integration/walgate.py, with an info log and a
    metrics port of our own."""

    def __init__(self, workdir, cluster):
        self.metrics_port = free_port()
        wdir = os.path.join(workdir, "walgate")
        os.makedirs(wdir, exist_ok=True)
        self.wg = walgate_mod.Walgate(
            upstream_port=cluster.port, workdir=wdir,
            walgate={"log_level": "info", "max_client_conn": "500", "drain_timeout": "2s"},
            sections={"access": {"allow": "127.0.0.0/8, ::1"},
                      "metrics": {"listen": f"{LOOPBACK_V4}:{self.metrics_port}"}})
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

    def bytes_relayed(self):
        """walgate_bytes_total summed over both directions, or None."""
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK_V4}:{self.metrics_port}/metrics",
                                        timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        total = 0.0
        found = False
        for line in text.splitlines():
            if line.startswith("walgate_bytes_total{"):
                total += float(line.rsplit(None, 1)[1])
                found = True
        return total if found else None


# --------------------------------------------------------------------------
# Clients

def client_env():
    return clean_env(PGPASSWORD=TEST_PASSWORD, PGSSLMODE="disable", PGCONNECT_TIMEOUT=10,
                     PGAPPNAME="walgate-bench")


def conn_args(host, port):
    return ["-h", host, "-p", str(port), "-U", TEST_USER]


def run_client(argv, timeout, stdout=subprocess.PIPE):
    proc = subprocess.run(argv, env=client_env(), stdin=subprocess.DEVNULL, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=timeout,
                          preexec_fn=_die_with_parent)
    if proc.returncode != 0:
        raise BenchError(f"{os.path.basename(argv[0])} exited with {proc.returncode}: "
                         f"{(proc.stderr or '').strip()[-600:]}")
    return proc


# --------------------------------------------------------------------------
# The benchmark

class Bench:
    def __init__(self, args):
        self.args = args
        self.cluster = None
        self.workdir = None
        self.targets = {}        # name -> (host, port)
        self.procs = {}          # name -> process object with .pid
        self.results = {}        # scenario key -> target -> [run dict]
        self.errors = {}         # scenario key -> target -> [str]
        self.facts = {}          # things measured once (sizes, LSNs)
        self.unsupported = {}    # scenario key -> {target: reason}

    # -- setup

    def setup(self, stack):
        a = self.args
        self.workdir = tempfile.mkdtemp(prefix="walgate-bench-")
        os.chmod(self.workdir, 0o755)
        if not a.keep:
            stack.callback(shutil.rmtree, self.workdir, True)
        else:
            stack.callback(log, f"kept {self.workdir}")

        log("creating PostgreSQL cluster")
        self.cluster = PgCluster.create()
        stack.callback(self._stop_cluster)
        with open(os.path.join(self.cluster.data_dir, "postgresql.conf"), "a") as f:
            f.write("\n# walgate benchmark (later settings win)\n"
                    "ssl = off\n"
                    "shared_buffers = '512MB'\n"
                    "max_wal_size = '8GB'\n"
                    "checkpoint_timeout = '30min'\n"
                    "logical_decoding_work_mem = '1GB'\n"
                    "log_connections = off\n"
                    "log_disconnections = off\n"
                    "max_connections = 200\n")
        self.cluster.start()
        self.targets["direct"] = (LOOPBACK_V4, self.cluster.port)

        wanted = [t for t in TARGETS if t in a.targets]
        if "walgate" in wanted:
            wg = WalgateProc(self.workdir, self.cluster)
            stack.callback(wg.stop)
            wg.start()
            self.procs["walgate"] = wg
            self.targets["walgate"] = (wg.host, wg.port)
        if "haproxy" in wanted:
            hp = HAProxy(self.workdir, self.cluster.port, a.haproxy_threads)
            stack.callback(hp.stop)
            hp.start()
            self.procs["haproxy"] = hp
            self.targets["haproxy"] = (hp.host, hp.port)
        if "pgbouncer" in wanted:
            pb = PgBouncer(self.workdir, self.cluster, pool_size=max(a.clients) + 8)
            stack.callback(pb.stop)
            pb.start()
            self.procs["pgbouncer"] = pb
            self.targets["pgbouncer"] = (pb.host, pb.port)
        self.order = [t for t in TARGETS if t in self.targets]
        log("targets: " + ", ".join(f"{t}={h}:{p}" for t, (h, p) in self.targets.items()))
        self.check_targets()

    def _stop_cluster(self):
        try:
            self.cluster.cleanup(remove_dir=not self.args.keep)
        except Exception as e:  # a server already going down: still remove the files
            log(f"stopping PostgreSQL: {e}")
            if not self.args.keep:
                shutil.rmtree(self.cluster.base_dir, ignore_errors=True)

    def check_targets(self):
        """One query through every target: it connects, and without TLS."""
        q = "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)"
        for name, (host, port) in self.targets.items():
            out = run_client([pg_bin("psql"), "-X", "-A", "-t", *conn_args(host, port),
                              "-d", TEST_DB, "-c", q], timeout=30).stdout.strip()
            if out != "f":
                raise BenchError(f"{name}: expected a plaintext session, pg_stat_ssl says {out!r}")

    def rotation(self, rep):
        k = rep % len(self.order)
        return self.order[k:] + self.order[:k]

    # -- one measured run, with the proxies' CPU around it

    def measure(self, key, target, fn):
        proc = self.procs.get(target)
        wg = self.procs.get("walgate")
        cpu0 = cpu_seconds(proc.pid) if proc else None
        b0 = wg.bytes_relayed() if (wg and target == "walgate") else None
        try:
            run = fn(*self.targets[target])
        except (BenchError, RuntimeError, subprocess.TimeoutExpired) as e:
            log(f"  {key} {target}: FAILED {e}")
            self.errors.setdefault(key, {}).setdefault(target, []).append(str(e))
            return None
        cpu1 = cpu_seconds(proc.pid) if proc else None
        if cpu0 is not None and cpu1 is not None:
            run["proxy_cpu"] = cpu1 - cpu0
        if b0 is not None:
            b1 = wg.bytes_relayed()
            if b1 is not None:
                run["wire_bytes"] = b1 - b0
        self.results.setdefault(key, {}).setdefault(target, []).append(run)
        return run

    # -- scenario 1: round trips

    def setup_pgbench(self):
        log(f"pgbench -i -s {self.args.pgbench_scale}")
        host, port = self.targets["direct"]
        run_client([pg_bin("pgbench"), "-i", "-q", "-s", str(self.args.pgbench_scale),
                    *conn_args(host, port), TEST_DB], timeout=600)
        self.cluster.sql("VACUUM ANALYZE", dbname=TEST_DB, timeout=300)
        self.cluster.sql("CHECKPOINT", dbname=TEST_DB, timeout=300)

    def pgbench(self, clients, secs):
        threads = min(clients, 2)

        def run(host, port):
            out = run_client([pg_bin("pgbench"), "-S", "-n", "-M", "simple", "-T", str(secs),
                              "-c", str(clients), "-j", str(threads),
                              *conn_args(host, port), TEST_DB], timeout=secs + 120).stdout
            tps = re.search(r"^tps = ([0-9.]+) \(without initial connection time\)", out, re.M)
            lat = re.search(r"^latency average = ([0-9.]+) ms", out, re.M)
            txn = re.search(r"^number of transactions actually processed: (\d+)", out, re.M)
            if not tps or not lat:
                raise BenchError(f"cannot parse pgbench output:\n{out}")
            return {"tps": float(tps.group(1)), "latency_ms": float(lat.group(1)),
                    "transactions": int(txn.group(1)) if txn else None}
        return run

    def scenario_round_trips(self):
        a = self.args
        self.setup_pgbench()
        for clients in a.clients:
            key = f"rt{clients}"
            log(f"scenario 1, {clients} client(s): warm-up")
            for t in self.order:
                try:
                    self.pgbench(clients, 1)(*self.targets[t])
                except BenchError as e:
                    log(f"  warm-up {t}: {e}")
            for rep in range(a.reps):
                for t in self.rotation(rep):
                    run = self.measure(key, t, self.pgbench(clients, a.pgbench_secs))
                    if run:
                        log(f"  {key} rep {rep + 1} {t}: {run['tps']:.0f} tps, "
                            f"{run['latency_ms']:.3f} ms")

    # -- scenario 2: snapshot

    def setup_snapshot(self):
        n = self.args.snapshot_rows
        log(f"creating {SNAP_TABLE} ({n} rows)")
        self.cluster.sql(
            f"DROP TABLE IF EXISTS {SNAP_TABLE}; "
            f"CREATE TABLE {SNAP_TABLE} AS SELECT i AS id, md5(i::text) AS a, "
            f"md5((-i)::text) AS b, timestamptz '2024-01-01 00:00:00+00' "
            f"+ i * interval '1.5 second' AS ts FROM generate_series(1, {n}) i; "
            f"ALTER TABLE {SNAP_TABLE} OWNER TO {TEST_USER}",
            dbname=TEST_DB, timeout=600)
        self.cluster.sql(f"VACUUM (FREEZE, ANALYZE) {SNAP_TABLE}", dbname=TEST_DB, timeout=600)
        self.cluster.sql("CHECKPOINT", dbname=TEST_DB, timeout=600)
        # The payload size, counted once (also warms the cache).
        host, port = self.targets["direct"]
        proc = subprocess.Popen([pg_bin("psql"), "-X", "-q", *conn_args(host, port), "-d",
                                 TEST_DB, "-c", f"COPY {SNAP_TABLE} TO STDOUT"],
                                env=client_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=_die_with_parent)
        try:
            size = 0
            while True:
                chunk = proc.stdout.read(1 << 20)
                if not chunk:
                    break
                size += len(chunk)
            if proc.wait(120) != 0:
                raise BenchError(f"COPY failed: {proc.stderr.read().decode(errors='replace')}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        self.facts["snapshot_bytes"] = size
        log(f"COPY output: {size / 1e6:.1f} MB")

    def copy_out(self, host, port):
        t0 = time.perf_counter()
        run_client([pg_bin("psql"), "-X", "-q", *conn_args(host, port), "-d", TEST_DB,
                    "-c", f"COPY {SNAP_TABLE} TO STDOUT"], timeout=600,
                   stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        size = self.facts["snapshot_bytes"]
        return {"wall_s": wall, "bytes": size, "mb_s": size / wall / 1e6}

    def scenario_snapshot(self):
        self.setup_snapshot()
        log("scenario 2: warm-up")
        for t in self.order:
            self.measure("warmup-snapshot", t, self.copy_out)
        self.results.pop("warmup-snapshot", None)
        self.errors.pop("warmup-snapshot", None)
        for rep in range(self.args.reps):
            for t in self.rotation(rep):
                run = self.measure("snapshot", t, self.copy_out)
                if run:
                    log(f"  snapshot rep {rep + 1} {t}: {run['wall_s']:.2f} s, "
                        f"{run['mb_s']:.0f} MB/s")

    # -- scenario 3: replication backlog

    def setup_replication(self):
        n = self.args.repl_rows
        log(f"replication: slot, publication, one transaction of {n} rows")
        sql = lambda q, timeout=600: self.cluster.sql(q, dbname=TEST_DB, timeout=timeout)  # noqa
        sql(f"DROP TABLE IF EXISTS {REPL_TABLE}; "
            f"CREATE TABLE {REPL_TABLE} (id int PRIMARY KEY, payload text); "
            f"ALTER TABLE {REPL_TABLE} OWNER TO {TEST_USER}; "
            f"CREATE PUBLICATION {PUBLICATION} FOR TABLE {REPL_TABLE}")
        sql(f"SELECT pg_create_logical_replication_slot('{SOURCE_SLOT}', 'pgoutput')")
        sql(f"INSERT INTO {REPL_TABLE} SELECT i, md5(i::text) FROM generate_series(1, {n}) i")
        endpos = sql("SELECT pg_current_wal_lsn()").strip()
        # A later transaction, so that the stream passes endpos without waiting
        # for background WAL: pg_recvlogical stops at its first message.
        sql(f"INSERT INTO {REPL_TABLE} VALUES (0, 'end marker')")
        sql("CHECKPOINT")
        self.facts["repl_endpos"] = endpos
        self.facts["repl_rows"] = n
        log(f"endpos {endpos}")

    def _drop_run_slot(self):
        deadline = time.monotonic() + 30
        while True:
            active = self.cluster.sql(
                f"SELECT active FROM pg_replication_slots WHERE slot_name = '{RUN_SLOT}'",
                dbname=TEST_DB).strip()
            if active == "":
                return
            if active == "f":
                self.cluster.sql(f"SELECT pg_drop_replication_slot('{RUN_SLOT}')",
                                 dbname=TEST_DB)
                return
            if time.monotonic() > deadline:
                raise BenchError(f"slot {RUN_SLOT} still active after 30 s")
            time.sleep(0.05)

    def recvlogical(self, host, port):
        self._drop_run_slot()
        self.cluster.sql(f"SELECT pg_copy_logical_replication_slot('{SOURCE_SLOT}', "
                         f"'{RUN_SLOT}')", dbname=TEST_DB)
        try:
            t0 = time.perf_counter()
            run_client([pg_bin("pg_recvlogical"), *conn_args(host, port), "-d", TEST_DB,
                        "--slot", RUN_SLOT, "--start", "--no-loop",
                        f"--endpos={self.facts['repl_endpos']}",
                        "-o", "proto_version=1", "-o", f"publication_names={PUBLICATION}",
                        "-f", "/dev/null"], timeout=900)
            wall = time.perf_counter() - t0
        finally:
            self._drop_run_slot()
        return {"wall_s": wall, "rows_s": self.facts["repl_rows"] / wall}

    def scenario_replication(self):
        key = "replication"
        self.unsupported[key] = {"pgbouncer": "PgBouncer cannot relay replication connections"}
        order = [t for t in self.order if t != "pgbouncer"]
        self.setup_replication()
        log("scenario 3: warm-up (direct)")
        self.measure("warmup-replication", "direct", self.recvlogical)
        self.results.pop("warmup-replication", None)
        self.errors.pop("warmup-replication", None)
        for rep in range(self.args.reps):
            k = rep % len(order)
            for t in order[k:] + order[:k]:
                run = self.measure(key, t, self.recvlogical)
                if run:
                    log(f"  replication rep {rep + 1} {t}: {run['wall_s']:.2f} s")

    # -- all of it

    def run(self):
        with contextlib.ExitStack() as stack:
            self.setup(stack)
            self.facts["versions"] = versions(self.procs.get("walgate"))
            t0 = time.monotonic()
            self.facts["load_start"] = os.getloadavg()
            if "rt" in self.args.scenarios:
                self.scenario_round_trips()
            if "snapshot" in self.args.scenarios:
                self.scenario_snapshot()
            if "replication" in self.args.scenarios:
                self.scenario_replication()
            self.facts["elapsed_s"] = time.monotonic() - t0
            self.facts["load_end"] = os.getloadavg()
            self.facts["walgate_log_errors"] = self._walgate_log_errors()
            log("stopping processes")
        log(f"scenarios took {self.facts['elapsed_s']:.0f} s")

    def _walgate_log_errors(self):
        wg = self.procs.get("walgate")
        if not wg:
            return []
        lines = []
        try:
            with open(wg.log_path, errors="replace") as f:
                for line in f:
                    if re.search(r"\b(error|warning|ERROR|WARNING|FATAL)\b", line):
                        lines.append(line.rstrip())
        except OSError:
            pass
        return lines[-10:]


# --------------------------------------------------------------------------
# Facts about the machine and the programs

def first_line(argv):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL)
        out = (proc.stdout or proc.stderr).strip().splitlines()
        return out[0] if out else "?"
    except (OSError, subprocess.SubprocessError) as e:
        return f"? ({e})"


def walgate_build_info(binary):
    """buildtype and sanitizers of the meson build the binary comes from."""
    build_dir = os.path.dirname(os.path.dirname(os.path.abspath(binary)))
    path = os.path.join(build_dir, "meson-info", "intro-buildoptions.json")
    try:
        with open(path) as f:
            opts = {o["name"]: o["value"] for o in json.load(f)}
    except (OSError, ValueError, KeyError):
        return ""
    parts = [f"buildtype={opts.get('buildtype')}"]
    if opts.get("b_sanitize") not in (None, "none"):
        parts.append(f"b_sanitize={opts.get('b_sanitize')}")
    return ", ".join(parts)


def versions(wg):
    binary = walgate_mod.walgate_bin()
    wv = first_line([binary, "--version"])
    info = walgate_build_info(binary)
    rev = first_line(["git", "-C", REPO_ROOT, "rev-parse", "--short", "HEAD"])
    try:
        dirty = subprocess.run(["git", "-C", REPO_ROOT, "status", "--porcelain",
                                "--untracked-files=normal", "--", "proxy", "protocol", "tls",
                                "meson.build"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    info = ", ".join(x for x in (info, f"source {rev}" + (" + uncommitted changes" if dirty else ""))
                     if x)
    return {
        "walgate": f"{wv} ({binary}{'; ' + info if info else ''})",
        "postgres": first_line([pg_bin("postgres"), "--version"]),
        "pgbench": first_line([pg_bin("pgbench"), "--version"]),
        "haproxy": first_line(["haproxy", "-v"]),
        "pgbouncer": first_line(["pgbouncer", "--version"]),
    }


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "memory": mem,
            "kernel": platform.release(), "os": first_line(["sh", "-c", ". /etc/os-release; "
                                                             "echo $PRETTY_NAME"])}


# --------------------------------------------------------------------------
# The report

def fmt(v, digits):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def metric_table(bench, key, field, label, digits, higher_is_better):
    lines = [f"| target | median {label} | min | max | ratio to direct | runs |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    runs = bench.results.get(key, {})
    direct = stats([r.get(field) for r in runs.get("direct", [])])
    for t in TARGETS:
        if t in bench.unsupported.get(key, {}):
            lines.append(f"| {t} | n/a | | | | {bench.unsupported[key][t]} |")
            continue
        if t not in bench.targets:
            continue
        s = stats([r.get(field) for r in runs.get(t, [])])
        nerr = len(bench.errors.get(key, {}).get(t, []))
        nruns = f"{len(runs.get(t, []))}" + (f" ({nerr} failed)" if nerr else "")
        if s is None:
            lines.append(f"| {t} | failed | | | | {nruns} |")
            continue
        ratio = f"{s[0] / direct[0]:.3f}" if direct and direct[0] else "n/a"
        lines.append(f"| {t} | {fmt(s[0], digits)} | {fmt(s[1], digits)} | {fmt(s[2], digits)} "
                     f"| {ratio} | {nruns} |")
    better = "higher" if higher_is_better else "lower"
    lines.append("")
    lines.append(f"Ratio = target median / direct median ({better} is better; "
                 f"{'below' if higher_is_better else 'above'} 1 means slower than direct).")
    return lines


def cpu_per_gib_table(bench, key, rows):
    """Proxy CPU seconds per GiB relayed. Bytes: walgate's walgate_bytes_total
    for the same runs (the byte stream through HAProxy is the same)."""
    runs = bench.results.get(key, {})
    wire = stats([r.get("wire_bytes") for r in runs.get("walgate", [])])
    if wire is None:
        return ["(no byte count from walgate's metrics: CPU per GiB not computed)"]
    lines = ["| proxy | median CPU s per run | CPU s per GiB relayed (median) | min | max | "
             "CPU µs per row | CPU s / wall s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for t in ("walgate", "haproxy"):
        if t not in bench.targets:
            continue
        per_gib, cpu, util = [], [], []
        for r in runs.get(t, []):
            if r.get("proxy_cpu") is None:
                continue
            gib = (r.get("wire_bytes") or wire[0]) / GIB
            per_gib.append(r["proxy_cpu"] / gib)
            cpu.append(r["proxy_cpu"])
            util.append(r["proxy_cpu"] / r["wall_s"])
        s = stats(per_gib)
        if s is None:
            continue
        lines.append(f"| {t} | {statistics.median(cpu):.3f} | {s[0]:.3f} | {s[1]:.3f} | "
                     f"{s[2]:.3f} | {statistics.median(cpu) / rows * 1e6:.3f} | "
                     f"{statistics.median(util):.2f} |")
    lines.append("")
    lines.append(f"GiB relayed per run: {wire[0] / GIB:.3f} (both directions, as counted by "
                 f"walgate_bytes_total; the same byte stream passes HAProxy). CPU is utime+stime "
                 f"from /proc/PID/stat, resolution {1000 / CLK_TCK:.0f} ms.")
    return lines


def cpu_per_txn_table(bench, key):
    runs = bench.results.get(key, {})
    lines = ["| proxy | CPU µs per transaction (median) | CPU s / wall s |",
             "| --- | ---: | ---: |"]
    rows = 0
    for t in PROXIES_WITH_CPU:
        per, util = [], []
        for r in runs.get(t, []):
            if r.get("proxy_cpu") is None or not r.get("transactions"):
                continue
            per.append(r["proxy_cpu"] / r["transactions"] * 1e6)
            util.append(r["proxy_cpu"] / bench.args.pgbench_secs)
        if per:
            rows += 1
            lines.append(f"| {t} | {statistics.median(per):.1f} | "
                         f"{statistics.median(util):.2f} |")
    return lines if rows else []


def error_lines(bench, key):
    out = []
    for t, errs in bench.errors.get(key, {}).items():
        for e in errs[:3]:
            out.append(f"- {t}: failed run: `{e.splitlines()[0][:300] if e else '?'}`")
    return out


def render_report(bench, started, argv):
    a = bench.args
    m = machine()
    v = bench.facts.get("versions", {})
    out = []
    w = out.append
    w("# walgate benchmark results")
    w("")
    w(f"Generated by `bench/run_bench.py` on {started:%Y-%m-%d %H:%M} UTC"
      f"{' (--quick)' if a.quick else ''}; the scenarios took "
      f"{bench.facts.get('elapsed_s', 0):.0f} s. Medians of {a.reps} repetitions; in each "
      f"repetition every target runs once, the order of the targets rotating from one "
      f"repetition to the next.")
    w("")
    w("Targets: **direct** (libpq clients to PostgreSQL), **walgate**, **haproxy** "
      f"(`mode tcp`, nbthread {a.haproxy_threads}), **pgbouncer** (`pool_mode = session`, "
      "scram-sha-256). Everything runs on this one machine over 127.0.0.1, sharing its "
      "CPUs: the server, the proxy and the client compete for them, which is part of what "
      "the ratios show.")
    w("")
    w("**TLS is not measured**: this benchmark runs every leg in plaintext. Clients use "
      "`sslmode=disable`, walgate runs without a `[tls]` section, PgBouncer with "
      "`server_tls_sslmode = disable` and PostgreSQL with `ssl = off`; one query through "
      "each target checks that its session is plaintext. The benchmark was written for the "
      "walgate without TLS; TLS scenarios come with walgate's TLS support.")
    w("")
    busy = bench.facts.get("load_start")
    if busy and busy[0] > 0.5:
        w(f"**Noise**: the 1-minute load average was already {busy[0]:.2f} on {m['nproc']} CPUs "
          "when the scenarios started: other work shared the machine, so expect wide min-max "
          "spreads and read small ratio differences as noise.")
        w("")
    w("## Machine and versions")
    w("")
    w("| | |")
    w("| --- | --- |")
    w(f"| CPUs (nproc) | {m['nproc']} |")
    w(f"| CPU model | {m['cpu']} |")
    w(f"| memory | {m['memory']} |")
    w(f"| OS, kernel | {m['os']}, {m['kernel']} |")
    for k, label in (("load_start", "load average at start"), ("load_end", "load average at end")):
        if bench.facts.get(k):
            w(f"| {label} | {' '.join(f'{x:.2f}' for x in bench.facts[k])} |")
    for name in ("walgate", "postgres", "pgbench", "haproxy", "pgbouncer"):
        w(f"| {name} | {v.get(name, '?')} |")
    w("")
    w("## Parameters")
    w("")
    w(f"- repetitions: {a.reps}")
    w(f"- round trips: `pgbench -S -n -M simple -T {a.pgbench_secs}`, "
      + ", ".join(f"{c} client{'s' if c > 1 else ''} (-j {min(c, 2)})" for c in a.clients)
      + f"; pgbench scale {a.pgbench_scale}; a 1 s warm-up per target first")
    snap = bench.facts.get("snapshot_bytes")
    w(f"- snapshot: `COPY {SNAP_TABLE} TO STDOUT` with psql into /dev/null, "
      f"{a.snapshot_rows:,} rows, {snap / 1e6:.1f} MB of COPY text" if snap else
      f"- snapshot: {a.snapshot_rows:,} rows")
    w(f"- replication backlog: one transaction of {a.repl_rows:,} inserted rows "
      f"(int, md5 text) behind a pgoutput slot; each run reads a copy of the slot with "
      f"`pg_recvlogical --start --no-loop --endpos={bench.facts.get('repl_endpos', '?')} "
      f"-o proto_version=1 -o publication_names={PUBLICATION} -f /dev/null`")
    w("- PostgreSQL: `shared_buffers = 512MB`, `logical_decoding_work_mem = 1GB`, "
      "`fsync = off`, `ssl = off`, `wal_level = logical`")
    w("- walgate: default relay settings (`relay_buffer_size = 256kB`), `log_level = info`")
    w("")

    if "rt" in a.scenarios:
        w("## 1. Round trips (pgbench -S, simple protocol)")
        w("")
        for c in a.clients:
            key = f"rt{c}"
            w(f"### {c} client{'s' if c > 1 else ''}")
            w("")
            w("Throughput:")
            w("")
            out.extend(metric_table(bench, key, "tps", "TPS", 0, True))
            w("")
            w("Mean latency (pgbench's `latency average`):")
            w("")
            out.extend(metric_table(bench, key, "latency_ms", "ms", 3, False))
            w("")
            cpu = cpu_per_txn_table(bench, key)
            if cpu:
                w("Proxy CPU:")
                w("")
                out.extend(cpu)
                w("")
            out.extend(error_lines(bench, key))
            if error_lines(bench, key):
                w("")

    if "snapshot" in a.scenarios:
        w("## 2. Snapshot (COPY TO STDOUT)")
        w("")
        w("Wall time of the psql run (connect, COPY, exit):")
        w("")
        out.extend(metric_table(bench, "snapshot", "wall_s", "s", 3, False))
        w("")
        w("Throughput (COPY text bytes / wall time, MB = 10^6 bytes):")
        w("")
        out.extend(metric_table(bench, "snapshot", "mb_s", "MB/s", 1, True))
        w("")
        w("Proxy CPU:")
        w("")
        out.extend(cpu_per_gib_table(bench, "snapshot", a.snapshot_rows))
        w("")
        out.extend(error_lines(bench, "snapshot"))
        if error_lines(bench, "snapshot"):
            w("")

    if "replication" in a.scenarios:
        w("## 3. Replication backlog (pg_recvlogical, pgoutput)")
        w("")
        w("Wall time of the pg_recvlogical run (connect, decode and stream the backlog, "
          "stop at endpos):")
        w("")
        out.extend(metric_table(bench, "replication", "wall_s", "s", 3, False))
        w("")
        w("Proxy CPU:")
        w("")
        out.extend(cpu_per_gib_table(bench, "replication", a.repl_rows))
        w("")
        out.extend(error_lines(bench, "replication"))
        if error_lines(bench, "replication"):
            w("")

    errs = bench.facts.get("walgate_log_errors") or []
    if errs:
        w("## walgate log: errors and warnings (last 10)")
        w("")
        w("```")
        out.extend(errs)
        w("```")
        w("")

    w("## How to reproduce")
    w("")
    w(f"`ninja -C build && /usr/bin/python3 bench/run_bench.py{' --quick' if a.quick else ''}` "
      f"(as run: `{' '.join(argv)}`), or `meson test -C build --benchmark` for the quick "
      "version; see bench/README.md.")
    w("")
    return "\n".join(out)


# --------------------------------------------------------------------------
# Command line

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="2 repetitions, shorter pgbench runs, 200k-row backlog (about 2 min)")
    p.add_argument("--reps", type=int, help="repetitions (default 5, --quick 2)")
    p.add_argument("--pgbench-secs", type=int, help="seconds per pgbench run (default 5, --quick 2)")
    p.add_argument("--pgbench-scale", type=int, help="pgbench -i scale (default 10, --quick 2)")
    p.add_argument("--clients", default="1,16", help="pgbench client counts (default 1,16)")
    p.add_argument("--snapshot-rows", type=int, default=1_000_000)
    p.add_argument("--repl-rows", type=int, help="backlog rows (default 1000000, --quick 200000)")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help="comma-separated subset of " + ",".join(TARGETS) + " (direct always runs)")
    p.add_argument("--scenarios", default="rt,snapshot,replication",
                   help="comma-separated subset of rt,snapshot,replication")
    p.add_argument("--haproxy-threads", type=int, default=1,
                   help="HAProxy nbthread (default 1, like walgate's single event loop)")
    p.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"),
                   help="Markdown report (default bench/RESULTS.md, overwritten)")
    p.add_argument("--json", help="also write the raw runs as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the work directories (logs)")
    a = p.parse_args(argv)
    a.reps = a.reps or (2 if a.quick else 5)
    a.pgbench_secs = a.pgbench_secs or (2 if a.quick else 5)
    a.pgbench_scale = a.pgbench_scale or (2 if a.quick else 10)
    a.repl_rows = a.repl_rows or (200_000 if a.quick else 1_000_000)
    a.clients = [int(c) for c in a.clients.split(",") if c.strip()]
    a.targets = {"direct"} | {t.strip() for t in a.targets.split(",") if t.strip()}
    unknown = a.targets - set(TARGETS)
    if unknown:
        p.error(f"unknown targets: {', '.join(sorted(unknown))}")
    a.scenarios = {s.strip() for s in a.scenarios.split(",") if s.strip()}
    if a.scenarios - {"rt", "snapshot", "replication"}:
        p.error("unknown scenarios")
    return a


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    binary = walgate_mod.walgate_bin()
    if "walgate" in args.targets and not os.access(binary, os.X_OK):
        print(f"walgate binary not found: {binary} (ninja -C build, or set WALGATE_BIN)",
              file=sys.stderr)
        return 2
    started = datetime.datetime.now(datetime.timezone.utc)
    bench = Bench(args)
    try:
        bench.run()
    except (BenchError, RuntimeError, subprocess.TimeoutExpired) as e:
        log(f"benchmark failed: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; every process was stopped, no report written")
        return 130
    report = render_report(bench, started, ["/usr/bin/python3", "bench/run_bench.py", *argv])
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"facts": bench.facts, "results": bench.results, "errors": bench.errors},
                      f, indent=1)
    print(report)
    log(f"report written to {args.output}")
    failed = any(errs for per in bench.errors.values() for errs in per.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
