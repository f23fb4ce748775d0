"""The source-address allow list, the PROXY protocol from trusted load
balancers, and SIGHUP with a new allow list.

Other source addresses than 127.0.0.1 are made by binding the client socket
to 127.0.0.2 (all of 127.0.0.0/8 is local on Linux). psycopg2 cannot choose
its source address, so a session "from 127.0.0.2" runs through
SourceForwarder, a small relay that connects to walgate from there.

Refusals are checked against FakeUpstream, a listening socket that records
every connection and byte walgate opens towards the upstream: a refused
client must leave it untouched.
"""

import re
import select
import socket
import struct
import threading
import time

import psycopg2
import pytest

import pgwire
from clients import connect, psql
from pgcluster import LOOPBACK_V4, LOOPBACK_V6, TEST_DB, TEST_USER, free_port

pytestmark = pytest.mark.walgate_only

OTHER_V4 = "127.0.0.2"
NOT_ALLOWED = 'walgate_connections_rejected_total{reason="not_allowed"}'
PROXY_HEADER = 'walgate_connections_rejected_total{reason="proxy_header"}'
PROXY_UNTRUSTED = 'walgate_connections_rejected_total{reason="proxy_untrusted"}'
PROXY_UNKNOWN = 'walgate_connections_rejected_total{reason="proxy_unknown_source"}'
CLOSED_BY_RELOAD = "walgate_sessions_closed_by_reload_total"
RELOAD_FAILURES = "walgate_config_reload_failures_total"
GENERATION = "walgate_config_generation"


# --------------------------------------------------------------------------
# Helpers

class FakeUpstream:
    """A stand-in upstream on 127.0.0.1 that records every connection it
    accepts and every byte it receives. It answers nothing but an
    SSLRequest or GSSENCRequest at the start of a connection, with 'N'
    (a plaintext server), so that walgate goes on to send the startup
    packet whatever its upstream TLS setting prefers."""

    ENCRYPTION_REQUESTS = (pgwire.ssl_request(), pgwire.gssenc_request())

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK_V4, 0))
        self.sock.listen(64)
        self.host, self.port = self.sock.getsockname()
        self.lock = threading.Lock()
        self.connections = []           # [{"peer": addr, "data": bytearray}]
        self._conns = {}
        self._stop_r, self._stop_w = socket.socketpair()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            readable, _, _ = select.select([self.sock, self._stop_r, *self._conns], [], [], 1.0)
            for r in readable:
                if r is self._stop_r:
                    return
                if r is self.sock:
                    conn, peer = self.sock.accept()
                    record = {"peer": peer, "data": bytearray()}
                    with self.lock:
                        self.connections.append(record)
                    self._conns[conn] = record
                    continue
                try:
                    chunk = r.recv(65536)
                except OSError:
                    chunk = b""
                if chunk:
                    with self.lock:
                        record = self._conns[r]
                        record["data"] += chunk
                        pending = bytes(record["data"][record.setdefault("answered", 0):])
                    # Answer encryption requests that open the connection.
                    while pending[:8] in self.ENCRYPTION_REQUESTS:
                        try:
                            r.sendall(b"N")
                        except OSError:
                            break
                        pending = pending[8:]
                        with self.lock:
                            record["answered"] += 8
                else:
                    del self._conns[r]
                    r.close()

    def count(self):
        with self.lock:
            return len(self.connections)

    def all_bytes(self):
        with self.lock:
            return b"".join(bytes(c["data"]) for c in self.connections)

    def wait_for_connections(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.count() < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.count()

    def close(self):
        self._stop_w.send(b"x")
        self.thread.join(5)
        for conn in list(self._conns):
            conn.close()
        self.sock.close()
        self._stop_r.close()
        self._stop_w.close()


class SourceForwarder:
    """Listens on 127.0.0.1 and relays each connection to target from the
    source address `source`, so that libpq clients appear to walgate as
    coming from there. Has .host and .port like a Walgate."""

    def __init__(self, target, source=OTHER_V4):
        self.target = (target.host, target.port)
        self.source = source
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOOPBACK_V4, 0))
        self.sock.listen(16)
        self.host, self.port = self.sock.getsockname()
        self.threads = []
        self.sockets = []
        self.running = True
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self):
        while self.running:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_INET6 if ":" in self.source else socket.AF_INET,
                                     socket.SOCK_STREAM)
            try:
                upstream.bind((self.source, 0))
                upstream.connect(self.target)
            except OSError:
                client.close()
                upstream.close()
                continue
            self.sockets += [client, upstream]
            t = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
            t.start()
            self.threads.append(t)

    @staticmethod
    def _pump(a, b):
        peers = {a: b, b: a}
        open_ = {a, b}
        while open_:
            try:
                readable, _, _ = select.select(list(open_), [], [], 0.5)
            except (OSError, ValueError):
                break
            for r in readable:
                try:
                    chunk = r.recv(65536)
                except OSError:
                    chunk = b""
                if chunk:
                    try:
                        peers[r].sendall(chunk)
                    except OSError:
                        open_.clear()
                        break
                else:
                    # One side finished: pass the close on, and stop.
                    open_.clear()
                    break
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.running = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.acceptor.join(5)
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(5)


