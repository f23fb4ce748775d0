"""TLS on both legs: SSLRequest and direct TLS from clients, the upstream's
certificate checked the way libpq's sslmode does, client certificates,
certificate reload on SIGHUP, and the TLS metrics.

walgate gets a certificate of its own (issued by the cluster's test CA for
localhost, 127.0.0.1 and ::1), distinct from PostgreSQL's: with one shared
certificate a client's channel binding would match the server's by
accident, and the passthrough limitation (test_default_client_...) would
go unseen.

Authentication is relayed, so TLS on both legs needs channel_binding=disable
in libpq clients; the tests that want a working login pass it (PGCHANNELBINDING).

Some upstream failures are easier to stage against a stand-in than against
the shared cluster: FakeTLSUpstream answers 'S' to walgate's SSLRequest and
shakes hands with a certificate of the test's choosing (another name,
expired), or misbehaves before the handshake.
"""

import hashlib
import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from types import SimpleNamespace

import pytest

import pgwire
from clients import (client_env, conn_args, connect, drop_slot, psql, run,
                     superuser_connect)
from pgcluster import (LOOPBACK_V4, LOOPBACK_V6, TEST_DB, TEST_USER, TestCA, _openssl,
                       free_port, issue_cert, pg_bin)

pytestmark = pytest.mark.walgate_only

PROMTOOL = "/usr/bin/promtool"
WALGATE_SAN = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]

TLS_REQUIRED = 'walgate_connections_rejected_total{reason="tls_required"}'
TLS_HANDSHAKE = 'walgate_connections_rejected_total{reason="tls_handshake"}'
PROTOCOL_VIOLATION = 'walgate_connections_rejected_total{reason="protocol_violation"}'
PROTOCOL_ERRORS = 'walgate_protocol_errors_total{kind="client"}'
UPSTREAM_FAILURES = "walgate_upstream_connect_failures_total"
RELOAD_FAILURES = "walgate_config_reload_failures_total"
GENERATION = "walgate_config_generation"


def handshakes(leg, result):
    return f'walgate_tls_handshakes_total{{leg="{leg}",result="{result}"}}'


def expiry(leg):
    return f'walgate_tls_certificate_expiry_timestamp_seconds{{leg="{leg}"}}'


# --------------------------------------------------------------------------
# Certificates

def issue_expired_cert(ca, name, cn, san, directory):
    """A certificate from the test CA whose validity ended in 2021
    (`openssl ca`, the one tool of openssl 3.0 that takes explicit dates)."""
    work = os.path.join(directory, f"{name}-ca-db")
    os.makedirs(work)
    with open(os.path.join(work, "index.txt"), "w"):
        pass
    with open(os.path.join(work, "serial"), "w") as f:
        f.write("7E57\n")
    cnf = os.path.join(work, "ca.cnf")
    with open(cnf, "w") as f:
        f.write("[ca]\ndefault_ca = test\n"
                "[test]\n"
                f"database = {work}/index.txt\n"
                f"serial = {work}/serial\n"
                f"new_certs_dir = {work}\n"
                "default_md = sha256\npolicy = any\ncopy_extensions = none\nunique_subject = no\n"
                "[any]\ncommonName = supplied\n")
    ext = os.path.join(work, "ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth,clientAuth\n"
                "subjectAltName=" + ",".join(san) + "\n")
    cert = os.path.join(directory, f"{name}.crt")
    key = os.path.join(directory, f"{name}.key")
    csr = os.path.join(work, "req.csr")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
    _openssl("ca", "-batch", "-config", cnf, "-cert", ca.cert, "-keyfile", ca.key,
             "-in", csr, "-out", cert, "-notext", "-extfile", ext,
             "-startdate", "20200101000000Z", "-enddate", "20210101000000Z")
    os.chmod(key, 0o600)
    return cert, key


def cert_info(path):
    """The decoded certificate of a PEM file (subject, serialNumber, notAfter...)."""
    return ssl._ssl._test_decode_cert(path)


def cert_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


