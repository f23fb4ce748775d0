"""Upstream credentials other than the client's (auth = scram): an upstream
user per auth-file line, its password from a file read at each login or
from the GCE/GKE metadata server's OAuth token (AlloyDB / Cloud SQL IAM
database login).

The metadata server is a scripted one on loopback (http.server) whose token
the test sets; PostgreSQL 15's role "iam_sa@proj.iam" has that token as its
password, rotated by the test with ALTER ROLE, as Google rotates tokens. The
client "mz" logs in to walgate with its own password from the auth file and
ends up as the IAM role upstream. Hostile side: a metadata server that is
down, answers 500 or garbage; a missing password file. The safe outcome:
FATAL 28000 naming the source, /readyz 503 while no token is held, the
failure counted, and no token or file password in walgate's log.
"""

import http.server
import json
import os
import secrets
import select
import threading
import time

import psycopg2
import psycopg2.extras
import pytest

from clients import drop_slot, superuser_connect
from pgcluster import TEST_DB, free_port
from walgate import run_walgate
from test_auth import (certs, make_verifier, raw_login_fails, scram_walgate,  # noqa: F401
                       write_auth_file)

pytestmark = pytest.mark.walgate_only

IAM_ROLE = "iam_sa@proj.iam"
CLIENT, CLIENT_PW = "mz", "mz-client-secret"
SLOT = "wg_iam_slot"
FAILURES = 'walgate_upstream_credential_failures_total{source="%s"}'
HUGE = 256 << 20        # bytes a flooding metadata server offers
EXPIRY = 'walgate_upstream_credential_expiry_timestamp_seconds{source="gce-metadata"}'


def new_token(tag):
    return f"ya29.{tag}-{secrets.token_urlsafe(24)}"