@pytest.fixture
def fake_upstream():
    fake = FakeUpstream()
    yield fake
    fake.close()


@pytest.fixture
def forwarders():
    made = []

    def make(target, source=OTHER_V4):
        fwd = SourceForwarder(target, source)
        made.append(fwd)
        return fwd

    yield make
    for fwd in made:
        fwd.close()


def client_socket(wg, source=None, host=None, port=None, timeout=5.0):
    """A TCP connection to walgate, optionally bound to a source address
    first; returns the socket (connected)."""
    host = host or wg.host
    port = port or wg.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if source:
        sock.bind((source, 0))
    sock.connect((host, port))
    return sock


def send_quietly(sock, data):
    """Send, tolerating a peer that already closed (a refusal can race the send)."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def startup():
    return pgwire.startup_message({"user": TEST_USER, "database": TEST_DB,
                                   "application_name": "test_access"})


def assert_closed_without_bytes(sock, timeout=3.0):
    closed, data, _ = pgwire.wait_closed(sock, timeout)
    assert closed, f"walgate did not close the connection within {timeout} s"
    assert data == b"", f"a refused client received bytes: {data!r}"


def assert_closed_without_relay(sock, timeout=3.0):
    """Closed; whatever came back (if anything) is walgate's own
    ErrorResponse, never an upstream's reply."""
    closed, data, _ = pgwire.wait_closed(sock, timeout)
    assert closed, f"walgate did not close the connection within {timeout} s"
    msgs = pgwire.split_messages(data)
    assert all(t == "E" for t, _ in msgs), f"a refused client got {data!r}"
    return data


def refused_from(wg, source, payload=b"", host=None, port=None):
    """Connect from source, send payload, expect a close with no bytes."""
    sock = client_socket(wg, source=source, host=host, port=port)
    try:
        if payload:
            send_quietly(sock, payload)
        assert_closed_without_bytes(sock)
    finally:
        sock.close()


def expect_auth_sasl(sock):
    """The next message is PostgreSQL's AuthenticationSASL (the relay works)."""
    mtype, body = pgwire.read_message(sock)
    assert mtype == "R", f"expected AuthenticationSASL, got {mtype!r}: {body!r}"
    code, rest = pgwire.auth_request(body)
    assert code == pgwire.AUTH_SASL, f"authentication request {code}, not SASL"
    assert "SCRAM-SHA-256" in pgwire.sasl_mechanisms(rest)


def query_one(target, sql="SELECT 1", **overrides):
    conn = connect(target, **overrides)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()


ACTIVE_REGULAR = 'walgate_connections_active{kind="regular"}'


def settled(wg):
    """Wait until the harness's readiness probes (bare connects, which a
    trusted-peer setting counts as missing PROXY headers) are reaped, so
    that counters read afterwards are a clean baseline."""
    assert wg.wait_for_metric(ACTIVE_REGULAR, lambda v: v == 0) == 0, wg.log_text()
    return wg


def access_walgate(factory, access, walgate=None, **kwargs):
    """A walgate with these [access] keys (over the harness's defaults),
    started and settled."""
    return settled(factory(sections={"access": dict(access)}, walgate=walgate, **kwargs))


def delta(wg, before, key):
    return wg.metric(key, 0) - before.get(key, 0)


# --------------------------------------------------------------------------
# 1. The allow list, IPv4 and IPv6

def test_disallowed_ipv4_source_closed_before_any_byte(pg, walgate_factory):
    wg = access_walgate(walgate_factory, {"allow": "127.0.0.1/32"})
    before = wg.metrics()

    refused_from(wg, OTHER_V4)
    # Also when the client has already sent its startup packet.
    refused_from(wg, OTHER_V4, startup())

    assert wg.wait_for_metric(NOT_ALLOWED, lambda v: v >= before[NOT_ALLOWED] + 2) \
        == before[NOT_ALLOWED] + 2
    assert delta(wg, before, "walgate_connections_accepted_total") == 0
    assert wg.wait_for_log(r"rejected: source 127\.0\.0\.2(:\d+)? not allowed \(rule set 1\)"), \
        wg.log_text()

    # The allowed address works, with psql and psycopg2.
    proc = psql(wg, "SELECT 'through walgate'")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout.decode().strip() == "through walgate"
    assert query_one(wg, "SELECT current_user") == TEST_USER
    assert wg.metric(NOT_ALLOWED) == before[NOT_ALLOWED] + 2