@pytest.fixture(scope="module")
def certs(pg):
    """walgate's certificates and the others the tests need, in a directory
    of their own (removed after the module)."""
    d = tempfile.mkdtemp(prefix="walgate-tls-")
    try:
        c = SimpleNamespace(dir=d, ca=pg.ca_cert)
        c.wg_cert, c.wg_key = issue_cert(pg.ca, "walgate", "localhost", san=WALGATE_SAN,
                                         directory=d)
        # A second walgate certificate for the reload test (another name, another serial).
        c.wg2_cert, c.wg2_key = issue_cert(pg.ca, "walgate2", "walgate-reloaded",
                                           san=WALGATE_SAN, directory=d)
        c.client_cert, c.client_key = issue_cert(pg.ca, "client", TEST_USER, client=True,
                                                 directory=d)
        c.expired_cert, c.expired_key = issue_expired_cert(pg.ca, "expired", "localhost",
                                                           WALGATE_SAN, d)
        # A server certificate of the right CA for the wrong name.
        c.other_name_cert, c.other_name_key = issue_cert(pg.ca, "othername", "db.example",
                                                         san=["DNS:db.example"], directory=d)
        other = TestCA.create(os.path.join(d, "other-ca"), cn="another test CA")
        c.other_ca = other.cert
        c.other_client_cert, c.other_client_key = issue_cert(other, "client", TEST_USER,
                                                             client=True)
        yield c
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# walgate, clients

def tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require",
                tls=None, **kwargs):
    """A walgate with a [tls] section, listening on 127.0.0.1 and ::1 (one
    port), so that host=localhost works wherever localhost resolves."""
    keys = {"client_tls": client_tls, "server_tls": server_tls}
    if client_tls != "disable":
        keys.update(cert_file=certs.wg_cert, key_file=certs.wg_key)
    keys.update(tls or {})
    port = free_port()
    kwargs.setdefault("listen", [(LOOPBACK_V4, port), (LOOPBACK_V6, port)])
    return walgate_factory(sections={"tls": keys}, **kwargs)


def tls_env(**extra):
    """libpq environment for TLS to walgate without channel binding."""
    values = {"PGSSLMODE": "require", "PGCHANNELBINDING": "disable"}
    values.update(extra)
    return client_env(**values)


def text(proc):
    return proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


def upstream_ssl(target, env=None):
    """Whether the upstream leg is encrypted, as psql through target sees
    it in pg_stat_ssl: "t" or "f"."""
    proc = psql(target, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                env=env or tls_env(), check=True)
    return proc.stdout.decode().strip()


