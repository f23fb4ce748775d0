"""auth = scram: walgate authenticates clients itself (SCRAM-SHA-256, and
SCRAM-SHA-256-PLUS bound to its own certificate) against the auth file, then
logs in upstream itself (SCRAM-SHA-256 and -PLUS bound to the upstream's
certificate; trust, cleartext and md5 only when server_auth_methods lists
them) with the password from the file or the ClientKey the client's proof
revealed. test_upstream_trust.py plays a hostile upstream.

Clients: psql and psycopg2 (libpq 15) with every channel_binding setting,
psycopg2's LogicalReplicationConnection, and a small SCRAM client of our
own over raw sockets (ScramClient) for what libpq will not do: SQLSTATEs of
login errors, a gs2 flag 'y' after an offer of -PLUS, binding to the wrong
certificate, and the exact messages the client receives.

walgate gets a certificate of its own from the cluster's test CA, distinct
from PostgreSQL's, so that a client that binds to walgate's certificate
could never satisfy the server's binding: only walgate's own login upstream
can.
"""

import base64
import hashlib
import hmac
import os
import re
import select
import shutil
import ssl
import struct
import tempfile
import time
from types import SimpleNamespace

import psycopg2
import psycopg2.extras
import pytest
from psycopg2.extensions import make_dsn

import pgwire
from clients import drop_slot, run, superuser_connect
from pgcluster import (LOOPBACK_V4, LOOPBACK_V6, TEST_DB, TEST_PASSWORD, TEST_USER, clean_env,
                       free_port, issue_cert, pg_bin)
from walgate import run_walgate

pytestmark = pytest.mark.walgate_only

WALGATE_SAN = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
RELOAD_FAILURES = "walgate_config_reload_failures_total"
GENERATION = "walgate_config_generation"
PLUS = "SCRAM-SHA-256-PLUS"
PLAIN = "SCRAM-SHA-256"

AUTH_FAILED = 'password authentication failed for user "{}"'
LOGIN_FAILED = 'walgate could not log in to the upstream as user "{}"'


# --------------------------------------------------------------------------
# Certificates, verifiers, auth files

@pytest.fixture(scope="module")
def certs(pg):
    """walgate's own certificate (test CA, SAN localhost/127.0.0.1/::1), in a
    directory of this module's."""
    d = tempfile.mkdtemp(prefix="walgate-auth-")
    try:
        cert, key = issue_cert(pg.ca, "walgate-auth", "walgate-auth.localhost", san=WALGATE_SAN,
                               directory=d)
        c = SimpleNamespace(dir=d, ca=pg.ca_cert, cert=cert, key=key, pg_cert=pg.server_cert)
        assert cert_der(cert) != cert_der(pg.server_cert)
        yield c
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def test_verifier(pg):
    """The test role's SCRAM verifier as the server holds it."""
    v = pg.sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{TEST_USER}'").strip()
    assert v.startswith("SCRAM-SHA-256$4096:"), v
    return v


def cert_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def b64(data):
    return base64.b64encode(data).decode()


def scram_keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return client_key, server_key


def make_verifier(password, iterations=4096):
    """A SCRAM-SHA-256 verifier as pg_authid stores it, with a fresh salt."""
    salt = os.urandom(16)
    client_key, server_key = scram_keys(password, salt, iterations)
    return (f"SCRAM-SHA-256${iterations}:{b64(salt)}"
            f"${b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}")


def quote(s):
    return '"' + s.replace('"', '""') + '"'


def write_auth_file(path, entries, mode=0o600, extra_lines=()):
    """entries: [(name, secret)]; written to a new inode, then chmod'ed."""
    lines = ["# walgate auth file (test_auth.py)"]
    lines += [f"{quote(n)} {quote(s)}" for n, s in entries]
    lines += list(extra_lines)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return str(path)


# --------------------------------------------------------------------------
# walgate and libpq clients

def scram_walgate(factory, certs, auth_file, auth="scram", client_tls="require",
                  server_tls="verify-full", start=True, auth_extra=None, tls_extra=None,
                  upstream_port=None, upstream_host="localhost", walgate_keys=None):
    """walgate with its own certificate on 127.0.0.1 and ::1 (one port, so that
    host=localhost works), verify-full towards PostgreSQL at "localhost"."""
    tls = {"client_tls": client_tls, "cert_file": certs.cert, "key_file": certs.key,
           "server_tls": server_tls, "server_ca_file": certs.ca, **(tls_extra or {})}
    sections = {"tls": tls, "auth": {"auth": auth, **(auth_extra or {})}}

    if auth_file:
        sections["auth"]["auth_file"] = auth_file
    port = free_port()
    more = {"upstream_port": upstream_port} if upstream_port else {}
    if walgate_keys:
        more["walgate"] = walgate_keys
    return factory(start=start, upstream_host=upstream_host,
                   listen=[(LOOPBACK_V4, port), (LOOPBACK_V6, port)], sections=sections, **more)


