"""Just enough of the PostgreSQL wire protocol to poke a server by hand.

Builders for the first packets a client sends (StartupMessage, SSLRequest,
GSSENCRequest, CancelRequest, a protocol 2.0 startup packet) and readers for
what comes back (whole messages, ErrorResponse fields, end of stream), and
a whole login (SCRAM-SHA-256 or trust) with a simple query after it, for a
client libpq cannot play (protocol 3.2 with libpq 15).
"""

import base64
import hashlib
import hmac
import os
import socket
import struct
import time

PROTOCOL_3_0 = 196608            # 3 << 16
PROTOCOL_3_2 = 196610            # 3 << 16 | 2 (PostgreSQL 18)
PROTOCOL_2_0 = 131072            # 2 << 16
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

AUTH_OK = 0
AUTH_SASL = 10


def startup_message(params, protocol=PROTOCOL_3_0):
    body = struct.pack("!i", protocol)
    for key, value in params.items():
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def ssl_request():
    return struct.pack("!ii", 8, SSL_REQUEST_CODE)


def gssenc_request():
    return struct.pack("!ii", 8, GSSENC_REQUEST_CODE)


def cancel_request(pid, key):
    """key: an int (protocol 3.0's 4 bytes) or bytes of any length (3.2)."""
    if isinstance(key, int):
        key = struct.pack("!I", key & 0xffffffff)
    return struct.pack("!iiI", 12 + len(key), CANCEL_REQUEST_CODE, pid) + key


def message(mtype, body):
    return mtype.encode() + struct.pack("!i", len(body) + 4) + body


def startup_packet_v2(user, database):
    """The fixed 296-byte StartupPacket of protocol 2.0."""
    def field(value, size):
        return value.encode().ljust(size, b"\0")[:size]
    body = (struct.pack("!i", PROTOCOL_2_0) + field(database, 64) + field(user, 32)
            + field("", 64) + field("", 64) + field("", 64))
    return struct.pack("!i", len(body) + 4) + body


def connect(host, port, timeout=5.0):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect((host, port))
    return sock


def recv_exact(sock, n):
    """n bytes, or fewer if the peer closed the connection first."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


class ConnectionClosed(Exception):
    pass


def read_message(sock):
    """One backend message as (type byte as str, body bytes)."""
    header = recv_exact(sock, 5)
    if len(header) < 5:
        raise ConnectionClosed(f"connection closed after {len(header)} bytes of a header")
    mtype, length = header[:1].decode("latin-1"), struct.unpack("!i", header[1:])[0]
    if length < 4:
        raise ValueError(f"bad message length {length} for type {mtype!r}")
    body = recv_exact(sock, length - 4)
    if len(body) < length - 4:
        raise ConnectionClosed(f"connection closed inside a {mtype!r} message")
    return mtype, body


def parse_error_fields(body):
    """ErrorResponse/NoticeResponse body -> {field code: value}."""
    fields = {}
    pos = 0
    while pos < len(body) and body[pos] != 0:
        code = chr(body[pos])
        end = body.index(b"\0", pos + 1)
        fields[code] = body[pos + 1:end].decode("utf-8", errors="replace")
        pos = end + 1
    return fields


def read_error(sock):
    """Read one message, which must be an ErrorResponse; returns its fields."""
    mtype, body = read_message(sock)
    if mtype != "E":
        raise AssertionError(f"expected ErrorResponse, got {mtype!r}: {body!r}")
    return parse_error_fields(body)


def auth_request(body):
    """The authentication type of an 'R' message, and the rest."""
    return struct.unpack("!i", body[:4])[0], body[4:]


def sasl_mechanisms(rest):
    return [m.decode() for m in rest.split(b"\0") if m]


def wait_closed(sock, timeout):
    """Read until the peer closes; returns (closed, data read, seconds waited).

    A reset counts as closed. Data read before the close is returned so a
    caller can check that it was, say, an ErrorResponse."""
    start = time.monotonic()
    deadline = start + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, data, time.monotonic() - start
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return False, data, time.monotonic() - start
        except ConnectionResetError:
            return True, data, time.monotonic() - start
        if not chunk:
            return True, data, time.monotonic() - start
        data += chunk


def split_messages(data):
    """Backend messages in a byte string, as [(type, body)]; a trailing
    partial message is ignored."""
    out = []
    pos = 0
    while pos + 5 <= len(data):
        length = struct.unpack("!i", data[pos + 1:pos + 5])[0]
        if pos + 1 + length > len(data):
            break
        out.append((chr(data[pos]), data[pos + 5:pos + 1 + length]))
        pos += 1 + length
    return out


# -- PROXY protocol headers (HAProxy doc/proxy-protocol.txt) ---------------

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v1(src, sport, dst, dport):
    """A v1 line: PROXY TCP4|TCP6 src dst sport dport CRLF."""
    proto = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode()


def proxy_v1_unknown():
    return b"PROXY UNKNOWN\r\n"


def proxy_v2(src, sport, dst, dport, tlvs=b""):
    """A v2 PROXY (command 1) header over TCP, IPv4 or IPv6 by the source."""
    if ":" in src:
        fam = 0x21
        addrs = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
                 + struct.pack("!HH", sport, dport))
    else:
        fam = 0x11
        addrs = (socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
                 + struct.pack("!HH", sport, dport))
    body = addrs + tlvs
    return PROXY_V2_SIGNATURE + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def proxy_v2_local():
    """A v2 LOCAL header (a load balancer's own health check): no addresses."""
    return PROXY_V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)


