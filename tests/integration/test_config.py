"""The command line and the configuration file: --check-config, --version,
--help, error messages that point at the file, line and key, and the
WALGATE_<SECTION>_<KEY> environment override."""

import os

import pytest

from clients import connect
from pgcluster import TestCA, closed_port, free_port, issue_cert
from walgate import Walgate, _access_metrics_sections, binary_features, render_ini, run_walgate

pytestmark = pytest.mark.walgate_only


def valid_sections(upstream_port=5432):
    sections = {
        "walgate": {"listen": f"127.0.0.1:{free_port()}", "log_level": "info",
                    "log_format": "text", "max_client_conn": "100",
                    "startup_timeout": "10s", "drain_timeout": "30s"},
        "upstream": {"host": "127.0.0.1", "port": upstream_port, "connect_timeout": "10s"},
    }
    if "access" in binary_features():
        sections.update(_access_metrics_sections())
    return sections


def write(tmp_path, text, name="walgate.ini"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def line_of(text, needle):
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the file")


def test_check_config_valid(walgate_binary, tmp_path):
    path = write(tmp_path, render_ini(valid_sections()))
    proc = run_walgate("--check-config", "--config", path)
    assert proc.returncode == 0, proc.stderr


def test_check_config_example_file(walgate_binary):
    """The shipped example is a valid configuration."""
    from walgate import REPO_ROOT
    proc = run_walgate("--check-config", "--config", os.path.join(REPO_ROOT, "walgate.ini.example"))
    assert proc.returncode == 0, proc.stderr


def test_check_config_all_units(walgate_binary, tmp_path):
    sections = valid_sections()
    sections["walgate"].update({"startup_timeout": "1500ms", "drain_timeout": "2min",
                                "log_level": "debug", "log_format": "json"})
    sections["upstream"]["connect_timeout"] = "3"
    proc = run_walgate("--check-config", "--config", write(tmp_path, render_ini(sections)))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("section, key, value", [
    ("walgate", "bogus", "1"),
    ("upstream", "bogus_key", "x"),
])
def test_check_config_unknown_key(walgate_binary, tmp_path, section, key, value):
    sections = valid_sections()
    sections[section][key] = value
    text = render_ini(sections)
    path = write(tmp_path, text)
    proc = run_walgate("--check-config", "--config", path)
    assert proc.returncode == 1, proc.stderr
    assert path in proc.stderr or os.path.basename(path) in proc.stderr, proc.stderr
    assert f":{line_of(text, key + ' =')}" in proc.stderr, proc.stderr
    assert key in proc.stderr, proc.stderr


@pytest.mark.parametrize("key, value", [
    ("startup_timeout", "ten"),
    ("startup_timeout", "10 parsecs"),
    ("max_client_conn", "-5"),
    ("log_level", "chatty"),
    ("log_format", "xml"),
    ("listen", "localhost:5432"),
    ("listen", "::1:5432"),
])
def test_check_config_bad_value(walgate_binary, tmp_path, key, value):
    sections = valid_sections()
    sections["walgate"][key] = value
    text = render_ini(sections)
    path = write(tmp_path, text)
    proc = run_walgate("--check-config", "--config", path)
    assert proc.returncode == 1, proc.stderr
    assert os.path.basename(path) in proc.stderr, proc.stderr
    assert f":{line_of(text, key + ' =')}" in proc.stderr, proc.stderr
    assert key in proc.stderr, proc.stderr


@pytest.mark.parametrize("section, key, value", [
    ("auth", "server_auth_methods", "scram-sha-256, kerberos"),
    ("auth", "server_auth_methods", ","),
    ("auth", "server_auth_methods", "md5;password"),
    ("tls", "server_channel_binding", "always"),
])
def test_check_config_bad_upstream_auth(walgate_binary, tmp_path, section, key, value):
    sections = valid_sections()
    sections[section] = {key: value}
    text = render_ini(sections)
    proc = run_walgate("--check-config", "--config", write(tmp_path, text))
    assert proc.returncode == 1, proc.stderr
    assert f":{line_of(text, key + ' =')}: invalid value" in proc.stderr, proc.stderr
    assert f'for key "{key}" in section [{section}]: expected' in proc.stderr, proc.stderr


def test_check_config_upstream_auth_lists(walgate_binary, tmp_path):
    sections = valid_sections()
    sections["auth"] = {"server_auth_methods": " none,md5 , password,scram-sha-256"}
    sections["tls"] = {"server_channel_binding": "disable"}
    proc = run_walgate("--check-config", "--config", write(tmp_path, render_ini(sections)))
    assert proc.returncode == 0, proc.stderr


def test_check_config_missing_file(walgate_binary, tmp_path):
    path = str(tmp_path / "nope.ini")
    proc = run_walgate("--check-config", "--config", path)
    assert proc.returncode == 1
    assert "nope.ini" in proc.stderr


def test_start_with_bad_config_fails(walgate_binary, tmp_path):
    sections = valid_sections()
    sections["walgate"]["bogus"] = "1"
    proc = run_walgate("--config", write(tmp_path, render_ini(sections)))
    assert proc.returncode == 1
    assert "bogus" in proc.stderr


def test_version(walgate_binary):
    proc = run_walgate("--version")
    assert proc.returncode == 0, proc.stderr
    assert "walgate" in proc.stdout.splitlines()[0]


def test_help(walgate_binary):
    proc = run_walgate("--help")
    assert proc.returncode == 0, proc.stderr
    assert "--config" in proc.stdout


def test_unknown_option(walgate_binary):
    proc = run_walgate("--no-such-option")
    assert proc.returncode != 0


def test_environment_overrides_file(pg, walgate_factory):
    wrong = closed_port()
    wg = walgate_factory(upstream_port=wrong, env={"WALGATE_UPSTREAM_PORT": str(pg.port)})
    conn = connect(wg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('port')")
            assert cur.fetchone()[0] == str(pg.port)
    finally:
        conn.close()


def test_environment_bad_value_refused(walgate_binary, tmp_path):
    path = write(tmp_path, render_ini(valid_sections()))
    proc = run_walgate("--check-config", "--config", path, env={"WALGATE_UPSTREAM_PORT": "many"})
    assert proc.returncode == 1
    assert "WALGATE_UPSTREAM_PORT" in proc.stderr


def test_walgate_class_writes_valid_config(walgate_binary):
    """The harness's own config passes --check-config."""
    wg = Walgate(upstream_port=5432)
    try:
        proc = run_walgate("--check-config", "--config", wg.config_path)
        assert proc.returncode == 0, proc.stderr
    finally:
        wg.cleanup()


# -- what an operator gets wrong, and the answer that names it ---------------

def test_misspelled_environment_variable_refused(walgate_binary, tmp_path):
    """A WALGATE_<SECTION>_ variable that names no setting is an error
    naming it; one whose section is no section is a warning naming it (the
    test and bench scripts use WALGATE_BIN and the like)."""
    path = write(tmp_path, render_ini(valid_sections()))
    proc = run_walgate("--check-config", "--config", path,
                       env={"WALGATE_UPSTREAM_PORTT": "1"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "WALGATE_UPSTREAM_PORTT" in proc.stderr and "no such setting" in proc.stderr
    proc = run_walgate("--check-config", "--config", path, env={"WALGATE_FOO_BAR": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "WALGATE_FOO_BAR is not a walgate setting" in proc.stderr


def test_inline_hash_comment(pg, walgate_factory):
    """'#' after a value starts a comment, as ';' does: the host is the
    address, not "127.0.0.1 # the db"."""
    wg = walgate_factory(start=False, upstream={"host": "127.0.0.1 # the db",
                                                "port": f"{pg.port}   # its port"})
    proc = run_walgate("--check-config", "--config", wg.config_path)
    assert proc.returncode == 0, proc.stderr
    wg.start()
    conn = connect(wg)
    conn.close()
    assert "# the db" not in wg.log_text()


@pytest.mark.parametrize("key, value, accepted", [
    ("relay_buffer_size", "1", "accepted from 4kB to 64MB"),
    ("startup_timeout", "5ms", "accepted from 100ms to 24h"),
    ("max_client_conn", "0", "accepted from 1 to 1000000"),
    ("max_client_conn", "-5", "accepted from 1 to 1000000"),
    ("startup_timeout", "10 parsecs", "use ms, s, min or h"),
    ("max_message_size", "1 TB", "use B, kB, MB or GB"),
])
def test_check_config_states_the_range(walgate_binary, tmp_path, key, value, accepted):
    sections = valid_sections()
    sections["walgate"][key] = value
    text = render_ini(sections)
    proc = run_walgate("--check-config", "--config", write(tmp_path, text))
    assert proc.returncode == 1
    assert f":{line_of(text, key + ' =')}:" in proc.stderr and key in proc.stderr, proc.stderr
    assert accepted in proc.stderr, proc.stderr


def test_units_in_any_case(walgate_binary, tmp_path):
    sections = valid_sections()
    sections["walgate"].update({"startup_timeout": "10S", "drain_timeout": "1MIN",
                                "max_message_size": "1gb", "relay_buffer_size": "256KB"})
    proc = run_walgate("--check-config", "--config", write(tmp_path, render_ini(sections)))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("key", ["cert_file", "ca_file", "server_ca_file"])
def test_tls_file_errors_name_line_and_key(walgate_binary, tmp_path, key):
    """A missing certificate file: file, line, key and the plain reason."""
    sections = valid_sections()
    sections["tls"] = {key: str(tmp_path / "missing.crt")}
    text = render_ini(sections)
    proc = run_walgate("--check-config", "--config", write(tmp_path, text))
    assert proc.returncode == 1
    assert f"walgate.ini:{line_of(text, key + ' =')}: [tls] {key}: cannot open" in proc.stderr, \
        proc.stderr
    assert "No such file or directory" in proc.stderr
    # a directory is said so, and the environment is named for what it sets
    proc = run_walgate("--check-config", "--config", write(tmp_path, render_ini(valid_sections())),
                       env={f"WALGATE_TLS_{key.upper()}": str(tmp_path)})
    assert proc.returncode == 1
    assert f"environment WALGATE_TLS_{key.upper()}: \"{tmp_path}\" is a directory" in proc.stderr


def test_tls_min_version_error_names_line(walgate_binary, tmp_path):
    sections = valid_sections()
    sections["tls"] = {"min_version": "TLSv1.1"}
    text = render_ini(sections)
    proc = run_walgate("--check-config", "--config", write(tmp_path, text))
    assert proc.returncode == 1
    assert f"walgate.ini:{line_of(text, 'min_version =')}: [tls] min_version" in proc.stderr
    assert "TLSv1.2 or TLSv1.3" in proc.stderr


def test_check_config_prints_effective_modes(walgate_binary, tmp_path):
    """auto without a client certificate is passthrough: an auth file is
    then not used, and --check-config and the start say so."""
    users = tmp_path / "users.txt"
    users.write_text('"someone" "secret"\n')
    users.chmod(0o600)
    sections = valid_sections()
    sections["auth"] = {"auth_file": str(users)}
    path = write(tmp_path, render_ini(sections))
    proc = run_walgate("--check-config", "--config", path)
    assert proc.returncode == 0, proc.stderr
    modes = next(line for line in proc.stdout.splitlines() if line.startswith("walgate: modes:"))
    assert "client TLS disable (auto: no cert_file)" in modes, modes
    assert "server TLS prefer" in modes
    assert "auth passthrough (auto: client TLS is off)" in modes
    assert f"auth_file {users} NOT USED" in modes


def test_start_and_reload_log_effective_modes(walgate_factory, tmp_path):
    wg = walgate_factory()
    assert wg.wait_for_log(r"LOG modes: client TLS disable .*; auth passthrough \(auto: no auth_file\)")
    users = tmp_path / "users.txt"
    users.write_text('"someone" "secret"\n')
    users.chmod(0o600)
    wg.write_config(sections={"auth": {"auth_file": str(users)}})
    wg.reload()
    assert wg.wait_for_log(r"WARNING modes: .*auth_file .* NOT USED")


@pytest.mark.parametrize("key, variable", [("cert_file", None), ("key_file", "WALGATE_TLS_KEY_FILE")])
def test_tls_file_that_does_not_parse_names_line_and_key(walgate_binary, tmp_path, key, variable):
    """A file that opens but is not PEM: where the setting was made, and
    the reason in words before OpenSSL's code."""
    good = tmp_path / "good"
    good.mkdir()
    ca = TestCA.create(str(good))
    cert, private_key = issue_cert(ca, "walgate", "walgate.test", directory=str(good))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    files = {"cert_file": cert, "key_file": private_key}
    files[key] = str(garbage)
    sections = valid_sections()
    sections["tls"] = {"client_tls": "require", **files}
    env = {}
    if variable:
        env[variable] = files.pop(key)
        sections["tls"] = {"client_tls": "require", **files}
    text = render_ini(sections)
    proc = run_walgate("--check-config", "--config", write(tmp_path, text), env=env)
    assert proc.returncode == 1
    where = f"environment {variable}" if variable else \
        f"walgate.ini:{line_of(text, key + ' =')}: [tls] {key}"
    assert f"{where}: cannot load" in proc.stderr, proc.stderr
    plain = {"cert_file": "not a PEM file (no -----BEGIN line)",
             "key_file": "no private key found"}[key]
    assert plain in proc.stderr, proc.stderr
