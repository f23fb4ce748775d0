"""Cancel requests and protocol 3.2 (issue 13, items 4 and 5).

A cancel reaches the worker the control thread hands it to, not the one
holding its session: the backend keys of every worker are in one registry.
A matched cancel goes to the address its session is connected to, the way
that session's upstream leg was opened (inside TLS with the same
certificate check when the leg is TLS); an unmatched one opens no upstream
connection at all. Keys are matched whole, up to protocol 3.2's 256 bytes.

Stand-ins on loopback play the parts PostgreSQL 15 cannot: a recording
relay in front of the cluster (what walgate sends upstream, byte for
byte), an upstream that only counts connections (the same program relaying
nowhere), and a server that speaks protocol 3.2 and hands out 32-byte keys
(with TLS when asked).
"""

import os
import secrets
import ssl
import struct
import subprocess
import sys
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

import pgwire
from loopback_server import LoopbackServer
from clients import connect
from pgcluster import TEST_DB, TEST_PASSWORD, TEST_USER

pytestmark = pytest.mark.walgate_only

FORWARDED = 'walgate_cancel_requests_total{result="forwarded"}'
UNMATCHED = 'walgate_cancel_requests_total{result="unmatched"}'
FAILED = 'walgate_cancel_requests_total{result="failed"}'
CANCEL_CODE = struct.pack("!i", pgwire.CANCEL_REQUEST_CODE)


def wait_until(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --------------------------------------------------------------------------
# stand-ins

class Listener(LoopbackServer):
    """A loopback listener whose handle(conn) runs in a thread per connection."""

    def serve(self, conn):
        with conn:
            try:
                self.handle(conn)
            except (OSError, ValueError, struct.error):
                pass        # a peer that went away mid-message

    def close(self):
        super().close(wait=0)


class RecordingRelay:
    """recording_relay.py in a process of its own, in front of target_port
    (0: a sink that counts connections and answers nothing). A process: a
    stand-in thread in the test's own process would deadlock with
    psycopg2's cancel(), which holds the GIL while it waits for an answer."""

    def __init__(self, target_port, out_dir):
        self.out_dir = str(out_dir)
        script = os.path.join(os.path.dirname(__file__), "recording_relay.py")
        self.proc = subprocess.Popen([sys.executable, script, str(target_port), self.out_dir],
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def first_bytes(self):
        """The first bytes of each connection relayed so far (once written)."""
        return [open(os.path.join(self.out_dir, name), "rb").read()
                for name in sorted(os.listdir(self.out_dir)) if not name.endswith(".tmp")]

    def accepted(self):
        return len([n for n in os.listdir(self.out_dir) if n.startswith("conn-")])

    def close(self):
        self.proc.kill()
        self.proc.wait(5)


class Protocol32Server(Listener):
    """A server of protocol 3.2 (as PostgreSQL 18): takes any StartupMessage
    without a password, hands out a fresh key per session (32 bytes, as
    PostgreSQL 18 does, unless key_len says otherwise) and keeps
    every CancelRequest it receives, with whether it came inside TLS. With
    a TLS context it accepts SSLRequest, until refuse_tls is set."""

    def __init__(self, tls_ctx=None, key_len=32):
        self.tls_ctx = tls_ctx
        self.key_len = key_len
        self.refuse_tls = False
        self.startups = []
        self.cancels = []
        self.after_refusal = []
        self.keys = {}
        super().__init__()

    @staticmethod
    def read_packet(conn):
        head = pgwire.recv_exact(conn, 4)
        if len(head) < 4:
            return None
        length = struct.unpack("!i", head)[0]
        return head + pgwire.recv_exact(conn, length - 4)

    def first_packet(self, conn):
        """The packet after any SSLRequest, and whether it came inside TLS."""
        packet = self.read_packet(conn)
        if packet != pgwire.ssl_request():
            return conn, packet, False
        if self.refuse_tls:
            conn.sendall(b"N")
            rest = pgwire.wait_closed(conn, 5)[1]
            with self.lock:
                self.after_refusal.append(rest)
            return conn, None, False
        if self.tls_ctx is None:
            conn.sendall(b"N")
            return conn, self.read_packet(conn), False
        conn.sendall(b"S")
        tls = self.tls_ctx.wrap_socket(conn, server_side=True)
        return tls, self.read_packet(tls), True

    def handle(self, conn):
        conn.settimeout(30)
        conn, packet, tls = self.first_packet(conn)
        if packet is None:
            return
        if struct.unpack("!i", packet[4:8])[0] == pgwire.CANCEL_REQUEST_CODE:
            with self.lock:
                self.cancels.append((packet, tls))
            return
        with self.lock:
            self.startups.append(packet)
            pid = 70000 + len(self.startups)
            key = secrets.token_bytes(self.key_len)
            self.keys[pid] = key
        conn.sendall(pgwire.message("R", struct.pack("!i", 0)) +
                     pgwire.message("S", b"server_version\x0018.0\x00") +
                     pgwire.message("K", struct.pack("!I", pid) + key) +
                     pgwire.message("Z", b"I"))
        while conn.recv(65536):
            pass


def server_tls_context(pg):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pg.server_cert, pg.server_key)
    return ctx


# --------------------------------------------------------------------------
# sessions running pg_sleep, and their cancels

class Sleeper:
    """A psycopg2 session running SELECT pg_sleep(60) in a thread."""

    def __init__(self, target, tag, **params):
        self.conn = connect(target, application_name=tag, **params)
        self.outcome = None
        self.elapsed = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        start = time.monotonic()
        try:
            with self.conn.cursor() as cur:
                cur.execute("SELECT pg_sleep(60)")
            self.outcome = "finished"
        except Exception as e:  # noqa: BLE001 - checked by the test
            self.outcome = e
        self.elapsed = time.monotonic() - start

    def close(self):
        self.conn.close()


def sleeping(pg, tag, n):
    rows = pg.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                  f"'{tag}%' AND state = 'active' AND query LIKE '%pg_sleep%'")
    return int(rows.strip() or 0) == n


