#!/usr/bin/python3
"""walgate benchmarks: a direct connection, walgate, HAProxy, PgBouncer and stunnel side by side.

    /usr/bin/python3 bench/run_bench.py                  # full run, about 15-20 minutes
    /usr/bin/python3 bench/run_bench.py --quick          # under 2 minutes
    /usr/bin/python3 bench/run_bench.py --scenarios 4,5  # a subset
    meson test -C build --benchmark                      # --quick, report in the build dir

Scenarios (numbered as in issue #7; see bench/README.md):
  1. replication backlog: pg_recvlogical (pgoutput) reading a copy of a slot
     that holds one large transaction, plaintext and with TLS on every leg
  2. snapshot: COPY <1M-row table> TO STDOUT read by psql, plaintext and TLS
  3. round trips: pgbench -S -n -M simple, 1 and 16 clients (plaintext)
  4. proxy cost per byte: bench/synth_walsender streams pgoutput through each
     proxy to bench/synth_sink; proxy CPU seconds per GiB, plaintext and TLS
  5. memory: 10,000 idle sessions through a fresh proxy; RSS per session
  6. scrape: /metrics with 1,000 replication sessions (per-slot series)
  7. scaling ("4s"): scenario 4 with TLS on both legs, --streams concurrent
     sessions through walgate with workers = 1 and workers = 2; aggregate
     MB/s, walgate CPU seconds per GiB, speed-up
  8. teardown: a logical replication client closes (Terminate, or a bare
     EOF); time until pg_drop_replication_slot() succeeds

Scenarios 1-3 and 8 run against one throwaway PostgreSQL 15 (tests/integration/
pgcluster.py); scenarios 4-7 against the synthetic walsender. Every scenario
runs every target it applies to, the order of the targets rotating from one
repetition to the next; the report gives medians, minima, maxima and ratios
to the direct connection. This is a benchmark, not a test: nothing is
asserted about time. The exit status is 1 only when a run failed (its error is
in the report).

Every process started here is stopped on the way out, also on an error,
Ctrl-C or SIGTERM.
"""

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # import tests/integration modules without writing there

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "integration"))

from pgcluster import (LOOPBACK_V4, TEST_DB, TEST_PASSWORD, TEST_USER, PgCluster,  # noqa: E402
                       TestCA, clean_env, issue_cert, pg_bin)
import walgate as walgate_mod  # noqa: E402
from bench_procs import (BenchError, HAProxy, PgBouncer, Stunnel, WalgateProc, role_verifier,  # noqa: E402
                         cpu_times, die_with_parent)
from bench_synth import SUITE_CIPHERS, ScalingMixin, SynthScenarios  # noqa: E402
from bench_teardown import TeardownScenario  # noqa: E402
import bench_report  # noqa: E402

PLAIN_TARGETS = ("direct", "walgate", "haproxy", "pgbouncer")
TLS_TARGETS = ("direct-tls", "walgate-tls", "stunnel")
TARGETS = PLAIN_TARGETS + TLS_TARGETS
SCENARIOS = {"1": "replication", "2": "snapshot", "3": "rt", "4": "stream", "5": "memory",
             "6": "scrape", "7": "scaling", "4s": "scaling", "8": "teardown"}
PG_SCENARIOS = ("replication", "snapshot", "rt", "teardown")

SNAP_TABLE = "bench_snapshot"
REPL_TABLE = "bench_repl"
PUBLICATION = "bench_pub"
SOURCE_SLOT = "bench_src"
RUN_SLOT = "bench_run"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def is_tls(target):
    return target in TLS_TARGETS


# --------------------------------------------------------------------------
# Clients

def client_env(tls=False):
    """libpq's environment: TLS targets use sslmode=require and no channel
    binding (a proxy that terminates TLS cannot relay a binding to its own
    certificate; the server would refuse it)."""
    return clean_env(PGPASSWORD=TEST_PASSWORD, PGSSLMODE="require" if tls else "disable",
                     PGCHANNELBINDING="disable" if tls else None, PGGSSENCMODE="disable",
                     PGCONNECT_TIMEOUT=10, PGAPPNAME="walgate-bench")


def conn_args(host, port):
    return ["-h", host, "-p", str(port), "-U", TEST_USER]


