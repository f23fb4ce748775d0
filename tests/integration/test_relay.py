"""The core relay: what a client sees through walgate equals what it sees
talking to PostgreSQL directly, for simple and extended queries, COPY,
cancellation and logical replication."""

import datetime
import decimal
import hashlib
import io
import os
import re
import socket
import subprocess
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

from clients import (client_env, conn_args, connect, drop_slot, pgbench, psql, run,
                     superuser_connect)
from pgcluster import TEST_DB, TEST_USER, pg_bin


# -- 1. simple queries with psql -----------------------------------------

PSQL_QUERIES = [
    "SELECT 1 AS one",
    "SELECT current_user, session_user, current_database()",
    "SELECT g, md5(g::text), repeat('x', g % 50) FROM generate_series(1, 5000) g",
    "SELECT 'ünïcødé ✓ 日本語', E'tab\\there', NULL::int, 1.5::numeric, '\\x00ff'::bytea",
    "SELECT 1 AS a; SELECT 2 AS b; SELECT 'three' AS c",
    "SELECT 1/0",                                            # an ERROR
    "DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$",  # a NOTICE
    "SELECT * FROM no_such_table",
    "SHOW server_encoding",
    "BEGIN; CREATE TEMP TABLE t(x int); INSERT INTO t VALUES (1), (2); "
    "SELECT sum(x) FROM t; ROLLBACK",
]


@pytest.mark.parametrize("sql", PSQL_QUERIES)
def test_psql_query_same_as_direct(pg, walgate, sql):
    through = psql(walgate, sql)
    direct = psql(pg, sql)
    assert (through.returncode, through.stdout, through.stderr) == \
        (direct.returncode, direct.stdout, direct.stderr)


def test_psql_large_result(pg, walgate):
    """A result far larger than walgate's relay buffer."""
    sql = "SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 100000) g"
    through = psql(walgate, sql, check=True)
    direct = psql(pg, sql, check=True)
    assert len(through.stdout) > 20_000_000
    assert hashlib.sha256(through.stdout).digest() == hashlib.sha256(direct.stdout).digest()


# -- 2. extended query protocol ------------------------------------------

TXN_LINE = re.compile(rb"number of transactions actually processed: (\d+)/(\d+)")


@pytest.fixture
def pgbench_tables(pg, walgate):
    """pgbench -i -s 1, itself run through walgate (COPY and DDL)."""
    proc = pgbench(walgate, "-i", "-s", "1", "-q")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    with superuser_connect(pg) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pgbench_accounts")
        assert cur.fetchone()[0] == 100000
    yield
    pg.sql("DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_tellers, "
           "pgbench_history", dbname=TEST_DB)


@pytest.mark.parametrize("mode", ["prepared", "extended", "simple"])
def test_pgbench(walgate, pgbench_tables, mode):
    clients, txns = 2, 50
    proc = pgbench(walgate, "-M", mode, "-c", str(clients), "-j", "1", "-t", str(txns), "-n")
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, out
    m = TXN_LINE.search(proc.stdout)
    assert m, out
    assert int(m.group(1)) == int(m.group(2)) == clients * txns, out


def test_server_side_cursor(walgate):
    n, step = 50000, 3
    conn = connect(walgate)
    try:
        with conn.cursor(name="walgate_cursor") as cur:
            cur.itersize = 997
            cur.execute("SELECT g, md5(g::text) FROM generate_series(1, %s) g "
                        "WHERE g %% %s = 0 ORDER BY g", (n, step))
            rows = list(cur)
        conn.commit()
    finally:
        conn.close()
    expected = [(g, hashlib.md5(str(g).encode()).hexdigest()) for g in range(step, n + 1, step)]
    assert rows == expected


def test_query_parameters_round_trip(walgate):
    values = (
        None,
        42,
        -(2 ** 62),
        decimal.Decimal("12345678901234567890.0123456789"),
        "quote ' backslash \\ tab \t newline \n ünïcødé ✓",
        psycopg2.Binary(bytes(range(256)) * 4),
        [1, 2, 3, None],
        datetime.date(2001, 2, 3),
        datetime.datetime(2001, 2, 3, 4, 5, 6, 789000),
        True,
    )
    conn = connect(walgate)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT " + ", ".join(["%s"] * len(values)), values)
            row = cur.fetchone()
    finally:
        conn.close()
    expected = list(values)
    expected[5] = bytes(range(256)) * 4
    assert [bytes(v) if isinstance(v, memoryview) else v for v in row] == expected


def test_many_sessions_in_parallel(walgate):
    """Several clients at once, each with its own transaction state."""
    errors = []

    def worker(i):
        try:
            conn = connect(walgate, application_name=f"walgate-test-{i}")
            try:
                with conn.cursor() as cur:
                    for j in range(20):
                        cur.execute("SELECT %s::int * %s::int, current_setting('application_name')",
                                    (i, j))
                        assert cur.fetchone() == (i * j, f"walgate-test-{i}")
                conn.rollback()
            finally:
                conn.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors


