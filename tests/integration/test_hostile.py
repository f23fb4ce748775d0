"""Hostile clients before and after login: each test plays the attacker and
asserts the safe outcome.

- [walgate] auth_timeout: a client that stops in the middle of SCRAM (with
  walgate, auth = scram, or relayed, auth = passthrough), in its TLS
  handshake, or an upstream that stalls while walgate connects and logs in,
  is closed at the deadline with FATAL 57014 where the protocol allows, a
  log line and walgate_connections_rejected_total{reason="auth_timeout"};
  twenty of them no longer starve a real login; sessions already logged in
  are not touched by the deadline.
- The metrics port: a peer outside [metrics] allow is closed at accept,
  a request has one deadline (10 s) from accept, at most 16 connections
  are open at once, and it never takes the descriptors the client port
  needs.
- Text logs: a user name or application_name with a newline, a CR or an
  escape sequence cannot forge a log line.
"""

import json
import os
import re
import resource
import socket
import threading
import time

import pytest

import pgwire
from clients import connect, psql
from pgcluster import LOOPBACK_V4, TEST_DB, TEST_USER, free_port
from pgcluster import TEST_PASSWORD
from test_auth import ScramClient, certs, scram_walgate, write_auth_file  # noqa: F401 (fixture)
from test_metrics import OTHER_V4, closed_unread
from walgate import parse_metrics

pytestmark = pytest.mark.walgate_only

AUTH_TIMEOUT = 'walgate_connections_rejected_total{reason="auth_timeout"}'
DEADLINE_S = 1.0
# What the deadline may overshoot by on a loaded machine (sanitizer builds).
SLACK_S = 2.0


def short_deadline(**walgate_keys):
    """auth_timeout short, startup_timeout long: only the new deadline can
    close a stalled login in time."""
    keys = {"auth_timeout": f"{int(DEADLINE_S * 1000)}ms", "startup_timeout": "30s"}
    keys.update(walgate_keys)
    return keys


def expect_auth_timeout(sock, started, fatal=True):
    """Closed within the deadline (plus slack); with fatal, after walgate's
    FATAL 57014 "canceling authentication due to timeout"."""
    closed, data, _ = pgwire.wait_closed(sock, DEADLINE_S + SLACK_S + 3)
    waited = time.monotonic() - started
    assert closed, f"still open after {waited:.1f} s"
    assert waited < DEADLINE_S + SLACK_S, f"closed only after {waited:.1f} s"
    if fatal:
        msgs = pgwire.split_messages(data)
        assert msgs and msgs[-1][0] == "E", data
        fields = pgwire.parse_error_fields(msgs[-1][1])
        assert (fields.get("S"), fields.get("C")) == ("FATAL", "57014"), fields
        assert fields.get("M") == "canceling authentication due to timeout", fields
    return data


def counted(wg, before, n=1):
    want = before.get(AUTH_TIMEOUT, 0) + n
    return wg.wait_for_metric(AUTH_TIMEOUT, lambda v: v >= want) == want


def simple_query(sock, sql="SELECT 1"):
    """Send a Query on a logged-in raw socket; returns the messages up to ReadyForQuery."""
    body = sql.encode() + b"\0"
    sock.sendall(b"Q" + len(body + b"1234").to_bytes(4, "big") + body)
    out = []
    while True:
        mtype, body = pgwire.read_message(sock)
        out.append((mtype, body))
        if mtype == "Z":
            return out


# --------------------------------------------------------------------------
# A scripted upstream that stalls