def start_sleepers(pg, target, n, tag, **params):
    sleepers = [Sleeper(target, f"{tag}{i}", **params) for i in range(n)]
    assert wait_until(lambda: sleeping(pg, tag, n)), "the sessions did not all start sleeping"
    return sleepers


def assert_all_cancelled(sleepers, order=None):
    for s in order or sleepers:
        s.conn.cancel()
    for i, s in enumerate(sleepers):
        s.thread.join(20)
        assert not s.thread.is_alive(), f"session {i}: the query was not cancelled"
        assert isinstance(s.outcome, psycopg2.errors.QueryCanceled), (i, s.outcome)
        assert s.elapsed < 15, (i, s.elapsed)
        # the session survives its cancel
        s.conn.rollback()
        with s.conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)


def reload_and_wait(wg):
    before = wg.log_text().count("configuration reloaded")
    wg.reload()
    assert wait_until(lambda: wg.log_text().count("configuration reloaded") > before), \
        "no reload in the log"


# --------------------------------------------------------------------------
# 1. every cancel reaches its session, whichever worker took it

def test_cancels_across_workers_reach_their_sessions(pg, walgate_factory, stand_in, tmp_path):
    """Eight sessions on four workers, then the configured upstream moves to
    a server that only counts: each cancel must still reach the backend of
    its own session, and none may go to the configured address. Cancelled
    in reverse order, each cancel lands on another worker than its session
    (connections are handed out round-robin)."""
    wg = walgate_factory(walgate={"workers": 4})
    sleepers = start_sleepers(pg, wg, 8, "wg_cancel_workers_")
    decoy = stand_in(RecordingRelay, 0, tmp_path)
    try:
        wg.write_config(upstream={"port": decoy.port})
        reload_and_wait(wg)
        assert_all_cancelled(sleepers, order=sleepers[::-1])
    finally:
        for s in sleepers:
            s.close()
    time.sleep(0.2)
    assert decoy.accepted() == 0, decoy.first_bytes()
    assert wg.metric(FORWARDED) == 8
    assert wg.metric(UNMATCHED) == 0 and wg.metric(FAILED) == 0


# --------------------------------------------------------------------------
# 2. a cancel goes the way its session's upstream leg was opened