def test_ipv6_only_allow_list(pg, walgate_factory):
    v4, v6 = (LOOPBACK_V4, free_port()), (LOOPBACK_V6, free_port())
    wg = settled(walgate_factory(listen=[v4, v6], sections={"access": {"allow": "::1/128"}}))
    before = wg.metrics()

    # IPv4 clients, whatever their address, are refused.
    refused_from(wg, LOOPBACK_V4, startup(), host=v4[0], port=v4[1])
    refused_from(wg, OTHER_V4, host=v4[0], port=v4[1])
    assert wg.wait_for_metric(NOT_ALLOWED, lambda v: v >= before[NOT_ALLOWED] + 2) \
        == before[NOT_ALLOWED] + 2
    assert wg.wait_for_log(r"rejected: source 127\.0\.0\.1(:\d+)? not allowed"), wg.log_text()
    with pytest.raises(psycopg2.OperationalError):
        connect(wg, host=v4[0], port=v4[1])

    # ::1 works.
    assert query_one(wg, "SELECT current_user", host=v6[0], port=v6[1]) == TEST_USER
    sock = client_socket(wg, host=v6[0], port=v6[1])
    try:
        sock.sendall(startup())
        expect_auth_sasl(sock)
    finally:
        sock.close()


# --------------------------------------------------------------------------
# 2. Nothing of a refused connection reaches the upstream

def positive_control(wg, fake, source=None, header=b""):
    """An allowed client's startup packet does reach the fake upstream:
    the refusals before it were not vacuous."""
    seen = fake.count()
    sock = client_socket(wg, source=source)
    try:
        sock.sendall(header + startup())
        assert fake.wait_for_connections(seen + 1) == seen + 1, \
            "an allowed client never reached the fake upstream"
        deadline = time.monotonic() + 5
        while startup() not in fake.all_bytes() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert startup() in fake.all_bytes()
        assert pgwire.PROXY_V2_SIGNATURE not in fake.all_bytes()
        assert b"PROXY " not in fake.all_bytes()
    finally:
        sock.close()


def assert_upstream_untouched(fake, settle=0.3):
    time.sleep(settle)
    assert fake.count() == 0, f"walgate opened {fake.count()} upstream connection(s) " \
                              f"for a refused client; bytes: {fake.all_bytes()!r}"


TRUSTED_PROXY = {"allow": "10.1.2.0/24", "proxy_protocol": "any",
                 "proxy_protocol_trusted": "127.0.0.1/32"}


def test_not_allowed_direct_reaches_no_upstream(walgate_factory, fake_upstream):
    wg = access_walgate(walgate_factory, {"allow": "127.0.0.1/32"},
                        upstream_port=fake_upstream.port)
    before = wg.metrics()
    refused_from(wg, OTHER_V4, startup())
    refused_from(wg, OTHER_V4, startup() + b"Q\0\0\0\x0dSELECT 1\0")
    assert_upstream_untouched(fake_upstream)
    assert delta(wg, before, NOT_ALLOWED) == 2
    positive_control(wg, fake_upstream)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_header_with_disallowed_source_reaches_no_upstream(walgate_factory, fake_upstream,
                                                                 version):
    wg = access_walgate(walgate_factory, TRUSTED_PROXY, upstream_port=fake_upstream.port)
    before = wg.metrics()
    build = pgwire.proxy_v1 if version == "v1" else pgwire.proxy_v2
    sock = client_socket(wg, source=LOOPBACK_V4)
    try:
        send_quietly(sock, build("10.9.9.9", 5000, LOOPBACK_V4, wg.port) + startup())
        assert_closed_without_relay(sock)
    finally:
        sock.close()
    assert_upstream_untouched(fake_upstream)
    assert wg.wait_for_metric(NOT_ALLOWED, lambda v: v > before[NOT_ALLOWED]) \
        == before[NOT_ALLOWED] + 1
    m = wg.wait_for_log(r"^.*rejected: source 10\.9\.9\.9(:5000)? not allowed \(rule set 1\).*$")
    assert m, wg.log_text()
    assert re.search(r"via 127\.0\.0\.1:\d+", m.group(0)), m.group(0)
    positive_control(wg, fake_upstream, source=LOOPBACK_V4,
                     header=build("10.1.2.3", 5000, LOOPBACK_V4, wg.port))