def dsn(target, user=TEST_USER, password=TEST_PASSWORD, **params):
    values = {"host": target.host, "port": target.port, "dbname": TEST_DB, "user": user,
              "password": password, "sslmode": "require", "connect_timeout": 10}
    values.update(params)
    return make_dsn(**{k: v for k, v in values.items() if v is not None})


def psql_dsn(conninfo, sql):
    return run([pg_bin("psql"), "-X", "-A", "-t", "-d", conninfo, "-c", sql],
               env=clean_env(PGCONNECT_TIMEOUT="10"), timeout=30)


def text(proc):
    return proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


WHO = ("SELECT s.ssl, current_user FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()")

# (label, extra libpq parameters); host=localhost for verify-full.
CLIENTS = [
    ("sslmode=require, channel_binding default", {}),
    ("channel_binding=require", {"channel_binding": "require"}),
    ("channel_binding=disable", {"channel_binding": "disable"}),
    ("sslmode=verify-full", {"sslmode": "verify-full", "host": "localhost"}),
    ("verify-full, channel_binding=require",
     {"sslmode": "verify-full", "host": "localhost", "channel_binding": "require"}),
]


def assert_clients_connect(wg, certs, clients, user=TEST_USER, password=TEST_PASSWORD):
    failures = []
    for label, params in clients:
        params = dict(params)
        if params.get("sslmode") == "verify-full":
            params["sslrootcert"] = certs.ca
        proc = psql_dsn(dsn(wg, user=user, password=password, **params), WHO)
        out = proc.stdout.decode().strip()
        if proc.returncode != 0 or out != f"t|{user}":
            failures.append(f"{label}: exit {proc.returncode}, {text(proc).strip()!r}")
    assert not failures, "\n".join(failures) + "\n--- walgate log ---\n" + wg.log_text()[-4000:]


def login_error(wg, user=TEST_USER, password=TEST_PASSWORD, **params):
    """psql through wg must fail; returns its output."""
    proc = psql_dsn(dsn(wg, user=user, password=password, **params), "SELECT 1")
    assert proc.returncode != 0, f"login as {user} succeeded: {text(proc)}"
    assert_alive(wg)
    return text(proc)


# --------------------------------------------------------------------------
# A SCRAM client on a raw socket

class ScramClient:
    """A TLS session to walgate (SSLRequest, verify-full against the test
    CA), a StartupMessage, and a SCRAM exchange by hand."""

    def __init__(self, wg, ca, user=TEST_USER, tls=True):
        self.user = user
        sock = pgwire.connect(LOOPBACK_V4, wg.port)
        if tls:
            sock.sendall(pgwire.ssl_request())
            assert pgwire.recv_exact(sock, 1) == b"S"
            ctx = ssl.create_default_context(cafile=ca)
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
            self.peer_der = sock.getpeercert(binary_form=True)
        self.sock = sock
        sock.sendall(pgwire.startup_message({"user": user, "database": TEST_DB}))
        mtype, body = pgwire.read_message(sock)
        assert mtype == "R", (mtype, body)
        code, rest = pgwire.auth_request(body)
        assert code == pgwire.AUTH_SASL, (code, rest)
        self.mechanisms = pgwire.sasl_mechanisms(rest)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_initial(self, mech, data):
        body = mech.encode() + b"\0" + struct.pack("!i", len(data)) + data
        self.sock.sendall(b"p" + struct.pack("!i", len(body) + 4) + body)

    def send_response(self, data):
        self.sock.sendall(b"p" + struct.pack("!i", len(data) + 4) + data)

    def login(self, password, mech=PLUS, flag=None, cbind_data=None):
        """A whole exchange. flag: 'p' (default for -PLUS), 'n' or 'y';
        cbind_data: the tls-server-end-point hash to bind to (default:
        SHA-256 of the certificate walgate presented).

        Returns ("ok", server_signature_ok, [messages after SASLFinal up to
        ReadyForQuery]) or ("error", ErrorResponse fields, stage), stage
        "first" or "final" (walgate refused the client) or "upstream"
        (after walgate's AuthenticationSASLFinal)."""
        if flag is None:
            flag = "p" if mech == PLUS else "n"
        gs2 = {"p": "p=tls-server-end-point,,", "n": "n,,", "y": "y,,"}[flag]
        cnonce = b64(os.urandom(18))
        first_bare = f"n=,r={cnonce}"
        self.send_initial(mech, (gs2 + first_bare).encode())
        mtype, body = pgwire.read_message(self.sock)
        if mtype == "E":
            return "error", pgwire.parse_error_fields(body), "first"
        code, server_first = pgwire.auth_request(body)
        assert (mtype, code) == ("R", 11), (mtype, body)
        server_first = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert attrs["r"].startswith(cnonce) and len(attrs["r"]) > len(cnonce), server_first
        cbind = gs2.encode()
        if flag == "p":
            if cbind_data is None:
                cbind_data = hashlib.sha256(self.peer_der).digest()
            cbind += cbind_data
        without_proof = f"c={b64(cbind)},r={attrs['r']}"
        client_key, server_key = scram_keys(password, base64.b64decode(attrs["s"]),
                                            int(attrs["i"]))
        auth_message = f"{first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.send_response(f"{without_proof},p={b64(proof)}".encode())
        mtype, body = pgwire.read_message(self.sock)
        if mtype == "E":
            return "error", pgwire.parse_error_fields(body), "final"
        code, server_final = pgwire.auth_request(body)
        assert (mtype, code) == ("R", 12), (mtype, body)
        expected = "v=" + b64(hmac.new(server_key, auth_message, "sha256").digest())
        messages = []
        while True:
            mtype, body = pgwire.read_message(self.sock)
            messages.append((mtype, body))
            if mtype == "E":
                # walgate accepted the client; the login upstream failed
                return "error", pgwire.parse_error_fields(body), "upstream"
            if mtype == "Z":
                break
        return "ok", server_final.decode() == expected, messages