# -- 3. COPY ---------------------------------------------------------------

COPY_ROWS = 100_000


def copy_input():
    """COPY text-format rows in PostgreSQL's own output form, so that COPY
    TO must give back exactly these bytes."""
    lines = []
    for i in range(1, COPY_ROWS + 1):
        note = "\\N" if i % 10 == 0 else f"ü{i % 7}\\tx\\\\y"
        lines.append(f"{i}\t{hashlib.md5(str(i).encode()).hexdigest()}\t{note}\t{i}.5\n")
    return "".join(lines).encode()


def test_copy_in_and_out_byte_identical(pg, walgate):
    pg.sql("DROP TABLE IF EXISTS copy_t; "
           "CREATE TABLE copy_t (id int PRIMARY KEY, h text, note text, n numeric); "
           f"ALTER TABLE copy_t OWNER TO {TEST_USER}", dbname=TEST_DB)
    data = copy_input()
    out_sql = "COPY (SELECT * FROM copy_t ORDER BY id) TO STDOUT"
    try:
        conn = connect(walgate)
        try:
            with conn.cursor() as cur:
                cur.copy_expert("COPY copy_t FROM STDIN", io.BytesIO(data))
                assert cur.rowcount == COPY_ROWS
            conn.commit()
        finally:
            conn.close()

        through = run([pg_bin("psql"), "-X", *conn_args(walgate), "-c", out_sql], check=True)
        direct = run([pg_bin("psql"), "-X", *conn_args(pg), "-c", out_sql], check=True)
    finally:
        pg.sql("DROP TABLE IF EXISTS copy_t", dbname=TEST_DB)
    assert hashlib.sha256(direct.stdout).hexdigest() == hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(through.stdout).hexdigest() == hashlib.sha256(direct.stdout).hexdigest()


# -- 4. cancel -------------------------------------------------------------

def test_cancel_running_query(walgate):
    conn = connect(walgate)
    outcome = {}

    def sleeper():
        start = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_sleep(60)")
            outcome["result"] = "finished"
        except Exception as e:  # noqa: BLE001 - checked below
            outcome["result"] = e
        outcome["elapsed"] = time.monotonic() - start

    try:
        t = threading.Thread(target=sleeper)
        t.start()
        time.sleep(1.0)
        conn.cancel()
        t.join(15)
        assert not t.is_alive(), "the query was not cancelled"
        assert isinstance(outcome["result"], psycopg2.errors.QueryCanceled), outcome
        assert outcome["elapsed"] < 10
        # The session survives a cancel.
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("SELECT 'still here'")
            assert cur.fetchone() == ("still here",)
    finally:
        conn.close()


# -- 5. logical replication ----------------------------------------------

PUBLICATION = "walgate_pub"




def recvlogical(target, slot, endpos, outfile):
    argv = [pg_bin("pg_recvlogical"), *conn_args(target), "--slot", slot, "--start",
            "--no-loop", "-o", "proto_version=1", "-o", f"publication_names={PUBLICATION}",
            f"--endpos={endpos}", "-f", outfile]
    return run(argv, env=client_env(), timeout=60)


def test_logical_replication_byte_identical(pg, walgate, tmp_path):
    conn = superuser_connect(pg)
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS repl_t; DROP PUBLICATION IF EXISTS " + PUBLICATION)
    cur.execute("CREATE TABLE repl_t (id int PRIMARY KEY, v text, n numeric)")
    cur.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE repl_t")
    try:
        cur.execute("SELECT pg_create_logical_replication_slot('s_a', 'pgoutput')")
        cur.execute("INSERT INTO repl_t SELECT g, md5(g::text), g FROM generate_series(1, 500) g")
        cur.execute("UPDATE repl_t SET v = v || ' ünïcødé' WHERE id % 7 = 0")
        cur.execute("DELETE FROM repl_t WHERE id % 11 = 0")
        cur.execute("BEGIN; "
                    "INSERT INTO repl_t VALUES (1001, 'in a transaction', 1.5); "
                    "UPDATE repl_t SET n = n * 2 WHERE id BETWEEN 1 AND 50; "
                    "DELETE FROM repl_t WHERE id = 1001; "
                    "INSERT INTO repl_t VALUES (1002, repeat('big', 20000), NULL); "
                    "COMMIT")
        cur.execute("SELECT pg_copy_logical_replication_slot('s_a', 's_b')")
        cur.execute("SELECT pg_current_wal_lsn()")
        endpos = cur.fetchone()[0]

        file_a, file_b = str(tmp_path / "s_a.out"), str(tmp_path / "s_b.out")
        direct = recvlogical(pg, "s_a", endpos, file_a)
        assert direct.returncode == 0, direct.stderr.decode(errors="replace")
        through = recvlogical(walgate, "s_b", endpos, file_b)
        assert through.returncode == 0, through.stderr.decode(errors="replace")

        with open(file_a, "rb") as f:
            data_a = f.read()
        with open(file_b, "rb") as f:
            data_b = f.read()
        assert len(data_a) > 100_000      # the workload is all there
        assert b"repl_t" in data_a
        assert b"in a transaction" in data_a and b"bigbigbig" in data_a
        assert len(data_b) == len(data_a)
        assert hashlib.sha256(data_b).hexdigest() == hashlib.sha256(data_a).hexdigest()
    finally:
        for slot in ("s_a", "s_b"):
            drop_slot(cur, slot)
        cur.execute("DROP PUBLICATION IF EXISTS " + PUBLICATION)
        cur.execute("DROP TABLE IF EXISTS repl_t")
        conn.close()


