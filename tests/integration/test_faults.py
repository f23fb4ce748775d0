"""Faults around a running session: the upstream dying mid-stream (logical
replication, COPY TO STDOUT), the client dying mid-stream, file descriptors
running out, garbage next to a good session, and a half-closed client.

The upstream-kill tests use a cluster of their own (module-scoped), so that
stopping it leaves the shared `pg` cluster alone."""

import os
import random
import select
import signal
import socket
import struct
import subprocess
import threading
import time

import psycopg2
import psycopg2.extras
import pytest

import pgwire
from clients import client_env, conn_args, connect, psql
from pgcluster import PgCluster, TEST_DB, TEST_USER, pg_bin
from walgate import walgate_bin

pytestmark = pytest.mark.walgate_only

ACTIVE_REGULAR = 'walgate_connections_active{kind="regular"}'
ACTIVE_REPLICATION = 'walgate_connections_active{kind="replication"}'
PROTOCOL_ERRORS = 'walgate_protocol_errors_total{kind="client"}'
STARTUP_PARAMS = {"user": TEST_USER, "database": TEST_DB}


def wait_value(wg, key, expected, timeout=5.0):
    return wg.wait_for_metric(key, lambda v: v == expected, timeout=timeout)


def assert_clean_exit(wg):
    """SIGTERM: walgate exits 0 and its log has no sanitizer report (the
    sanitizer build makes its errors fatal)."""
    rc = wg.stop()
    log = wg.log_text()
    assert "Sanitizer" not in log, log[-5000:]
    assert rc == 0, f"walgate exited with {rc}:\n{log[-3000:]}"


def assert_query_works(target):
    proc = psql(target, "SELECT 40 + 2", timeout=30)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout.strip() == b"42", proc.stdout


# -- a cluster of our own, to kill ---------------------------------------

@pytest.fixture(scope="module")
def victim(pg_programs):
    cluster = PgCluster.create()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup(remove_dir=True)


@pytest.fixture
def victim_walgate(victim, walgate_factory):
    if not victim.running:
        victim.start()
    wg = walgate_factory(upstream_port=victim.port)
    assert wait_value(wg, ACTIVE_REGULAR, 0) == 0
    yield wg
    if not victim.running:
        victim.start()