def assert_closed(sock):
    closed, extra, _ = pgwire.wait_closed(sock, 5)
    assert closed, "walgate did not close the connection after FATAL"
    assert extra == b"", extra


def assert_alive(wg):
    """walgate survived what the test just did to one of its sessions."""
    time.sleep(0.05)
    assert wg.returncode is None, \
        f"walgate exited ({wg.returncode}); log:\n{wg.log_text()[-3000:]}"


def raw_login_fails(wg, certs, user, password, sqlstate, mech=PLUS):
    """A complete SCRAM exchange with walgate that must end in a FATAL of
    sqlstate; returns the ErrorResponse's fields."""
    with ScramClient(wg, certs.ca, user=user) as c:
        try:
            result = c.login(password, mech=mech)
        except pgwire.ConnectionClosed as e:
            assert_alive(wg)
            raise AssertionError(f"closed without an ErrorResponse: {e}\n{wg.log_text()[-3000:]}")
        assert result[0] == "error", f"login as {user} succeeded: {result}\n{wg.log_text()}"
        fields = result[1]
        assert fields.get("S") == "FATAL" and fields.get("C") == sqlstate, \
            f"{fields}\n--- walgate log ---\n{wg.log_text()[-3000:]}"
        assert_closed(c.sock)
        assert_alive(wg)
        return fields


# --------------------------------------------------------------------------
# 1, 2. TLS on both legs: every channel_binding setting logs in

def test_plaintext_password_every_channel_binding(walgate_factory, certs, tmp_path):
    path = write_auth_file(tmp_path / "users.txt", [(TEST_USER, TEST_PASSWORD)])
    wg = scram_walgate(walgate_factory, certs, path)
    assert_clients_connect(wg, certs, CLIENTS)
    assert "authentication failed" not in wg.log_text()
    # Each login went through walgate's own exchange and its own upstream login.
    assert wg.log_text().count("client authenticated (SCRAM)") >= len(CLIENTS), wg.log_text()
    assert wg.log_text().count("logged in upstream") >= len(CLIENTS), wg.log_text()


def test_verifier_client_key_login(walgate_factory, certs, test_verifier, tmp_path):
    """The file holds the server's verifier: walgate logs in upstream with
    the ClientKey recovered from the client's proof."""
    path = write_auth_file(tmp_path / "users.txt", [(TEST_USER, test_verifier)])
    wg = scram_walgate(walgate_factory, certs, path)
    assert_clients_connect(wg, certs, CLIENTS)
    assert wg.log_text().count("logged in upstream") >= len(CLIENTS), wg.log_text()


def test_verifier_not_the_servers_fails_upstream(walgate_factory, certs, tmp_path):
    """A verifier of the right password but another salt authenticates the
    client, but its ClientKey does not fit the server's salt: walgate's
    upstream login fails with 28000, not with the client's 28P01."""
    path = write_auth_file(tmp_path / "users.txt", [(TEST_USER, make_verifier(TEST_PASSWORD))])
    wg = scram_walgate(walgate_factory, certs, path)
    fields = raw_login_fails(wg, certs, TEST_USER, TEST_PASSWORD, "28000")
    assert fields["M"].startswith(LOGIN_FAILED.format(TEST_USER) + ": "), fields
    out = login_error(wg)
    assert LOGIN_FAILED.format(TEST_USER) in out, out