@pytest.mark.parametrize("mode", ["off", "any"])
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_header_from_untrusted_peer_refused(walgate_factory, fake_upstream, mode, version):
    """127.0.0.2 is allowed, but not trusted to speak for anyone else."""
    access = {"allow": "127.0.0.0/8", "proxy_protocol": mode}
    if mode != "off":
        access["proxy_protocol_trusted"] = "127.0.0.1/32"
    wg = access_walgate(walgate_factory, access, upstream_port=fake_upstream.port)
    before = wg.metrics()
    build = pgwire.proxy_v1 if version == "v1" else pgwire.proxy_v2
    sock = client_socket(wg, source=OTHER_V4)
    try:
        send_quietly(sock, build("127.0.0.1", 5000, LOOPBACK_V4, wg.port) + startup())
        assert_closed_without_relay(sock)
    finally:
        sock.close()
    assert_upstream_untouched(fake_upstream)
    assert wg.wait_for_metric(PROXY_UNTRUSTED, lambda v: v > before[PROXY_UNTRUSTED]) \
        == before[PROXY_UNTRUSTED] + 1
    assert delta(wg, before, NOT_ALLOWED) == 0
    # The same peer without a header is an ordinary allowed client.
    positive_control(wg, fake_upstream, source=OTHER_V4)


GARBAGE_HEADERS = {
    "v1_bad_line": b"PROXY GARBAGE\r\n",
    "v1_bad_address": b"PROXY TCP4 10.1.2.999 127.0.0.1 5000 5432\r\n",
    "v1_no_crlf_within_limit": b"PROXY TCP4 " + b"1" * 200 + b"\r\n",
    "v2_bad_version": pgwire.PROXY_V2_SIGNATURE + bytes([0x31, 0x11]) + b"\x00\x0c" + b"\0" * 12,
    "v2_short_address_block": pgwire.PROXY_V2_SIGNATURE + bytes([0x21, 0x11]) + b"\x00\x04"
    + b"\x0a\x01\x02\x03",
    "tls_client_hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 32,
    "plain_startup": b"",   # a StartupMessage with no header at all
}


@pytest.mark.parametrize("name", sorted(GARBAGE_HEADERS))
def test_garbage_header_from_trusted_peer_reaches_no_upstream(walgate_factory, fake_upstream,
                                                              name):
    wg = access_walgate(walgate_factory, TRUSTED_PROXY, upstream_port=fake_upstream.port)
    before = wg.metrics()
    sock = client_socket(wg, source=LOOPBACK_V4)
    try:
        send_quietly(sock, GARBAGE_HEADERS[name] + startup())
        assert_closed_without_relay(sock)
    finally:
        sock.close()
    assert_upstream_untouched(fake_upstream)
    assert wg.wait_for_metric(PROXY_HEADER, lambda v: v > before[PROXY_HEADER]) \
        == before[PROXY_HEADER] + 1
    assert delta(wg, before, NOT_ALLOWED) == 0
    positive_control(wg, fake_upstream, source=LOOPBACK_V4,
                     header=pgwire.proxy_v2("10.1.2.3", 5000, LOOPBACK_V4, wg.port))


TRUNCATED = {
    "v1": pgwire.proxy_v1("10.1.2.3", 5000, LOOPBACK_V4, 5432)[:20],
    "v2_signature": pgwire.PROXY_V2_SIGNATURE[:7],
    "v2_addresses": pgwire.proxy_v2("10.1.2.3", 5000, LOOPBACK_V4, 5432)[:20],
}


@pytest.mark.parametrize("name", sorted(TRUNCATED))
def test_truncated_header_then_close_reaches_no_upstream(walgate_factory, fake_upstream, name):
    wg = access_walgate(walgate_factory, TRUSTED_PROXY, upstream_port=fake_upstream.port)
    sock = client_socket(wg, source=LOOPBACK_V4)
    send_quietly(sock, TRUNCATED[name])
    sock.shutdown(socket.SHUT_WR)
    try:
        assert_closed_without_relay(sock)
    finally:
        sock.close()
    assert_upstream_untouched(fake_upstream)
    positive_control(wg, fake_upstream, source=LOOPBACK_V4,
                     header=pgwire.proxy_v1("10.1.2.3", 5000, LOOPBACK_V4, wg.port))


def test_truncated_header_then_close_counted_as_proxy_header(walgate_factory, fake_upstream):
    """A header cut short by the client's close is a truncated header."""
    wg = access_walgate(walgate_factory, TRUSTED_PROXY, upstream_port=fake_upstream.port)
    before = wg.metrics()
    sock = client_socket(wg, source=LOOPBACK_V4)
    send_quietly(sock, TRUNCATED["v2_addresses"])
    sock.shutdown(socket.SHUT_WR)
    try:
        assert_closed_without_relay(sock)
    finally:
        sock.close()
    assert wg.wait_for_metric(PROXY_HEADER, lambda v: v > before[PROXY_HEADER], timeout=2) \
        == before[PROXY_HEADER] + 1, wg.log_text()


