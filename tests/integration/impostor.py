"""A scripted stand-in for PostgreSQL on loopback, to play the hostile
upstream (or, for the healthy-session checks, a well-behaved one).

Impostor(script, tls=None) listens on 127.0.0.1; for every connection it
answers the SSLRequest ('N', or 'S' and a TLS handshake with the given
(cert, key)), reads the StartupMessage, then runs script(conn), a function
of one Conn. Everything the impostor received after the StartupMessage is
kept in .received (bytes, all connections), so that a test can assert that
no password, md5 hash or SCRAM message ever reached it.

Conn has the few moves a script needs: send an authentication request,
read the client's 'p' message, run the server side of SCRAM-SHA-256 with a
password the impostor knows (or pretends to), and serve a session that
answers every query with one row, "impostor".
"""

import base64
import functools
import hashlib
import hmac
import os
import ssl
import struct

import pgwire
from loopback_server import LoopbackServer

IMPOSTOR_ROW = "impostor"


def b64(data):
    return base64.b64encode(data).decode()


def message(mtype, body):
    return mtype + struct.pack("!i", len(body) + 4) + body


def auth(code, rest=b""):
    return message(b"R", struct.pack("!i", code) + rest)


def sasl_offer(*mechs):
    return auth(10, b"".join(m.encode() + b"\0" for m in mechs) + b"\0")


@functools.lru_cache(maxsize=16)
def scram_keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return client_key, server_key


class Conn:
    def __init__(self, sock, impostor, startup):
        self.sock = sock
        self.impostor = impostor
        self.startup = startup          # {name: value} of the StartupMessage
        self.cert_der = impostor.cert_der

    def send(self, data):
        self.sock.sendall(data)

    def recv_message(self):
        """The client's next message (type, body); its bytes are recorded."""
        header = pgwire.recv_exact(self.sock, 5)
        self.impostor.record(header)
        if len(header) < 5:
            raise pgwire.ConnectionClosed("closed")
        length = struct.unpack("!i", header[1:])[0]
        body = pgwire.recv_exact(self.sock, length - 4)
        self.impostor.record(body)
        return header[:1].decode("latin-1"), body

    def scram_first(self, salt=b"impostor-salt-16", iterations=4096):
        """Read SASLInitialResponse, answer SASLContinue; returns the state
        the final step needs."""
        mtype, body = self.recv_message()
        assert mtype == "p", (mtype, body)
        mech, rest = body.split(b"\0", 1)
        flag, authzid, first_bare = rest[4:].decode().split(",", 2)
        gs2 = f"{flag},{authzid},"
        cnonce = dict(kv.split("=", 1) for kv in first_bare.split(","))["r"]
        nonce = cnonce + b64(os.urandom(18))
        server_first = f"r={nonce},s={b64(salt)},i={iterations}"
        self.send(auth(11, server_first.encode()))
        return {"mech": mech.decode(), "gs2": gs2, "first_bare": first_bare,
                "server_first": server_first, "salt": salt, "iterations": iterations}

    def scram_final(self, st, password, good_signature=True):
        """Read the client-final-message and check its proof with password;
        answer SASLFinal with the right (or a wrong) signature. Returns
        whether the proof was right."""
        mtype, body = self.recv_message()
        assert mtype == "p", (mtype, body)
        final = body.decode()
        without_proof, proof = final.rsplit(",p=", 1)
        st["client_final"] = final
        client_key, server_key = scram_keys(password, st["salt"], st["iterations"])
        auth_message = f"{st['first_bare']},{st['server_first']},{without_proof}".encode()
        sig = hmac.new(hashlib.sha256(client_key).digest(), auth_message, "sha256").digest()
        recovered = bytes(a ^ b for a, b in zip(base64.b64decode(proof), sig))
        proof_ok = hashlib.sha256(recovered).digest() == hashlib.sha256(client_key).digest()
        server_sig = hmac.new(server_key, auth_message, "sha256").digest()
        if not good_signature:
            server_sig = bytes(b ^ 0x5a for b in server_sig)
        self.send(auth(12, f"v={b64(server_sig)}".encode()))
        return proof_ok

    def serve_session(self):
        """AuthenticationOk and a session whose every query returns IMPOSTOR_ROW."""
        self.send(auth(0) + message(b"S", b"server_version\x0015.0\x00")
                  + message(b"K", struct.pack("!ii", 4242, 4242)) + message(b"Z", b"I"))
        while True:
            try:
                mtype, _ = self.recv_message()
            except (pgwire.ConnectionClosed, OSError):
                return
            if mtype == "X":
                return
            if mtype == "Q":
                col = b"x\0" + struct.pack("!ihihih", 0, 0, 25, -1, -1, 0)
                row = struct.pack("!hi", 1, len(IMPOSTOR_ROW)) + IMPOSTOR_ROW.encode()
                self.send(message(b"T", struct.pack("!h", 1) + col) + message(b"D", row)
                          + message(b"C", b"SELECT 1\0") + message(b"Z", b"I"))


class Impostor(LoopbackServer):
    def __init__(self, script, tls=None):
        self.script = script
        self.ctx = None
        self.cert_der = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*tls)
            with open(tls[0]) as f:
                self.cert_der = ssl.PEM_cert_to_DER_cert(f.read())
        self.received = b""
        self.errors = []
        self.connections = 0
        super().__init__()

    def record(self, data):
        with self.lock:
            self.received += data

    def serve(self, conn):
        try:
            conn.settimeout(30)
            if pgwire.recv_exact(conn, 8) != pgwire.ssl_request():
                raise AssertionError("no SSLRequest")
            if self.ctx:
                conn.sendall(b"S")
                conn = self.ctx.wrap_socket(conn, server_side=True)
            else:
                conn.sendall(b"N")
            length = struct.unpack("!i", pgwire.recv_exact(conn, 4))[0]
            body = pgwire.recv_exact(conn, length - 4)
            items = body[4:].split(b"\0")
            startup = {items[i].decode(): items[i + 1].decode()
                       for i in range(0, len(items) - 1, 2) if items[i]}
            with self.lock:
                self.connections += 1
            self.script(Conn(conn, self, startup))
        except (pgwire.ConnectionClosed, OSError, ssl.SSLError):
            pass
        except Exception as e:     # a script's assertion: reported by the test
            self.errors.append(repr(e))
        finally:
            conn.close()