def test_plus_binds_to_walgates_own_certificate(walgate_factory, certs, tmp_path):
    """Raw SCRAM-SHA-256-PLUS: bound to the certificate walgate presents (its
    own, not PostgreSQL's) it logs in, and the client then sees exactly the
    upstream's AuthenticationOk, ParameterStatus..., BackendKeyData,
    ReadyForQuery; bound to PostgreSQL's certificate it is refused."""
    path = write_auth_file(tmp_path / "users.txt", [(TEST_USER, TEST_PASSWORD)])
    wg = scram_walgate(walgate_factory, certs, path)
    with ScramClient(wg, certs.ca) as c:
        assert c.peer_der == cert_der(certs.cert)
        assert c.peer_der != cert_der(certs.pg_cert)
        assert c.mechanisms == [PLUS, PLAIN]
        result = c.login(TEST_PASSWORD, mech=PLUS)
        assert result[0] == "ok", f"{result}\n{wg.log_text()}"
        _, signature_ok, messages = result
        assert signature_ok, "walgate's server signature does not verify"
        types = [t for t, _ in messages]
        assert types[0] == "R" and pgwire.auth_request(messages[0][1])[0] == pgwire.AUTH_OK
        assert types.count("R") == 1, types     # nothing of walgate's upstream exchange leaks
        assert types[-1] == "Z" and "K" in types and "S" in types, types
        assert set(types) <= {"R", "S", "K", "Z", "N"}, types
        params = dict(body.split(b"\0")[:2] for t, body in messages if t == "S")
        assert params.get(b"session_authorization") == TEST_USER.encode(), params
        # And the session works.
        c.sock.sendall(b"Q" + struct.pack("!i", 4 + len(WHO) + 1) + WHO.encode() + b"\0")
        rows = []
        while True:
            mtype, body = pgwire.read_message(c.sock)
            if mtype == "D":
                rows.append(body)
            if mtype == "Z":
                break
        assert len(rows) == 1 and b"walgate_test" in rows[0] and b"\x00\x00\x00\x01t" in rows[0]

    with ScramClient(wg, certs.ca) as c:
        pg_hash = hashlib.sha256(cert_der(certs.pg_cert)).digest()
        result = c.login(TEST_PASSWORD, mech=PLUS, cbind_data=pg_hash)
        assert result[0] == "error", result
        assert result[1].get("S") == "FATAL" and result[1].get("C") == "08P01", result
        assert_closed(c.sock)

    # Plain SCRAM-SHA-256 ('n': this client does not bind) works as well.
    with ScramClient(wg, certs.ca) as c:
        result = c.login(TEST_PASSWORD, mech=PLAIN, flag="n")
        assert result[0] == "ok" and result[1], result


def test_auth_auto_is_scram_with_tls_and_auth_file(walgate_factory, certs, tmp_path):
    path = write_auth_file(tmp_path / "users.txt", [(TEST_USER, TEST_PASSWORD)])
    wg = scram_walgate(walgate_factory, certs, path, auth="auto")
    assert_clients_connect(wg, certs, CLIENTS[:1])
    assert "client authenticated (SCRAM)" in wg.log_text()


# --------------------------------------------------------------------------
# 3. psycopg2, and logical replication through walgate with auth = scram

SLOT_A, SLOT_B = "wg_auth_a", "wg_auth_b"




def test_psycopg2_and_logical_replication(pg, walgate_factory, certs, test_verifier, tmp_path):
    path = write_auth_file(tmp_path / "users.txt", [(TEST_USER, test_verifier)])
    wg = scram_walgate(walgate_factory, certs, path)

    conn = psycopg2.connect(host=wg.host, port=wg.port, dbname=TEST_DB, user=TEST_USER,
                            password=TEST_PASSWORD, sslmode="require", connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute(WHO)
            assert cur.fetchone() == (True, TEST_USER)
    finally:
        conn.close()

    admin = superuser_connect(pg)
    cur = admin.cursor()
    repl = None
    try:
        cur.execute("DROP TABLE IF EXISTS auth_repl_t")
        cur.execute("CREATE TABLE auth_repl_t (id int PRIMARY KEY, v text)")
        cur.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (SLOT_A,))
        cur.execute("INSERT INTO auth_repl_t SELECT g, 'row ' || g FROM generate_series(1, 25) g")
        cur.execute("UPDATE auth_repl_t SET v = v || ' (updated)' WHERE id % 5 = 0")
        cur.execute("BEGIN; DELETE FROM auth_repl_t WHERE id = 7; "
                    "INSERT INTO auth_repl_t VALUES (100, 'through walgate'); COMMIT")
        cur.execute("SELECT pg_copy_logical_replication_slot(%s, %s)", (SLOT_A, SLOT_B))
        cur.execute("SELECT pg_current_wal_lsn()")
        endpos = cur.fetchone()[0]
        # The direct read, of the copy.
        cur.execute("SELECT data FROM pg_logical_slot_get_changes(%s, %s, NULL)", (SLOT_B, endpos))
        expected = [row[0] for row in cur.fetchall()]
        assert len(expected) >= 25 + 5 + 2 + 6, expected
        assert any("through walgate" in d for d in expected)

        # The same slot through walgate, over a replication connection.
        repl = psycopg2.connect(host=wg.host, port=wg.port, dbname=TEST_DB, user=TEST_USER,
                                password=TEST_PASSWORD, sslmode="require", connect_timeout=10,
                                connection_factory=psycopg2.extras.LogicalReplicationConnection)
        rcur = repl.cursor()
        rcur.start_replication(slot_name=SLOT_A, decode=True)
        got = []
        deadline = time.monotonic() + 20
        while len(got) < len(expected) and time.monotonic() < deadline:
            msg = rcur.read_message()
            if msg is None:
                select.select([rcur], [], [], 0.5)
                continue
            got.append(msg.payload)
            rcur.send_feedback(flush_lsn=msg.data_start)
        assert got == expected, f"{len(got)} of {len(expected)} changes\n{wg.log_text()[-3000:]}"
        assert wg.wait_for_log(rf"login: user={TEST_USER} database={TEST_DB} replication=logical"), \
            wg.log_text()
    finally:
        if repl is not None:
            repl.close()
        for slot in (SLOT_A, SLOT_B):
            drop_slot(cur, slot)
        cur.execute("DROP TABLE IF EXISTS auth_repl_t")
        admin.close()