def test_cancel_travels_in_tls_with_verify_full(pg, walgate_factory, stand_in, tmp_path):
    """server_tls = verify-full through a relay that records what walgate
    sends: every upstream connection, the cancels' included, begins with an
    SSLRequest, and no CancelRequest (with its key) ever crosses in clear."""
    relay = stand_in(RecordingRelay, pg.port, tmp_path)
    wg = walgate_factory(upstream_port=relay.port, walgate={"workers": 3},
                         sections={"tls": {"client_tls": "disable", "server_tls": "verify-full",
                                           "server_ca_file": pg.ca_cert}})
    sleepers = start_sleepers(pg, wg, 4, "wg_cancel_tls_")
    try:
        assert_all_cancelled(sleepers)
    finally:
        for s in sleepers:
            s.close()
    assert wait_until(lambda: len(relay.first_bytes()) == 8)    # 4 logins, 4 cancels
    for record in relay.first_bytes():
        assert record[:8] == pgwire.ssl_request(), record
        assert CANCEL_CODE not in record, record
    assert wg.metric(FORWARDED) == 4
    assert wg.metric('walgate_tls_handshakes_total{leg="upstream",result="ok"}') == 8


def tls_to_stand_in(walgate_factory, pg, server, **walgate_keys):
    return walgate_factory(upstream_port=server.port, walgate=walgate_keys,
                           sections={"tls": {"client_tls": "disable", "server_tls": "verify-full",
                                             "server_ca_file": pg.ca_cert}})


def test_cancel_inside_tls_reaches_stand_in(pg, walgate_factory, stand_in):
    """The same against a TLS server that sees the request itself: the
    cancel arrives inside TLS, with the 32-byte key whole."""
    server = stand_in(Protocol32Server, tls_ctx=server_tls_context(pg))
    wg = tls_to_stand_in(walgate_factory, pg, server, workers=3)
    with pgwire.connect(wg.host, wg.port) as sock:
        got = pgwire.login(sock, {"user": TEST_USER, "database": TEST_DB},
                           protocol=pgwire.PROTOCOL_3_2)
        packet = pgwire.cancel_request(got.pid, got.key)
        with pgwire.connect(wg.host, wg.port) as cancel:
            cancel.sendall(packet)
            assert pgwire.wait_closed(cancel, 5)[:2] == (True, b"")
        assert wait_until(lambda: server.cancels == [(packet, True)]), server.cancels


def test_cancel_refused_tls_is_not_sent_in_clear(pg, walgate_factory, stand_in):
    """The session's leg is TLS; when its cancel goes out, the server at
    that address answers the SSLRequest with 'N' (a stand-in took its
    place, say). The key is not sent in clear: the cancel fails, counted.
    (A 4-byte key: the session could be any PostgreSQL's.)"""
    server = stand_in(Protocol32Server, tls_ctx=server_tls_context(pg), key_len=4)
    wg = tls_to_stand_in(walgate_factory, pg, server, workers=2)
    with pgwire.connect(wg.host, wg.port) as sock:
        got = pgwire.login(sock, {"user": TEST_USER, "database": TEST_DB},
                           protocol=pgwire.PROTOCOL_3_2)
        server.refuse_tls = True
        with pgwire.connect(wg.host, wg.port) as cancel:
            cancel.sendall(pgwire.cancel_request(got.pid, got.key))
            assert pgwire.wait_closed(cancel, 5)[:2] == (True, b"")
        time.sleep(0.3)
        assert server.cancels == []
        assert server.after_refusal == [b""], server.after_refusal
        assert wg.wait_for_metric(FAILED, lambda v: v == 1) == 1
    assert wg.metric(FORWARDED) == 0


# --------------------------------------------------------------------------
# 3. a cancel that matches nothing goes nowhere

def test_unmatched_cancel_opens_no_upstream_connection(walgate_factory, stand_in, tmp_path):
    upstream = stand_in(RecordingRelay, 0, tmp_path)
    wg = walgate_factory(upstream_port=upstream.port, walgate={"workers": 3})
    time.sleep(0.3)
    before = upstream.accepted()
    probes = [pgwire.cancel_request(secrets.randbits(31), secrets.randbits(32)),
              pgwire.cancel_request(secrets.randbits(31), secrets.token_bytes(32)),
              pgwire.cancel_request(1, secrets.token_bytes(256))]
    for n, packet in enumerate(probes, 1):
        with pgwire.connect(wg.host, wg.port) as sock:
            sock.sendall(packet)
            closed, data, _ = pgwire.wait_closed(sock, 5)
        time.sleep(0.3)
        assert upstream.accepted() == before, (len(packet), upstream.first_bytes())
        assert closed and data == b"", (len(packet), data)
        assert wg.wait_for_metric(UNMATCHED, lambda v: v == n) == n
    assert wg.metric(FORWARDED) == 0
    assert "matches no session" in wg.log_text()


