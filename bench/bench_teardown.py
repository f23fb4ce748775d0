"""Scenario 8 of run_bench.py, teardown: how soon a replication slot is free
again after its client goes away, directly and through each proxy.

Each run creates a pgoutput slot, opens a logical replication stream on it
with psycopg2 (LogicalReplicationConnection, START_REPLICATION) through the
target, checks that the slot is active, and ends the client in one of two
ways:

  terminate: conn.close(), libpq's Terminate message ('X') and close(2);
  eof:       shutdown(2) of the socket, an EOF without Terminate, as when
             a client process dies.

From that instant it asks, over a superuser connection (Unix socket),
whether the slot is still active (a cheap SELECT on pg_replication_slots,
again and again: finer steps than a failing drop, which costs an error,
a rollback and a log line), and once it is not, calls
pg_drop_replication_slot() (retried while it fails with "replication slot
... is active for PID ..."). Reported: the time from the close to the slot
seen free and to the successful drop, and how often the first look found
it free already. Materialize reconnects and drops or reuses its slots at
once, so a slot that a proxy keeps busy after the client left is an error
there.

TeardownScenario is mixed into run_bench.Bench, which provides args,
targets, cluster, results, errors, facts and measure(); teardown_section()
writes its part of the report.
"""

import socket
import statistics
import sys
import time

import psycopg2
import psycopg2.errors
import psycopg2.extras

from pgcluster import TEST_DB, TEST_PASSWORD, TEST_USER

SLOT = "bench_teardown"
PUBLICATION = "bench_teardown_pub"
MODES = ("terminate", "eof")
TARGETS = ("direct", "walgate", "haproxy", "direct-tls", "walgate-tls", "stunnel")
RATIO_TARGET = 1.5           # issue #12: walgate's median at most 1.5x direct's
RETRY_PAUSE_S = 0.0001       # between two looks: leave the CPUs to the exiting walsender
DEADLINE_S = 10.0


def key_of(mode):
    return f"teardown-{mode}"


class TeardownScenario:
    def teardown_setup(self):
        self.cluster.sql(f"DROP PUBLICATION IF EXISTS {PUBLICATION}; "
                         f"CREATE PUBLICATION {PUBLICATION}", dbname=TEST_DB)
        self.td_admin = psycopg2.connect(**self.cluster.superuser_params(TEST_DB))
        self.td_admin.autocommit = True

    def _slot_active(self, cur):
        cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (SLOT,))
        row = cur.fetchone()
        return row[0] if row else None

    def _retry_until(self, what, attempt):
        """Call attempt() until it returns True; the number of False answers."""
        misses = 0
        deadline = time.monotonic() + DEADLINE_S
        while not attempt():
            misses += 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"slot {SLOT} not {what} {DEADLINE_S:.0f} s after the "
                                   "client closed")
            time.sleep(RETRY_PAUSE_S)
        return misses

    def _drop_when_free(self, cur):
        """pg_drop_replication_slot until it succeeds; the number of failures."""
        def drop():
            try:
                cur.execute("SELECT pg_drop_replication_slot(%s)", (SLOT,))
                return True
            except psycopg2.errors.ObjectInUse:
                return False
        return self._retry_until("dropped", drop)

    def teardown_run(self, mode):
        def run(host, port, tls):
            cur = self.td_admin.cursor()
            if self._slot_active(cur) is not None:
                self._drop_when_free(cur)
            cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (SLOT,))
            conn = psycopg2.connect(
                host=host, port=port, dbname=TEST_DB, user=TEST_USER, password=TEST_PASSWORD,
                sslmode="require" if tls else "disable",
                channel_binding="disable" if tls else "prefer", gssencmode="disable",
                connect_timeout=10, application_name="walgate-bench-teardown",
                connection_factory=psycopg2.extras.LogicalReplicationConnection)
            sock = None
            try:
                rcur = conn.cursor()
                rcur.start_replication(slot_name=SLOT, decode=False,
                                       options={"proto_version": "1",
                                                "publication_names": PUBLICATION})
                if not self._slot_active(cur):
                    raise RuntimeError("the slot is not active after START_REPLICATION")
                sock = socket.socket(fileno=conn.fileno()) if mode == "eof" else None
                t0 = time.perf_counter()
                if sock:
                    sock.shutdown(socket.SHUT_RDWR)
                else:
                    conn.close()
                busy = self._retry_until("free", lambda: self._slot_active(cur) is False)
                t_free = time.perf_counter()
                failed = self._drop_when_free(cur)
                t_dropped = time.perf_counter()
            finally:
                if sock:
                    sock.detach()       # libpq still owns the descriptor
                conn.close()
            return {"free_ms": (t_free - t0) * 1000.0, "dropped_ms": (t_dropped - t0) * 1000.0,
                    "busy_looks": busy, "failed_drops": failed}
        return run

    def scenario_teardown(self):
        order = [t for t in TARGETS if t in self.targets]
        if "pgbouncer" in self.targets:
            self.unsupported.setdefault("teardown", {})["pgbouncer"] = \
                "PgBouncer cannot relay replication connections"
        self.teardown_setup()
        try:
            for mode in MODES:
                for t in order:   # warm-up: one untimed run per target
                    self.measure("warmup-teardown", t, self.teardown_run(mode))
            self.results.pop("warmup-teardown", None)
            self.errors.pop("warmup-teardown", None)
            for rep in range(self.args.teardown_reps):
                for mode in MODES:
                    for t in self.rotation(order, rep):
                        self.measure(key_of(mode), t, self.teardown_run(mode))
                if (rep + 1) % 10 == 0:
                    self._log_progress(rep + 1)
        finally:
            self.td_admin.close()
            self.cluster.sql(f"DROP PUBLICATION IF EXISTS {PUBLICATION}", dbname=TEST_DB)

    def _log_progress(self, reps):
        for mode in MODES:
            runs = self.results.get(key_of(mode), {})
            meds = {t: statistics.median(r["dropped_ms"] for r in v) for t, v in runs.items() if v}
            print(f"  teardown {mode} after {reps} reps: "
                  + ", ".join(f"{t} {m:.2f} ms" for t, m in meds.items()), file=sys.stderr,
                  flush=True)