# --------------------------------------------------------------------------
# 4. Wrong password and unknown user: the same FATAL 28P01

def test_wrong_password_and_unknown_user(walgate_factory, certs, tmp_path):
    path = write_auth_file(tmp_path / "users.txt", [(TEST_USER, TEST_PASSWORD)])
    wg = scram_walgate(walgate_factory, certs, path)
    unknown = "wg_nobody"

    errors = {}
    for user, password in ((TEST_USER, "not-the-password"), (unknown, TEST_PASSWORD)):
        with pytest.raises(psycopg2.OperationalError) as info:
            psycopg2.connect(host=wg.host, port=wg.port, dbname=TEST_DB, user=user,
                             password=password, sslmode="require", connect_timeout=10)
        e = info.value
        errors[user] = str(e)
        assert AUTH_FAILED.format(user) in str(e), str(e)
        # psycopg2 has no SQLSTATE for a failed connection (e.pgcode is
        # None: libpq gives no PGresult); where it has one it must be 28P01.
        assert e.pgcode in (None, "28P01"), e.pgcode
    # Same form for both: only the user name differs.
    assert errors[TEST_USER].replace(TEST_USER, "X") == errors[unknown].replace(unknown, "X")

    # The SQLSTATE, off the wire: a complete exchange for both (the unknown
    # user goes through it against a made-up verifier).
    wrong = raw_login_fails(wg, certs, TEST_USER, "not-the-password", "28P01")
    nouser = raw_login_fails(wg, certs, unknown, TEST_PASSWORD, "28P01")
    assert wrong["M"] == AUTH_FAILED.format(TEST_USER), wrong
    assert nouser["M"] == AUTH_FAILED.format(unknown), nouser
    assert sorted(wrong) == sorted(nouser), (wrong, nouser)
    plain = raw_login_fails(wg, certs, unknown, "x", "28P01", mech=PLAIN)
    assert plain["M"] == AUTH_FAILED.format(unknown), plain

    assert wg.wait_for_log(r"authentication failed: wrong password"), wg.log_text()
    assert wg.wait_for_log(r"authentication failed: no such user in the auth file"), wg.log_text()
    # And a wrong password never reached the server as a login attempt.
    assert wg.log_text().count("logged in upstream") == 0, wg.log_text()


# --------------------------------------------------------------------------
# 5. auth = passthrough with TLS on both legs: default clients fail, with a hint

def test_passthrough_default_client_gets_hint(walgate_factory, certs, tmp_path):
    wg = scram_walgate(walgate_factory, certs, None, auth="passthrough")
    out = login_error(wg)
    assert "channel binding" in out and "channel_binding=disable" in out, out
    # Contrast: the same client without channel binding connects.
    assert_clients_connect(wg, certs, [CLIENTS[2]])
    assert wg.wait_for_log("TLS on both legs with authentication relayed"), wg.log_text()


# --------------------------------------------------------------------------
# 6. The upstream asks for md5, cleartext, or nothing (trust)

MD5_USER, MD5_VERIFIER_USER = "wg_auth_md5", "wg_auth_md5v"
CLEAR_USER, TRUST_USER = "wg_auth_clear", "wg_auth_trust"
OTHER_PASSWORD = "other-pw-'\"x"      # quotes in the password: auth file and SQL quoting


def sql_literal(s):
    return "'" + s.replace("'", "''") + "'"


