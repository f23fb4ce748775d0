"""walgate as a process: several listen addresses, SIGHUP and SIGTERM, and
the log line each session leaves."""

import re
import signal
import socket
import time

import psycopg2
import pytest

import pgwire
from clients import connect, psql
from pgcluster import LOOPBACK_V4, LOOPBACK_V6, closed_port, free_port

pytestmark = pytest.mark.walgate_only


def query_port(target, **overrides):
    conn = connect(target, **overrides)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('port'), inet_server_addr()::text")
            return cur.fetchone()
    finally:
        conn.close()


def accepts_connections(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False


# -- 10. several listen addresses ----------------------------------------

def test_listen_on_ipv4_and_ipv6(pg, walgate_factory):
    v4, v6 = (LOOPBACK_V4, free_port()), (LOOPBACK_V6, free_port())
    wg = walgate_factory(listen=[v4, v6])
    for host, port in (v4, v6):
        conn = connect(wg, host=host, port=port)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_setting('port')")
                assert cur.fetchone()[0] == str(pg.port)
        finally:
            conn.close()


def test_listen_port_in_use_fails_start(pg, walgate_factory):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((LOOPBACK_V4, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        wg = walgate_factory(listen=[(LOOPBACK_V4, port)], start=False)
        wg.start(wait=False)
        try:
            rc = wg.proc.wait(10)
        except Exception:
            pytest.fail("walgate kept running with its listen port taken")
    assert rc != 0
    assert str(port) in wg.log_text()


# -- 11. signals ---------------------------------------------------------

def test_sighup_applies_new_upstream_port(pg, walgate_factory):
    wg = walgate_factory(upstream_port=closed_port(), upstream={"connect_timeout": "1s"})
    with pytest.raises(psycopg2.OperationalError):
        connect(wg)
    pid = wg.proc.pid

    wg.write_config(upstream={"port": pg.port})
    wg.reload()
    deadline = time.monotonic() + 5
    while True:
        try:
            assert query_port(wg)[0] == str(pg.port)
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert wg.proc.poll() is None and wg.proc.pid == pid


def test_sighup_with_bad_file_keeps_running_config(pg, walgate_factory):
    wg = walgate_factory()
    assert query_port(wg)[0] == str(pg.port)
    wg.write_config(text="[walgate]\nbogus = 1\n")
    wg.reload()
    time.sleep(0.5)
    assert wg.proc.poll() is None
    assert query_port(wg)[0] == str(pg.port)


def test_sigterm_with_idle_session(pg, walgate_factory):
    drain = 2.0
    wg = walgate_factory(walgate={"drain_timeout": "2s"})
    idle = connect(wg)
    try:
        with idle.cursor() as cur:
            cur.execute("SELECT 1")
        idle.commit()

        start = time.monotonic()
        wg.signal(signal.SIGTERM)
        # New connections are refused soon after the signal.
        deadline = start + 1.0
        while accepts_connections(wg.host, wg.port):
            assert time.monotonic() < deadline, "walgate still accepts connections after SIGTERM"
            time.sleep(0.05)
        rc = wg.proc.wait(drain + 5)
        elapsed = time.monotonic() - start
        assert rc == 0, wg.log_text()
        assert elapsed < drain + 2, f"exit took {elapsed:.2f} s"
        # The idle session was closed.
        with pytest.raises(psycopg2.Error):
            with idle.cursor() as cur:
                cur.execute("SELECT 1")
    finally:
        idle.close()


def test_sigterm_without_sessions_exits_at_once(walgate_factory):
    wg = walgate_factory(walgate={"drain_timeout": "10s"})
    start = time.monotonic()
    wg.signal(signal.SIGTERM)
    rc = wg.proc.wait(15)
    assert rc == 0, wg.log_text()
    assert time.monotonic() - start < 2


def test_sigterm_lets_a_busy_session_finish(walgate_factory):
    """A query running at SIGTERM completes within drain_timeout."""
    wg = walgate_factory(walgate={"drain_timeout": "5s"})
    conn = connect(wg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            wg.signal(signal.SIGTERM)
            cur.execute("SELECT pg_sleep(1), 'done'")
            assert cur.fetchone()[1] == "done"
        conn.commit()
    finally:
        conn.close()
    assert wg.proc.wait(10) == 0


# -- 12. logging ---------------------------------------------------------

def test_session_log_line(walgate_factory):
    wg = walgate_factory(walgate={"log_level": "info"})
    proc = psql(wg, "SELECT 1")
    assert proc.returncode == 0, proc.stderr
    m = wg.wait_for_log(r"user=walgate_test\b.*reason=", timeout=5)
    assert m, f"no close line for the session; log:\n{wg.log_text()}"
    time.sleep(0.2)
    lines = [ln for ln in wg.log_text().splitlines()
             if re.search(r"\buser=walgate_test\b", ln) and "reason=" in ln]
    assert len(lines) == 1, lines
    line = lines[0]
    assert re.search(r"\b127\.0\.0\.1:\d+", line), line
    assert re.search(r"\bdatabase=walgate_test\b", line), line
    bytes_in = int(re.search(r"\bbytes_in=(\d+)", line).group(1))
    bytes_out = int(re.search(r"\bbytes_out=(\d+)", line).group(1))
    assert bytes_in > 0 and bytes_out > 0, line
    assert re.search(r"\breason=\S", line), line


def test_log_byte_counts_track_traffic(walgate_factory):
    """A session that reads ~1 MB logs at least that many bytes out."""
    wg = walgate_factory(walgate={"log_level": "info"})
    proc = psql(wg, "SELECT repeat('x', 1000000)")
    assert proc.returncode == 0, proc.stderr
    assert wg.wait_for_log(r"user=walgate_test\b.*reason=", timeout=5), wg.log_text()
    line = [ln for ln in wg.log_text().splitlines() if "user=walgate_test" in ln
            and "bytes_out=" in ln][0]
    assert int(re.search(r"\bbytes_out=(\d+)", line).group(1)) >= 1_000_000, line


def test_json_log_format(walgate_factory):
    import json
    wg = walgate_factory(walgate={"log_level": "info", "log_format": "json"})
    assert psql(wg, "SELECT 1").returncode == 0
    assert wg.wait_for_log(r"user=walgate_test\b.*reason=", timeout=5), wg.log_text()
    for line in wg.log_text().splitlines():
        if line.strip():
            json.loads(line)


def test_sigterm_refuses_pending_logins(walgate_factory):
    """A client still in its startup phase at SIGTERM gets FATAL 57P03 and
    does not hold up the exit."""
    wg = walgate_factory(walgate={"drain_timeout": "10s"})
    with pgwire.connect(wg.host, wg.port) as sock:
        time.sleep(0.2)      # accepted, nothing sent yet
        start = time.monotonic()
        wg.signal(signal.SIGTERM)
        closed, data, _ = pgwire.wait_closed(sock, 5)
        assert closed
        messages = pgwire.split_messages(data)
        assert [m[0] for m in messages] == ["E"], data
        assert pgwire.parse_error_fields(messages[0][1]).get("C") == "57P03", data
    assert wg.proc.wait(10) == 0
    assert time.monotonic() - start < 3


def test_second_sigterm_closes_at_once(walgate_factory):
    wg = walgate_factory(walgate={"drain_timeout": "30s"})
    idle = connect(wg)
    try:
        start = time.monotonic()
        wg.signal(signal.SIGTERM)
        time.sleep(0.3)
        assert wg.proc.poll() is None, "walgate did not wait for the idle session"
        wg.signal(signal.SIGTERM)
        assert wg.proc.wait(10) == 0
        assert time.monotonic() - start < 5
    finally:
        idle.close()


# -- upstream addresses --------------------------------------------------

@pytest.mark.parametrize("upstream_host, server_addr", [
    ("::1", "::1/128"),
    ("127.0.0.1", "127.0.0.1/32"),
    ("localhost", None),
])
def test_upstream_host_forms(pg, walgate_factory, upstream_host, server_addr):
    wg = walgate_factory(upstream_host=upstream_host)
    port, addr = query_port(wg)
    assert port == str(pg.port)
    if server_addr:
        assert addr == server_addr