def verifying_context(cafile, alpn=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_after_sslrequest(host, port, ctx, server_hostname="localhost", timeout=5.0):
    """SSLRequest, 'S', and a TLS handshake on the same socket; returns the
    SSLSocket. Raises what the handshake raises."""
    sock = pgwire.connect(host, port, timeout=timeout)
    try:
        sock.sendall(pgwire.ssl_request())
        answer = pgwire.recv_exact(sock, 1)
        assert answer == b"S", f"answer to SSLRequest: {answer!r}"
        return ctx.wrap_socket(sock, server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise


def startup(tls_sock):
    tls_sock.sendall(pgwire.startup_message({"user": TEST_USER, "database": TEST_DB}))
    return pgwire.read_message(tls_sock)


def walgate_peer_cert(wg, cafile):
    """The DER certificate walgate presents to a new client (verified
    against cafile). Logs in as far as the server's first message, so
    that walgate's side of the handshake is over before the close."""
    with tls_after_sslrequest(wg.host, wg.port, verifying_context(cafile)) as s:
        der = s.getpeercert(binary_form=True)
        mtype, _ = startup(s)
        assert mtype == "R"
        return der


def wait_until(predicate, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def wait_value(wg, key, expected, timeout=5.0):
    return wg.wait_for_metric(key, lambda v: v == expected, timeout=timeout)


def reload_and_wait(wg, pattern):
    """SIGHUP, then wait until one more log line contains pattern."""
    before = wg.log_text().count(pattern)
    wg.reload()
    assert wait_until(lambda: wg.log_text().count(pattern) > before), \
        f"no new {pattern!r} after SIGHUP; log:\n{wg.log_text()[-3000:]}"


def raw_login_error(wg, host=None):
    """A plaintext StartupMessage to walgate; the ErrorResponse's fields."""
    with pgwire.connect(host or wg.host, wg.port) as sock:
        sock.sendall(pgwire.startup_message({"user": TEST_USER, "database": TEST_DB}))
        return pgwire.read_error(sock)


class FakeTLSUpstream:
    """A stand-in upstream on 127.0.0.1: answers an SSLRequest with 'S'
    (plus `after_s`, if given, which a real server never sends) and then
    handshakes with the given certificate. Records each handshake's
    outcome in .results ("ok" or the exception's text)."""

    def __init__(self, cert, key, after_s=b""):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.after_s = after_s
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOOPBACK_V4, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.results = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    if pgwire.recv_exact(conn, 8) != pgwire.ssl_request():
                        self.results.append("no SSLRequest")
                        continue
                    conn.sendall(b"S" + self.after_s)
                    if self.after_s:
                        self.results.append("sent extra bytes")
                        pgwire.wait_closed(conn, 5)
                        continue
                    with self.ctx.wrap_socket(conn, server_side=True) as tls:
                        self.results.append("ok")
                        tls.recv(1)
                except (OSError, ssl.SSLError) as e:
                    self.results.append(str(e))

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)    # wakes the thread's accept()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def fake_tls_upstream(stand_in):
    return lambda *args, **kwargs: stand_in(FakeTLSUpstream, *args, **kwargs)


# --------------------------------------------------------------------------
# 1. TLS on both legs

PUBLICATION = "tls_pub"


def recvlogical(target, slot, endpos, outfile, env):
    argv = [pg_bin("pg_recvlogical"), *conn_args(target), "--slot", slot, "--start",
            "--no-loop", "-o", "proto_version=1", "-o", f"publication_names={PUBLICATION}",
            f"--endpos={endpos}", "-f", outfile]
    return run(argv, env=env, timeout=60)




def test_tls_both_legs(pg, walgate_factory, certs, tmp_path):
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require")

    # psql: TLS to walgate (\conninfo says so), and the backend sees TLS from walgate.
    proc = psql(wg, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                env=tls_env(), check=True)
    ssl_on, version = proc.stdout.decode().strip().split("|")
    assert ssl_on == "t" and version.startswith("TLSv1."), proc.stdout
    proc = psql(wg, "\\conninfo", env=tls_env(), check=True)
    assert "SSL connection" in proc.stdout.decode(), proc.stdout

    # walgate shows its own certificate, not PostgreSQL's.
    der = walgate_peer_cert(wg, certs.ca)
    assert der == cert_der(certs.wg_cert)
    assert der != cert_der(pg.server_cert)

    # psycopg2 checks walgate's certificate and name (verify-full).
    conn = connect(wg, host="localhost", sslmode="verify-full", sslrootcert=certs.ca,
                   channel_binding="disable")
    try:
        assert conn.info.ssl_in_use
        cur = conn.cursor()
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone()[0] is True
        cur.execute("SELECT %s::text || current_user", ("tls:",))
        assert cur.fetchone()[0] == "tls:" + TEST_USER
    finally:
        conn.close()

    # Logical replication through TLS on both legs, byte for byte as read directly.
    admin = superuser_connect(pg)
    cur = admin.cursor()
    cur.execute("DROP TABLE IF EXISTS tls_repl; DROP PUBLICATION IF EXISTS " + PUBLICATION)
    cur.execute("CREATE TABLE tls_repl (id int PRIMARY KEY, v text)")
    cur.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE tls_repl")
    try:
        cur.execute("SELECT pg_create_logical_replication_slot('tls_a', 'pgoutput')")
        cur.execute("INSERT INTO tls_repl SELECT g, md5(g::text) FROM generate_series(1, 300) g")
        cur.execute("UPDATE tls_repl SET v = v || ' über TLS' WHERE id % 5 = 0")
        cur.execute("DELETE FROM tls_repl WHERE id % 13 = 0")
        cur.execute("INSERT INTO tls_repl VALUES (1000, repeat('tls', 10000))")
        cur.execute("SELECT pg_copy_logical_replication_slot('tls_a', 'tls_b')")
        cur.execute("SELECT pg_current_wal_lsn()")
        endpos = cur.fetchone()[0]

        file_a, file_b = str(tmp_path / "direct.out"), str(tmp_path / "walgate.out")
        direct = recvlogical(pg, "tls_a", endpos, file_a, client_env(PGSSLMODE="disable"))
        assert direct.returncode == 0, text(direct)
        through = recvlogical(wg, "tls_b", endpos, file_b, tls_env())
        assert through.returncode == 0, text(through)
        with open(file_a, "rb") as f:
            data_a = f.read()
        with open(file_b, "rb") as f:
            data_b = f.read()
        assert len(data_a) > 30_000 and b"tls_repl" in data_a and b"tlstlstls" in data_a
        assert hashlib.sha256(data_b).hexdigest() == hashlib.sha256(data_a).hexdigest()
    finally:
        for slot in ("tls_a", "tls_b"):
            drop_slot(cur, slot)
        cur.execute("DROP PUBLICATION IF EXISTS " + PUBLICATION)
        cur.execute("DROP TABLE IF EXISTS tls_repl")
        admin.close()
    assert "login: user=walgate_test database=walgate_test replication=logical" in wg.log_text()


# --------------------------------------------------------------------------
# 2. The passthrough limitation: channel binding

def test_default_client_fails_channel_binding_with_hint(walgate_factory, certs):
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require")
    proc = psql(wg, "SELECT 1", env=client_env(PGSSLMODE="require"))
    out = text(proc)
    assert proc.returncode != 0, out
    assert "channel binding" in out, out
    assert "channel_binding=disable" in out, out
    assert wg.wait_for_log(r"upstream refused channel binding")
    # The same client with channel_binding=disable logs in.
    psql(wg, "SELECT 1", env=tls_env(), check=True)


# --------------------------------------------------------------------------
# 3. Plaintext client, TLS upstream leg

@pytest.mark.parametrize("client_tls", ["allow", "disable"])
def test_plaintext_client_tls_upstream(walgate_factory, certs, client_tls):
    wg = tls_walgate(walgate_factory, certs, client_tls=client_tls, server_tls="require")
    # channel_binding left at libpq's default: walgate must not offer it -PLUS.
    env = client_env(PGSSLMODE="disable")
    assert upstream_ssl(wg, env) == "t"
    conn = connect(wg, sslmode="disable")
    try:
        assert not conn.info.ssl_in_use
        cur = conn.cursor()
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone()[0] is True
    finally:
        conn.close()
    # libpq's default sslmode=prefer: TLS when walgate offers it, plaintext when not.
    proc = psql(wg, "\\conninfo", env=client_env(PGCHANNELBINDING="disable"), check=True)
    assert ("SSL connection" in proc.stdout.decode()) == (client_tls == "allow"), proc.stdout


# --------------------------------------------------------------------------
# 4. client_tls = require refuses plaintext logins

def test_client_tls_require_refuses_plaintext(walgate_factory, certs):
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require")
    fields = raw_login_error(wg)
    assert fields["S"] == "FATAL"
    assert fields["C"] == "28000"
    assert "requires TLS" in fields["M"] and "sslmode=require" in fields["M"], fields
    assert wait_value(wg, TLS_REQUIRED, 1) == 1

    proc = psql(wg, "SELECT 1", env=client_env(PGSSLMODE="disable"))
    assert proc.returncode != 0
    assert "walgate requires TLS" in text(proc), text(proc)
    assert wait_value(wg, TLS_REQUIRED, 2) == 2
    assert wg.metric(UPSTREAM_FAILURES) == 0
    assert wg.metric(handshakes("upstream", "ok")) == 0   # nothing reached the upstream


# --------------------------------------------------------------------------
# 5. Checking the upstream's certificate

@pytest.mark.parametrize("host", ["localhost", LOOPBACK_V4, LOOPBACK_V6])
def test_upstream_verify_full_ok(walgate_factory, certs, host):
    wg = tls_walgate(walgate_factory, certs, client_tls="disable", server_tls="verify-full",
                     tls={"server_ca_file": certs.ca}, upstream_host=host)
    assert upstream_ssl(wg, client_env(PGSSLMODE="disable")) == "t"
    assert wg.metric(handshakes("upstream", "ok")) == 1


def hosts_file_maps(name, address):
    """Does /etc/hosts (what walgate's resolver reads) map name to address?"""
    try:
        with open("/etc/hosts") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and fields[0] == address and name in fields[1:]:
                    return True
    except OSError:
        pass
    return False


def assert_upstream_refused(wg, *fragments):
    fields = raw_login_error(wg)
    assert fields["S"] == "FATAL" and fields["C"] == "08006", fields
    assert fields["M"].startswith("could not connect to upstream "), fields
    for fragment in fragments:
        assert fragment in fields["M"], fields
    return fields


def test_upstream_verify_full_name_mismatch_ip6_localhost(pg, walgate_factory, certs):
    """PostgreSQL's certificate names localhost, 127.0.0.1 and ::1; the
    Debian alias ip6-localhost reaches the same server on ::1 but is not
    among its names."""
    if not hosts_file_maps("ip6-localhost", LOOPBACK_V6):
        pytest.skip("/etc/hosts does not map ip6-localhost to ::1")
    assert "::1" in pg.sql("SHOW listen_addresses")
    wg = tls_walgate(walgate_factory, certs, client_tls="disable", server_tls="verify-full",
                     tls={"server_ca_file": certs.ca}, upstream_host="ip6-localhost")
    assert_upstream_refused(wg, f'"ip6-localhost:{pg.port}"', "certificate verify failed",
                            "hostname mismatch")
    assert wg.metric(handshakes("upstream", "failed")) == 1
    # verify-ca does not check the name.
    wg.write_config(sections={"tls": {"server_tls": "verify-ca"}})
    reload_and_wait(wg, "configuration reloaded")
    assert upstream_ssl(wg, client_env(PGSSLMODE="disable")) == "t"


def test_upstream_verify_full_name_mismatch(walgate_factory, certs, fake_tls_upstream):
    """An upstream whose certificate (of the right CA) names another host."""
    fake = fake_tls_upstream(certs.other_name_cert, certs.other_name_key)
    wg = tls_walgate(walgate_factory, certs, client_tls="disable", server_tls="verify-full",
                     tls={"server_ca_file": certs.ca}, upstream_host="localhost",
                     upstream_port=fake.port)
    assert_upstream_refused(wg, f'"localhost:{fake.port}"', "certificate verify failed",
                            "hostname mismatch")
    assert wg.metric(handshakes("upstream", "failed")) == 1
    assert wg.metric(UPSTREAM_FAILURES) == 1
    assert wait_until(lambda: fake.results) and fake.results[0] != "ok", fake.results
    proc = psql(wg, "SELECT 1", env=client_env(PGSSLMODE="disable"))
    assert proc.returncode != 0 and "hostname mismatch" in text(proc), text(proc)


def test_upstream_verify_full_address_mismatch(pg, walgate_factory, certs):
    """Dialled as ::ffff:127.0.0.1, PostgreSQL is not named by its
    certificate (127.0.0.1 and ::1 are different IP SANs), as with libpq."""
    wg = tls_walgate(walgate_factory, certs, client_tls="disable", server_tls="verify-full",
                     tls={"server_ca_file": certs.ca}, upstream_host="::ffff:127.0.0.1")
    assert_upstream_refused(wg, f'"[::ffff:127.0.0.1]:{pg.port}"', "certificate verify failed",
                            "IP address mismatch")


def test_upstream_verify_ca_other_ca(walgate_factory, certs):
    wg = tls_walgate(walgate_factory, certs, client_tls="disable", server_tls="verify-ca",
                     tls={"server_ca_file": certs.other_ca})
    assert_upstream_refused(wg, "certificate verify failed")
    assert wg.metric(handshakes("upstream", "failed")) == 1
    assert wg.metric(handshakes("upstream", "ok")) == 0
    assert wait_value(wg, UPSTREAM_FAILURES, 1) == 1
    # server_tls = require encrypts without checking: the same CA file is fine.
    wg.write_config(sections={"tls": {"server_tls": "require"}})
    reload_and_wait(wg, "configuration reloaded")
    assert upstream_ssl(wg, client_env(PGSSLMODE="disable")) == "t"


def test_upstream_expired_certificate(walgate_factory, certs, fake_tls_upstream):
    fake = fake_tls_upstream(certs.expired_cert, certs.expired_key)
    wg = tls_walgate(walgate_factory, certs, client_tls="disable", server_tls="verify-full",
                     tls={"server_ca_file": certs.ca}, upstream_host="localhost",
                     upstream_port=fake.port)
    assert_upstream_refused(wg, "certificate verify failed", "certificate has expired")


def test_upstream_bytes_after_s_refused(walgate_factory, certs, fake_tls_upstream):
    """Bytes after the upstream's 'S', before the handshake, would be
    trusted as if encrypted (CVE-2021-23222): refused."""
    fake = fake_tls_upstream(certs.other_name_cert, certs.other_name_key,
                             after_s=pgwire.startup_message({"user": "x"}))
    wg = tls_walgate(walgate_factory, certs, client_tls="disable", server_tls="require",
                     upstream_port=fake.port)
    assert_upstream_refused(wg, "data after accepting TLS")


def test_upstream_server_tls_disable_is_plaintext(walgate_factory, certs):
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="disable")
    assert upstream_ssl(wg) == "f"
    # Without TLS upstream PostgreSQL offers no SCRAM-SHA-256-PLUS, so libpq's
    # default (channel_binding=prefer) logs in without binding.
    psql(wg, "SELECT 1", env=client_env(PGSSLMODE="require"), check=True)


# --------------------------------------------------------------------------
# 5b. An expired walgate certificate, seen from the client

def test_expired_walgate_certificate(walgate_factory, certs):
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require",
                     tls={"cert_file": certs.expired_cert, "key_file": certs.expired_key})
    env = tls_env(PGSSLMODE="verify-full", PGSSLROOTCERT=certs.ca)
    proc = run([pg_bin("psql"), "-X", "-A", "-t", "-h", "localhost", "-p", str(wg.port),
                "-U", TEST_USER, "-d", TEST_DB, "-c", "SELECT 1"], env=env)
    assert proc.returncode != 0
    assert "certificate verify failed" in text(proc), text(proc)
    assert wait_value(wg, TLS_HANDSHAKE, 1) == 1
    assert wg.metric(handshakes("client", "failed")) == 1

    # A verifying client names the reason.
    with pytest.raises(ssl.SSLCertVerificationError) as exc:
        tls_after_sslrequest(wg.host, wg.port, verifying_context(certs.ca))
    assert "expired" in str(exc.value), exc.value
    assert wait_value(wg, TLS_HANDSHAKE, 2) == 2
    assert wg.metric(handshakes("client", "failed")) == 2
    assert wg.wait_for_log(r"rejected: .*(expired|alert)")
    # sslmode=require does not check: it logs in.
    psql(wg, "SELECT 1", env=tls_env(), check=True)