def _median(runs, field):
    values = [r[field] for r in runs]
    return statistics.median(values) if values else None


def _ratio(r):
    return "" if r is None else f"{r:.2f}"


def teardown_rows(bench, mode):
    """[(target, {field: (median, min, max)}, runs where the first look found the slot
    free, runs, (ratio of the median free time, of the median dropped time) to
    direct's of the same legs)]."""
    runs = bench.results.get(key_of(mode), {})
    rows = []
    for t in TARGETS:
        if not runs.get(t):
            continue
        base = runs.get("direct-tls" if t in ("walgate-tls", "stunnel", "direct-tls") else "direct")
        stats = {}
        for field in ("free_ms", "dropped_ms", "failed_drops"):
            values = [r[field] for r in runs[t]]
            stats[field] = (statistics.median(values), min(values), max(values))
        ratios = tuple(stats[f][0] / _median(base, f) if base else None
                       for f in ("free_ms", "dropped_ms"))
        rows.append((t, stats, sum(1 for r in runs[t] if r["busy_looks"] == 0), len(runs[t]),
                     ratios))
    return rows


def teardown_section(bench, w):
    w("From the client's close: **free** = the first look at `pg_replication_slots` that "
      "finds the slot inactive (looks every 0.1 ms over a Unix-socket superuser session), "
      "**dropped** = the `pg_drop_replication_slot()` that follows it succeeding. "
      "`terminate`: psycopg2 `close()`, a Terminate message then close(2). `eof`: "
      "`shutdown(2)` of the client's socket, no Terminate. Ratios: a target's median to "
      "`direct`'s for plaintext targets, to `direct-tls`'s for TLS ones. The target (issue "
      f"#12) is walgate's median dropped time at most {RATIO_TARGET}x; the free time is the "
      "same measure without the drop's own cost.")
    w("")
    for mode in MODES:
        rows = teardown_rows(bench, mode)
        if not rows:
            continue
        w(f"### {mode}")
        w("")
        w("| target | median ms free | ratio | median ms dropped | min | max | ratio | met | "
          "free at the first look | failed drops (max) |")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
        for t, st, first_free, n, (r_free, r_drop) in rows:
            met = "" if not t.startswith("walgate") or r_drop is None else (
                "**yes**" if r_drop <= RATIO_TARGET else "**no**")
            free, dropped = st["free_ms"], st["dropped_ms"]
            w(f"| {t} | {free[0]:.2f} | {_ratio(r_free)} | {dropped[0]:.2f} | {dropped[1]:.2f} | "
              f"{dropped[2]:.2f} | {_ratio(r_drop)} | {met} | {first_free} of {n} | "
              f"{st['failed_drops'][2]:g} |")
        w("")
    errs = [f"- {k} {t}: `{e[:200]}`" for k in (key_of(m) for m in MODES)
            for t, es in bench.errors.get(k, {}).items() for e in es]
    for line in errs[:10]:
        w(line)
    if errs:
        w("")