# --------------------------------------------------------------------------
# 4. protocol 3.2

def test_protocol_32_client_against_postgresql_15(pg, walgate_factory):
    """PostgreSQL 15 answers a 3.2 StartupMessage with NegotiateProtocolVersion
    (3.0, and the _pq_ option it does not know): walgate passes both ways
    unchanged, the login and queries work, and the 4-byte key cancels."""
    wg = walgate_factory(walgate={"workers": 2})
    params = {"user": TEST_USER, "database": TEST_DB, "application_name": "wg_v32",
              "_pq_.walgate_test": "on"}
    with pgwire.connect(wg.host, wg.port, timeout=30) as sock:
        got = pgwire.login(sock, params, TEST_PASSWORD, protocol=pgwire.PROTOCOL_3_2)
        assert got.negotiated == (pgwire.PROTOCOL_3_0, ["_pq_.walgate_test"]), got.negotiated
        assert len(got.key) == 4
        assert pgwire.simple_query(sock, "SELECT 40 + 2") == [["42"]]
        sock.sendall(pgwire.message("Q", b"SELECT pg_sleep(60)\0"))
        assert wait_until(lambda: sleeping(pg, "wg_v32", 1))
        with pgwire.connect(wg.host, wg.port) as cancel:
            cancel.sendall(pgwire.cancel_request(got.pid, got.key))
            pgwire.wait_closed(cancel, 5)
        fields = None
        while True:
            mtype, body = pgwire.read_message(sock)
            if mtype == "E":
                fields = pgwire.parse_error_fields(body)
            if mtype == "Z":
                break
        assert fields and fields["C"] == "57014", fields
    assert wg.metric(FORWARDED) == 1


def test_protocol_32_long_keys_reach_the_server_exactly(walgate_factory, stand_in):
    """A server of protocol 3.2 hands out 32-byte keys. Through walgate (three
    workers) each client gets its key whole, and a cancel with it reaches
    the server byte for byte; a wrong key of the same length goes nowhere."""
    server = stand_in(Protocol32Server)
    wg = walgate_factory(upstream_port=server.port, walgate={"workers": 3})
    params = {"user": TEST_USER, "database": TEST_DB, "_pq_.test_option": "x"}
    socks, logins = [], []
    try:
        for _ in range(3):
            sock = pgwire.connect(wg.host, wg.port)
            socks.append(sock)
            logins.append(pgwire.login(sock, params, protocol=pgwire.PROTOCOL_3_2))
        # the StartupMessage went upstream as the client sent it
        sent = pgwire.startup_message(params, pgwire.PROTOCOL_3_2)
        assert server.startups == [sent] * 3
        for got in logins:
            assert server.keys[got.pid] == got.key and len(got.key) == 32
        packets = [pgwire.cancel_request(got.pid, got.key) for got in logins]
        for packet in packets:
            assert len(packet) == 44
            with pgwire.connect(wg.host, wg.port) as sock:
                sock.sendall(packet)
                assert pgwire.wait_closed(sock, 5)[:2] == (True, b"")
        assert wait_until(lambda: len(server.cancels) == 3)
        assert sorted(server.cancels) == sorted((p, False) for p in packets)
        accepted = server.accepted
        wrong = bytearray(logins[0].key)
        wrong[-1] ^= 1
        with pgwire.connect(wg.host, wg.port) as sock:
            sock.sendall(pgwire.cancel_request(logins[0].pid, bytes(wrong)))
            assert pgwire.wait_closed(sock, 5)[:2] == (True, b"")
        assert wg.wait_for_metric(UNMATCHED, lambda v: v == 1) == 1
        time.sleep(0.2)
        assert server.accepted == accepted and len(server.cancels) == 3
    finally:
        for sock in socks:
            sock.close()
    assert wg.metric(FORWARDED) == 3


