"""auth = scram, the upstream leg: walgate holds its users' credentials and
logs in upstream for them, so it must trust the upstream no more than libpq
with require_auth and channel_binding would.

A scripted impostor (impostor.py) plays the upstream: without TLS, with
TLS under a certificate nobody vouches for, asking for a cleartext
password, md5 or nothing at all, cutting SCRAM short, signing wrongly,
restarting SCRAM, stripping -PLUS from its offer, and choosing a costly
iteration count. Each test asserts that no password or password-equivalent
reached it and that the client got FATAL 28000 naming why. Against the real
PostgreSQL 15: every server_channel_binding with psql, psycopg2 and
pg_recvlogical, and SASLprep of a password that needs normalizing on both
legs. Unknown users look like known ones (iteration count, a salt that
survives reloads).
"""

import base64
import hashlib
import os
import re
import subprocess
import threading
import time

import psycopg2
import pytest

import pgwire
from clients import run
from impostor import IMPOSTOR_ROW, Impostor, auth, message, sasl_offer, scram_keys
from pgcluster import LOOPBACK_V4, TEST_PASSWORD, TEST_USER, clean_env, pg_bin
from walgate import run_walgate
from test_auth import (LOGIN_FAILED, PLAIN, PLUS, ScramClient, assert_alive,  # noqa: F401
                       assert_clients_connect, certs, dsn, make_verifier, psql_dsn,
                       raw_login_fails, scram_walgate, sql_literal, text, write_auth_file)

pytestmark = pytest.mark.walgate_only

PASSWORD = "Imp0stor-target-pw"
REFUSED = "walgate_upstream_auth_refused_total"


def refused(reason):
    return f'{REFUSED}{{reason="{reason}"}}'


def md5_answer(password, user, salt):
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


