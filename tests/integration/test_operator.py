"""What an operator meets first: the health probe as the Dockerfile and
the README print it, the monitor's connection string as the example
writes it, libpq's notices in a JSON log, and the login line.

Each test runs walgate the way an operator would (environment only for the
probe, the example's conninfo keys for the monitor) and checks the answer
they get."""

import json
import os
import subprocess

import pytest

from clients import connect, psql
from pgcluster import LOOPBACK_V4, TEST_DB, TEST_PASSWORD, TEST_USER, issue_cert
from walgate import _env_without_walgate, run_walgate, walgate_bin

pytestmark = pytest.mark.walgate_only


def probe(path, env, *extra):
    full = _env_without_walgate()
    full.update(env)
    return subprocess.run([walgate_bin(), *extra, "--probe", path], env=full,
                          capture_output=True, text=True, timeout=15)


# -- walgate --probe --------------------------------------------------------

def test_probe_needs_only_the_metrics_address(walgate_factory):
    """`walgate --probe /healthz` as printed, from an environment that has
    the metrics address and nothing else (no [upstream] host, no allow)."""
    wg = walgate_factory()
    host, port = wg.metrics_addr
    proc = probe("/healthz", {"WALGATE_METRICS_LISTEN": f"{host}:{port}"})
    assert proc.returncode == 0, proc.stderr
    assert "200" in proc.stderr and proc.stdout == "ok\n"   # status line on stderr, body on stdout
    # the server's own file works too, whatever else it says
    proc = subprocess.run([walgate_bin(), "--config", wg.config_path, "--probe", "/readyz"],
                          env=_env_without_walgate(), capture_output=True, text=True, timeout=15)
    assert proc.returncode == 0, proc.stderr


def test_probe_works_when_metrics_allow_excludes_loopback(walgate_factory):
    """[metrics] allow narrowed to the scrapers (no loopback): the probe, a
    connection from the address it came in on, still gets /healthz and
    /readyz; /metrics stays refused, and so does another local address."""
    wg = walgate_factory(sections={"metrics": {"allow": "10.0.0.0/8"}})
    host, port = wg.metrics_addr
    env = {"WALGATE_METRICS_LISTEN": f"0.0.0.0:{port}" if host == LOOPBACK_V4 else f"{host}:{port}"}
    for path in ("/healthz", "/readyz"):
        proc = probe(path, env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert wg.http("/metrics")[0] == 403
    assert wg.http("/slots")[0] == 403
    with pytest.raises(ConnectionError):     # closed at accept, before any byte is read
        wg.http("/healthz", source="127.0.0.2")


def test_check_config_and_probe_both_run(walgate_factory):
    """--check-config --probe: each gives its verdict, neither is dropped."""
    wg = walgate_factory()
    proc = subprocess.run([walgate_bin(), "--config", wg.config_path, "--check-config",
                           "--probe", "/healthz"], env=_env_without_walgate(),
                          capture_output=True, text=True, timeout=15)
    assert proc.returncode == 0, proc.stderr
    assert "is valid" in proc.stdout and "probe" in proc.stderr and "200" in proc.stderr
    # a bad configuration fails the pair, and the probe still reports
    proc = subprocess.run([walgate_bin(), "--check-config", "--probe", "/healthz"],
                          env={**_env_without_walgate(),
                               "WALGATE_METRICS_LISTEN": "%s:%d" % wg.metrics_addr},
                          capture_output=True, text=True, timeout=15)
    assert proc.returncode == 1
    assert "[upstream] host is required" in proc.stderr and "200" in proc.stderr, \
        proc.stdout + proc.stderr


# -- [monitor] conninfo as the example writes it ---------------------------

def write_passfile(directory, pg, mode):
    path = os.path.join(directory, "pgpass")
    with open(path, "w") as f:
        f.write(f"localhost:{pg.port}:{TEST_DB}:{TEST_USER}:{TEST_PASSWORD}\n")
    os.chmod(path, mode)
    return path


def example_conninfo(pg, passfile, sslrootcert=True):
    """walgate.ini.example's conninfo, with the test cluster's names."""
    conninfo = (f"host=localhost port={pg.port} dbname={TEST_DB} user={TEST_USER} "
                f"passfile={passfile} sslmode=verify-full")
    return conninfo + (f" sslrootcert={pg.ca_cert}" if sslrootcert else "")


def test_example_monitor_conninfo_works(pg, walgate_factory, tmp_path):
    """verify-full with sslrootcert and a 0600 passfile: the monitor logs in."""
    passfile = write_passfile(tmp_path, pg, 0o600)
    wg = walgate_factory(sections={"monitor": {"conninfo": example_conninfo(pg, passfile),
                                               "interval": "200ms"}})
    assert wg.wait_for_metric("walgate_monitor_up", lambda v: v == 1, timeout=10) == 1


@pytest.mark.parametrize("problem", ["no_sslrootcert", "group_readable", "missing"])
def test_monitor_conninfo_mistakes_refused(pg, walgate_factory, tmp_path, problem):
    """What libpq would ignore silently or only on stderr is a
    --check-config error in plain words."""
    passfile = write_passfile(tmp_path, pg, 0o640 if problem == "group_readable" else 0o600)
    if problem == "missing":
        passfile = str(tmp_path / "no-such-pgpass")
    conninfo = example_conninfo(pg, passfile, sslrootcert=problem != "no_sslrootcert")
    wg = walgate_factory(start=False, sections={"monitor": {"conninfo": conninfo}})
    env = {"HOME": str(tmp_path)}      # no ~/.postgresql/root.crt to fall back on
    proc = run_walgate("--check-config", "--config", wg.config_path, env=env)
    assert proc.returncode == 1, proc.stdout
    expected = {"no_sslrootcert": "sslmode=verify-full needs sslrootcert=FILE",
                "group_readable": "has mode 0640: libpq ignores a password file",
                "missing": "No such file or directory"}[problem]
    assert "[monitor] conninfo" in proc.stderr and expected in proc.stderr, proc.stderr
    assert TEST_PASSWORD not in proc.stderr


def test_libpq_notices_keep_the_json_log_json(pg, walgate_factory):
    """A WARNING the upstream sends the monitor goes through walgate's
    logger: with log_format = json every line of the log is JSON."""
    schema = "walgate_notice_test"
    pg.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; "
           f"CREATE FUNCTION {schema}.pg_is_in_recovery() RETURNS boolean LANGUAGE plpgsql AS "
           f"$$BEGIN RAISE WARNING 'walgate notice test'; RETURN pg_catalog.pg_is_in_recovery(); "
           f"END$$", dbname=TEST_DB)
    try:
        conninfo = (f"host={pg.host} port={pg.port} dbname={TEST_DB} user={TEST_USER} "
                    f"password={TEST_PASSWORD} sslmode=disable "
                    f"options='-c search_path={schema},pg_catalog'")
        wg = walgate_factory(walgate={"log_format": "json", "log_level": "info"},
                             sections={"monitor": {"conninfo": conninfo, "interval": "200ms"}})
        assert wg.wait_for_log("walgate notice test", timeout=10), wg.log_text()
        lines = [line for line in wg.log_text().splitlines() if line.strip()]
        for line in lines:
            json.loads(line)
        assert any("monitor: the upstream says: WARNING:  walgate notice test"
                   in json.loads(line)["msg"] for line in lines), lines
    finally:
        pg.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE", dbname=TEST_DB)