@pytest.mark.parametrize("name", sorted(TRUNCATED))
def test_truncated_header_times_out(walgate_factory, fake_upstream, name):
    wg = access_walgate(walgate_factory, TRUSTED_PROXY, upstream_port=fake_upstream.port,
                        walgate={"startup_timeout": "1s"})
    before = wg.metrics()
    sock = client_socket(wg, source=LOOPBACK_V4)
    try:
        start = time.monotonic()
        sock.sendall(TRUNCATED[name])
        closed, data, waited = pgwire.wait_closed(sock, 4.0)
        assert closed, "a trusted peer that never finished its header was kept open"
        assert 0.8 <= time.monotonic() - start <= 3.0, f"closed after {waited:.2f} s"
        assert all(t == "E" for t, _ in pgwire.split_messages(data)), data
    finally:
        sock.close()
    assert_upstream_untouched(fake_upstream, settle=0.1)
    assert wg.wait_for_metric(PROXY_HEADER, lambda v: v > before[PROXY_HEADER]) \
        == before[PROXY_HEADER] + 1
    assert wg.wait_for_log(r"rejected: .*PROXY header"), wg.log_text()


def test_trusted_peer_silent_times_out(walgate_factory, fake_upstream):
    """No header at all (and nothing else) from a trusted peer: the startup
    timeout bounds the wait."""
    wg = access_walgate(walgate_factory, TRUSTED_PROXY, upstream_port=fake_upstream.port,
                        walgate={"startup_timeout": "1s"})
    before = wg.metrics()
    sock = client_socket(wg, source=LOOPBACK_V4)
    try:
        closed, data, waited = pgwire.wait_closed(sock, 4.0)
        assert closed and 0.8 <= waited <= 3.0, (closed, waited)
    finally:
        sock.close()
    assert_upstream_untouched(fake_upstream, settle=0.1)
    assert wg.wait_for_metric(PROXY_HEADER, lambda v: v > before[PROXY_HEADER]) \
        == before[PROXY_HEADER] + 1


# --------------------------------------------------------------------------
# 3. PROXY headers from a trusted peer, against PostgreSQL

def trusted_client(wg):
    sock = client_socket(wg, source=LOOPBACK_V4)
    return sock, sock.getsockname()[1]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_header_from_trusted_peer_relays(pg, walgate_factory, version):
    wg = access_walgate(walgate_factory, TRUSTED_PROXY)
    build = pgwire.proxy_v1 if version == "v1" else pgwire.proxy_v2
    sock, cport = trusted_client(wg)
    try:
        sock.sendall(build("10.1.2.3", 5000, LOOPBACK_V4, wg.port) + startup())
        expect_auth_sasl(sock)
        # Later log lines of the session name the real source and the balancer.
        m = wg.wait_for_log(rf"C-\d+ 10\.1\.2\.3:5000 via 127\.0\.0\.1:{cport}: ")
        assert m, wg.log_text()
    finally:
        sock.close()
    assert wg.wait_for_log(rf"C-\d+ 10\.1\.2\.3:5000 via 127\.0\.0\.1:{cport}: closed:"), \
        wg.log_text()


def test_proxy_v1_tcp6_header_from_trusted_peer_relays(pg, walgate_factory):
    access = dict(TRUSTED_PROXY, allow="10.1.2.0/24, 2001:db8::/64")
    wg = access_walgate(walgate_factory, access)
    sock, _ = trusted_client(wg)
    try:
        sock.sendall(pgwire.proxy_v1("2001:db8::5", 6000, "2001:db8::1", 5432) + startup())
        expect_auth_sasl(sock)
    finally:
        sock.close()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_header_with_disallowed_source_refused(pg, walgate_factory, version):
    wg = access_walgate(walgate_factory, TRUSTED_PROXY)
    before = wg.metrics()
    build = pgwire.proxy_v1 if version == "v1" else pgwire.proxy_v2
    sock, _ = trusted_client(wg)
    try:
        send_quietly(sock, build("10.9.9.9", 5000, LOOPBACK_V4, wg.port) + startup())
        assert_closed_without_relay(sock)
    finally:
        sock.close()
    assert wg.wait_for_metric(NOT_ALLOWED, lambda v: v > before[NOT_ALLOWED]) \
        == before[NOT_ALLOWED] + 1


def expect_relayed_behind(wg, header):
    """From the trusted balancer: header, a startup packet, and the upstream's answer."""
    sock, _ = trusted_client(wg)
    try:
        sock.sendall(header + startup())
        expect_auth_sasl(sock)
    finally:
        sock.close()