# --------------------------------------------------------------------------
# 6. Direct TLS (PostgreSQL 17's sslnegotiation=direct)

def test_direct_tls_with_alpn(walgate_factory, certs):
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require")
    ctx = verifying_context(certs.ca, alpn=["postgresql"])
    with socket.create_connection((wg.host, wg.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() == "postgresql"
            assert s.getpeercert(binary_form=True) == cert_der(certs.wg_cert)
            mtype, body = startup(s)
    assert mtype == "R", (mtype, body)
    code, rest = pgwire.auth_request(body)
    assert code == pgwire.AUTH_SASL
    assert "SCRAM-SHA-256" in pgwire.sasl_mechanisms(rest)
    assert wait_value(wg, handshakes("client", "ok"), 1) == 1
    assert wg.metric(handshakes("upstream", "ok")) == 1


def direct_tls_refused(wg, ctx):
    """Direct TLS that walgate must refuse: the handshake fails, or the
    connection closes with nothing received. Returns what happened."""
    try:
        raw = socket.create_connection((wg.host, wg.port), timeout=5)
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            try:
                s.sendall(pgwire.startup_message({"user": TEST_USER, "database": TEST_DB}))
                data = s.recv(1024)
            except (ssl.SSLError, OSError) as e:
                return f"closed: {e}"
            assert data == b"", f"received {data!r} from walgate without ALPN"
            return "closed"
    except ssl.SSLError as e:
        return f"handshake failed: {e}"


def test_direct_tls_without_alpn_refused(walgate_factory, certs):
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require")
    direct_tls_refused(wg, verifying_context(certs.ca))
    assert wait_value(wg, TLS_HANDSHAKE, 1) == 1
    assert wg.metric(handshakes("upstream", "ok")) == 0
    assert wg.wait_for_log(r"rejected: direct TLS without ALPN postgresql")

    # Another protocol than postgresql: refused in the handshake itself.
    outcome = direct_tls_refused(wg, verifying_context(certs.ca, alpn=["http/1.1"]))
    assert outcome.startswith("handshake failed"), outcome
    assert wait_value(wg, TLS_HANDSHAKE, 2) == 2
    assert wg.metric(handshakes("client", "failed")) == 2
    assert wg.metric(handshakes("upstream", "ok")) == 0


def test_direct_tls_wrong_alpn_gets_alert(walgate_factory, certs):
    """A client that offers only another protocol is told why, with the
    no_application_protocol alert (RFC 7301), as PostgreSQL 17 does, not
    a bare close."""
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require")
    ctx = verifying_context(certs.ca, alpn=["http/1.1"])
    with socket.create_connection((wg.host, wg.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError) as exc:
            ctx.wrap_socket(raw, server_hostname="localhost")
    # OpenSSL spells the alert "no application protocol" or NO_APPLICATION_PROTOCOL
    assert "NO APPLICATION PROTOCOL" in str(exc.value).upper().replace("_", " "), exc.value


def test_direct_tls_refused_without_certificate(walgate_factory, certs):
    wg = tls_walgate(walgate_factory, certs, client_tls="disable", server_tls="require")
    outcome = direct_tls_refused(wg, verifying_context(certs.ca, alpn=["postgresql"]))
    assert outcome.startswith("handshake failed"), outcome
    assert wait_value(wg, TLS_HANDSHAKE, 1) == 1


# --------------------------------------------------------------------------
# 7. Bytes after SSLRequest in the same packet

def test_bytes_after_sslrequest_refused(walgate_factory, certs):
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require")
    with pgwire.connect(wg.host, wg.port) as sock:
        sock.sendall(pgwire.ssl_request()
                     + pgwire.startup_message({"user": TEST_USER, "database": TEST_DB}))
        closed, data, _ = pgwire.wait_closed(sock, 5)
    assert closed
    assert not data.startswith(b"S"), data
    if data:
        msgs = pgwire.split_messages(data)
        assert msgs and msgs[0][0] == "E", data
        fields = pgwire.parse_error_fields(msgs[0][1])
        assert fields["C"] == "08P01", fields
    assert wait_value(wg, PROTOCOL_VIOLATION, 1) == 1
    assert wg.metric(PROTOCOL_ERRORS) == 1
    assert wg.metric(handshakes("client", "ok")) == 0
    assert wg.metric(handshakes("upstream", "ok")) == 0


def test_gssenc_then_sslrequest(walgate_factory, certs):
    """libpq with GSSAPI credentials asks for GSS encryption first and,
    refused, for TLS on the same connection."""
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require")
    sock = pgwire.connect(wg.host, wg.port)
    try:
        sock.sendall(pgwire.gssenc_request())
        assert pgwire.recv_exact(sock, 1) == b"N"
        sock.sendall(pgwire.ssl_request())
        assert pgwire.recv_exact(sock, 1) == b"S"
        with verifying_context(certs.ca).wrap_socket(sock, server_hostname="localhost") as s:
            mtype, body = startup(s)
        assert mtype == "R" and pgwire.auth_request(body)[0] == pgwire.AUTH_SASL
    finally:
        sock.close()


def test_stalled_handshake_times_out(walgate_factory, certs):
    """A client that asks for TLS and then sends nothing is bound by
    startup_timeout like any other."""
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require",
                     walgate={"startup_timeout": "1s"})
    with pgwire.connect(wg.host, wg.port) as sock:
        sock.sendall(pgwire.ssl_request())
        assert pgwire.recv_exact(sock, 1) == b"S"
        closed, data, waited = pgwire.wait_closed(sock, 5)
    assert closed and data == b"", data
    assert 0.5 < waited < 4, waited
    key = 'walgate_connections_rejected_total{reason="startup_timeout"}'
    assert wait_value(wg, key, 1) == 1


# --------------------------------------------------------------------------
# 8. Client certificates

def test_client_certificates(walgate_factory, certs, tmp_path):
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require",
                     tls={"ca_file": certs.ca})
    missing = str(tmp_path / "none.crt")
    proc = psql(wg, "SELECT 1", env=tls_env(PGSSLCERT=missing, PGSSLKEY=missing))
    assert proc.returncode != 0, text(proc)
    assert wait_value(wg, TLS_HANDSHAKE, 1) == 1

    # A certificate of another CA is refused too.
    proc = psql(wg, "SELECT 1", env=tls_env(PGSSLCERT=certs.other_client_cert,
                                             PGSSLKEY=certs.other_client_key))
    assert proc.returncode != 0, text(proc)
    assert wait_value(wg, TLS_HANDSHAKE, 2) == 2
    assert "client certificate:" not in wg.log_text()

    proc = psql(wg, "SELECT current_user", env=tls_env(PGSSLCERT=certs.client_cert,
                                                        PGSSLKEY=certs.client_key), check=True)
    assert proc.stdout.decode().strip() == TEST_USER
    m = wg.wait_for_log(r"client certificate: .*CN ?= ?walgate_test")
    assert m, wg.log_text()[-3000:]
    assert wg.metric(handshakes("client", "ok")) == 1
    assert wg.metric(handshakes("client", "failed")) == 2


# --------------------------------------------------------------------------
# 9. New certificates on SIGHUP

def test_reload_certificate(walgate_factory, certs, tmp_path):
    cert, key = str(tmp_path / "wg.crt"), str(tmp_path / "wg.key")
    shutil.copy(certs.wg_cert, cert)
    shutil.copy(certs.wg_key, key)
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require",
                     tls={"cert_file": cert, "key_file": key})
    conn = connect(wg, sslmode="require", channel_binding="disable")
    try:
        assert walgate_peer_cert(wg, certs.ca) == cert_der(certs.wg_cert)

        def replace(src, dst):
            shutil.copy(src, dst + ".new")
            os.replace(dst + ".new", dst)

        replace(certs.wg2_key, key)
        replace(certs.wg2_cert, cert)
        reload_and_wait(wg, "configuration reloaded")
        new = walgate_peer_cert(wg, certs.ca)
        assert new == cert_der(certs.wg2_cert)
        assert cert_info(certs.wg2_cert)["serialNumber"] != cert_info(certs.wg_cert)["serialNumber"]
        assert wg.metric(expiry("client")) == \
            ssl.cert_time_to_seconds(cert_info(certs.wg2_cert)["notAfter"])
        cur = conn.cursor()
        cur.execute("SELECT 'still here'")
        assert cur.fetchone()[0] == "still here"

        # A broken certificate: the reload fails, the last good one stays.
        generation = wg.metric(GENERATION)
        with open(cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        reload_and_wait(wg, "reload failed")
        assert wait_value(wg, RELOAD_FAILURES, 1) == 1
        assert wg.metric(GENERATION) == generation
        assert walgate_peer_cert(wg, certs.ca) == cert_der(certs.wg2_cert)
        cur.execute("SELECT 'and still'")
        assert cur.fetchone()[0] == "and still"
        psql(wg, "SELECT 1", env=tls_env(), check=True)
    finally:
        conn.close()


def test_reload_certificate_during_replication_stream(pg, walgate_factory, certs, tmp_path):
    """A certificate reload while a logical replication stream runs through
    walgate over TLS: the stream goes on, changes made after the reload
    arrive, and new handshakes present the new certificate."""
    import psycopg2.extras

    cert, key = str(tmp_path / "wg.crt"), str(tmp_path / "wg.key")
    shutil.copy(certs.wg_cert, cert)
    shutil.copy(certs.wg_key, key)
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="require",
                     tls={"cert_file": cert, "key_file": key})
    admin = superuser_connect(pg)
    cur = admin.cursor()
    slot = "tls_reload_stream"
    cur.execute("CREATE TABLE IF NOT EXISTS tls_reload_t (id int primary key)")
    cur.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (slot,))
    repl = None
    try:
        repl = connect(wg, sslmode="require", channel_binding="disable",
                       connection_factory=psycopg2.extras.LogicalReplicationConnection)
        rcur = repl.cursor()
        rcur.start_replication(slot_name=slot, decode=True)

        def read_insert(value, timeout=20):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = rcur.read_message()
                if msg is None:
                    select.select([rcur], [], [], 0.2)
                    continue
                rcur.send_feedback(flush_lsn=msg.data_start)
                if f"id[integer]:{value}" in msg.payload:
                    return True
            return False

        cur.execute("INSERT INTO tls_reload_t VALUES (1)")
        assert read_insert(1), wg.log_text()[-3000:]
        shutil.copy(certs.wg2_key, key + ".new")
        os.replace(key + ".new", key)
        shutil.copy(certs.wg2_cert, cert + ".new")
        os.replace(cert + ".new", cert)
        reload_and_wait(wg, "configuration reloaded")
        assert walgate_peer_cert(wg, certs.ca) == cert_der(certs.wg2_cert)
        cur.execute("INSERT INTO tls_reload_t VALUES (2)")
        assert read_insert(2), wg.log_text()[-3000:]
    finally:
        if repl is not None:
            repl.close()
        for _ in range(50):
            try:
                cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                break
            except Exception:
                time.sleep(0.1)
        cur.execute("DROP TABLE IF EXISTS tls_reload_t")
        admin.close()


