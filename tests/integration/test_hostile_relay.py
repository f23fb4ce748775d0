"""Hostile clients and servers on the data path (issue #12, items 1 and 5),
on every kind of leg: plaintext, TLS after an SSLRequest, direct TLS (a
ClientHello as the first byte, ALPN "postgresql", PostgreSQL 17's
sslnegotiation=direct) and TLS towards the upstream.

1. Backpressure: a client that runs one big query and stops reading leaves
   walgate's memory bounded, and the server is seen blocked writing.
2. Last words: walgate's own FATAL reaches a direct-TLS client as an
   ErrorResponse, not as a bare close; an upstream's last rows and FATAL
   just before it closes reach the client whole.
3. Teardown: a client's Terminate reaches the upstream, and the upstream
   connection is closed at once, even when the client keeps its socket
   open after saying goodbye.

libpq 15 cannot speak direct TLS, so the clients here are raw sockets
(Python's ssl module) with a small SCRAM-SHA-256 client of their own. The
misbehaving upstreams of 2 and 3 are ScriptedUpstream, a stand-in server on
loopback (plaintext, or TLS after walgate's SSLRequest).
"""

import base64
import hashlib
import hmac
import os
import shutil
import socket
import ssl
import struct
import tempfile
import time
from types import SimpleNamespace

import pytest

import pgwire
from loopback_server import LoopbackServer
from hardening import ClientWriteWatch, RssSampler, build_profile, mib, proc_status_kib
from pgcluster import (LOOPBACK_V4, LOOPBACK_V6, TEST_DB, TEST_PASSWORD, TEST_USER, free_port,
                       issue_cert)

pytestmark = pytest.mark.walgate_only

WALGATE_SAN = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
CLIENT_LEGS = ("plain", "sslrequest", "direct")


@pytest.fixture(scope="module")
def certs(pg):
    d = tempfile.mkdtemp(prefix="walgate-hostile-")
    try:
        cert, key = issue_cert(pg.ca, "walgate-hostile", "localhost", san=WALGATE_SAN,
                               directory=d)
        yield SimpleNamespace(dir=d, ca=pg.ca_cert, cert=cert, key=key)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def relay_walgate(factory, certs, server_tls="disable", upstream_port=None, sections=None,
                  **kwargs):
    """walgate on 127.0.0.1 and ::1 (one port) that takes plaintext and TLS
    clients (client_tls = allow) with the test certificate."""
    tls = {"client_tls": "allow", "cert_file": certs.cert, "key_file": certs.key,
           "server_tls": server_tls}
    all_sections = {"tls": tls}
    for name, keys in (sections or {}).items():
        all_sections.setdefault(name, {}).update(keys)
    port = free_port()
    if upstream_port is not None:
        kwargs["upstream_port"] = upstream_port
    return factory(listen=[(LOOPBACK_V4, port), (LOOPBACK_V6, port)], sections=all_sections,
                   **kwargs)


# --------------------------------------------------------------------------
# Clients on raw sockets

def open_client(wg, leg, ca, timeout=10.0):
    """A socket to walgate over the given kind of client leg."""
    sock = pgwire.connect(LOOPBACK_V4, wg.port, timeout=timeout)
    try:
        if leg == "plain":
            return sock
        ctx = ssl.create_default_context(cafile=ca)
        if leg == "sslrequest":
            sock.sendall(pgwire.ssl_request())
            assert pgwire.recv_exact(sock, 1) == b"S"
        else:
            ctx.set_alpn_protocols(["postgresql"])
        return ctx.wrap_socket(sock, server_hostname="localhost")
    except BaseException:
        sock.close()
        raise


def b64(data):
    return base64.b64encode(data).decode()


def send_message(sock, mtype, body):
    sock.sendall(mtype + struct.pack("!i", len(body) + 4) + body)


