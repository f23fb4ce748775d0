"""walgate's own answers, read off raw sockets: the startup phase
(SSLRequest, GSSENCRequest, bad startup packets, protocol 2.0), the startup
timeout and an unreachable upstream."""

import socket
import struct
import time

import psycopg2
import pytest

import pgwire
from clients import client_env, conn_args, connect, run
from pgcluster import TEST_DB, TEST_USER, closed_port, pg_bin

pytestmark = pytest.mark.walgate_only

STARTUP_PARAMS = {"user": TEST_USER, "database": TEST_DB}


def assert_error_then_close(sock, sqlstate, severity="FATAL"):
    fields = pgwire.read_error(sock)
    assert fields.get("S") == severity, fields
    assert fields.get("V", severity) == severity, fields
    assert fields.get("C") == sqlstate, fields
    assert fields.get("M"), fields
    closed, extra, _ = pgwire.wait_closed(sock, 5)
    assert closed, "walgate did not close the connection after a FATAL error"
    assert extra == b"", f"bytes after the ErrorResponse: {extra!r}"
    return fields


def assert_sasl_request(sock):
    mtype, body = pgwire.read_message(sock)
    assert mtype == "R", (mtype, body)
    auth, rest = pgwire.auth_request(body)
    assert auth == pgwire.AUTH_SASL, (auth, rest)
    assert "SCRAM-SHA-256" in pgwire.sasl_mechanisms(rest)


# -- 7. startup phase ----------------------------------------------------

def test_plain_startup_reaches_upstream(walgate):
    with pgwire.connect(walgate.host, walgate.port) as sock:
        sock.sendall(pgwire.startup_message(STARTUP_PARAMS))
        assert_sasl_request(sock)


def test_ssl_request_refused_then_plain_startup(walgate):
    with pgwire.connect(walgate.host, walgate.port) as sock:
        sock.sendall(pgwire.ssl_request())
        assert pgwire.recv_exact(sock, 1) == b"N"
        sock.sendall(pgwire.startup_message(STARTUP_PARAMS))
        assert_sasl_request(sock)


def test_gssenc_request_refused_then_plain_startup(walgate):
    with pgwire.connect(walgate.host, walgate.port) as sock:
        sock.sendall(pgwire.gssenc_request())
        assert pgwire.recv_exact(sock, 1) == b"N"
        sock.sendall(pgwire.startup_message(STARTUP_PARAMS))
        assert_sasl_request(sock)


def test_startup_packet_too_long(walgate):
    with pgwire.connect(walgate.host, walgate.port) as sock:
        sock.sendall(struct.pack("!ii", 10001, pgwire.PROTOCOL_3_0))
        assert_error_then_close(sock, "08P01")


@pytest.mark.parametrize("length", [3, 0, -1, 7])
def test_startup_packet_too_short(walgate, length):
    with pgwire.connect(walgate.host, walgate.port) as sock:
        sock.sendall(struct.pack("!i", length) + b"\0" * 8)
        assert_error_then_close(sock, "08P01")


def test_protocol_2_refused(walgate):
    with pgwire.connect(walgate.host, walgate.port) as sock:
        sock.sendall(pgwire.startup_packet_v2(TEST_USER, TEST_DB))
        fields = assert_error_then_close(sock, "0A000")
        assert "2.0" in fields["M"] or "protocol" in fields["M"].lower(), fields


def test_unknown_protocol_3_minor_is_relayed(pg, walgate):
    """3.x with an unknown minor version goes to the server, which answers
    with NegotiateProtocolVersion and then authentication."""
    with pgwire.connect(walgate.host, walgate.port) as sock:
        sock.sendall(pgwire.startup_message(STARTUP_PARAMS, protocol=pgwire.PROTOCOL_3_0 + 7))
        mtype, body = pgwire.read_message(sock)
        assert mtype == "v", (mtype, body)
        assert struct.unpack("!i", body[:4])[0] == pgwire.PROTOCOL_3_0
        assert_sasl_request(sock)


def test_bogus_cancel_request_closed_quietly(walgate):
    with pgwire.connect(walgate.host, walgate.port) as sock:
        sock.sendall(pgwire.cancel_request(1, 2))
        closed, data, _ = pgwire.wait_closed(sock, 5)
        assert closed
        assert data == b""


def test_startup_without_user_refused(walgate):
    """A startup packet without "user" is a protocol violation
    (PostgreSQL: 28000 "no PostgreSQL user name specified")."""
    with pgwire.connect(walgate.host, walgate.port) as sock:
        sock.sendall(pgwire.startup_message({"database": TEST_DB}))
        fields = pgwire.read_error(sock)
        assert fields.get("S") == "FATAL", fields
        assert fields.get("C") in ("28000", "08P01"), fields


# -- 8. startup timeout --------------------------------------------------

@pytest.fixture
def quick_timeout_walgate(walgate_factory):
    return walgate_factory(walgate={"startup_timeout": "1s"})


def _check_timeout_close(data, elapsed):
    assert elapsed >= 0.8, f"closed after {elapsed:.2f} s, before startup_timeout"
    assert elapsed < 3.0, f"closed only after {elapsed:.2f} s"
    for mtype, _ in pgwire.split_messages(data):   # an ErrorResponse is allowed
        assert mtype == "E", data


def test_startup_timeout_silent_client(quick_timeout_walgate):
    wg = quick_timeout_walgate
    with pgwire.connect(wg.host, wg.port) as sock:
        closed, data, elapsed = pgwire.wait_closed(sock, 5)
    assert closed, "walgate kept a silent connection open for 5 s"
    _check_timeout_close(data, elapsed)