class StallingUpstream:
    """Listens on loopback; each connection reads what comes and, per mode,
    answers an SSLRequest with 'S' and then says nothing more (a stalled
    TLS handshake), or says nothing at all (a stalled login)."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK_V4, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.conns.append(conn)
            if self.mode == "tls_stall":
                conn.settimeout(5)
                try:
                    if pgwire.recv_exact(conn, 8) == pgwire.ssl_request():
                        conn.sendall(b"S")
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def stalling_upstream():
    made = []

    def make(mode):
        up = StallingUpstream(mode)
        made.append(up)
        return up

    yield make
    for up in made:
        up.close()


# --------------------------------------------------------------------------
# auth_timeout

def test_silent_mid_scram_closed_at_deadline(walgate_factory, certs, tmp_path):
    """auth = scram: one client stops after walgate's SASL offer, another
    after its server-first message; both get FATAL 57014 at the deadline.
    A client that logged in beside them keeps its session past it."""
    auth_file = write_auth_file(tmp_path / "users", [(TEST_USER, TEST_PASSWORD)])
    wg = scram_walgate(walgate_factory, certs, auth_file, start=False)
    wg.write_config(walgate=short_deadline())
    wg.start()
    before = wg.metrics()
    healthy = ScramClient(wg, certs.ca)
    assert healthy.login(TEST_PASSWORD)[0] == "ok"
    started = time.monotonic()
    silent = ScramClient(wg, certs.ca)            # offer received, nothing sent
    halfway = ScramClient(wg, certs.ca)
    halfway.send_initial("SCRAM-SHA-256", b"n,,n=,r=abcdefghijklmnopqrstuvwx")
    mtype, _ = pgwire.read_message(halfway.sock)
    assert mtype == "R"
    for c in (silent, halfway):
        expect_auth_timeout(c.sock, started)
        c.close()
    assert counted(wg, before, 2)
    assert wg.wait_for_log(r"authentication timeout: not logged in within 1000 ms \(in auth\)")
    time.sleep(0.5)
    assert simple_query(healthy.sock)[-1][0] == "Z"   # past the deadline, still serving
    healthy.close()


def test_stalled_client_tls_handshake_closed(walgate_factory, certs, tmp_path):
    """SSLRequest, then half a ClientHello and silence: no FATAL can be
    sent (there is no TLS yet), a close at the deadline."""
    auth_file = write_auth_file(tmp_path / "users", [(TEST_USER, TEST_PASSWORD)])
    wg = scram_walgate(walgate_factory, certs, auth_file, start=False)
    wg.write_config(walgate=short_deadline())
    wg.start()
    before = wg.metrics()
    sock = pgwire.connect(LOOPBACK_V4, wg.port)
    started = time.monotonic()
    sock.sendall(pgwire.ssl_request())
    assert pgwire.recv_exact(sock, 1) == b"S"
    sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")   # a ClientHello's first bytes
    assert expect_auth_timeout(sock, started, fatal=False) == b""
    sock.close()
    assert counted(wg, before)
    assert wg.wait_for_log(r"rejected: authentication timeout during the TLS handshake")


@pytest.mark.parametrize("mode", ["tls_stall", "login_stall"])
def test_stalling_upstream_closed_at_deadline(walgate_factory, stalling_upstream, mode):
    """An upstream that answers 'S' and then stalls the handshake, or takes
    the startup packet and never answers: the client is not held for ever."""
    up = stalling_upstream(mode)
    server_tls = "require" if mode == "tls_stall" else "disable"
    wg = walgate_factory(upstream_port=up.port, walgate=short_deadline(),
                         sections={"tls": {"server_tls": server_tls}})
    before = wg.metrics()
    sock = pgwire.connect(LOOPBACK_V4, wg.port)
    started = time.monotonic()
    sock.sendall(pgwire.startup_message({"user": TEST_USER, "database": TEST_DB}))
    expect_auth_timeout(sock, started)
    sock.close()
    assert counted(wg, before)
    state = "connecting, TLS handshake" if mode == "tls_stall" else "login"
    assert wg.wait_for_log(r"authentication timeout: .*\(in " + re.escape(state) + r"\)")


def stalled_passthrough_login(wg):
    """A client that takes PostgreSQL's AuthenticationSASL and says no more
    (or is refused at once when walgate is full)."""
    sock = pgwire.connect(LOOPBACK_V4, wg.port)
    sock.sendall(pgwire.startup_message({"user": TEST_USER, "database": TEST_DB}))
    return sock


def test_stalled_passthrough_logins_do_not_starve(pg, walgate_factory):
    """Twenty clients stop in the relayed SCRAM exchange with max_client_conn
    = 5: at the deadline they are gone and a real login works, while a
    session logged in before them never noticed."""
    wg = walgate_factory(walgate=short_deadline(max_client_conn="5"))
    before = wg.metrics()
    healthy = connect(wg)
    started = time.monotonic()
    stalled = [stalled_passthrough_login(wg) for _ in range(20)]
    try:
        # The workers admit four (the healthy session is the fifth), refuse the rest with 53300.
        first = [pgwire.read_message(sock) for sock in stalled]
        admitted = [sock for sock, (mtype, body) in zip(stalled, first) if mtype == "R"]
        assert len(admitted) == 4, first
        assert all(pgwire.auth_request(body)[0] == pgwire.AUTH_SASL
                   for mtype, body in first if mtype == "R"), first
        for sock in admitted:
            expect_auth_timeout(sock, started)
    finally:
        for sock in stalled:
            sock.close()
    assert counted(wg, before, 4)
    proc = psql(wg, "SELECT 42")
    assert proc.returncode == 0 and b"42" in proc.stdout, proc.stdout + proc.stderr
    with healthy.cursor() as cur:
        cur.execute("SELECT 7")
        assert cur.fetchone() == (7,)
    healthy.close()


def test_connection_flood_closed_at_accept(pg, walgate_factory):
    """Hostile: 80 connections that send nothing, with max_client_conn = 5.
    Five sessions and 16 more (the room kept to answer FATAL 53300 to a
    startup packet) are all walgate holds; the rest are closed at accept
    without a session, so the flood takes no descriptors beyond those. A
    session logged in before it keeps answering, and a login works once
    the flood has gone."""
    # One worker: with several, two may each admit the last place at once
    # (the count is shared, checked and then raised), which a sanitizer's
    # slower run shows as one session more.
    wg = walgate_factory(walgate={"max_client_conn": "5", "startup_timeout": "30s",
                                  "listen_backlog": "256", "workers": "1"})
    healthy = connect(wg)
    baseline = fd_count(wg)
    flood = []
    try:
        for _ in range(80):
            flood.append(pgwire.connect(wg.host, wg.port))
        time.sleep(1.0)
        closed_at_once = 0
        for sock in flood:
            closed, _, _ = pgwire.wait_closed(sock, 0.05)
            closed_at_once += closed
        assert closed_at_once >= 80 - (4 + 16), closed_at_once
        assert fd_count(wg) <= baseline + 4 + 16, (fd_count(wg), baseline)
        rejected = wg.metric('walgate_connections_rejected_total{reason="too_many_connections"}')
        assert rejected >= 80 - (4 + 16), rejected
        with healthy.cursor() as cur:
            cur.execute("SELECT 7")
            assert cur.fetchone() == (7,)
    finally:
        for sock in flood:
            sock.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        proc = psql(wg, "SELECT 42")
        if proc.returncode == 0:
            break
        time.sleep(0.3)
    assert proc.returncode == 0 and b"42" in proc.stdout, proc.stdout + proc.stderr
    healthy.close()


# --------------------------------------------------------------------------
# Log forging

FORGED = "2026-01-01 00:00:00.000 UTC LOG C-999 10.6.6.6:1: login: user=postgres"


def test_control_characters_cannot_forge_log_lines(walgate_factory):
    """Hostile: user, database and application_name carry a newline and a
    fake login line, a CR and an ANSI escape. Every line of the log begins
    with a timestamp, and the fake line appears only escaped, inside the
    real one. application_name is logged once the login succeeded, so it
    comes with a real login."""
    wg = walgate_factory(walgate={"log_level": "info"})
    sock = pgwire.connect(LOOPBACK_V4, wg.port)
    sock.sendall(pgwire.startup_message({
        "user": "mallory\n" + FORGED,
        "database": "db\r" + FORGED,
        "application_name": "app\x1b[2J\x1b[H\x07\n" + FORGED}))
    pgwire.wait_closed(sock, 10)
    sock.close()
    assert wg.wait_for_log(r"closed: .*user=mallory")
    conn = connect(wg, application_name="app\x1b[2J\x1b[H\x07\n" + FORGED)
    conn.close()
    assert wg.wait_for_log(r"login: .*application_name=app")
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC ")
    raw = open(wg.log_path, "rb").read()
    for line in raw.split(b"\n")[:-1]:
        assert stamp.match(line.decode(errors="replace")), line
        assert not re.search(rb"[\x00-\x1f\x7f]", line), line
        assert b"C-999" not in line.split(b": ", 1)[0], line
    assert b"user=mallory\\x0a2026-01-01" in raw
    assert b"app\\x1b[2J\\x1b[H\\x07\\x0a2026" in raw
    assert b"database=db\\x0d2026" in raw


def test_json_log_stays_json_with_bytes_that_are_not_utf8(walgate_factory):
    """Hostile: a user name with a byte that is not UTF-8, a C1 CSI and a
    right-to-left override. With log_format = json every line is still one
    JSON object (a client cannot make its own lines unreadable to a log
    pipeline), and the name reads back with the bytes escaped."""
    wg = walgate_factory(walgate={"log_level": "info", "log_format": "json"})
    sock = pgwire.connect(LOOPBACK_V4, wg.port)
    sock.sendall(pgwire.startup_message({b"user": b"eve\xff\xc2\x9b\xe2\x80\xae",
                                               b"database": b"db"}))
    pgwire.wait_closed(sock, 10)
    sock.close()
    assert wg.wait_for_log(r"user=eve")
    lines = open(wg.log_path, "rb").read().split(b"\n")[:-1]
    for line in lines:
        if line.startswith(b"{"):
            json.loads(line.decode("utf-8"))
    assert any("user=eve\\xff\u009b\u202e" in json.loads(line)["msg"]
               for line in lines if line.startswith(b"{"))


# --------------------------------------------------------------------------
# The metrics port

DROPPED = 'walgate_metrics_connections_dropped_total{{reason="{}"}}'


def scrape_from(wg, source):
    status, _, body = wg.http("/metrics", source=source)
    assert status == 200, status
    return parse_metrics(body.decode())


OUTSIDER = "127.0.0.3"


def test_metrics_outside_allow_closed_before_reading(walgate_factory):
    """Hostile: a peer outside [metrics] allow, on the address walgate
    listens on. A silent connection is closed at once; a request sent
    right away is never read (the close finds it unread: a reset, and no
    reply). The peer is 127.0.0.3, not the listening address 127.0.0.1: a
    connection from the address it came in on is walgate's own probe,
    admitted for /healthz and /readyz."""
    wg = walgate_factory(sections={"metrics": {"allow": "127.0.0.2/32"}})
    host, port = wg.metrics_addr
    before = scrape_from(wg, OTHER_V4).get(DROPPED.format("not_allowed"), 0)   # the readiness probe
    started = time.monotonic()
    assert closed_unread(wg, OUTSIDER, timeout=1.0), "a silent outsider was not closed at once"
    assert time.monotonic() - started < 1.0
    sock = socket.create_connection((host, port), timeout=2, source_address=(OUTSIDER, 0))
    try:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        closed, data, _ = pgwire.wait_closed(sock, 1.0)
    except (BrokenPipeError, ConnectionResetError):
        closed, data = True, b""
    finally:
        sock.close()
    assert closed and data == b"", data
    seen = scrape_from(wg, OTHER_V4)
    assert seen[DROPPED.format("not_allowed")] == before + 2
    assert wg.wait_for_log(r"metrics: closed connection from 127\.0\.0\.3:\d+: source not allowed")
    # walgate's own probe (from the listening address) gets health, nothing else
    assert wg.http("/healthz", source=LOOPBACK_V4)[0] == 200
    assert wg.http("/metrics", source=LOOPBACK_V4)[0] == 403
    assert wg.http("/slots", source=LOOPBACK_V4)[0] == 403


def test_metrics_trickling_request_closed_at_deadline(walgate_factory):
    """Hostile: an allowed peer sends a header byte every 0.5 s. The
    request's deadline runs from accept and is not pushed back by bytes:
    closed at 10 s."""
    wg = walgate_factory()
    sock = socket.create_connection(wg.metrics_addr, timeout=2)
    started = time.monotonic()
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: walgate\r\nX-Slow: ")
    closed = False
    try:
        while time.monotonic() - started < 16:
            sock.sendall(b"a")
            sock.settimeout(0.5)
            try:
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    finally:
        sock.close()
    waited = time.monotonic() - started
    assert closed, f"a trickling request still open after {waited:.1f} s"
    assert 9.0 < waited < 10.0 + SLACK_S, waited
    assert wg.wait_for_metric(DROPPED.format("deadline"), lambda v: v >= 1) == 1
    assert wg.wait_for_log(r"metrics: closed connection from 127\.0\.0\.1:\d+: no complete request")


HOLDER = "127.0.0.2"


def probe_answers(wg, within=5.0):
    """/healthz from the listening address answers 200 within a few
    seconds (the burst of refused connections first drains, as a kubelet's
    retries would see)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if wg.http("/healthz", source=LOOPBACK_V4)[0] == 200:
                return True
        except ConnectionError:
            pass
        time.sleep(0.2)
    return False