class MetadataServer:
    """GET /token with Metadata-Flavor: Google -> {"access_token", "expires_in"},
    or whatever `mode` says: "ok", "500", "garbage"."""

    def __init__(self, token, expires_in=3600):
        self.token, self.expires_in, self.mode = token, expires_in, "ok"
        self.served = []		# tokens handed out, in order
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with owner.lock:
                    mode, token, life = owner.mode, owner.token, owner.expires_in
                if self.headers.get("Metadata-Flavor") != "Google":
                    return self.answer(403, b"missing Metadata-Flavor")
                if mode == "500":
                    return self.answer(500, b"internal error")
                if mode == "garbage":
                    return self.answer(200, b"\x00{not json at all" + os.urandom(16))
                if mode == "huge":
                    return self.flood()
                with owner.lock:
                    owner.served.append(token)
                body = json.dumps({"access_token": token, "expires_in": life,
                                   "token_type": "Bearer"}).encode()
                self.answer(200, body, "application/json")

            def answer(self, code, body, ctype="text/plain"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def flood(self):
                """A 200 whose body never ends within HUGE bytes."""
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(HUGE))
                self.end_headers()
                chunk = b" " * (1 << 20)
                try:
                    for _ in range(HUGE >> 20):
                        self.wfile.write(chunk)
                except OSError:
                    pass        # walgate hung up: what it should do

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/computeMetadata/v1/instance/service-accounts/default/token"

    def set(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, v)

    def wait_served(self, token, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if token in self.served:
                    return True
            time.sleep(0.05)
        return False

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def iam_role(pg):
    """The IAM role upstream; yields a function that sets its password."""
    admin = superuser_connect(pg)
    cur = admin.cursor()
    cur.execute(f'DROP ROLE IF EXISTS "{IAM_ROLE}"')
    cur.execute(f'CREATE ROLE "{IAM_ROLE}" LOGIN REPLICATION')

    def set_password(pw):
        cur.execute(f'ALTER ROLE "{IAM_ROLE}" PASSWORD %s', (pw,))

    try:
        yield set_password
    finally:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE usename = %s", (IAM_ROLE,))
        for (pid,) in cur.fetchall():
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        drop_slot(cur, SLOT)
        deadline = time.monotonic() + 10
        while True:
            try:
                cur.execute(f'DROP ROLE IF EXISTS "{IAM_ROLE}"')
                break
            except psycopg2.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        admin.close()


@pytest.fixture
def metadata():
    srv = MetadataServer(new_token("T0"))
    try:
        yield srv
    finally:
        srv.close()


def iam_walgate(factory, certs, tmp_path, source, auth_extra=None):  # noqa: F811
    path = write_auth_file(tmp_path / "users.txt", [], extra_lines=[
        f'"{CLIENT}" "{CLIENT_PW}" upstream_user="{IAM_ROLE}" upstream_password="{source}"'])
    return scram_walgate(factory, certs, path, auth_extra=auth_extra,
                         walgate_keys={"log_level": "debug"})


def connect(wg, **kw):
    return psycopg2.connect(host=wg.host, port=wg.port, dbname=TEST_DB, user=CLIENT,
                            password=CLIENT_PW, sslmode="require", connect_timeout=10, **kw)


def whoami(wg):
    conn = connect(wg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, current_database()")
            return cur.fetchone()
    finally:
        conn.close()


def login_until(wg, timeout=15):
    """Log in until it works (the source may not have the new password yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return whoami(wg)
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start_stream(pg, wg):
    """A logical replication stream through walgate, begun now; returns
    (connection, cursor, admin cursor)."""
    admin = superuser_connect(pg)
    acur = admin.cursor()
    acur.execute("DROP TABLE IF EXISTS iam_t")
    acur.execute("CREATE TABLE iam_t (id int PRIMARY KEY)")
    acur.execute("GRANT SELECT ON iam_t TO PUBLIC")
    acur.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (SLOT,))
    repl = connect(wg, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    rcur = repl.cursor()
    rcur.start_replication(slot_name=SLOT, decode=True)
    return repl, rcur, admin, acur


def read_until(rcur, needle, timeout=20):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        msg = rcur.read_message()
        if msg is None:
            select.select([rcur], [], [], 0.5)
            continue
        seen.append(msg.payload)
        rcur.send_feedback(flush_lsn=msg.data_start)
        if needle in msg.payload:
            return seen
    raise AssertionError(f"{needle!r} not streamed; got {seen}")


def assert_no_secret(wg, *secrets_):
    log = wg.log_text()
    for s in secrets_:
        if s in log:     # not an assert: pytest would print the secret it compared
            pytest.fail("a secret appears in walgate's log", pytrace=False)


# --------------------------------------------------------------------------

def test_gce_metadata_login_rotation_and_stream(pg, walgate_factory, certs, tmp_path,  # noqa: F811
                                                iam_role, metadata):
    t1, t2 = new_token("T1"), new_token("T2")
    iam_role(t1)
    # a short life and margin: the source refreshes every 2 s
    metadata.set(token=t1, expires_in=4)
    wg = iam_walgate(walgate_factory, certs, tmp_path, "gce-metadata",
                     {"token_url": metadata.url, "token_refresh_margin": "2s"})
    assert metadata.wait_served(t1)
    assert login_until(wg) == (IAM_ROLE, TEST_DB)
    assert wg.wait_for_log(rf'logging in upstream as user "{IAM_ROLE}"')
    status, _, body = wg.http("/readyz")
    assert status == 200, body
    assert wg.metric(EXPIRY) > time.time()

    repl, rcur, admin, acur = start_stream(pg, wg)
    try:
        acur.execute("INSERT INTO iam_t VALUES (1)")
        read_until(rcur, "iam_t: INSERT: id[integer]:1")

        # Rotation: the role's password and the served token change together.
        iam_role(t2)
        metadata.set(token=t2)
        assert metadata.wait_served(t2)
        assert login_until(wg) == (IAM_ROLE, TEST_DB)
        # Every login from now on, without SIGHUP.
        for _ in range(3):
            assert whoami(wg) == (IAM_ROLE, TEST_DB)
        # The stream that began with T1 goes on.
        acur.execute("INSERT INTO iam_t VALUES (2)")
        read_until(rcur, "iam_t: INSERT: id[integer]:2")
        assert "configuration reloaded" not in wg.log_text()
    finally:
        repl.close()
        acur.execute("DROP TABLE IF EXISTS iam_t")
        admin.close()
    assert_no_secret(wg, t1, t2)


def test_password_file_read_at_each_login(pg, walgate_factory, certs, tmp_path,  # noqa: F811
                                          iam_role):
    p1, p2 = new_token("P1"), new_token("P2")
    pw_file = tmp_path / "iam-password"
    pw_file.write_text(p1 + "\n")
    iam_role(p1)
    wg = iam_walgate(walgate_factory, certs, tmp_path, f"file:{pw_file}")
    assert whoami(wg) == (IAM_ROLE, TEST_DB)

    repl, rcur, admin, acur = start_stream(pg, wg)
    try:
        acur.execute("INSERT INTO iam_t VALUES (1)")
        read_until(rcur, "id[integer]:1")
        # An external refresher rotates it: no reload.
        iam_role(p2)
        pw_file.write_text(p2 + "\r\n")
        assert whoami(wg) == (IAM_ROLE, TEST_DB)
        acur.execute("INSERT INTO iam_t VALUES (2)")
        read_until(rcur, "id[integer]:2")
    finally:
        repl.close()
        acur.execute("DROP TABLE IF EXISTS iam_t")
        admin.close()

    # Gone, then empty: FATAL 28000 naming the source and the reason.
    pw_file.unlink()
    fields = raw_login_fails(wg, certs, CLIENT, CLIENT_PW, "28000")
    assert "source file" in fields["M"] and str(pw_file) in fields["M"], fields
    assert "No such file" in fields["M"], fields
    pw_file.write_text("\n")
    fields = raw_login_fails(wg, certs, CLIENT, CLIENT_PW, "28000")
    assert "is empty" in fields["M"], fields
    assert wg.metric(FAILURES % "file") == 2
    assert_no_secret(wg, p1, p2)


@pytest.mark.parametrize("failure, reason", [
    ("down", "no answer"),
    ("500", "HTTP status 500"),
    ("garbage", "not a JSON object"),
    ("huge", "the answer is too large"),
])
def test_gce_metadata_failure(walgate_factory, certs, tmp_path, iam_role, metadata,  # noqa: F811
                              failure, reason):
    t1 = new_token("T1")
    iam_role(t1)
    metadata.set(token=t1, mode="ok" if failure == "down" else failure)
    url = metadata.url
    if failure == "down":
        metadata.close()
        metadata.close = lambda: None
    wg = iam_walgate(walgate_factory, certs, tmp_path, "gce-metadata",
                     {"token_url": url, "token_refresh_margin": "2s"})
    assert wg.wait_for_log(r"fetching a token from .* failed", timeout=10), wg.log_text()

    fields = raw_login_fails(wg, certs, CLIENT, CLIENT_PW, "28000")
    assert "source gce-metadata" in fields["M"] and reason in fields["M"], fields
    status, _, body = wg.http("/readyz")
    assert status == 503 and b"gce-metadata" in body, (status, body)
    assert wg.metric(FAILURES % "gce-metadata") >= 2
    assert wg.metrics().get(EXPIRY) == 0
    assert_no_secret(wg, t1)
    if failure == "huge":
        # the answer was cut off, not buffered: walgate stays small
        with open(f"/proc/{wg.proc.pid}/status") as f:
            rss_kb = int(next(line for line in f if line.startswith("VmHWM:")).split()[1])
        assert rss_kb < 64 * 1024, f"walgate's peak memory reached {rss_kb} kB"


@pytest.fixture
def iam_cleartext_hba(pg, iam_role):
    """AlloyDB's IAM login: the server asks the IAM role for a cleartext
    password (over TLS). pg_hba lines for it alone, first; restored after."""
    hba = os.path.join(pg.data_dir, "pg_hba.conf")
    with open(hba) as f:
        original = f.read()
    lines = [f'hostssl all "{IAM_ROLE}" {net} password' for net in ("127.0.0.1/32", "::1/128")]
    try:
        with open(hba, "w") as f:      # in place: the file keeps its owner
            f.write("# test_iam.py\n" + "\n".join(lines) + "\n" + original)
        pg.sql("SELECT pg_reload_conf()")
        time.sleep(0.5)
        yield iam_role
    finally:
        with open(hba, "w") as f:
            f.write(original)
        pg.sql("SELECT pg_reload_conf()")


def test_alloydb_style_cleartext_for_all_users(walgate_factory, certs, tmp_path,  # noqa: F811
                                               iam_cleartext_hba, metadata):
    """[auth] upstream_user and upstream_password for every user; the token
    goes as a cleartext password only when server_auth_methods lists
    password, and only over TLS whose certificate walgate verified."""
    t1 = new_token("T1")
    iam_cleartext_hba(t1)
    metadata.set(token=t1)
    # the client's secret a verifier: the token, not a ClientKey, goes upstream
    path = write_auth_file(tmp_path / "users.txt", [(CLIENT, make_verifier(CLIENT_PW))])
    auth = {"upstream_user": IAM_ROLE, "upstream_password": "gce-metadata",
            "token_url": metadata.url}
    wg = scram_walgate(walgate_factory, certs, path, auth_extra=auth)
    assert metadata.wait_served(t1)
    fields = raw_login_fails(wg, certs, CLIENT, CLIENT_PW, "28000")
    assert "asks for a cleartext password, which [auth] server_auth_methods does not allow" \
        in fields["M"] and IAM_ROLE in fields["M"], fields
    wg.stop()

    # Hostile: with server_tls = require (no certificate check) anyone in the
    # path could be asking; the token, a bearer token for Google's APIs, is
    # not sent, even though server_auth_methods lists password.
    wg = scram_walgate(walgate_factory, certs, path, server_tls="require",
                       auth_extra={**auth, "server_auth_methods": "scram-sha-256, password"})
    assert metadata.wait_served(t1)
    fields = raw_login_fails(wg, certs, CLIENT, CLIENT_PW, "28000")
    assert "only to an upstream whose certificate it verified" in fields["M"], fields
    assert wg.metric('walgate_upstream_auth_refused_total{reason="auth_method"}') == 1
    assert_no_secret(wg, t1)
    wg.stop()

    wg = scram_walgate(walgate_factory, certs, path,
                       auth_extra={**auth, "server_auth_methods": "scram-sha-256, password"})
    assert login_until(wg) == (IAM_ROLE, TEST_DB)
    assert_no_secret(wg, t1)


def test_reload_starts_and_stops_the_token_source(walgate_factory, certs, tmp_path,  # noqa: F811
                                                  iam_role, metadata):
    t1 = new_token("T1")
    iam_role(t1)
    metadata.set(token=t1)
    path = write_auth_file(tmp_path / "users.txt", [(CLIENT, CLIENT_PW)])
    wg = scram_walgate(walgate_factory, certs, path, auth_extra={"token_url": metadata.url})
    time.sleep(0.5)
    assert metadata.served == [], "fetched although no user needs a token"
    assert EXPIRY not in wg.metrics()

    wg.write_config(sections={"auth": {"upstream_user": IAM_ROLE,
                                       "upstream_password": "gce-metadata"}})
    wg.reload()
    assert metadata.wait_served(t1)
    assert wg.wait_for_log(rf'modes: .*upstream login as "{IAM_ROLE}" with the password from '
                           r'gce-metadata')
    assert login_until(wg) == (IAM_ROLE, TEST_DB)
    assert wg.wait_for_metric(EXPIRY, lambda v: v > time.time())

    # back to the client's own user and password: the source stops, its token is gone
    wg.write_config(sections={"auth": {"upstream_user": None, "upstream_password": None}})
    wg.reload()
    assert wg.wait_for_log(r"configuration reloaded.*\n(.*\n)*.*configuration reloaded", timeout=10)
    deadline = time.monotonic() + 5
    while EXPIRY in wg.metrics() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert EXPIRY not in wg.metrics()
    status, _, _ = wg.http("/readyz")
    assert status == 200
    assert_no_secret(wg, t1)


@pytest.mark.parametrize("key, value, reason", [
    ("UPSTREAM_PASSWORD", "S3cr3t-Hunter2", "UPSTREAM_PASSWORD: expected auth-file"),
    ("UPSTREAM_PASSWORD", "file:relative/path", "file:/absolute/path"),
    ("TOKEN_URL", "https://metadata.google.internal/token", "is not http://host[:port]/path"),
    ("UPSTREAM_USER", "", "UPSTREAM_USER: invalid value \"\": must not be empty"),
])
def test_bad_settings_refused(walgate_binary, key, value, reason):
    env = {"WALGATE_UPSTREAM_HOST": "127.0.0.1", "WALGATE_ACCESS_ALLOW": "127.0.0.1",
           f"WALGATE_AUTH_{key}": value}
    proc = run_walgate("--check-config", env=env)
    assert proc.returncode == 1 and reason in proc.stderr, (proc.returncode, proc.stderr)
    if key == "UPSTREAM_PASSWORD":      # a password written there by mistake is not echoed
        assert value not in proc.stdout + proc.stderr, proc.stderr


def test_bad_auth_file_option_refused(walgate_binary, tmp_path):
    path = write_auth_file(tmp_path / "users.txt", [], extra_lines=[
        f'"{CLIENT}" "{CLIENT_PW}" upstream_pasword="gce-metadata"'])
    env = {"WALGATE_UPSTREAM_HOST": "127.0.0.1", "WALGATE_ACCESS_ALLOW": "127.0.0.1",
           "WALGATE_AUTH_AUTH": "scram", "WALGATE_AUTH_AUTH_FILE": path}
    proc = run_walgate("--check-config", env=env)
    assert proc.returncode == 1 and f"{path}:2: unknown option" in proc.stderr, proc.stderr