def test_v2_local_uses_peer_address_allowed(pg, walgate_factory):
    access = dict(TRUSTED_PROXY, allow="10.1.2.0/24, 127.0.0.1/32")
    expect_relayed_behind(access_walgate(walgate_factory, access), pgwire.proxy_v2_local())


def test_v2_local_uses_peer_address_not_allowed(pg, walgate_factory):
    wg = access_walgate(walgate_factory, TRUSTED_PROXY)
    before = wg.metrics()
    sock, _ = trusted_client(wg)
    try:
        send_quietly(sock, pgwire.proxy_v2_local() + startup())
        assert_closed_without_relay(sock)
    finally:
        sock.close()
    assert wg.wait_for_metric(NOT_ALLOWED, lambda v: v > before[NOT_ALLOWED]) \
        == before[NOT_ALLOWED] + 1
    assert wg.wait_for_log(r"rejected: source 127\.0\.0\.1(:\d+)? not allowed"), wg.log_text()


def proxy_v2_no_source(family):
    """A v2 PROXY-command header whose family names no usable source:
    AF_UNSPEC (0x00) or AF_UNIX stream (0x31, two 108-byte paths)."""
    body = b"" if family == 0x00 else b"/run/lb.sock".ljust(108, b"\0") * 2
    return (pgwire.PROXY_V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body))
            + body)


NO_SOURCE_HEADERS = {
    "v1_unknown": pgwire.proxy_v1_unknown,
    "v2_unspec": lambda: proxy_v2_no_source(0x00),
    "v2_unix": lambda: proxy_v2_no_source(0x31),
}
# The load balancer itself is on the allow list (for its LOCAL health checks).
LB_ALLOWED = dict(TRUSTED_PROXY, allow="10.1.2.0/24, 127.0.0.1/32")


@pytest.mark.parametrize("name", sorted(NO_SOURCE_HEADERS))
def test_proxy_header_without_source_refused(pg, walgate_factory, name):
    """Hostile: a trusted, allowed load balancer relays a client it does not
    name (v1 UNKNOWN, v2 PROXY with AF_UNSPEC or AF_UNIX). The balancer's
    own address must not let that client in."""
    wg = access_walgate(walgate_factory, LB_ALLOWED)
    before = wg.metrics()
    sock, _ = trusted_client(wg)
    try:
        send_quietly(sock, NO_SOURCE_HEADERS[name]() + startup())
        assert assert_closed_without_relay(sock) == b""
    finally:
        sock.close()
    assert wg.wait_for_metric(PROXY_UNKNOWN, lambda v: v > before.get(PROXY_UNKNOWN, 0)) \
        == before.get(PROXY_UNKNOWN, 0) + 1
    assert wg.wait_for_log(r"rejected: PROXY header without a source address .*"
                           r"proxy_protocol_unknown = refuse"), wg.log_text()
    # A LOCAL health check from the same balancer is still judged by its address.
    expect_relayed_behind(wg, pgwire.proxy_v2_local())


@pytest.mark.parametrize("name", sorted(NO_SOURCE_HEADERS))
def test_proxy_header_without_source_as_peer_when_set(pg, walgate_factory, name):
    """proxy_protocol_unknown = peer: such headers are judged by the
    balancer's own address, on purpose."""
    wg = access_walgate(walgate_factory, dict(LB_ALLOWED, proxy_protocol_unknown="peer"))
    expect_relayed_behind(wg, NO_SOURCE_HEADERS[name]())
    # ... and refused when the balancer is not on the allow list.
    wg = access_walgate(walgate_factory, dict(TRUSTED_PROXY, proxy_protocol_unknown="peer"))
    sock, _ = trusted_client(wg)
    try:
        send_quietly(sock, NO_SOURCE_HEADERS[name]() + startup())
        assert_closed_without_relay(sock)
    finally:
        sock.close()


@pytest.mark.parametrize("mode,header", [
    ("v1", "v2"),
    ("v2", "v1"),
])
def test_header_version_not_allowed_by_mode(pg, walgate_factory, mode, header):
    wg = access_walgate(walgate_factory, dict(TRUSTED_PROXY, proxy_protocol=mode))
    before = wg.metrics()
    build = pgwire.proxy_v1 if header == "v1" else pgwire.proxy_v2
    sock, _ = trusted_client(wg)
    try:
        send_quietly(sock, build("10.1.2.3", 5000, LOOPBACK_V4, wg.port) + startup())
        assert_closed_without_relay(sock)
    finally:
        sock.close()
    assert wg.wait_for_metric(PROXY_HEADER, lambda v: v > before[PROXY_HEADER]) \
        == before[PROXY_HEADER] + 1
    # The version the mode allows works.
    good = pgwire.proxy_v1 if mode == "v1" else pgwire.proxy_v2
    sock, _ = trusted_client(wg)
    try:
        sock.sendall(good("10.1.2.3", 5000, LOOPBACK_V4, wg.port) + startup())
        expect_auth_sasl(sock)
    finally:
        sock.close()