def fd_count(wg):
    return len(os.listdir(f"/proc/{wg.proc.pid}/fd"))


@pytest.mark.parametrize("limit", [64, 32])
def test_held_metrics_connections_leave_descriptors_for_clients(pg, walgate_factory, limit):
    """Hostile: 60 connections to the metrics port held open (allowed
    source, nothing sent) under a low RLIMIT_NOFILE. walgate keeps at most
    16 of them (the cap decides at 64) and none in the last eighth of the
    limit (the reserve decides at 32: 16 would leave clients nothing),
    client logins still work beside them, and once the peer lets go
    walgate's descriptors are back to where they were. The peer is
    127.0.0.2 (allowed, not the listening address): walgate's own probe,
    from the listening address, still gets /healthz from the few slots kept
    for it."""
    wg = walgate_factory()
    healthy = connect(wg)
    resource.prlimit(wg.proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
    time.sleep(0.2)
    baseline = fd_count(wg)
    held = []
    try:
        for _ in range(60):
            try:
                held.append(socket.create_connection(wg.metrics_addr, timeout=2,
                                                     source_address=(HOLDER, 0)))
            except OSError:
                break
        time.sleep(0.5)
        for _ in range(3):
            conn = connect(wg, connect_timeout=5)
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchone() == (1,)
            conn.close()
        with healthy.cursor() as cur:
            cur.execute("SELECT 2")
            assert cur.fetchone() == (2,)
        if limit == 64:     # at 32 the descriptor reserve, not the cap, is what binds
            assert probe_answers(wg), "the health probe was shut out by held connections"
        # What walgate keeps of them (some may wait unaccepted in the backlog).
        time.sleep(0.2)
        assert fd_count(wg) <= min(baseline + 16, limit - limit // 8), (fd_count(wg), baseline)
    finally:
        for s in held:
            s.close()
    healthy.close()
    deadline = time.monotonic() + 5
    while fd_count(wg) > baseline - 2 and time.monotonic() < deadline:   # healthy's two are gone too
        time.sleep(0.1)
    assert fd_count(wg) == baseline - 2, (fd_count(wg), baseline)
    # The connections left in the backlog are accepted now, 16 at a time: retry.
    deadline = time.monotonic() + 5
    while True:
        try:
            seen = wg.metrics()
            break
        except ConnectionError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert seen[DROPPED.format("too_many_connections" if limit == 64 else "descriptor_reserve")] > 0