@pytest.fixture
def hba_methods(pg):
    """Roles whose pg_hba lines (placed first, for them alone) ask for md5,
    cleartext password and trust; restored afterwards."""
    hba = os.path.join(pg.data_dir, "pg_hba.conf")
    with open(hba) as f:
        original = f.read()
    lines = []
    for net in ("127.0.0.1/32", "::1/128"):
        lines += [f"host all {MD5_USER},{MD5_VERIFIER_USER} {net} md5",
                  f"host all {CLEAR_USER} {net} password",
                  f"host all {TRUST_USER} {net} trust"]
    for user in (MD5_USER, MD5_VERIFIER_USER, CLEAR_USER, TRUST_USER):
        pg.sql(f"DROP ROLE IF EXISTS {user}")
    pg.sql(f"SET password_encryption = 'md5'; "
           f"CREATE ROLE {MD5_USER} LOGIN PASSWORD {sql_literal(OTHER_PASSWORD)}; "
           f"CREATE ROLE {MD5_VERIFIER_USER} LOGIN PASSWORD {sql_literal(OTHER_PASSWORD)}")
    pg.sql(f"CREATE ROLE {CLEAR_USER} LOGIN PASSWORD {sql_literal(OTHER_PASSWORD)}")
    pg.sql(f"CREATE ROLE {TRUST_USER} LOGIN")
    md5 = pg.sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{MD5_USER}'").strip()
    assert md5.startswith("md5"), md5
    try:
        with open(hba, "w") as f:      # in place: the file keeps its owner
            f.write("# test_auth.py\n" + "\n".join(lines) + "\n" + original)
        pg.sql("SELECT pg_reload_conf()")
        # Wait until the server asks MD5_USER for md5: a direct login that
        # requires channel binding then fails.
        deadline = time.monotonic() + 10
        while True:
            proc = psql_dsn(dsn(pg, user=MD5_USER, password=OTHER_PASSWORD,
                                channel_binding="require"), "SELECT 1")
            if proc.returncode != 0 and "channel binding" in text(proc):
                break
            assert time.monotonic() < deadline, f"pg_hba not reloaded: {text(proc)}"
            time.sleep(0.1)
        yield
    finally:
        with open(hba, "w") as f:
            f.write(original)
        pg.sql("SELECT pg_reload_conf()")
        for user in (MD5_USER, MD5_VERIFIER_USER, CLEAR_USER, TRUST_USER):
            pg.sql(f"DROP ROLE IF EXISTS {user}")


def test_upstream_md5_cleartext_trust(walgate_factory, certs, tmp_path, hba_methods):
    path = write_auth_file(tmp_path / "users.txt", [
        (TEST_USER, TEST_PASSWORD),
        (MD5_USER, OTHER_PASSWORD),
        (MD5_VERIFIER_USER, make_verifier(OTHER_PASSWORD)),
        (CLEAR_USER, OTHER_PASSWORD),
        (TRUST_USER, "trust-pw"),
    ])
    # By default walgate sends no password or md5 hash upstream, and takes no trust.
    wg = scram_walgate(walgate_factory, certs, path)
    for user, asked in ((MD5_USER, "md5"), (CLEAR_USER, "a cleartext password"),
                        (TRUST_USER, "no authentication (trust)")):
        pw = "trust-pw" if user == TRUST_USER else OTHER_PASSWORD
        fields = raw_login_fails(wg, certs, user, pw, "28000")
        assert fields["M"] == (LOGIN_FAILED.format(user) + f": the upstream asks for {asked}, "
                               "which [auth] server_auth_methods does not allow"), fields
    assert wg.metric('walgate_upstream_auth_refused_total{reason="auth_method"}') == 3
    wg.stop()

    wg = scram_walgate(walgate_factory, certs, path,
                       auth_extra={"server_auth_methods": "scram-sha-256, md5,password ,none"})
    default_and_require = [CLIENTS[0], CLIENTS[1]]
    assert_clients_connect(wg, certs, default_and_require, user=MD5_USER, password=OTHER_PASSWORD)
    assert_clients_connect(wg, certs, default_and_require, user=CLEAR_USER,
                           password=OTHER_PASSWORD)
    assert_clients_connect(wg, certs, default_and_require, user=TRUST_USER, password="trust-pw")
    # walgate still checks the client's password when the upstream trusts.
    out = login_error(wg, user=TRUST_USER, password="wrong")
    assert AUTH_FAILED.format(TRUST_USER) in out, out

    # A verifier cannot answer md5.
    out = login_error(wg, user=MD5_VERIFIER_USER, password=OTHER_PASSWORD)
    assert LOGIN_FAILED.format(MD5_VERIFIER_USER) in out and "only a verifier" in out, out
    fields = raw_login_fails(wg, certs, MD5_VERIFIER_USER, OTHER_PASSWORD, "28000")
    assert fields["M"].startswith(LOGIN_FAILED.format(MD5_VERIFIER_USER) + ": "), fields
    assert "only a verifier" in fields["M"], fields
    assert wg.wait_for_log("holds only a verifier"), wg.log_text()


# --------------------------------------------------------------------------
# 7. The auth file's permissions and syntax

def config_with_auth_file(walgate_factory, certs, auth_file):
    return scram_walgate(walgate_factory, certs, auth_file, start=False)


def check_config(wg):
    return run_walgate("--check-config", "--config", wg.config_path)


def test_auth_file_world_readable_refused(walgate_factory, certs, tmp_path):
    path = write_auth_file(tmp_path / "users.txt", [(TEST_USER, TEST_PASSWORD)], mode=0o644)
    wg = config_with_auth_file(walgate_factory, certs, path)
    proc = check_config(wg)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert path in proc.stderr and "chmod" in proc.stderr, proc.stderr
    # Nor does walgate start with it.
    with pytest.raises(Exception) as info:
        wg.start()
    assert path in str(info.value) and "chmod" in str(info.value), str(info.value)
    assert wg.returncode == 1
    # 0600 and 0640 are fine.
    for mode in (0o600, 0o640):
        os.chmod(path, mode)
        proc = check_config(wg)
        assert proc.returncode == 0, f"mode {mode:o}: {proc.stderr}"
    os.chmod(path, 0o602)
    proc = check_config(wg)
    assert proc.returncode == 1 and "chmod" in proc.stderr, proc.stderr