def test_trusted_peer_without_header_refused(pg, walgate_factory):
    access = dict(TRUSTED_PROXY, allow="10.1.2.0/24, 127.0.0.1/32")
    wg = access_walgate(walgate_factory, access)
    before = wg.metrics()
    sock, _ = trusted_client(wg)
    try:
        send_quietly(sock, startup())
        assert_closed_without_relay(sock)
    finally:
        sock.close()
    assert wg.wait_for_metric(PROXY_HEADER, lambda v: v > before[PROXY_HEADER]) \
        == before[PROXY_HEADER] + 1
    with pytest.raises(psycopg2.OperationalError):
        connect(wg)


# --------------------------------------------------------------------------
# 4. SIGHUP with a new allow list

def open_raw_session(wg, source):
    """A raw session from source that has reached PostgreSQL (its
    AuthenticationSASL relayed): between two messages."""
    sock = client_socket(wg, source=source)
    sock.sendall(startup())
    expect_auth_sasl(sock)
    return sock


def reload_and_wait(wg, expect_generation):
    wg.reload()
    value = wg.wait_for_metric(GENERATION, lambda v: v >= expect_generation)
    assert value == expect_generation, wg.log_text()


def test_reload_enforce_on_closes_sessions_no_longer_allowed(pg, walgate_factory, forwarders):
    wg = access_walgate(walgate_factory, {"allow": "127.0.0.0/8", "enforce_on_reload": "on"})
    fwd = forwarders(wg, OTHER_V4)
    conn = connect(fwd)
    raw = None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone()[0] == 1
        conn.commit()
        raw = open_raw_session(wg, OTHER_V4)
        kept = connect(wg)      # from 127.0.0.1: stays
        assert wg.metric(GENERATION) == 1

        wg.write_config(sections={"access": {"allow": "127.0.0.1/32"}})
        reload_and_wait(wg, 2)

        # The raw session was between messages: it gets FATAL 57P01.
        raw.settimeout(5)
        fields = pgwire.read_error(raw)
        assert fields.get("S") == "FATAL" and fields.get("C") == "57P01", fields
        assert "no longer allowed" in fields.get("M", ""), fields
        closed, _, _ = pgwire.wait_closed(raw, 3)
        assert closed

        # The psycopg2 session is gone too.
        with pytest.raises(psycopg2.Error) as info:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        text = str(info.value)
        assert "no longer allowed" in text or "closed" in text, text

        # The session from 127.0.0.1 was not touched.
        with kept.cursor() as cur:
            cur.execute("SELECT 2")
            assert cur.fetchone()[0] == 2
        kept.close()

        assert wg.wait_for_metric(CLOSED_BY_RELOAD, lambda v: v >= 2) == 2
        assert wg.wait_for_log(r"closing: source no longer allowed \(rule set 2\)"), wg.log_text()

        # New connections: 127.0.0.2 refused, 127.0.0.1 fine.
        refused_from(wg, OTHER_V4, startup())
        with pytest.raises(psycopg2.OperationalError):
            connect(fwd)
        assert query_one(wg) == 1
        assert wg.wait_for_log(r"rejected: source 127\.0\.0\.2(:\d+)? not allowed \(rule set 2\)")
    finally:
        conn.close()
        if raw:
            raw.close()


def test_reload_enforce_off_keeps_sessions(pg, walgate_factory, forwarders):
    wg = access_walgate(walgate_factory, {"allow": "127.0.0.0/8", "enforce_on_reload": "off"})
    fwd = forwarders(wg, OTHER_V4)
    conn = connect(fwd)
    raw = open_raw_session(wg, OTHER_V4)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        conn.commit()
        before = wg.metrics()

        wg.write_config(sections={"access": {"allow": "127.0.0.1/32"}})
        reload_and_wait(wg, 2)

        with conn.cursor() as cur:
            cur.execute("SELECT 'still here'")
            assert cur.fetchone()[0] == "still here"
        conn.commit()
        closed, data, _ = pgwire.wait_closed(raw, 0.5)
        assert not closed and data == b"", "a session was closed with enforce_on_reload = off"
        assert wg.metric(CLOSED_BY_RELOAD) == 0

        refused_from(wg, OTHER_V4, startup())
        with pytest.raises(psycopg2.OperationalError):
            connect(fwd)
        assert query_one(wg) == 1
        assert wg.wait_for_metric(NOT_ALLOWED, lambda v: v >= before[NOT_ALLOWED] + 2) \
            == before[NOT_ALLOWED] + 2
        # The old session still works after all that.
        with conn.cursor() as cur:
            cur.execute("SELECT 3")
            assert cur.fetchone()[0] == 3
    finally:
        conn.close()
        raw.close()