# -- log lines --------------------------------------------------------------

def test_login_line_only_after_the_upstream_accepted(pg, walgate_factory):
    """A login the server refuses logs no `login:` line (only its closed:
    line); an accepted one does."""
    wg = walgate_factory()
    with pytest.raises(Exception):
        connect(wg, password="not-the-password")
    assert wg.wait_for_log(r"closed: .*user=walgate_test", timeout=5), wg.log_text()
    assert "login: user=walgate_test" not in wg.log_text()
    psql(wg, "SELECT 1", check=True)
    assert wg.wait_for_log(r"login: user=walgate_test database=walgate_test", timeout=5)


# -- walgate --make-verifier ------------------------------------------------

def make_verifier(password):
    proc = subprocess.run([walgate_bin(), "--make-verifier"], input=password + "\n",
                          capture_output=True, text=True, timeout=15, env=_env_without_walgate())
    assert proc.returncode == 0, proc.stderr
    verifier = proc.stdout.strip()
    assert verifier.startswith("SCRAM-SHA-256$4096:") and "\n" not in verifier, proc.stdout
    assert password not in proc.stdout + proc.stderr
    return verifier


@pytest.fixture
def verifier_role(pg):
    role = "walgate_verifier_role"

    def drop():
        if pg.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'").strip():
            pg.sql(f"DROP OWNED BY {role}; DROP ROLE {role}", dbname=TEST_DB)
    drop()
    yield role
    drop()


@pytest.mark.parametrize("password", ["correct horse battery staple", "pass\u00a0w\u00f6rd\u00ad!"])
def test_make_verifier_for_alter_role_and_the_auth_file(pg, walgate_factory, tmp_path,
                                                        verifier_role, password):
    """No plaintext anywhere: the verifier walgate prints is what PostgreSQL
    15 stores with ALTER ROLE ... PASSWORD, and the same line in the auth
    file lets walgate (auth = scram) authenticate the client and log in
    upstream with the ClientKey its proof reveals. The second password
    needs SASLprep (a no-break space mapped to a space, a soft hyphen
    mapped to nothing), as PostgreSQL and libpq apply it."""
    verifier = make_verifier(password)
    assert make_verifier(password) != verifier      # a fresh salt every time
    pg.sql(f"CREATE ROLE {verifier_role} LOGIN")
    pg.sql(f"ALTER ROLE {verifier_role} PASSWORD '{verifier}'")
    stored = pg.sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{verifier_role}'")
    assert stored.strip() == verifier
    cert, key = issue_cert(pg.ca, "walgate-mv", "walgate-mv.localhost",
                           san=["DNS:localhost", "IP:127.0.0.1"], directory=str(tmp_path))
    users = tmp_path / "users.txt"
    users.write_text(f'"{verifier_role}" "{verifier}"\n')
    users.chmod(0o600)
    wg = walgate_factory(sections={
        "tls": {"client_tls": "require", "cert_file": cert, "key_file": key,
                "server_tls": "verify-full", "server_ca_file": pg.ca_cert},
        "auth": {"auth": "scram", "auth_file": str(users)}}, upstream_host="localhost")
    for binding in ("require", "disable"):
        conn = connect(wg, user=verifier_role, password=password, sslmode="require",
                       channel_binding=binding)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_user")
                assert cur.fetchone()[0] == verifier_role
        finally:
            conn.close()
    assert wg.wait_for_log("logged in upstream")
    with pytest.raises(Exception):
        connect(wg, user=verifier_role, password=password + "x", sslmode="require")


def test_make_verifier_refuses_an_empty_password():
    proc = subprocess.run([walgate_bin(), "--make-verifier"], input="\n", capture_output=True,
                          text=True, timeout=15, env=_env_without_walgate())
    assert proc.returncode == 1 and "empty" in proc.stderr and proc.stdout == ""