# --------------------------------------------------------------------------
# 10. Metrics

def test_tls_metrics(pg, walgate_factory, certs):
    """Handshake counters move as they should, certificate expiry gauges
    show notAfter, and the scrape passes promtool. walgate presents a
    client certificate upstream too (server_cert_file), which PostgreSQL
    sees."""
    wg = tls_walgate(walgate_factory, certs, client_tls="require", server_tls="verify-full",
                     upstream_host="localhost",
                     tls={"server_ca_file": certs.ca, "server_cert_file": certs.client_cert,
                          "server_key_file": certs.client_key})
    proc = psql(wg, "SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                env=tls_env(), check=True)
    assert proc.stdout.decode().strip() == f"t|/CN={TEST_USER}"
    assert wait_value(wg, handshakes("client", "ok"), 1) == 1
    assert wg.metric(handshakes("upstream", "ok")) == 1

    # A client that does not trust walgate's certificate: a failed client handshake.
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_after_sslrequest(wg.host, wg.port, verifying_context(certs.other_ca))
    assert wait_value(wg, handshakes("client", "failed"), 1) == 1

    # An upstream that no longer passes verification: a failed upstream handshake.
    wg.write_config(sections={"tls": {"server_ca_file": certs.other_ca}})
    reload_and_wait(wg, "configuration reloaded")
    proc = psql(wg, "SELECT 1", env=tls_env())
    assert proc.returncode != 0 and "certificate verify failed" in text(proc), text(proc)
    assert wait_value(wg, handshakes("upstream", "failed"), 1) == 1

    m = wg.metrics()
    assert m[handshakes("client", "ok")] == 2
    assert m[handshakes("client", "failed")] == 1
    assert m[handshakes("upstream", "ok")] == 1
    assert m[handshakes("upstream", "failed")] == 1
    assert m[TLS_HANDSHAKE] == 1
    assert m[expiry("client")] == ssl.cert_time_to_seconds(cert_info(certs.wg_cert)["notAfter"])
    assert m[expiry("upstream")] == \
        ssl.cert_time_to_seconds(cert_info(certs.client_cert)["notAfter"])

    status, _, body = wg.http("/metrics")
    assert status == 200
    try:
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=body,
                               capture_output=True, timeout=30)
    except FileNotFoundError:
        pytest.fail(f"{PROMTOOL} not found: install Debian's prometheus package", pytrace=False)
    assert check.returncode == 0, (check.stdout + check.stderr).decode() + body.decode()