def scram_login(sock, password, user=TEST_USER, app="walgate-hostile"):
    """StartupMessage and a SCRAM-SHA-256 exchange without channel binding.
    Returns ("ok", messages up to ReadyForQuery) or ("error", ErrorResponse
    fields)."""
    sock.sendall(pgwire.startup_message({"user": user, "database": TEST_DB,
                                         "application_name": app}))
    mtype, body = pgwire.read_message(sock)
    if mtype == "E":
        return "error", pgwire.parse_error_fields(body)
    code, rest = pgwire.auth_request(body)
    assert (mtype, code) == ("R", pgwire.AUTH_SASL), (mtype, body)
    assert "SCRAM-SHA-256" in pgwire.sasl_mechanisms(rest), rest
    nonce = b64(os.urandom(18))
    first_bare = f"n=,r={nonce}"
    first = ("n,," + first_bare).encode()
    send_message(sock, b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
    mtype, body = pgwire.read_message(sock)
    if mtype == "E":
        return "error", pgwire.parse_error_fields(body)
    server_first = pgwire.auth_request(body)[1].decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    without_proof = f"c={b64(b'n,,')},r={attrs['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    send_message(sock, b"p", f"{without_proof},p={b64(proof)}".encode())
    messages = []
    while True:
        mtype, body = pgwire.read_message(sock)
        if mtype == "E":
            return "error", pgwire.parse_error_fields(body)
        messages.append((mtype, body))
        if mtype == "Z":
            return "ok", messages


def read_to_end(sock, timeout=20.0):
    """Everything until the peer closes (a reset or a TLS EOF without
    close_notify counts as the close). Returns (bytes, closed)."""
    sock.settimeout(timeout)
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except (ConnectionResetError, ssl.SSLEOFError):
            return bytes(data), True
        except (socket.timeout, TimeoutError):
            return bytes(data), False
        if not chunk:
            return bytes(data), True
        data += chunk


# --------------------------------------------------------------------------
# A scripted upstream

def backend_message(mtype, body=b""):
    return mtype + struct.pack("!i", len(body) + 4) + body


LOGIN_REPLY = (backend_message(b"R", struct.pack("!i", 0))
               + backend_message(b"K", struct.pack("!ii", 4242, 17))
               + backend_message(b"Z", b"I"))
UPSTREAM_FATAL = backend_message(
    b"E", b"SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0")


def data_row(payload):
    return backend_message(b"D", struct.pack("!hi", 1, len(payload)) + payload)


class ScriptedUpstream(LoopbackServer):
    """A stand-in PostgreSQL server on 127.0.0.1, one thread per connection.
    It answers walgate's SSLRequest ('S' and a TLS handshake when given a
    certificate, else 'N'), takes the startup packet, logs the client in
    (AuthenticationOk, BackendKeyData, ReadyForQuery), then plays `script`:

      "record": read until EOF; .events gets ("data", bytes, t) and
                ("eof", None, t) (t: time.monotonic());
      "burst":  at the first byte after the login, send `rows` DataRows of
                `row_size` bytes each, then a FATAL ErrorResponse, then
                close at once."""

    def __init__(self, script, cert=None, key=None, rows=0, row_size=8192):
        self.script = script
        self.rows = rows
        self.row = data_row(bytes((i % 251) for i in range(row_size)))
        self.ctx = None
        if cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert, key)
        self.events = []
        self.errors = []
        super().__init__(backlog=16)

    def close(self):
        super().close(wait=0)

    def _note(self, kind, data=None):
        with self.lock:
            self.events.append((kind, data, time.monotonic()))

    def serve(self, conn):
        try:
            conn.settimeout(30)
            first = pgwire.recv_exact(conn, 8)
            if first == pgwire.ssl_request():
                if self.ctx:
                    conn.sendall(b"S")
                    conn = self.ctx.wrap_socket(conn, server_side=True)
                else:
                    conn.sendall(b"N")
                first = pgwire.recv_exact(conn, 8)
            length = struct.unpack("!i", first[:4])[0]
            pgwire.recv_exact(conn, length - 8)
            conn.sendall(LOGIN_REPLY)
            getattr(self, "_" + self.script)(conn)
        except (OSError, ValueError, struct.error) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            conn.close()

    def _record(self, conn):
        while True:
            try:
                chunk = conn.recv(65536)
            except (ConnectionResetError, ssl.SSLEOFError):
                chunk = b""
            if not chunk:
                self._note("eof")
                return
            self._note("data", chunk)

    def _burst(self, conn):
        conn.recv(65536)
        block = self.row * 64
        for _ in range(self.rows // 64):
            conn.sendall(block)
        conn.sendall(self.row * (self.rows % 64) + UPSTREAM_FATAL)
        conn.shutdown(socket.SHUT_RDWR)

    def received(self):
        with self.lock:
            return b"".join(d for k, d, _ in self.events if k == "data")

    def eof_at(self):
        with self.lock:
            return next((t for k, _, t in self.events if k == "eof"), None)


@pytest.fixture
def upstreams():
    made = []

    def make(*args, **kwargs):
        up = ScriptedUpstream(*args, **kwargs)
        made.append(up)
        return up

    yield make
    for up in made:
        up.close()


# --------------------------------------------------------------------------
# 1. Backpressure on every kind of leg

BIG_QUERY_ROWS = 500_000            # x 1000 bytes: about 500 MB of DataRows
HOLD_SECONDS = 5.0

LEG_KINDS = [
    pytest.param("plain", "disable", id="plain"),
    pytest.param("sslrequest", "disable", id="sslrequest-tls"),
    pytest.param("direct", "disable", id="direct-tls"),
    pytest.param("plain", "require", id="upstream-tls"),
    pytest.param("direct", "require", id="direct-tls-both-legs"),
]


@pytest.mark.parametrize("leg,server_tls", LEG_KINDS)
def test_client_that_stops_reading_keeps_memory_bounded(pg, walgate_factory, certs, leg,
                                                        server_tls, report_measurement):
    """A client logs in, asks for about 500 MB of rows and reads none of
    them. For HOLD_SECONDS walgate's RSS stays under the bound of the
    build (64 MiB normally) and the server is seen blocked writing
    (ClientWrite): the relay stopped reading the upstream because the
    client's socket was full, whatever the legs are. Before the fix a
    direct-TLS client grew walgate by hundreds of MiB per second: OpenSSL's
    filter handed every byte on to a socket buffer without a limit."""
    profile = build_profile()
    wg = relay_walgate(walgate_factory, certs, server_tls=server_tls, env=profile.env,
                       walgate={"log_level": "info"})
    pid = wg.proc.pid
    app = f"walgate-hostile-{leg}-{server_tls}"
    sock = open_client(wg, leg, certs.ca)
    sampler = watch = None
    try:
        result = scram_login(sock, TEST_PASSWORD, app=app)
        assert result[0] == "ok", result
        rss_start = proc_status_kib(pid, "VmRSS")
        sampler = RssSampler(pid).start()
        watch = ClientWriteWatch(pg, app, interval=0.2).start()
        send_message(sock, b"Q",
                     f"SELECT repeat('x', 1000) FROM generate_series(1, {BIG_QUERY_ROWS})"
                     .encode() + b"\0")
        deadline = time.monotonic() + HOLD_SECONDS
        while time.monotonic() < deadline and sampler.max_kib < profile.rss_bound_mb * 1024:
            time.sleep(0.05)
        max_kib = sampler.stop()
        watch.stop()
    finally:
        if sampler:
            sampler.stop()
        if watch:
            watch.stop()
        sock.close()
    report_measurement(
        f"non-reading client ({leg} client leg, server_tls={server_tls}): walgate RSS "
        f"{mib(rss_start)} at the query, max {mib(max_kib)} over {HOLD_SECONDS:g} s "
        f"(bound {profile.rss_bound_mb} MiB{profile.label}); server in ClientWrite in "
        f"{watch.blocked} of {watch.polls} polls")
    assert wg.proc.poll() is None, "walgate died"
    assert max_kib < profile.rss_bound_mb * 1024, \
        f"walgate's RSS reached {mib(max_kib)} (bound {profile.rss_bound_mb} MiB)"
    assert watch.blocked > 0, "the server was never seen blocked writing to walgate"
    # The session is gone with its client, and walgate still serves.
    other = open_client(wg, leg, certs.ca)
    try:
        assert scram_login(other, TEST_PASSWORD)[0] == "ok"
    finally:
        other.close()


def memory_bio_round(sock, tls, inc, out):
    """Send what the TLS object wrote, then feed it what the socket brings."""
    pending = out.read()
    if pending:
        sock.sendall(pending)
    chunk = sock.recv(65536)
    assert chunk, "walgate closed during the handshake"
    inc.write(chunk)


@pytest.mark.parametrize("first", (1, 4, 5, 60))
def test_direct_tls_client_hello_in_pieces(walgate_factory, certs, first):
    """A direct-TLS ClientHello that arrives in two pieces (the first
    `first` bytes, a pause, the rest): walgate decides on the bytes it has
    and hands them to OpenSSL before the rest of the socket; the handshake
    and the login go on as usual."""
    wg = relay_walgate(walgate_factory, certs)
    ctx = ssl.create_default_context(cafile=certs.ca)
    ctx.set_alpn_protocols(["postgresql"])
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pgwire.connect(LOOPBACK_V4, wg.port, timeout=10) as sock:
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = out.read()
        sock.sendall(hello[:first])
        time.sleep(0.3)
        sock.sendall(hello[first:])
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                memory_bio_round(sock, tls, inc, out)
        assert tls.selected_alpn_protocol() == "postgresql"
        tls.write(pgwire.startup_message({"user": TEST_USER, "database": TEST_DB}))
        data = b""
        while len(data) < 5:
            try:
                data += tls.read(65536)
            except ssl.SSLWantReadError:
                memory_bio_round(sock, tls, inc, out)
    assert data[:1] == b"R", data


# --------------------------------------------------------------------------
# 2. Last words: walgate's FATAL, the upstream's final bytes

@pytest.mark.parametrize("leg", CLIENT_LEGS)
def test_walgate_fatal_reaches_client(walgate_factory, certs, leg):
    """A startup packet without a user is a protocol violation that walgate
    answers itself, with a FATAL 28000 and a close: over direct TLS too,
    where it used to arrive as a bare close (the encrypted answer was left
    in the socket bufferevent under OpenSSL's filter and freed with it)."""
    wg = relay_walgate(walgate_factory, certs)
    with open_client(wg, leg, certs.ca) as sock:
        sock.sendall(pgwire.startup_message({"database": TEST_DB}))
        data, closed = read_to_end(sock, timeout=10)
    msgs = pgwire.split_messages(data)
    assert msgs and msgs[0][0] == "E", f"no ErrorResponse before the close: {data!r}"
    fields = pgwire.parse_error_fields(msgs[0][1])
    assert (fields["S"], fields["C"]) == ("FATAL", "28000"), fields
    assert "no PostgreSQL user name" in fields["M"], fields
    assert closed


@pytest.mark.parametrize("leg", ("sslrequest", "direct"))
def test_wrong_password_fatal_over_tls(walgate_factory, certs, tmp_path, leg):
    """auth = scram: a wrong password gets walgate's FATAL 28P01 over
    either kind of client TLS, then the close."""
    auth_file = tmp_path / "users.txt"
    fd = os.open(auth_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f'"{TEST_USER}" "{TEST_PASSWORD}"\n')
    wg = relay_walgate(walgate_factory, certs, server_tls="require",
                       sections={"tls": {"client_tls": "require"},
                                 "auth": {"auth": "scram", "auth_file": str(auth_file)}})
    with open_client(wg, leg, certs.ca) as sock:
        result = scram_login(sock, "not-the-password")
        assert result[0] == "error", result
        fields = result[1]
        assert (fields["S"], fields["C"]) == ("FATAL", "28P01"), fields
        data, closed = read_to_end(sock, timeout=10)
    assert closed and data == b"", data


BURST_ROWS = 2048                   # x 8 KiB: 16 MiB, far more than the socket buffers


@pytest.mark.parametrize("leg", CLIENT_LEGS)
@pytest.mark.parametrize("upstream_tls", (False, True), ids=("upstream-plain", "upstream-tls"))
def test_upstream_final_bytes_not_cut(walgate_factory, certs, upstreams, leg, upstream_tls):
    """The upstream sends 16 MiB of rows and a FATAL and closes at once,
    while the client has not started reading (it does after 1 s). Every
    row and the upstream's own FATAL reach the client, in order, and then
    the close; walgate adds no FATAL of its own."""
    up = upstreams("burst", *((certs.cert, certs.key) if upstream_tls else ()), rows=BURST_ROWS)
    wg = relay_walgate(walgate_factory, certs, upstream_port=up.port,
                       server_tls="require" if upstream_tls else "disable")
    with open_client(wg, leg, certs.ca) as sock:
        sock.sendall(pgwire.startup_message({"user": TEST_USER, "database": TEST_DB}))
        assert pgwire.read_message(sock)[0] == "R"
        assert pgwire.read_message(sock)[0] == "K"
        assert pgwire.read_message(sock)[0] == "Z"
        send_message(sock, b"Q", b"SELECT rows\0")
        time.sleep(1.0)
        data, closed = read_to_end(sock)
    msgs = pgwire.split_messages(data)
    rows = [m for m in msgs if m[0] == "D"]
    assert len(rows) == BURST_ROWS, \
        f"{len(rows)} of {BURST_ROWS} rows arrived ({len(data)} bytes), then " \
        f"{'the close' if closed else 'nothing'}; upstream errors: {up.errors}"
    assert all(b"D" + struct.pack("!i", len(body) + 4) + body == up.row for _, body in rows)
    assert msgs[-1][0] == "E", msgs[-1]
    assert pgwire.parse_error_fields(msgs[-1][1])["C"] == "57P01"
    assert len(msgs) == BURST_ROWS + 1
    assert closed


# --------------------------------------------------------------------------
# 3. Teardown: Terminate forwarded, upstream closed at once

@pytest.mark.parametrize("leg", ("plain", "direct"))
@pytest.mark.parametrize("upstream_tls", (False, True), ids=("upstream-plain", "upstream-tls"))
def test_terminate_closes_upstream_at_once(walgate_factory, certs, upstreams, leg, upstream_tls):
    """A client sends Terminate and keeps its socket open. The upstream
    receives the Terminate, and then the end of its connection, without
    waiting for the client's close: a replication slot is released as soon
    as the client said goodbye. walgate closes the client too, as
    PostgreSQL does after a Terminate."""
    up = upstreams("record", *((certs.cert, certs.key) if upstream_tls else ()))
    wg = relay_walgate(walgate_factory, certs, upstream_port=up.port,
                       server_tls="require" if upstream_tls else "disable")
    with open_client(wg, leg, certs.ca) as sock:
        sock.sendall(pgwire.startup_message({"user": TEST_USER, "database": TEST_DB}))
        for expected in "RKZ":
            assert pgwire.read_message(sock)[0] == expected
        send_message(sock, b"Q", b"SELECT 1\0")
        sent = time.monotonic()
        send_message(sock, b"X", b"")
        deadline = time.monotonic() + 5
        while up.eof_at() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        eof = up.eof_at()
        data, closed = read_to_end(sock, timeout=5)
    assert up.received() == backend_message(b"Q", b"SELECT 1\0") + backend_message(b"X"), \
        up.received()
    assert eof is not None, "the upstream connection stayed open after the client's Terminate"
    assert eof - sent < 2.0, f"the upstream was closed {eof - sent:.3f} s after the Terminate"
    assert closed and data == b"", data
    assert wg.wait_for_log(r'reason="client terminated"'), wg.log_text()[-2000:]


@pytest.mark.parametrize("upstream_tls", (False, True), ids=("upstream-plain", "upstream-tls"))
def test_client_eof_closes_upstream(walgate_factory, certs, upstreams, upstream_tls):
    """A client that closes without Terminate: the upstream sees the end
    of its connection (and no Terminate walgate made up)."""
    up = upstreams("record", *((certs.cert, certs.key) if upstream_tls else ()))
    wg = relay_walgate(walgate_factory, certs, upstream_port=up.port,
                       server_tls="require" if upstream_tls else "disable")
    with open_client(wg, "plain", certs.ca) as sock:
        sock.sendall(pgwire.startup_message({"user": TEST_USER, "database": TEST_DB}))
        for expected in "RKZ":
            assert pgwire.read_message(sock)[0] == expected
        send_message(sock, b"Q", b"SELECT 1\0")
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while up.eof_at() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert up.eof_at() is not None, "the upstream connection stayed open after the client left"
    assert up.received() == backend_message(b"Q", b"SELECT 1\0"), up.received()