def test_reload_widening_admits_new_source(pg, walgate_factory, forwarders):
    wg = access_walgate(walgate_factory, {"allow": "127.0.0.1/32"})
    fwd = forwarders(wg, OTHER_V4)
    with pytest.raises(psycopg2.OperationalError):
        connect(fwd)
    wg.write_config(sections={"access": {"allow": "127.0.0.1/32, 127.0.0.2/32"}})
    reload_and_wait(wg, 2)
    assert query_one(fwd) == 1


@pytest.mark.parametrize("broken", ["bad_cidr", "no_allow", "bad_proxy_mode"])
def test_reload_with_broken_access_keeps_old_list(pg, walgate_factory, forwarders, broken):
    wg = access_walgate(walgate_factory, {"allow": "127.0.0.0/8", "enforce_on_reload": "on"})
    fwd = forwarders(wg, OTHER_V4)
    conn = connect(fwd)
    try:
        assert wg.metric(GENERATION) == 1
        assert wg.metric(RELOAD_FAILURES) == 0
        if broken == "bad_cidr":
            wg.write_config(sections={"access": {"allow": "10.0.0.0/33"}})
        elif broken == "no_allow":
            wg.write_config(sections={"access": {"allow": None}})
        else:
            wg.write_config(sections={"access": {"allow": "127.0.0.1/32",
                                                 "proxy_protocol": "v3"}})
        wg.reload()
        assert wg.wait_for_metric(RELOAD_FAILURES, lambda v: v >= 1) == 1, wg.log_text()
        assert wg.wait_for_log(r"reload failed"), wg.log_text()
        assert wg.metric(GENERATION) == 1
        assert wg.proc.poll() is None

        # The old list is in force: 127.0.0.2 is still allowed, old and new.
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone()[0] == 1
        conn.commit()
        assert query_one(fwd) == 1
        sock = client_socket(wg, source=OTHER_V4)
        try:
            sock.sendall(startup())
            expect_auth_sasl(sock)
        finally:
            sock.close()
        assert wg.metric(CLOSED_BY_RELOAD) == 0

        # A second broken reload counts again; a good one then applies.
        wg.reload()
        assert wg.wait_for_metric(RELOAD_FAILURES, lambda v: v >= 2) == 2
        assert wg.metric(GENERATION) == 1
        wg.write_config(sections={"access": {"allow": "127.0.0.1/32", "proxy_protocol": "off"}})
        reload_and_wait(wg, 2)
        refused_from(wg, OTHER_V4)
        assert wg.metric(RELOAD_FAILURES) == 2
    finally:
        conn.close()


# --------------------------------------------------------------------------
# 6. The "not allowed" log line is rate-limited; the counter is not

def test_not_allowed_log_is_rate_limited(walgate_factory, fake_upstream):
    wg = access_walgate(walgate_factory, {"allow": "127.0.0.1/32"},
                        upstream_port=fake_upstream.port)
    before = wg.metric(NOT_ALLOWED)
    start = time.monotonic()
    socks = []
    try:
        for _ in range(200):
            socks.append(client_socket(wg, source=OTHER_V4))
            if len(socks) >= 50:
                for s in socks:
                    s.close()
                socks = []
    finally:
        for s in socks:
            s.close()
    assert wg.wait_for_metric(NOT_ALLOWED, lambda v: v >= before + 200) == before + 200
    elapsed = time.monotonic() - start
    assert elapsed < 10, f"200 connections took {elapsed:.1f} s"
    lines = [ln for ln in wg.log_text().splitlines()
             if re.search(r"rejected: source .* not allowed", ln)]
    assert 1 <= len(lines) <= 25, f"{len(lines)} 'not allowed' lines for 200 connections"
    assert_upstream_untouched(fake_upstream, settle=0.1)


# --------------------------------------------------------------------------
# [access] allow is required

def test_start_without_allow_refused(walgate_factory):
    wg = walgate_factory(start=False)
    wg.write_config(sections={"access": {"allow": None}})
    wg.start(wait=False)
    try:
        rc = wg.proc.wait(10)
    except Exception:
        pytest.fail("walgate started without [access] allow")
    assert rc != 0
    assert "allow" in wg.log_text(), wg.log_text()
