"""Scenario 8 of run_bench.py, teardown: how soon a replication slot is free
again after its client goes away, directly and through each proxy.

Each run creates a pgoutput slot, opens a logical replication stream on it
with psycopg2 (LogicalReplicationConnection, START_REPLICATION) through the
target, checks that the slot is active, and ends the client in one of two
ways:

  terminate: conn.close(), libpq's Terminate message ('X') and close(2);
  eof:       shutdown(2) of the socket, an EOF without Terminate, as when
             a client process dies.

From that instant it calls pg_drop_replication_slot() over a superuser
connection (Unix socket) again and again until it succeeds ("replication
slot ... is active for PID ..." until the walsender has exited). Reported:
the time from the close to the successful drop, and how many drops failed
first. Materialize reconnects and drops or reuses its slots at once, so a
slot that a proxy keeps busy after the client left is an error there.

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
DROP_PAUSE_S = 0.0002        # between two failed drops: leave the CPUs to the exiting walsender
DROP_DEADLINE_S = 10.0


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

    def _drop_when_free(self, cur):
        """pg_drop_replication_slot until it succeeds; the number of failures."""
        failed = 0
        deadline = time.monotonic() + DROP_DEADLINE_S
        while True:
            try:
                cur.execute("SELECT pg_drop_replication_slot(%s)", (SLOT,))
                return failed
            except psycopg2.errors.ObjectInUse:
                failed += 1
                if time.monotonic() > deadline:
                    raise RuntimeError(f"slot {SLOT} still active {DROP_DEADLINE_S:.0f} s "
                                       "after the client closed")
                time.sleep(DROP_PAUSE_S)

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
                failed = self._drop_when_free(cur)
                elapsed = time.perf_counter() - t0
            finally:
                if sock:
                    sock.detach()       # libpq still owns the descriptor
                conn.close()
            return {"free_ms": elapsed * 1000.0, "failed_drops": failed}
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
            meds = {t: statistics.median(r["free_ms"] for r in v) for t, v in runs.items() if v}
            print(f"  teardown {mode} after {reps} reps: "
                  + ", ".join(f"{t} {m:.2f} ms" for t, m in meds.items()), file=sys.stderr,
                  flush=True)


def _median(runs, field):
    values = [r[field] for r in runs]
    return statistics.median(values) if values else None


def teardown_rows(bench, mode):
    """[(target, median ms, min, max, median failed drops, runs, ratio to direct of its legs)]."""
    runs = bench.results.get(key_of(mode), {})
    rows = []
    for t in TARGETS:
        if not runs.get(t):
            continue
        base = runs.get("direct-tls" if t in ("walgate-tls", "stunnel", "direct-tls") else "direct")
        ms = [r["free_ms"] for r in runs[t]]
        med = statistics.median(ms)
        ratio = med / _median(base, "free_ms") if base else None
        rows.append((t, med, min(ms), max(ms), _median(runs[t], "failed_drops"),
                     sum(1 for r in runs[t] if r["failed_drops"] == 0), len(ms), ratio))
    return rows


def teardown_section(bench, w):
    w("Time from the client's close to the first successful `pg_drop_replication_slot()` "
      "(retried every 0.2 ms over a Unix-socket superuser session while the slot is "
      "active). `terminate`: psycopg2 `close()`, a Terminate message then close(2). `eof`: "
      "`shutdown(2)` of the client's socket, no Terminate. Ratio: to `direct` for plaintext "
      "targets, to `direct-tls` for TLS ones; the target is walgate at most "
      f"{RATIO_TARGET}x.")
    w("")
    for mode in MODES:
        rows = teardown_rows(bench, mode)
        if not rows:
            continue
        w(f"### {mode}")
        w("")
        w("| target | median ms | min | max | median failed drops | first drop succeeded | "
          "ratio | met |")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for t, med, lo, hi, fails, first_ok, n, ratio in rows:
            met = "" if not t.startswith("walgate") or ratio is None else (
                "**yes**" if ratio <= RATIO_TARGET else "**no**")
            w(f"| {t} | {med:.2f} | {lo:.2f} | {hi:.2f} | {fails:g} | {first_ok} of {n} | "
              f"{'' if ratio is None else f'{ratio:.2f}'} | {met} |")
        w("")
    errs = [f"- {k} {t}: `{e[:200]}`" for k in (key_of(m) for m in MODES)
            for t, es in bench.errors.get(k, {}).items() for e in es]
    for line in errs[:10]:
        w(line)
    if errs:
        w("")