def test_protocol_32_under_auth_scram(walgate_factory, stand_in, tmp_path):
    """auth = scram: walgate logs in upstream with the client's own
    StartupMessage (3.2, _pq_ options and all) and relays a 32-byte key.
    The stand-in asks for no authentication, which server_auth_methods
    must admit by name."""
    server = stand_in(Protocol32Server)
    auth_file = tmp_path / "users.txt"
    auth_file.write_text(f'"{TEST_USER}" "{TEST_PASSWORD}"\n')
    os.chmod(auth_file, 0o600)
    wg = walgate_factory(upstream_port=server.port, walgate={"workers": 2},
                         sections={"auth": {"auth": "scram", "auth_file": str(auth_file),
                                            "server_auth_methods": "none"},
                                   "tls": {"client_tls": "disable", "server_tls": "disable"}})
    params = {"user": TEST_USER, "database": TEST_DB, "_pq_.test_option": "x"}
    with pgwire.connect(wg.host, wg.port) as sock:
        got = pgwire.login(sock, params, TEST_PASSWORD, protocol=pgwire.PROTOCOL_3_2)
        assert got.auth == [pgwire.AUTH_SASL, pgwire.AUTH_OK], got.auth   # SASL with walgate
        assert server.startups == [pgwire.startup_message(params, pgwire.PROTOCOL_3_2)]
        assert server.keys[got.pid] == got.key and len(got.key) == 32
        packet = pgwire.cancel_request(got.pid, got.key)
        with pgwire.connect(wg.host, wg.port) as cancel:
            cancel.sendall(packet)
            pgwire.wait_closed(cancel, 5)
        assert wait_until(lambda: server.cancels == [(packet, False)])


def test_protocol_32_client_under_auth_scram_against_postgresql_15(pg, walgate_factory, tmp_path):
    """auth = scram in front of PostgreSQL 15: walgate authenticates the 3.2
    client itself, then logs in upstream with the client's StartupMessage;
    the server's NegotiateProtocolVersion still reaches the client (after
    walgate's own SASL exchange, before AuthenticationOk), and the 4-byte
    key relayed after it cancels."""
    auth_file = tmp_path / "users.txt"
    auth_file.write_text(f'"{TEST_USER}" "{TEST_PASSWORD}"\n')
    os.chmod(auth_file, 0o600)
    wg = walgate_factory(walgate={"workers": 2},
                         sections={"auth": {"auth": "scram", "auth_file": str(auth_file)},
                                   "tls": {"client_tls": "disable", "server_tls": "verify-full",
                                           "server_ca_file": pg.ca_cert}})
    params = {"user": TEST_USER, "database": TEST_DB, "application_name": "wg_v32_scram",
              "_pq_.walgate_test": "on"}
    with pgwire.connect(wg.host, wg.port, timeout=30) as sock:
        got = pgwire.login(sock, params, TEST_PASSWORD, protocol=pgwire.PROTOCOL_3_2)
        assert got.negotiated == (pgwire.PROTOCOL_3_0, ["_pq_.walgate_test"]), got.negotiated
        assert pgwire.simple_query(sock, "SELECT current_user") == [[TEST_USER]]
        sock.sendall(pgwire.message("Q", b"SELECT pg_sleep(60)\0"))
        assert wait_until(lambda: sleeping(pg, "wg_v32_scram", 1))
        with pgwire.connect(wg.host, wg.port) as cancel:
            cancel.sendall(pgwire.cancel_request(got.pid, got.key))
            pgwire.wait_closed(cancel, 5)
        with pytest.raises(AssertionError) as refused:
            pgwire.simple_query(sock, "")    # reads the cancelled query's answer first
        assert refused.value.args[0]["C"] == "57014", refused.value.args


def test_overlong_backend_key_is_relayed_but_not_registered(walgate_factory, stand_in):
    """A server that hands out a 300-byte key (more than protocol 3.2 allows):
    the message still reaches the client unchanged, walgate keeps no part of
    it and says so; the session goes on."""
    server = stand_in(Protocol32Server, key_len=300)
    wg = walgate_factory(upstream_port=server.port)
    with pgwire.connect(wg.host, wg.port) as sock:
        got = pgwire.login(sock, {"user": TEST_USER, "database": TEST_DB},
                           protocol=pgwire.PROTOCOL_3_2)
        assert got.key == server.keys[got.pid] and len(got.key) == 300
        assert wg.wait_for_log("BackendKeyData with a 300-byte key: cancels cannot reach it")
        with pgwire.connect(wg.host, wg.port) as cancel:
            cancel.sendall(pgwire.cancel_request(got.pid, got.key[:256]))
            assert pgwire.wait_closed(cancel, 5)[:2] == (True, b"")
        assert wg.wait_for_metric(UNMATCHED, lambda v: v == 1) == 1
        assert server.cancels == []