@pytest.mark.parametrize("lines, bad_line, fragment", [
    ([f'"{TEST_USER}" "{TEST_PASSWORD}"', "", "; a comment", '"bob" secret'], 5, "name"),
    ([f'"{TEST_USER}" "{TEST_PASSWORD}"', '"bob"'], 3, "name"),
    ([f'"{TEST_USER}" "{TEST_PASSWORD}" "third"'], 2, "name"),
    ([f'"{TEST_USER}" "{TEST_PASSWORD}', '"bob" "x"'], 2, "name"),
    ([f'"{TEST_USER}" "SCRAM-SHA-256$4096:bad"'], 2, "verifier"),
    ([f'"{TEST_USER}" "md5{"0" * 32}"'], 2, "md5"),
    ([f'"{TEST_USER}" "a"', '"bob" "b"', f'"{TEST_USER}" "c"'], 4, "twice"),
], ids=["unquoted-secret", "no-secret", "three-fields", "unterminated", "bad-verifier",
        "md5-hash", "listed-twice"])
def test_auth_file_malformed(walgate_factory, certs, tmp_path, lines, bad_line, fragment):
    path = write_auth_file(tmp_path / "users.txt", [], extra_lines=lines)
    wg = config_with_auth_file(walgate_factory, certs, path)
    proc = check_config(wg)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{path}:{bad_line}:" in proc.stderr, proc.stderr
    assert fragment in proc.stderr, proc.stderr


def test_auth_file_missing(walgate_factory, certs, tmp_path):
    path = str(tmp_path / "absent.txt")
    proc = check_config(config_with_auth_file(walgate_factory, certs, path))
    assert proc.returncode == 1 and path in proc.stderr, proc.stderr


def test_auth_scram_needs_auth_file(walgate_factory, certs):
    proc = check_config(config_with_auth_file(walgate_factory, certs, None))
    assert proc.returncode == 1 and "auth_file" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------
# 8. SIGHUP re-reads the auth file; a broken one changes nothing

ROTATE_USER = "wg_auth_rotate"


@pytest.fixture
def rotate_role(pg):
    pg.sql(f"DROP ROLE IF EXISTS {ROTATE_USER}")
    pg.sql(f"CREATE ROLE {ROTATE_USER} LOGIN PASSWORD 'rotate-old'")
    yield ROTATE_USER
    pg.sql(f"DROP ROLE IF EXISTS {ROTATE_USER}")


def can_login(wg, certs, user, password):
    proc = psql_dsn(dsn(wg, user=user, password=password), "SELECT current_user")
    return proc.returncode == 0 and proc.stdout.decode().strip() == user, text(proc)


def reload_and_wait(wg, generation):
    wg.reload()
    value = wg.wait_for_metric(GENERATION, lambda v: v >= generation)
    assert value == generation, wg.log_text()


def test_sighup_rereads_auth_file(pg, walgate_factory, certs, tmp_path, rotate_role):
    path = tmp_path / "users.txt"
    write_auth_file(path, [(TEST_USER, TEST_PASSWORD), (ROTATE_USER, "rotate-old")])
    wg = scram_walgate(walgate_factory, certs, str(path))
    ok, out = can_login(wg, certs, ROTATE_USER, "rotate-old")
    assert ok, out
    assert wg.metric(GENERATION) == 1
    kept = psycopg2.connect(dsn(wg))

    try:
        # The password changes upstream and in the file; SIGHUP.
        pg.sql(f"ALTER ROLE {ROTATE_USER} PASSWORD 'rotate-new'")
        write_auth_file(path, [(TEST_USER, TEST_PASSWORD), (ROTATE_USER, "rotate-new")])
        reload_and_wait(wg, 2)
        ok, out = can_login(wg, certs, ROTATE_USER, "rotate-new")
        assert ok, out + wg.log_text()
        ok, out = can_login(wg, certs, ROTATE_USER, "rotate-old")
        assert not ok and AUTH_FAILED.format(ROTATE_USER) in out, out
        raw_login_fails(wg, certs, ROTATE_USER, "rotate-old", "28P01")

        # A broken file on reload: the old one stays in force.
        failures = wg.metric(RELOAD_FAILURES)
        write_auth_file(path, [(TEST_USER, TEST_PASSWORD)],
                        extra_lines=[f'"{ROTATE_USER}" rotate-broken'])
        wg.reload()
        assert wg.wait_for_metric(RELOAD_FAILURES, lambda v: v > failures) == failures + 1, \
            wg.log_text()
        assert wg.wait_for_log(re.escape(f"{path}:3")), wg.log_text()
        assert wg.metric(GENERATION) == 2
        ok, out = can_login(wg, certs, ROTATE_USER, "rotate-new")
        assert ok, out + wg.log_text()
        ok, out = can_login(wg, certs, ROTATE_USER, "rotate-old")
        assert not ok, out

        # A readable-by-others file on reload: refused the same way.
        write_auth_file(path, [(TEST_USER, TEST_PASSWORD), (ROTATE_USER, "rotate-other")],
                        mode=0o644)
        wg.reload()
        assert wg.wait_for_metric(RELOAD_FAILURES, lambda v: v > failures + 1) == failures + 2, \
            wg.log_text()
        assert wg.wait_for_log("chmod"), wg.log_text()
        ok, out = can_login(wg, certs, ROTATE_USER, "rotate-new")
        assert ok, out + wg.log_text()
        ok, out = can_login(wg, certs, ROTATE_USER, "rotate-other")
        assert not ok, out

        # The session opened before all this is undisturbed.
        with kept.cursor() as cur:
            cur.execute("SELECT current_user")
            assert cur.fetchone()[0] == TEST_USER
    finally:
        kept.close()