def test_upstream_killed_during_logical_replication(victim, victim_walgate):
    wg = victim_walgate
    slot = "faults_victim_slot"
    conn = connect(wg, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    cur = conn.cursor()
    try:
        cur.create_replication_slot(slot, output_plugin="test_decoding")
        cur.start_replication(slot_name=slot, decode=True)
        victim.sql("CREATE TABLE IF NOT EXISTS t_repl (id int); "
                   "INSERT INTO t_repl SELECT generate_series(1, 100)", dbname=TEST_DB)
        # Read until the change stream is flowing.
        seen = 0
        deadline = time.monotonic() + 15
        while seen < 10:
            assert time.monotonic() < deadline, f"only {seen} replication messages arrived"
            msg = cur.read_message()
            if msg is None:
                select.select([conn], [], [], 0.5)
                continue
            seen += 1
        assert wg.metric(ACTIVE_REPLICATION) == 1

        victim.stop("immediate")
        stopped = time.monotonic()
        outcome = None
        while outcome is None:
            if time.monotonic() - stopped > 5:
                pytest.fail("the replication client neither failed nor saw EOF 5 s after "
                            "the upstream was killed (a hang)")
            try:
                msg = cur.read_message()
            except psycopg2.Error as e:
                outcome = e
                break
            if msg is None:
                select.select([conn], [], [], 0.2)
        assert isinstance(outcome, psycopg2.Error)
        assert wait_value(wg, ACTIVE_REPLICATION, 0) == 0, wg.log_text()[-3000:]
        assert wg.proc.poll() is None, "walgate died"
    finally:
        conn.close()

    victim.start()
    assert_query_works(wg)
    repl = connect(wg, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    try:
        rcur = repl.cursor()
        rcur.execute("IDENTIFY_SYSTEM")
        assert rcur.fetchone()[0]
        rcur.drop_replication_slot(slot)
    finally:
        repl.close()
    assert wait_value(wg, ACTIVE_REPLICATION, 0) == 0
    assert wait_value(wg, ACTIVE_REGULAR, 0) == 0
    assert_clean_exit(wg)


class _BlockingSink:
    """A file for copy_expert: after its first write it announces that the
    COPY is flowing and blocks until told to go on, so the stream is stuck
    mid-way (by backpressure) while the upstream is killed."""

    def __init__(self):
        self.flowing = threading.Event()
        self.go_on = threading.Event()
        self.nbytes = 0

    def write(self, data):
        self.nbytes += len(data)
        if not self.flowing.is_set():
            self.flowing.set()
            self.go_on.wait(30)
        return len(data)


def test_upstream_killed_during_copy_out(victim, victim_walgate):
    wg = victim_walgate
    conn = connect(wg)
    sink = _BlockingSink()
    result = {}

    def copy():
        try:
            with conn.cursor() as cur:
                cur.copy_expert("COPY (SELECT g, repeat('x', 100) FROM generate_series(1, 2000000) g)"
                                " TO STDOUT", sink)
            result["ok"] = True
        except psycopg2.Error as e:
            result["error"] = e
        result["at"] = time.monotonic()

    t = threading.Thread(target=copy, daemon=True)
    t.start()
    try:
        assert sink.flowing.wait(15), "the COPY did not start"
        assert wg.metric(ACTIVE_REGULAR) == 1
        victim.stop("immediate")
        stopped = time.monotonic()
        sink.go_on.set()
        t.join(10)
        assert not t.is_alive(), "the COPY client hangs after the upstream was killed"
        assert "error" in result, (f"the COPY of ~215 MB 'succeeded' after the upstream was "
                                   f"killed, with {sink.nbytes} bytes")
        assert result["at"] - stopped < 5, result
        assert sink.nbytes < 200_000_000
        assert wait_value(wg, ACTIVE_REGULAR, 0) == 0, wg.log_text()[-3000:]
        assert wg.proc.poll() is None, "walgate died"
    finally:
        sink.go_on.set()
        conn.close()

    victim.start()
    assert_query_works(wg)
    assert wait_value(wg, ACTIVE_REGULAR, 0) == 0
    assert_clean_exit(wg)


# -- the client killed mid-stream ----------------------------------------

def _slot_active(pg, slot):
    return pg.sql(f"SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'").strip()


def test_client_killed_during_recvlogical(pg, walgate):
    slot = "faults_kill_client"
    pg.sql(f"SELECT pg_create_logical_replication_slot('{slot}', 'test_decoding')",
           dbname=TEST_DB)
    proc = subprocess.Popen(
        [pg_bin("pg_recvlogical"), *conn_args(walgate), "--slot", slot, "--start",
         "--no-loop", "-f", "-"],
        env=client_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while _slot_active(pg, slot) != "t":
            assert proc.poll() is None, proc.communicate()[1].decode(errors="replace")
            assert time.monotonic() < deadline, "the slot never became active"
            time.sleep(0.05)
        pg.sql("CREATE TABLE IF NOT EXISTS faults_kill_t (id int); "
               "INSERT INTO faults_kill_t SELECT generate_series(1, 1000)", dbname=TEST_DB)
        assert proc.stdout.readline(), "no change arrived through walgate"
        assert walgate.metric(ACTIVE_REPLICATION) == 1

        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        killed = time.monotonic()
        while _slot_active(pg, slot) != "f":
            assert time.monotonic() - killed < 5, \
                "the upstream walsender still holds the slot 5 s after its client died"
            time.sleep(0.05)
        assert wait_value(walgate, ACTIVE_REPLICATION, 0) == 0
        assert_clean_exit(walgate)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        deadline = time.monotonic() + 10
        while _slot_active(pg, slot) == "t" and time.monotonic() < deadline:
            time.sleep(0.1)
        pg.sql(f"SELECT pg_drop_replication_slot('{slot}')")
        pg.sql("DROP TABLE IF EXISTS faults_kill_t", dbname=TEST_DB)


# -- file descriptors exhausted ------------------------------------------

FD_LIMIT = 24


@pytest.fixture
def fd_limited_walgate(walgate_factory, tmp_path):
    """walgate run under prlimit --nofile (prlimit execs it, so the pid is
    walgate's own)."""
    wrapper = tmp_path / "walgate-lowfd"
    wrapper.write_text(f"#!/bin/sh\nexec /usr/bin/prlimit --nofile={FD_LIMIT}:{FD_LIMIT} -- "
                       f"{walgate_bin()} \"$@\"\n")
    wrapper.chmod(0o755)
    wg = walgate_factory(binary=str(wrapper), walgate={"startup_timeout": "60s"})
    with open(f"/proc/{wg.proc.pid}/limits") as f:
        limits = f.read()
    assert any(line.startswith("Max open files") and f" {FD_LIMIT} " in line
               for line in limits.splitlines()), limits
    return wg


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    # utime and stime are fields 14 and 15; fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def _exhaust(wg, extra=8):
    """Open idle connections until walgate has no descriptor left, plus a
    few more that wait in the listen backlog."""
    socks = []
    deadline = time.monotonic() + 10
    while _open_fds(wg.proc.pid) < FD_LIMIT:
        assert time.monotonic() < deadline, f"walgate holds only {_open_fds(wg.proc.pid)} fds"
        socks.append(pgwire.connect(wg.host, wg.port))
        time.sleep(0.02)
    for _ in range(extra):
        socks.append(pgwire.connect(wg.host, wg.port))
    return socks


def _assert_no_busy_loop(wg, what):
    before = _cpu_seconds(wg.proc.pid)
    time.sleep(3)
    used = _cpu_seconds(wg.proc.pid) - before
    assert used < 0.5, f"walgate used {used:.2f} s of CPU in 3 s {what} (busy loop)"


def test_fd_exhaustion_pauses_accepts(fd_limited_walgate):
    wg = fd_limited_walgate
    socks = _exhaust(wg)
    try:
        assert wg.wait_for_log(r"pausing accepts", timeout=5), wg.log_text()[-3000:]
        _assert_no_busy_loop(wg, "while out of file descriptors")
        assert wg.proc.poll() is None
    finally:
        for s in socks:
            s.close()
    # The pause lasts a second; the backlog's dead connections are then
    # accepted and closed too.
    deadline = time.monotonic() + 10
    while True:
        proc = psql(wg, "SELECT 40 + 2", timeout=30)
        if proc.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout.strip() == b"42"
    assert wait_value(wg, ACTIVE_REGULAR, 0) == 0
    assert_clean_exit(wg)


def test_fd_exhaustion_with_pending_metrics_scrape(fd_limited_walgate):
    """A scrape waiting on the metrics listener while descriptors are out
    must not spin the loop either."""
    wg = fd_limited_walgate
    socks = _exhaust(wg)
    try:
        mhost, mport = wg.metrics_addr
        scrape = socket.create_connection((mhost, mport), timeout=5)
        socks.append(scrape)
        scrape.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        _assert_no_busy_loop(wg, "with a scrape pending while out of file descriptors")
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 10
    while True:
        proc = psql(wg, "SELECT 40 + 2", timeout=30)
        if proc.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert_clean_exit(wg)


# -- garbage next to a good session ----------------------------------------

def _assert_fatal_08p01_and_close(sock):
    fields = pgwire.read_error(sock)
    assert fields.get("S") == "FATAL", fields
    assert fields.get("C") == "08P01", fields
    closed, extra, _ = pgwire.wait_closed(sock, 5)
    assert closed, "walgate did not close the connection after FATAL 08P01"
    assert extra == b"", extra


def _assert_closed(sock, timeout=5):
    closed, data, _ = pgwire.wait_closed(sock, timeout)
    assert closed, f"walgate kept the connection open {timeout} s after garbage ({data!r})"
    return data


def test_garbage_beside_a_good_session(pg, walgate_factory):
    wg = walgate_factory(walgate={"max_message_size": "4096"})
    good = connect(wg)
    good.autocommit = True
    gcur = good.cursor()

    def good_still_works(step):
        gcur.execute("SELECT %s::text, pg_backend_pid()", (step,))
        assert gcur.fetchone()[0] == step
        assert wg.proc.poll() is None, f"walgate died after {step}"

    try:
        good_still_works("start")

        # (a) a startup packet claiming 0x7fffffff bytes
        errors = wg.metric(PROTOCOL_ERRORS)
        with pgwire.connect(wg.host, wg.port) as s:
            s.sendall(struct.pack("!ii", 0x7FFFFFFF, pgwire.PROTOCOL_3_0))
            _assert_fatal_08p01_and_close(s)
        assert wg.wait_for_metric(PROTOCOL_ERRORS, lambda v: v > errors) > errors
        good_still_works("huge startup length")

        # (b) an oversized message after the startup packet was relayed
        with open(pg.log_file, "rb") as f:
            f.seek(0, os.SEEK_END)
            log_offset = f.tell()
        errors = wg.metric(PROTOCOL_ERRORS)
        with pgwire.connect(wg.host, wg.port) as s:
            s.sendall(pgwire.startup_message(STARTUP_PARAMS))
            mtype, body = pgwire.read_message(s)
            assert mtype == "R" and pgwire.auth_request(body)[0] == pgwire.AUTH_SASL
            s.sendall(b"Q" + struct.pack("!i", 100000) + b"SELECT 1;" + b" " * 200)
            _assert_fatal_08p01_and_close(s)
        assert wg.wait_for_metric(PROTOCOL_ERRORS, lambda v: v > errors) > errors
        time.sleep(0.5)
        with open(pg.log_file, "rb") as f:
            f.seek(log_offset)
            pg_log = f.read().decode(errors="replace")
        for leak in ("expected SASL response", "invalid frontend message type",
                     "message type 0x51", "SELECT 1;"):
            assert leak not in pg_log, f"the oversized message reached the upstream:\n{pg_log}"
        good_still_works("oversized message")

        # (c) random garbage (a negative length first)
        garbage = b"\xde\xad\xbe\xef" + random.Random(20240501).randbytes(4096)
        with pgwire.connect(wg.host, wg.port) as s:
            try:
                s.sendall(garbage)
            except (BrokenPipeError, ConnectionResetError):
                pass
            _assert_closed(s)
        good_still_works("random garbage")

        # (d) TLS-looking garbage on a walgate without a certificate
        with pgwire.connect(wg.host, wg.port) as s:
            try:
                s.sendall(b"\x16\x03" + random.Random(7).randbytes(600))
            except (BrokenPipeError, ConnectionResetError):
                pass
            _assert_closed(s)
        good_still_works("TLS-looking garbage")

        assert wait_value(wg, ACTIVE_REGULAR, 1) == 1, "only the good session should remain"
    finally:
        good.close()
    assert wait_value(wg, ACTIVE_REGULAR, 0) == 0
    assert_clean_exit(wg)


# -- half-closed client -------------------------------------------------

def test_half_closed_client_after_startup(walgate):
    assert wait_value(walgate, ACTIVE_REGULAR, 0) == 0
    with pgwire.connect(walgate.host, walgate.port) as s:
        s.sendall(pgwire.startup_message(STARTUP_PARAMS))
        s.shutdown(socket.SHUT_WR)
        closed, data, waited = pgwire.wait_closed(s, 5)
        assert closed, (f"walgate kept a half-closed session open for {waited:.1f} s "
                        f"(read {data!r})")
    assert wait_value(walgate, ACTIVE_REGULAR, 0) == 0, walgate.log_text()[-3000:]
    assert wait_value(walgate, ACTIVE_REPLICATION, 0) == 0
    assert_clean_exit(walgate)
