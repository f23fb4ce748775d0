"""The command line and the configuration file: --check-config, --version,
--help, error messages that point at the file, line and key, and the
WALGATE_<SECTION>_<KEY> environment override."""

import os

import pytest

from clients import connect
from pgcluster import closed_port, free_port
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