def run_client(argv, timeout, stdout=subprocess.PIPE, tls=False):
    proc = subprocess.run(argv, env=client_env(tls), stdin=subprocess.DEVNULL, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=timeout,
                          preexec_fn=die_with_parent)
    if proc.returncode != 0:
        raise BenchError(f"{os.path.basename(argv[0])} exited with {proc.returncode}: "
                         f"{(proc.stderr or '').strip()[-600:]}")
    return proc


# --------------------------------------------------------------------------
# The benchmark

class Bench(SynthScenarios, ScalingMixin, TeardownScenario):
    def __init__(self, args):
        self.args = args
        self.cluster = None
        self.workdir = None
        self.certs = None        # (cert, key) for walgate-tls, stunnel and the synth server
        self.targets = {}        # name -> (host, port, tls), PostgreSQL scenarios
        self.procs = {}          # name -> process object with .pid, PostgreSQL scenarios
        self.results = {}        # scenario key -> target -> [run dict]
        self.errors = {}         # scenario key -> target -> [str]
        self.facts = {}          # things measured once (sizes, LSNs, versions, ...)
        self.unsupported = {}    # scenario key -> {target: reason}

    # -- setup

    def setup_common(self, stack):
        a = self.args
        self.workdir = tempfile.mkdtemp(prefix="walgate-bench-")
        os.chmod(self.workdir, 0o755)
        if not a.keep:
            stack.callback(shutil.rmtree, self.workdir, True)
        else:
            stack.callback(log, f"kept {self.workdir}")
        self.snapshot_binaries()
        ca = TestCA.create(os.path.join(self.workdir, "certs"), cn="walgate bench CA")
        self.certs = issue_cert(ca, "proxy", "localhost", san=["DNS:localhost", "IP:127.0.0.1"])

    def snapshot_binaries(self):
        """Run copies of walgate and the bench tools, taken now: a rebuild of the
        build directory during the run (someone else's ninja) must not mix two
        binaries in one report."""
        a = self.args
        bindir = os.path.join(self.workdir, "bin")
        os.makedirs(bindir, exist_ok=True)
        orig = walgate_mod.walgate_bin()
        st = os.stat(orig)
        with open(orig, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
        built = datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc)
        self.facts["walgate_binary"] = f"built {built:%Y-%m-%d %H:%M:%S} UTC, sha256 {digest}"
        copy = os.path.join(bindir, "walgate")
        shutil.copy2(orig, copy)
        os.environ["WALGATE_BIN"] = copy
        for attr in ("synth_walsender", "synth_sink"):
            path = getattr(a, attr)
            if os.access(path, os.X_OK):
                dst = os.path.join(bindir, os.path.basename(path))
                shutil.copy2(path, dst)
                setattr(a, attr, dst)

    def setup_pg(self, stack):
        a = self.args
        log("creating PostgreSQL cluster")
        self.cluster = PgCluster.create()
        stack.callback(self._stop_cluster)
        with open(os.path.join(self.cluster.data_dir, "postgresql.conf"), "a") as f:
            f.write("\n# walgate benchmark (later settings win)\n"
                    "shared_buffers = '512MB'\n"
                    "max_wal_size = '8GB'\n"
                    "checkpoint_timeout = '30min'\n"
                    "logical_decoding_work_mem = '1GB'\n"
                    "log_connections = off\n"
                    "log_disconnections = off\n"
                    "max_connections = 200\n")
        self.cluster.start()
        port = self.cluster.port
        cert, key = self.certs
        for t in TARGETS:
            if t not in a.targets:
                continue
            if t in ("direct", "direct-tls"):
                self.targets[t] = (LOOPBACK_V4, port, is_tls(t))
                continue
            if t == "walgate":
                p = WalgateProc(self.workdir, port)
            elif t == "walgate-tls":
                p = WalgateProc(self.workdir, port, name="walgate-tls", tls=(cert, key),
                                auth_user=(TEST_USER, role_verifier(self.cluster, TEST_USER,
                                                                   TEST_PASSWORD)))
            elif t == "haproxy":
                p = HAProxy(self.workdir, port, a.haproxy_threads)
            elif t == "pgbouncer":
                p = PgBouncer(self.workdir, self.cluster, pool_size=max(a.clients) + 8)
            else:
                p = Stunnel(self.workdir, port, cert, key)
            stack.callback(p.stop)
            p.start()
            self.procs[t] = p
            self.targets[t] = (p.host, p.port, is_tls(t))
        log("targets: " + ", ".join(f"{t}={h}:{p}" for t, (h, p, _) in self.targets.items()))
        self.check_targets()

    def _stop_cluster(self):
        try:
            self.cluster.cleanup(remove_dir=not self.args.keep)
        except Exception as e:  # a server already going down: still remove the files
            log(f"stopping PostgreSQL: {e}")
            if not self.args.keep:
                shutil.rmtree(self.cluster.base_dir, ignore_errors=True)

    def check_targets(self):
        """One query through every target: it connects, and the server's leg is
        plaintext or TLS as the target says (the client's leg is TLS by
        sslmode=require, plaintext by sslmode=disable)."""
        q = ("SELECT coalesce((SELECT ssl::text || ' ' || coalesce(cipher, '') FROM pg_stat_ssl "
             "WHERE pid = pg_backend_pid()), 'false')")
        ciphers = {}
        for name, (host, port, tls) in self.targets.items():
            out = run_client([pg_bin("psql"), "-X", "-A", "-t", *conn_args(host, port),
                              "-d", TEST_DB, "-c", q], timeout=30, tls=tls).stdout.strip()
            ssl = out.split()[0] if out else ""
            if ssl != ("true" if tls else "false"):
                raise BenchError(f"{name}: expected {'a TLS' if tls else 'a plaintext'} "
                                 f"server leg, pg_stat_ssl says {out!r}")
            if tls:
                ciphers[name] = out.split(None, 1)[1] if " " in out else "?"
        self.facts["pg_ciphers"] = ciphers

    @staticmethod
    def rotation(order, rep):
        k = rep % len(order)
        return order[k:] + order[:k]

    # -- one measured run, with the proxy's CPU around it

    def measure(self, key, target, fn, procs=None, targets=None):
        procs = self.procs if procs is None else procs
        targets = self.targets if targets is None else targets
        proc = procs.get(target)
        # The byte counter is read outside the CPU window: a scrape costs walgate CPU too.
        b0 = proc.bytes_relayed() if isinstance(proc, WalgateProc) else None
        cpu0 = cpu_times(proc.pid) if proc else None
        try:
            run = fn(*targets[target])
        except (BenchError, RuntimeError, subprocess.TimeoutExpired) as e:
            log(f"  {key} {target}: FAILED {e}")
            self.errors.setdefault(key, {}).setdefault(target, []).append(str(e))
            return None
        cpu1 = cpu_times(proc.pid) if proc else None
        if cpu0 is not None and cpu1 is not None:
            run["proxy_user"] = cpu1[0] - cpu0[0]
            run["proxy_sys"] = cpu1[1] - cpu0[1]
            run["proxy_cpu"] = run["proxy_user"] + run["proxy_sys"]
        if b0 is not None:
            b1 = proc.bytes_relayed()
            if b1 is not None:
                run["wire_bytes"] = b1 - b0
        self.results.setdefault(key, {}).setdefault(target, []).append(run)
        return run

    # -- scenario 1: replication backlog

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

    def recvlogical(self, host, port, tls):
        self._drop_run_slot()
        self.cluster.sql(f"SELECT pg_copy_logical_replication_slot('{SOURCE_SLOT}', "
                         f"'{RUN_SLOT}')", dbname=TEST_DB)
        try:
            t0 = time.perf_counter()
            run_client([pg_bin("pg_recvlogical"), *conn_args(host, port), "-d", TEST_DB,
                        "--slot", RUN_SLOT, "--start", "--no-loop",
                        f"--endpos={self.facts['repl_endpos']}",
                        "-o", "proto_version=1", "-o", f"publication_names={PUBLICATION}",
                        "-f", "/dev/null"], timeout=900, tls=tls)
            wall = time.perf_counter() - t0
        finally:
            self._drop_run_slot()
        return {"wall_s": wall, "rows_s": self.facts["repl_rows"] / wall}

    def scenario_replication(self):
        key = "replication"
        if "pgbouncer" in self.targets:
            self.unsupported[key] = {"pgbouncer": "PgBouncer cannot relay replication "
                                                  "connections"}
        order = [t for t in self.targets if t != "pgbouncer"]
        self.setup_replication()
        log("scenario 1: warm-up (direct)")
        self.measure("warmup-replication", "direct", self.recvlogical)
        self.results.pop("warmup-replication", None)
        self.errors.pop("warmup-replication", None)
        for rep in range(self.args.reps):
            for t in self.rotation(order, rep):
                run = self.measure(key, t, self.recvlogical)
                if run:
                    log(f"  replication rep {rep + 1} {t}: {run['wall_s']:.2f} s")

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
        host, port, _ = self.targets["direct"]
        proc = subprocess.Popen([pg_bin("psql"), "-X", "-q", *conn_args(host, port), "-d",
                                 TEST_DB, "-c", f"COPY {SNAP_TABLE} TO STDOUT"],
                                env=client_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=die_with_parent)
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

    def copy_out(self, host, port, tls):
        t0 = time.perf_counter()
        run_client([pg_bin("psql"), "-X", "-q", *conn_args(host, port), "-d", TEST_DB,
                    "-c", f"COPY {SNAP_TABLE} TO STDOUT"], timeout=600,
                   stdout=subprocess.DEVNULL, tls=tls)
        wall = time.perf_counter() - t0
        size = self.facts["snapshot_bytes"]
        return {"wall_s": wall, "bytes": size, "mb_s": size / wall / 1e6}

    def scenario_snapshot(self):
        self.setup_snapshot()
        order = list(self.targets)
        log("scenario 2: warm-up")
        for t in order:
            self.measure("warmup-snapshot", t, self.copy_out)
        self.results.pop("warmup-snapshot", None)
        self.errors.pop("warmup-snapshot", None)
        for rep in range(self.args.reps):
            for t in self.rotation(order, rep):
                run = self.measure("snapshot", t, self.copy_out)
                if run:
                    log(f"  snapshot rep {rep + 1} {t}: {run['wall_s']:.2f} s, "
                        f"{run['mb_s']:.0f} MB/s")

    # -- scenario 3: round trips

    def setup_pgbench(self):
        log(f"pgbench -i -s {self.args.pgbench_scale}")
        host, port, _ = self.targets["direct"]
        run_client([pg_bin("pgbench"), "-i", "-q", "-s", str(self.args.pgbench_scale),
                    *conn_args(host, port), TEST_DB], timeout=600)
        self.cluster.sql("VACUUM ANALYZE", dbname=TEST_DB, timeout=300)
        self.cluster.sql("CHECKPOINT", dbname=TEST_DB, timeout=300)

    def pgbench(self, clients, secs):
        threads = min(clients, 2)

        def run(host, port, tls):
            out = run_client([pg_bin("pgbench"), "-S", "-n", "-M", "simple", "-T", str(secs),
                              "-c", str(clients), "-j", str(threads),
                              *conn_args(host, port), TEST_DB], timeout=secs + 120,
                             tls=tls).stdout
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
        order = [t for t in self.targets if t in PLAIN_TARGETS or a.rt_tls]
        for clients in a.clients:
            key = f"rt{clients}"
            log(f"scenario 3, {clients} client(s): warm-up")
            for t in order:
                try:
                    self.pgbench(clients, 1)(*self.targets[t])
                except BenchError as e:
                    log(f"  warm-up {t}: {e}")
            for rep in range(a.reps):
                for t in self.rotation(order, rep):
                    run = self.measure(key, t, self.pgbench(clients, a.pgbench_secs))
                    if run:
                        log(f"  {key} rep {rep + 1} {t}: {run['tps']:.0f} tps, "
                            f"{run['latency_ms']:.3f} ms")

    # -- all of it

    def run(self):
        a = self.args
        with contextlib.ExitStack() as stack:
            self.facts["versions"] = versions()
            self.setup_common(stack)
            t0 = time.monotonic()
            self.facts["load_start"] = os.getloadavg()
            if any(s in a.scenarios for s in PG_SCENARIOS):
                with contextlib.ExitStack() as pg_stack:
                    self.setup_pg(pg_stack)
                    if "replication" in a.scenarios:
                        self.scenario_replication()
                    if "snapshot" in a.scenarios:
                        self.scenario_snapshot()
                    if "rt" in a.scenarios:
                        self.scenario_round_trips()
                    if "teardown" in a.scenarios:
                        self.scenario_teardown()
                    self.facts["walgate_log_errors"] = self._walgate_log_errors()
                    log("stopping PostgreSQL and its proxies")
            for key, fn in (("stream", self.scenario_stream), ("memory", self.scenario_memory),
                            ("scrape", self.scenario_scrape),
                            ("scaling", self.scenario_scaling)):
                if key not in a.scenarios:
                    continue
                if not (os.access(a.synth_walsender, os.X_OK) and os.access(a.synth_sink, os.X_OK)):
                    self.facts[f"{key}_error"] = (f"synth_walsender or synth_sink not built "
                                                  f"({a.synth_walsender}); ninja -C build")
                    log(self.facts[f"{key}_error"])
                    continue
                with contextlib.ExitStack() as s_stack:
                    try:
                        fn(s_stack)
                    except (BenchError, subprocess.TimeoutExpired, OSError) as e:
                        self.facts[f"{key}_error"] = str(e)
                        log(f"scenario {key} failed: {e}")
            self.facts["elapsed_s"] = time.monotonic() - t0
            self.facts["load_end"] = os.getloadavg()
            log("stopping processes")
        log(f"scenarios took {self.facts['elapsed_s']:.0f} s")

    def _walgate_log_errors(self):
        lines = []
        for name in ("walgate", "walgate-tls"):
            wg = self.procs.get(name)
            if not wg:
                continue
            try:
                with open(wg.log_path, errors="replace") as f:
                    for line in f:
                        if re.search(r"\b(error|ERROR|FATAL)\b", line) or (
                                re.search(r"\b(warning|WARNING)\b", line)
                                and "channel_binding=disable" not in line):
                            lines.append(f"{name}: {line.rstrip()}")
            except OSError:
                pass
        return lines[-10:]