def test_physical_replication_connection(pg, walgate):
    """A physical replication connection (replication=true) speaks the
    replication protocol through walgate: IDENTIFY_SYSTEM gives the same
    system identifier as directly."""
    def identify(target):
        dsn = (f"host={target.host} port={target.port} user={TEST_USER} "
               f"dbname={TEST_DB} replication=true")
        proc = run([pg_bin("psql"), "-X", "-A", "-t", "-d", dsn, "-c", "IDENTIFY_SYSTEM"],
                   check=True)
        return proc.stdout.split(b"|")[0]

    assert identify(walgate) == identify(pg)


def test_cluster_fixture_sanity(pg):
    """The cluster fixture's superuser socket and the test role's TCP login
    reach the same server (guards the fixture itself)."""
    assert pg.sql("SELECT current_setting('port')").strip() == str(pg.port)
    assert os.path.exists(os.path.join(pg.socket_dir, f".s.PGSQL.{pg.port}"))


# -- sessions ending -------------------------------------------------------

def _backend_pid(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    conn.commit()
    return pid


def _wait_backend_gone(cluster, pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.sql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}").strip() == "0":
            return True
        time.sleep(0.05)
    return False


def test_large_single_message(walgate):
    """One Query message of 8 MB, far larger than the relay buffer."""
    big = "x" * (8 << 20)
    conn = connect(walgate)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT length(%s), md5(%s)", (big, big))
            assert cur.fetchone() == (len(big), hashlib.md5(big.encode()).hexdigest())
    finally:
        conn.close()


def test_client_vanishing_ends_backend(pg, walgate):
    """A client that drops its TCP connection without Terminate: the server
    session ends too."""
    conn = connect(walgate)
    pid = _backend_pid(conn)
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    try:
        assert _wait_backend_gone(pg, pid), "the backend outlived its client"
    finally:
        conn.close()


def test_backend_terminated_reaches_client(pg, walgate):
    """pg_terminate_backend during a query: the client reads the server's
    FATAL 57P01, relayed before walgate closes the connection. (psql, as
    psycopg2 reports only libpq's last line.)"""
    app = "walgate-terminate-test"
    sleeper = subprocess.Popen(
        [pg_bin("psql"), "-X", *conn_args(walgate), "-c", "SELECT pg_sleep(30)"],
        env=client_env(PGAPPNAME=app), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        query = (f"SELECT pid FROM pg_stat_activity WHERE application_name = '{app}' "
                 f"AND wait_event = 'PgSleep'")
        deadline = time.monotonic() + 10
        while not (pid := pg.sql(query).strip()):
            assert time.monotonic() < deadline, "the query did not start"
            time.sleep(0.05)
        pg.sql(f"SELECT pg_terminate_backend({pid})")
        _, stderr = sleeper.communicate(timeout=10)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
    assert sleeper.returncode == 2, stderr
    assert b"FATAL:  terminating connection due to administrator command" in stderr, stderr


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.walgate_only
def test_backpressure_slow_reader(walgate):
    """A client that stops reading a 200 MB COPY: walgate stops reading the
    upstream instead of buffering, and everything arrives in the end."""
    rows, width = 200_000, 1000
    sql = f"COPY (SELECT repeat('x', {width}) FROM generate_series(1, {rows})) TO STDOUT"
    rss_before = _rss_kib(walgate.proc.pid)
    reader = subprocess.Popen([pg_bin("psql"), "-X", *conn_args(walgate), "-c", sql],
                              env=client_env(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(2.0)                   # psql blocks on its full stdout pipe
        rss_stalled = _rss_kib(walgate.proc.pid)
        total = 0
        while chunk := reader.stdout.read(1 << 20):
            total += len(chunk)
        reader.wait(60)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    assert reader.returncode == 0, reader.stderr.read()
    assert total == rows * (width + 1)
    assert rss_stalled - rss_before < 32 * 1024, \
        f"walgate grew by {(rss_stalled - rss_before) // 1024} MiB with a stalled reader"