@pytest.fixture(scope="module")
def untrusted_cert(certs):
    """A self-signed certificate for "localhost": TLS, but nobody vouches for it."""
    cert, key = os.path.join(certs.dir, "impostor.crt"), os.path.join(certs.dir, "impostor.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-subj", "/CN=localhost", "-days", "2", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def impostor():
    made = []

    def make(script, tls=None):
        imp = Impostor(script, tls=tls)
        made.append(imp)
        return imp

    yield make
    for imp in made:
        imp.close()
    errors = [e for imp in made for e in imp.errors]
    assert not errors, errors


def impostor_walgate(factory, certs, tmp_path, imp, server_tls, users=None, **kwargs):
    """auth = scram towards the impostor at 127.0.0.1 (server_tls prefer, or
    require: encrypted, the certificate unchecked)."""
    path = write_auth_file(tmp_path / "users.txt", users or [(TEST_USER, PASSWORD)])
    return scram_walgate(factory, certs, path, server_tls=server_tls, upstream_port=imp.port,
                         upstream_host=LOOPBACK_V4, **kwargs)


def refused_login(wg, certs, imp, fragment, user=TEST_USER, password=PASSWORD):
    """The client's login through wg fails with FATAL 28000 whose message
    contains fragment; the impostor got no password nor its md5 form."""
    fields = raw_login_fails(wg, certs, user, password, "28000")
    assert fields["M"].startswith(LOGIN_FAILED.format(user) + ": "), fields
    assert fragment in fields["M"], fields
    time.sleep(0.2)     # whatever walgate would have sent has arrived by now
    assert password.encode() not in imp.received, imp.received
    assert b"md5" not in imp.received, imp.received
    assert IMPOSTOR_ROW.encode() not in fields.get("M", "").encode()
    return fields


def drain(conn):
    """Read until the other side closes (whatever walgate sends is recorded)."""
    try:
        while True:
            conn.recv_message()
    except (pgwire.ConnectionClosed, OSError):
        pass


# --------------------------------------------------------------------------
# 1. No password or md5 hash to a server walgate has not authenticated

@pytest.mark.parametrize("tls", [False, True], ids=["no-tls", "untrusted-cert"])
@pytest.mark.parametrize("code,asked", [(3, "a cleartext password"), (5, "md5")],
                         ids=["cleartext", "md5"])
def test_password_methods_refused(walgate_factory, certs, tmp_path, impostor, untrusted_cert,
                                  tls, code, asked):
    def script(conn):
        conn.send(auth(code, b"salt" if code == 5 else b""))
        drain(conn)
        conn.serve_session()

    imp = impostor(script, tls=untrusted_cert if tls else None)
    wg = impostor_walgate(walgate_factory, certs, tmp_path, imp, "require" if tls else "prefer")
    refused_login(wg, certs, imp, f"the upstream asks for {asked}, which [auth] "
                  "server_auth_methods does not allow")
    assert md5_answer(PASSWORD, TEST_USER, b"salt").encode() not in imp.received
    assert imp.received == b"", imp.received
    assert wg.metric(refused("auth_method")) == 1
    assert wg.wait_for_log("server_auth_methods does not allow")


def test_trust_refused(walgate_factory, certs, tmp_path, impostor):
    """A server that asks for nothing would get the client's session."""
    imp = impostor(lambda conn: conn.serve_session())
    wg = impostor_walgate(walgate_factory, certs, tmp_path, imp, "prefer")
    refused_login(wg, certs, imp, "no authentication (trust)")
    assert wg.metric(refused("auth_method")) == 1


def test_listed_methods_are_answered(walgate_factory, certs, tmp_path, impostor):
    """server_auth_methods = password: the operator allowed it; walgate warns at start."""
    got = []

    def script(conn):
        conn.send(auth(3))
        got.append(conn.recv_message())
        conn.serve_session()

    imp = impostor(script)
    wg = impostor_walgate(walgate_factory, certs, tmp_path, imp, "prefer",
                          auth_extra={"server_auth_methods": "password"})
    assert wg.wait_for_log("a server impersonating it would receive the password")
    with ScramClient(wg, certs.ca) as c:
        result = c.login(PASSWORD, mech=PLUS)
    assert result[0] == "ok", result
    assert got == [("p", PASSWORD.encode() + b"\0")], got


# --------------------------------------------------------------------------
# 2. Strict SCRAM: AuthenticationOk only after a verified server signature

def test_scram_without_sasl_final(walgate_factory, certs, tmp_path, impostor):
    def script(conn):
        conn.send(sasl_offer(PLAIN))
        conn.scram_first()
        conn.recv_message()             # the client-final-message
        conn.serve_session()            # AuthenticationOk, no SASLFinal

    imp = impostor(script)
    wg = impostor_walgate(walgate_factory, certs, tmp_path, imp, "prefer")
    refused_login(wg, certs, imp, "before its SCRAM signature was verified")
    assert wg.metric(refused("sequence")) == 1


def test_scram_wrong_server_signature(walgate_factory, certs, tmp_path, impostor):
    def script(conn):
        conn.send(sasl_offer(PLAIN))
        st = conn.scram_first()
        conn.scram_final(st, PASSWORD, good_signature=False)
        conn.serve_session()

    imp = impostor(script)
    wg = impostor_walgate(walgate_factory, certs, tmp_path, imp, "prefer")
    refused_login(wg, certs, imp, "invalid SCRAM server signature")
    assert wg.metric(refused("scram")) == 1


@pytest.mark.parametrize("offer", [
    auth(10, PLAIN.encode() + b"\0\0junk"),               # bytes after the list
    auth(10, PLAIN.encode()),                             # a name that runs off the message
    auth(10, b"\0"),                                      # no mechanism at all
], ids=["trailing-bytes", "unterminated", "empty"])
def test_malformed_mechanism_list_refused(walgate_factory, certs, tmp_path, impostor, offer):
    """Hostile: an AuthenticationSASL whose mechanism list is malformed is
    refused as such; walgate does not answer it."""
    def script(conn):
        conn.send(offer)
        conn.recv_message()             # nothing should come: the impostor records it if it does

    imp = impostor(script)
    wg = impostor_walgate(walgate_factory, certs, tmp_path, imp, "prefer")
    refused_login(wg, certs, imp, "list of SASL mechanisms is malformed")
    assert wg.metric(refused("scram")) == 1


@pytest.mark.parametrize("second", ["sasl-again", "final-before-continue", "continue-twice",
                                    "ready-for-query"])
def test_scram_out_of_sequence(walgate_factory, certs, tmp_path, impostor, second):
    def script(conn):
        conn.send(sasl_offer(PLAIN))
        if second == "ready-for-query":
            conn.recv_message()
            conn.send(message(b"Z", b"I"))
        elif second == "final-before-continue":
            conn.recv_message()
            conn.send(auth(12, b"v=" + base64.b64encode(os.urandom(32))))
        elif second == "sasl-again":
            conn.recv_message()
            conn.send(sasl_offer(PLAIN))
        else:
            st = conn.scram_first()
            conn.recv_message()
            conn.send(auth(11, st["server_first"].encode()))
        conn.serve_session()

    imp = impostor(script)
    wg = impostor_walgate(walgate_factory, certs, tmp_path, imp, "prefer")
    refused_login(wg, certs, imp, "a message other than authentication" if second ==
                  "ready-for-query" else "authentication request out of sequence")
    assert wg.metric(refused("sequence")) == 1


# --------------------------------------------------------------------------
# 3. server_channel_binding

@pytest.mark.parametrize("case", ["plus-stripped", "no-tls", "cleartext-instead"])
def test_channel_binding_require_refuses(walgate_factory, certs, tmp_path, impostor,
                                         untrusted_cert, case):
    """A relay that strips -PLUS (or has no TLS, or asks for a password
    instead) gets no SCRAM message at all, not even the first."""
    def script(conn):
        conn.send(auth(3) if case == "cleartext-instead" else sasl_offer(PLAIN))
        drain(conn)

    imp = impostor(script, tls=None if case == "no-tls" else untrusted_cert)
    wg = impostor_walgate(walgate_factory, certs, tmp_path, imp,
                          "prefer" if case == "no-tls" else "require",
                          tls_extra={"server_channel_binding": "require"},
                          auth_extra={"server_auth_methods": "scram-sha-256,password"})
    fragment = {"plus-stripped": "does not offer SCRAM-SHA-256-PLUS",
                "no-tls": "the upstream leg is not TLS",
                "cleartext-instead": "server_channel_binding = require needs SCRAM-SHA-256-PLUS"}
    refused_login(wg, certs, imp, fragment[case])
    assert imp.received == b"", imp.received
    assert wg.metric(refused("channel_binding")) == 1


@pytest.mark.parametrize("mode,offer,mech,gs2", [
    ("prefer", (PLUS, PLAIN), PLUS, "p=tls-server-end-point,,"),
    ("require", (PLUS, PLAIN), PLUS, "p=tls-server-end-point,,"),
    ("prefer", (PLAIN,), PLAIN, "y,,"),
    ("disable", (PLUS, PLAIN), PLAIN, "n,,"),
])
def test_channel_binding_choice(walgate_factory, certs, tmp_path, impostor, untrusted_cert,
                                mode, offer, mech, gs2):
    """libpq's choice of mechanism and gs2 flag; -PLUS binds to the
    certificate the upstream presented (tls-server-end-point)."""
    seen = []

    def script(conn):
        conn.send(sasl_offer(*offer))
        st = conn.scram_first()
        assert conn.scram_final(st, PASSWORD), "wrong proof"
        seen.append((st, conn.cert_der))
        conn.serve_session()

    imp = impostor(script, tls=untrusted_cert)
    wg = impostor_walgate(walgate_factory, certs, tmp_path, imp, "require",
                          tls_extra={"server_channel_binding": mode})
    with ScramClient(wg, certs.ca) as c:
        result = c.login(PASSWORD, mech=PLUS)
        assert result[0] == "ok", (result, wg.log_text()[-3000:])
    (st, der), = seen
    assert (st["mech"], st["gs2"]) == (mech, gs2)
    cbind = base64.b64decode(st["client_final"].split(",")[0][2:])
    want = gs2.encode() + (hashlib.sha256(der).digest() if mech == PLUS else b"")
    assert cbind == want


def test_channel_binding_require_needs_tls_config(walgate_factory, certs, tmp_path):
    path = write_auth_file(tmp_path / "users.txt", [(TEST_USER, PASSWORD)])
    wg = scram_walgate(walgate_factory, certs, path, server_tls="disable", start=False,
                       tls_extra={"server_channel_binding": "require"})
    proc = run_walgate("--check-config", "--config", wg.config_path)
    assert proc.returncode != 0
    assert re.search(r"walgate.ini:\d+: \[tls\] server_channel_binding: require needs TLS", proc.stderr), \
        proc.stderr


def recvlogical_slot(conninfo, slot, action):
    return run([pg_bin("pg_recvlogical"), "-d", conninfo, "--slot", slot, action,
                *(["-P", "test_decoding"] if action == "--create-slot" else [])],
               env=clean_env(PGCONNECT_TIMEOUT="10"), timeout=30)


@pytest.mark.parametrize("mode,mech", [("prefer", PLUS), ("require", PLUS), ("disable", PLAIN)])
def test_postgres_every_channel_binding(walgate_factory, certs, tmp_path, mode, mech):
    """PostgreSQL 15 offers -PLUS over TLS: walgate binds unless disabled;
    psql, psycopg2 and pg_recvlogical (a replication login) all get in."""
    path = write_auth_file(tmp_path / "users.txt", [(TEST_USER, TEST_PASSWORD)])
    wg = scram_walgate(walgate_factory, certs, path,
                       tls_extra={"server_channel_binding": mode})
    assert_clients_connect(wg, certs, [("default", {}), ("require", {"channel_binding": "require"})])
    conn = psycopg2.connect(dsn(wg, channel_binding="disable"))
    try:
        cur = conn.cursor()
        cur.execute("SELECT current_user")
        assert cur.fetchone()[0] == TEST_USER
    finally:
        conn.close()
    slot = f"wg_cb_{mode}"
    conninfo = dsn(wg, replication="database")
    proc = recvlogical_slot(conninfo, slot, "--create-slot")
    assert proc.returncode == 0, text(proc) + wg.log_text()[-3000:]
    proc = recvlogical_slot(conninfo, slot, "--drop-slot")
    assert proc.returncode == 0, text(proc)
    flag = "p" if mech == PLUS else "n"
    assert wg.log_text().count(f"upstream login: mechanism {mech}, gs2 flag {flag}") >= 5, \
        wg.log_text()[-3000:]
    assert wg.metric(refused("channel_binding")) == 0


# --------------------------------------------------------------------------
# 6. Unknown users look like known ones

def server_first(wg, ca, user):
    with ScramClient(wg, ca, user=user) as c:
        c.send_initial(PLAIN, b"n,,n=,r=" + base64.b64encode(os.urandom(18)))
        mtype, body = pgwire.read_message(c.sock)
        assert mtype == "R", (mtype, body)
        return dict(kv.split("=", 1) for kv in body[4:].decode().split(","))


def test_mock_verifier_iterations_and_salt(walgate_factory, certs, tmp_path):
    """The auth file's verifiers say i=10000 (two of three entries): so does
    an unknown user's; its salt is the same after a reload."""
    path = write_auth_file(tmp_path / "users.txt", [
        (TEST_USER, make_verifier(TEST_PASSWORD, iterations=10000)),
        ("wg_other", make_verifier("x-pw", iterations=10000)),
        ("wg_plain", "plain-pw")])
    wg = scram_walgate(walgate_factory, certs, path)
    known = server_first(wg, certs.ca, TEST_USER)
    unknown = server_first(wg, certs.ca, "wg_nobody")
    assert known["i"] == unknown["i"] == "10000", (known, unknown)
    assert server_first(wg, certs.ca, "wg_nobody")["s"] == unknown["s"]
    write_auth_file(tmp_path / "users.txt", [(TEST_USER, make_verifier(TEST_PASSWORD, 10000))])
    wg.reload()
    assert wg.wait_for_log(r"configuration reloaded")
    time.sleep(0.3)
    again = server_first(wg, certs.ca, "wg_nobody")
    assert again["s"] == unknown["s"], (again, unknown)
    assert again["i"] == "10000"


def test_plaintext_entry_salt_behaves_as_unknown_users(walgate_factory, certs, tmp_path):
    """Hostile: an attacker asks for server-first before and after a reload.
    A plaintext entry's salt used to be drawn anew at every load while an
    unknown user's stays: the difference named the real user. Now both
    stay the same across a reload."""
    entries = [(TEST_USER, make_verifier(TEST_PASSWORD)), ("wg_plain", "plain-pw")]
    path = write_auth_file(tmp_path / "users.txt", entries)
    wg = scram_walgate(walgate_factory, certs, path)
    before = {u: server_first(wg, certs.ca, u)["s"] for u in ("wg_plain", "wg_nobody")}
    write_auth_file(tmp_path / "users.txt", entries)
    wg.reload()
    assert wg.wait_for_log(r"configuration reloaded")
    time.sleep(0.3)
    after = {u: server_first(wg, certs.ca, u)["s"] for u in ("wg_plain", "wg_nobody")}
    assert after == before, (before, after)
    # walgate still takes the plaintext user's password (the upstream has no
    # such role: 28000 from walgate's own login there, not 28P01 from ours)
    with ScramClient(wg, certs.ca, user="wg_plain") as c:
        result = c.login("plain-pw", mech=PLUS)
    assert result[0] == "error" and result[1].get("C") == "28000", result
    with ScramClient(wg, certs.ca, user="wg_plain") as c:
        result = c.login("wrong-pw", mech=PLUS)
    assert result[0] == "error" and result[1].get("C") == "28P01", result


# --------------------------------------------------------------------------
# 7. The upstream's iteration count does not stall the worker

def test_costly_iterations_do_not_stall_the_worker(walgate_factory, certs, tmp_path, impostor):
    """Three logins whose upstream asks for 2^20 PBKDF2 rounds, while a
    healthy session on the same (only) worker keeps answering: its slowest
    round trip stays well under the time the quickest of those logins took
    (the impostor's own side of PBKDF2 is computed once, beforehand), where
    computing on the event loop would stall it for at least one of them."""
    slow_iterations = 1 << 20

    def script(conn):
        slow = conn.startup["user"] == "wg_slow"
        conn.send(sasl_offer(PLAIN))
        st = conn.scram_first(iterations=slow_iterations if slow else 4096)
        assert conn.scram_final(st, PASSWORD), "wrong proof"
        conn.serve_session()

    imp = impostor(script)
    wg = impostor_walgate(walgate_factory, certs, tmp_path, imp, "prefer",
                          users=[(TEST_USER, PASSWORD), ("wg_slow", PASSWORD)],
                          walgate_keys={"workers": "1"})
    scram_keys(PASSWORD, b"impostor-salt-16", slow_iterations)     # cached for the impostor

    healthy = ScramClient(wg, certs.ca)
    assert healthy.login(PASSWORD, mech=PLUS)[0] == "ok"
    results, durations = [], []

    def slow_login():
        with ScramClient(wg, certs.ca, user="wg_slow") as c:
            c.sock.settimeout(60)   # 2^20 rounds take long on a loaded or instrumented build
            started = time.monotonic()
            results.append(c.login(PASSWORD, mech=PLUS)[0])
            durations.append(time.monotonic() - started)

    threads = [threading.Thread(target=slow_login) for _ in range(3)]
    for t in threads:
        t.start()
    worst = 0.0
    query = b"Q" + (len(b"SELECT 1\0") + 4).to_bytes(4, "big") + b"SELECT 1\0"
    while any(t.is_alive() for t in threads):
        sent = time.monotonic()
        healthy.sock.sendall(query)
        while pgwire.read_message(healthy.sock)[0] != "Z":
            pass
        worst = max(worst, time.monotonic() - sent)
        time.sleep(0.005)
    for t in threads:
        t.join()
    healthy.close()
    assert results == ["ok"] * 3, (results, wg.log_text()[-3000:])
    report = f"worst round trip {worst:.3f}s, slow logins took {sorted(durations)}"
    print(report)
    assert worst < min(durations) / 3, report


def test_upstream_gone_while_salting(walgate_factory, certs, tmp_path, impostor):
    """The upstream hangs up while walgate computes the salted password:
    the client is told, the result finds the session closing, nothing is sent."""
    def script(conn):
        conn.send(sasl_offer(PLAIN))
        conn.scram_first(iterations=1 << 20)

    imp = impostor(script)
    wg = impostor_walgate(walgate_factory, certs, tmp_path, imp, "prefer")
    for _ in range(3):
        fields = raw_login_fails(wg, certs, TEST_USER, PASSWORD, "08006")
        assert "closed the connection" in fields["M"], fields
    time.sleep(1.0)     # every computation has come back by now
    assert_alive(wg)
    assert imp.received.count(b"SCRAM-SHA-256\0") == 3, imp.received
    assert b"c=" not in imp.received, imp.received


def thread_count(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def test_costly_logins_cannot_multiply_threads(walgate_factory, certs, tmp_path, impostor):
    """Hostile: an upstream that asks every login for 2^20 iterations and
    hangs up at once, while clients keep logging in. One worker runs at most
    four computations at a time (threads that outlive their sessions
    included); the logins beyond get FATAL 53300 at once, and walgate's
    thread count never passes its own plus four."""
    def script(conn):
        conn.send(sasl_offer(PLAIN))
        conn.scram_first(iterations=1 << 20)

    imp = impostor(script)
    wg = impostor_walgate(walgate_factory, certs, tmp_path, imp, "prefer",
                          walgate_keys={"workers": "1"})
    base = thread_count(wg.proc.pid)
    busy, peak = 0, base
    for _ in range(12):
        with ScramClient(wg, certs.ca) as c:
            result = c.login(PASSWORD, mech=PLUS)
        peak = max(peak, thread_count(wg.proc.pid))
        if result[0] == "error" and result[1].get("C") == "53300":
            busy += 1
    assert busy >= 1, "every costly login got a thread of its own"
    assert peak <= base + 4, (peak, base)
    assert wg.wait_for_log("salted-password computations already run on this worker")
    assert_alive(wg)


# --------------------------------------------------------------------------
# 8. SASLprep on both legs, as PostgreSQL does it

SASLPREP_USER = "wg_saslprep"
# U+00AD (soft hyphen, mapped to nothing), U+00AA (NFKC: "a"), U+00A0 (no-break space: " ")
RAW_PASSWORD = "I\u00adX-\u00aa\u00a0pw"
PREPARED_PASSWORD = "IX-a pw"


@pytest.fixture
def saslprep_role(pg):
    pg.sql(f"DROP ROLE IF EXISTS {SASLPREP_USER}")
    pg.sql(f"SET password_encryption = 'scram-sha-256'; "
           f"CREATE ROLE {SASLPREP_USER} LOGIN PASSWORD {sql_literal(RAW_PASSWORD)}")
    yield
    pg.sql(f"DROP ROLE IF EXISTS {SASLPREP_USER}")


def test_saslprep_both_legs(pg, walgate_factory, certs, tmp_path, saslprep_role):
    who = "SELECT current_user"
    # PostgreSQL itself: the raw and the prepared form both log in.
    for pw in (RAW_PASSWORD, PREPARED_PASSWORD):
        proc = psql_dsn(dsn(pg, user=SASLPREP_USER, password=pw), who)
        assert proc.returncode == 0, text(proc)
    path = write_auth_file(tmp_path / "users.txt", [(SASLPREP_USER, RAW_PASSWORD)])
    wg = scram_walgate(walgate_factory, certs, path)
    for pw in (RAW_PASSWORD, PREPARED_PASSWORD):
        proc = psql_dsn(dsn(wg, user=SASLPREP_USER, password=pw), who)
        assert proc.returncode == 0 and proc.stdout.decode().strip() == SASLPREP_USER, \
            text(proc) + wg.log_text()[-3000:]
    with ScramClient(wg, certs.ca, user=SASLPREP_USER) as c:
        assert c.login(PREPARED_PASSWORD, mech=PLUS)[0] == "ok"