# -- a whole login, then simple queries ----------------------------------------

def _hmac(key, text):
    return hmac.new(key, text, hashlib.sha256).digest()


class Login:
    """What the server sent during a login: NegotiateProtocolVersion (newest
    minor, unrecognized options), BackendKeyData (pid, key bytes), and the
    ParameterStatus values."""

    def __init__(self):
        self.negotiated = None
        self.pid = None
        self.key = None
        self.params = {}
        self.auth = []


def _scram(sock, password, mechanisms):
    if "SCRAM-SHA-256" not in mechanisms:
        raise AssertionError(f"no SCRAM-SHA-256 in {mechanisms}")
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n=,r={nonce}"
    first = ("n,," + first_bare).encode()
    sock.sendall(message("p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
    mtype, body = read_message(sock)
    if mtype == "E":
        raise AssertionError(parse_error_fields(body))
    code, server_first = auth_request(body)
    assert (mtype, code) == ("R", 11), (mtype, body)
    attrs = dict(kv.split("=", 1) for kv in server_first.decode().split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    final_bare = f"c=biws,r={attrs['r']}"
    auth_message = f"{first_bare},{server_first.decode()},{final_bare}".encode()
    client_key = _hmac(salted, b"Client Key")
    signature = _hmac(hashlib.sha256(client_key).digest(), auth_message)
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = f"{final_bare},p={base64.b64encode(proof).decode()}".encode()
    sock.sendall(message("p", final))
    mtype, body = read_message(sock)
    if mtype == "E":
        raise AssertionError(parse_error_fields(body))
    code, server_final = auth_request(body)
    assert (mtype, code) == ("R", 12), (mtype, body)
    expected = _hmac(_hmac(salted, b"Server Key"), auth_message)
    assert server_final.decode() == "v=" + base64.b64encode(expected).decode(), server_final


def login(sock, params, password=None, protocol=PROTOCOL_3_0):
    """Send a StartupMessage and go through the login to ReadyForQuery.
    Returns a Login; an ErrorResponse raises AssertionError with its fields."""
    sock.sendall(startup_message(params, protocol))
    got = Login()
    while True:
        mtype, body = read_message(sock)
        if mtype == "E":
            raise AssertionError(parse_error_fields(body))
        if mtype == "v":
            minor, count = struct.unpack("!ii", body[:8])
            names = [n.decode() for n in body[8:].split(b"\0")[:count]]
            got.negotiated = (minor, names)
        elif mtype == "R":
            code, rest = auth_request(body)
            got.auth.append(code)
            if code == AUTH_SASL:
                _scram(sock, password, sasl_mechanisms(rest))
        elif mtype == "K":
            got.pid = struct.unpack("!I", body[:4])[0]
            got.key = body[4:]
        elif mtype == "S":
            name, value = body.split(b"\0")[:2]
            got.params[name.decode()] = value.decode()
        elif mtype == "Z":
            return got


def simple_query(sock, sql):
    """Run sql; returns the rows as lists of str (None for NULL), or raises
    AssertionError with the ErrorResponse's fields."""
    sock.sendall(message("Q", sql.encode() + b"\0"))
    rows, error = [], None
    while True:
        mtype, body = read_message(sock)
        if mtype == "D":
            n, pos, row = struct.unpack("!h", body[:2])[0], 2, []
            for _ in range(n):
                size = struct.unpack("!i", body[pos:pos + 4])[0]
                pos += 4
                row.append(None if size < 0 else body[pos:pos + size].decode())
                pos += max(size, 0)
            rows.append(row)
        elif mtype == "E":
            error = parse_error_fields(body)
        elif mtype == "Z":
            if error:
                raise AssertionError(error)
            return rows