def test_startup_timeout_slow_client(quick_timeout_walgate):
    """One byte every 300 ms: the timeout is for the whole startup packet,
    not for each read."""
    wg = quick_timeout_walgate
    packet = pgwire.startup_message(STARTUP_PARAMS)
    assert len(packet) * 0.3 > 5      # would take longer than the test waits
    with pgwire.connect(wg.host, wg.port) as sock:
        start = time.monotonic()
        closed, data = False, b""
        for i in range(len(packet)):
            try:
                sock.sendall(packet[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed, data, _ = pgwire.wait_closed(sock, 0.3)
            if closed or time.monotonic() - start > 5:
                break
        elapsed = time.monotonic() - start
    assert closed, "walgate kept a trickling startup packet going for 5 s"
    _check_timeout_close(data, elapsed)


# -- 6. unreachable upstream ---------------------------------------------

@pytest.fixture
def down_walgate(walgate_factory):
    port = closed_port()
    wg = walgate_factory(upstream_port=port, upstream={"connect_timeout": "2s"})
    wg.dead_port = port
    return wg


def test_upstream_down_psycopg2(down_walgate):
    wg = down_walgate
    start = time.monotonic()
    with pytest.raises(psycopg2.OperationalError) as excinfo:
        connect(wg)
    elapsed = time.monotonic() - start
    message = str(excinfo.value)
    assert f'could not connect to upstream "127.0.0.1:{wg.dead_port}"' in message, message
    assert elapsed < 2 + 2


def test_upstream_down_psql(down_walgate):
    wg = down_walgate
    start = time.monotonic()
    proc = run([pg_bin("psql"), "-X", *conn_args(wg), "-c", "SELECT 1"], env=client_env())
    elapsed = time.monotonic() - start
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, stderr
    assert "FATAL" in stderr and f'upstream "127.0.0.1:{wg.dead_port}"' in stderr, stderr
    assert elapsed < 2 + 2


def test_upstream_down_raw_error_response(down_walgate):
    wg = down_walgate
    with pgwire.connect(wg.host, wg.port) as sock:
        sock.sendall(pgwire.startup_message(STARTUP_PARAMS))
        fields = assert_error_then_close(sock, "08006")
    assert fields["M"].startswith(f'could not connect to upstream "127.0.0.1:{wg.dead_port}"'), \
        fields


def test_upstream_connect_timeout(walgate_factory):
    """An upstream that never answers the SYN (a listener whose accept
    queue is full) is given up after connect_timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            # Fill the accept queue; later SYNs are dropped by the kernel.
            for _ in range(4):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                fillers.append(s)
            time.sleep(0.2)
            wg = walgate_factory(upstream_port=port, upstream={"connect_timeout": "1s"})
            with pgwire.connect(wg.host, wg.port, timeout=10) as sock:
                start = time.monotonic()
                sock.sendall(pgwire.startup_message(STARTUP_PARAMS))
                fields = assert_error_then_close(sock, "08006")
                elapsed = time.monotonic() - start
        finally:
            for s in fillers:
                s.close()
    assert f'upstream "127.0.0.1:{port}"' in fields["M"], fields
    assert 0.8 <= elapsed < 1 + 2, elapsed


def test_startup_packet_of_max_length_accepted(walgate):
    """10000 bytes is the longest startup packet PostgreSQL accepts."""
    params = dict(STARTUP_PARAMS, application_name="")
    filler = 10000 - len(pgwire.startup_message(params))
    params["application_name"] = "a" * filler
    packet = pgwire.startup_message(params)
    assert len(packet) == 10000
    with pgwire.connect(walgate.host, walgate.port) as sock:
        sock.sendall(packet)
        assert_sasl_request(sock)


def test_max_client_conn(walgate_factory):
    """Beyond max_client_conn a client gets FATAL 53300, and libpq shows it.

    With sslmode=prefer (libpq's default) the first thing a client sends is
    an SSLRequest; PostgreSQL answers it and refuses only after the startup
    packet. libpq >= 15.9 ignores an ErrorResponse that comes in answer to
    SSLRequest ("server sent an error response during SSL exchange")."""
    wg = walgate_factory(walgate={"max_client_conn": "2"})
    held = [connect(wg), connect(wg)]
    try:
        with pgwire.connect(wg.host, wg.port) as sock:
            sock.sendall(pgwire.startup_message(STARTUP_PARAMS))
            assert_error_then_close(sock, "53300")
        with pytest.raises(psycopg2.OperationalError) as excinfo:
            connect(wg)
        assert "too many" in str(excinfo.value)
    finally:
        for conn in held:
            conn.close()
    # Room again once the others left.
    deadline = time.monotonic() + 5
    while True:
        try:
            connect(wg).close()
            break
        except psycopg2.OperationalError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_ssl_request_pipelined_with_startup(walgate):
    """A client that sends its StartupMessage right behind the SSLRequest,
    without waiting for the answer, still gets 'N' and then authentication."""
    with pgwire.connect(walgate.host, walgate.port) as sock:
        sock.sendall(pgwire.ssl_request() + pgwire.startup_message(STARTUP_PARAMS))
        assert pgwire.recv_exact(sock, 1) == b"N"
        assert_sasl_request(sock)


def test_two_ssl_requests_refused(walgate):
    """PostgreSQL allows one SSLRequest and one GSSENCRequest: a second
    SSLRequest is a protocol violation (08P01)."""
    with pgwire.connect(walgate.host, walgate.port) as sock:
        sock.sendall(pgwire.ssl_request())
        assert pgwire.recv_exact(sock, 1) == b"N"
        sock.sendall(pgwire.ssl_request())
        assert_error_then_close(sock, "08P01")