# --------------------------------------------------------------------------
# Facts about the machine and the programs

def first_line(argv, pattern=None):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL)
        out = ((proc.stdout or "") + (proc.stderr or "")).strip().splitlines()
        if pattern:
            out = [ln for ln in out if re.search(pattern, ln)]
        return out[0].strip() if out else "?"
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


def versions():
    binary = walgate_mod.walgate_bin()
    wv = first_line([binary, "--version"])
    info = walgate_build_info(binary)
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(binary))))
    src = src if os.path.isdir(os.path.join(src, ".git")) else REPO_ROOT
    rev = first_line(["git", "-C", src, "rev-parse", "--short", "HEAD"])
    try:
        dirty = subprocess.run(["git", "-C", src, "status", "--porcelain",
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
        "stunnel": first_line(["stunnel", "-version"], r"^stunnel \d"),
        "openssl": first_line(["openssl", "version"]),
        "libevent": first_line(["dpkg-query", "-W", "-f", "${Version}\n", "libevent-2.1-7"]),
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
# Command line

def parse_size(text):
    m = re.fullmatch(r"(\d+)\s*([kKmMgG]?)(i?B)?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"bad size: {text}")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="2 repetitions and small sizes everywhere (under 2 minutes)")
    p.add_argument("--reps", type=int, help="repetitions (default 5, --quick 2)")
    p.add_argument("--pgbench-secs", type=int, help="seconds per pgbench run (default 5, --quick 2)")
    p.add_argument("--pgbench-scale", type=int, help="pgbench -i scale (default 10, --quick 1)")
    p.add_argument("--clients", default="1,16", help="pgbench client counts (default 1,16)")
    p.add_argument("--rt-tls", action="store_true",
                   help="also run scenario 3 through the TLS targets")
    p.add_argument("--snapshot-rows", type=int,
                   help="rows of the COPY table (default 1000000, --quick 100000)")
    p.add_argument("--repl-rows", type=int, help="backlog rows (default 1000000, --quick 50000)")
    p.add_argument("--stream-bytes", type=parse_size,
                   help="scenario 4 bytes per run, scenario 7 bytes per stream, e.g. 1G "
                        "(default 1G, --quick 64M)")
    p.add_argument("--ciphersuite", default="TLS_AES_256_GCM_SHA384", choices=sorted(SUITE_CIPHERS),
                   help="scenarios 4-7: the TLS 1.3 suite the synthetic walsender and sink "
                        "allow, whose cipher `openssl speed -evp` measures (default "
                        "TLS_AES_256_GCM_SHA384, what PostgreSQL and libpq negotiate)")
    p.add_argument("--streams", type=int, default=2,
                   help="scenario 7: concurrent TLS streams (default 2)")
    p.add_argument("--scaling-workers", default="1,2",
                   help="scenario 7: walgate worker counts compared, the first is the "
                        "baseline of the speed-up (default 1,2)")
    p.add_argument("--idle-sessions", type=int,
                   help="scenario 5 sessions (default 10000, --quick 300; capped by RLIMIT_NOFILE)")
    p.add_argument("--scrape-slots", type=int,
                   help="scenario 6 replication sessions (default 1000, --quick 100)")
    p.add_argument("--scrapes", type=int, help="scenario 6 scrapes timed (default 20, --quick 5)")
    p.add_argument("--teardown-reps", type=int,
                   help="scenario 8 repetitions per target and close mode (default 30, --quick 5)")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help="comma-separated subset of " + ",".join(TARGETS)
                   + " (direct always runs; direct-tls whenever a TLS target runs)")
    p.add_argument("--scenarios", default="1,2,3,4,5,6,7,8",
                   help="comma-separated numbers or names: 1 replication, 2 snapshot, 3 rt, "
                        "4 stream, 5 memory, 6 scrape, 7 (or 4s) scaling, 8 teardown "
                        "(default all)")
    p.add_argument("--haproxy-threads", type=int, default=1,
                   help="HAProxy nbthread (default 1, like walgate's single event loop)")
    p.add_argument("--profile", action="store_true",
                   help="scenario 4: one more run per proxy under perf (syscall counts, top "
                        "symbols of walgate)")
    p.add_argument("--note", action="append", default=[],
                   help="a sentence for the report's header (e.g. what else ran meanwhile)")
    p.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"),
                   help="Markdown report (default bench/RESULTS.md, overwritten)")
    p.add_argument("--json", help="also write the raw runs as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the work directories (logs)")
    a = p.parse_args(argv)
    q = a.quick
    a.reps = a.reps or (2 if q else 5)
    a.pgbench_secs = a.pgbench_secs or (2 if q else 5)
    a.pgbench_scale = a.pgbench_scale or (1 if q else 10)
    a.snapshot_rows = a.snapshot_rows or (100_000 if q else 1_000_000)
    a.repl_rows = a.repl_rows or (50_000 if q else 1_000_000)
    a.stream_bytes = a.stream_bytes or ((64 if q else 1024) << 20)
    a.idle_sessions = a.idle_sessions or (300 if q else 10_000)
    a.scrape_slots = a.scrape_slots or (100 if q else 1000)
    a.scrapes = a.scrapes or (5 if q else 20)
    a.teardown_reps = a.teardown_reps or (5 if q else 30)
    a.clients = [int(c) for c in a.clients.split(",") if c.strip()]
    try:
        a.scaling_workers = [int(n) for n in a.scaling_workers.split(",") if n.strip()]
    except ValueError:
        p.error(f"bad --scaling-workers: {a.scaling_workers}")
    if not a.scaling_workers or min(a.scaling_workers) < 1 or a.streams < 1 or a.streams > 64:
        p.error("--scaling-workers needs counts >= 1 and --streams 1-64")
    a.targets = {"direct"} | {t.strip() for t in a.targets.split(",") if t.strip()}
    unknown = a.targets - set(TARGETS)
    if unknown:
        p.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if a.targets & set(TLS_TARGETS):
        a.targets.add("direct-tls")
    scen = set()
    for s in (s.strip() for s in a.scenarios.split(",") if s.strip()):
        if s in SCENARIOS:
            scen.add(SCENARIOS[s])
        elif s in SCENARIOS.values():
            scen.add(s)
        else:
            p.error(f"unknown scenario: {s}")
    a.scenarios = scen
    build = os.path.dirname(os.path.dirname(os.path.abspath(walgate_mod.walgate_bin())))
    a.synth_walsender = os.environ.get("SYNTH_WALSENDER_BIN") or os.path.join(
        build, "bench", "synth_walsender")
    a.synth_sink = os.environ.get("SYNTH_SINK_BIN") or os.path.join(build, "bench", "synth_sink")
    build_synth_tools(build, (a.synth_walsender, a.synth_sink))
    return a


def build_synth_tools(build, paths):
    """The synthetic walsender and sink are not built by default: ask ninja
    for those of them that are missing from the build directory."""
    missing = [os.path.relpath(p, build) for p in paths
               if p.startswith(build + os.sep) and not os.access(p, os.X_OK)]
    if missing:
        subprocess.run(["ninja", "-C", build, *missing], check=True)


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    binary = walgate_mod.walgate_bin()
    if not os.access(binary, os.X_OK):
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
    report = bench_report.render(bench, started, machine(),
                                 ["/usr/bin/python3", "bench/run_bench.py", *argv])
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"facts": bench.facts, "results": bench.results, "errors": bench.errors},
                      f, indent=1, default=str)
    print(report)
    log(f"report written to {args.output}")
    failed = any(errs for per in bench.errors.values() for errs in per.values()) or any(
        k.endswith("_error") for k in bench.facts)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