def test_upstream_refuses_stale_password(pg, walgate_factory, certs, tmp_path, rotate_role):
    """The file's password no longer matches the server's: the client
    authenticated with walgate, walgate's own login upstream fails. That is
    FATAL 28000 "walgate could not log in to the upstream", not the
    server's 28P01, which would tell the client its own password is wrong."""
    path = write_auth_file(tmp_path / "users.txt", [(ROTATE_USER, "rotate-old")])
    wg = scram_walgate(walgate_factory, certs, path)
    pg.sql(f"ALTER ROLE {ROTATE_USER} PASSWORD 'rotate-new'")
    fields = raw_login_fails(wg, certs, ROTATE_USER, "rotate-old", "28000")
    assert fields["M"].startswith(LOGIN_FAILED.format(ROTATE_USER) + ": "), fields
    out = login_error(wg, user=ROTATE_USER, password="rotate-old")
    assert LOGIN_FAILED.format(ROTATE_USER) in out, out


# --------------------------------------------------------------------------
# 9. Channel-binding negotiation, raw

@pytest.mark.parametrize("mech, first", [
    (PLAIN, b"y,,n=,r=abc"),                          # "I could bind, you did not offer"
    (PLUS, b"n,,n=,r=abc"),                           # -PLUS without binding
    (PLAIN, b"p=tls-server-end-point,,n=,r=abc"),     # binding on the plain mechanism
    (PLUS, b"p=tls-unique,,n=,r=abc"),                # another binding type
    ("SCRAM-SHA-1", b"n,,n=,r=abc"),                  # not offered
], ids=["y-after-plus-offer", "plus-with-n", "plain-with-p", "tls-unique", "sha1"])
def test_sasl_negotiation_errors(walgate_factory, certs, tmp_path, mech, first):
    path = write_auth_file(tmp_path / "users.txt", [(TEST_USER, TEST_PASSWORD)])
    wg = scram_walgate(walgate_factory, certs, path)
    with ScramClient(wg, certs.ca) as c:
        assert c.mechanisms == [PLUS, PLAIN]
        c.send_initial(mech, first)
        fields = pgwire.read_error(c.sock)
        assert fields.get("S") == "FATAL" and fields.get("C") == "08P01", fields
        assert_closed(c.sock)


def test_y_flag_accepted_without_plus_offer(walgate_factory, certs, tmp_path):
    """Contrast: a plaintext client (client_tls = allow) is offered only
    SCRAM-SHA-256, and a client that says 'y' (it could bind, the server
    cannot) is right."""
    path = write_auth_file(tmp_path / "users.txt", [(TEST_USER, TEST_PASSWORD)])
    wg = scram_walgate(walgate_factory, certs, path, client_tls="allow")
    with ScramClient(wg, certs.ca, tls=False) as c:
        assert c.mechanisms == [PLAIN]
        result = c.login(TEST_PASSWORD, mech=PLAIN, flag="y")
        assert result[0] == "ok" and result[1], f"{result}\n{wg.log_text()}"


def test_query_pipelined_after_sasl_response_waits_for_login(walgate_factory, certs, tmp_path):
    """A client that sends a Query right behind its SASLResponse (without
    waiting for AuthenticationOk) must not have it reach the upstream while
    walgate is still logging in there itself: the Query waits for the
    upstream's AuthenticationOk, then runs."""
    path = write_auth_file(tmp_path / "users.txt", [(TEST_USER, TEST_PASSWORD)])
    wg = scram_walgate(walgate_factory, certs, path)
    query = b"SELECT 42"
    with ScramClient(wg, certs.ca) as c:
        def response_then_query(data):
            c.sock.sendall(b"p" + struct.pack("!i", len(data) + 4) + data
                           + b"Q" + struct.pack("!i", 4 + len(query) + 1) + query + b"\0")
        c.send_response = response_then_query
        result = c.login(TEST_PASSWORD)
        assert result[0] == "ok", f"{result}\n{wg.log_text()[-3000:]}"
        messages = []
        while True:
            mtype, body = pgwire.read_message(c.sock)
            messages.append((mtype, body))
            if mtype == "Z":
                break
        rows = [body for t, body in messages if t == "D"]
        assert rows == [b"\x00\x01\x00\x00\x00\x0242"], messages
