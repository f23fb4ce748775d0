"""The documents stay true: what they print runs, and what they list is
what the code has.

- Every code block of README.md marked `<!-- runnable -->` (an HTML comment
  on the line before the fence) runs with bash -e -o pipefail in a scratch
  directory that holds the repository's files, with walgate and
  PostgreSQL's programs on PATH, against the throwaway PostgreSQL 15 and a
  walgate in front of it (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE and
  WALGATE_METRICS_LISTEN point at them; a role `materialize` exists, and
  stdin holds its password for `walgate --make-verifier`).
- walgate.ini.example, with every commented-out setting switched on, and
  every configuration in the manual pages pass --check-config (paths under
  /etc/walgate/ are files of the same names in a scratch directory).
- The README's configuration table is the settings table of proxy/config.c
  (keys, defaults, variables), its metric tables are what a live scrape
  exports (names, types, labels, both ways), and its alert table is the
  alert rules. Settings and metrics added later are compared the same way,
  with nothing to update here.
"""

import os
import re
import shutil
import subprocess

import pytest
import yaml

from clients import client_env, run
from pgcluster import PG_BINDIR, TEST_DB, TEST_PASSWORD, TEST_USER, issue_cert, pg_bin
from walgate import REPO_ROOT, _env_without_walgate, parse_metrics, run_walgate, walgate_bin

pytestmark = pytest.mark.walgate_only

README = os.path.join(REPO_ROOT, "README.md")
EXAMPLE = os.path.join(REPO_ROOT, "walgate.ini.example")
MAN5 = os.path.join(REPO_ROOT, "doc", "walgate.ini.5")
MAN8 = os.path.join(REPO_ROOT, "doc", "walgate.8")
CONFIG_C = os.path.join(REPO_ROOT, "proxy", "core", "config.c")
RULES = os.path.join(REPO_ROOT, "deploy", "prometheus", "walgate.rules.yml")

DOC_ROLE = "materialize"
DOC_ROLE_PASSWORD = "docs-role-pw"


def readme():
    with open(README) as f:
        return f.read()


# --------------------------------------------------------------------------
# Runnable blocks

def runnable_blocks(text):
    """[(line number, code)] of the fenced blocks right after <!-- runnable -->."""
    blocks = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != "<!-- runnable -->":
            continue
        assert i + 1 < len(lines) and lines[i + 1].startswith("```"), \
            f"README.md:{i + 1}: <!-- runnable --> is not followed by a code block"
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        blocks.append((i + 2, "\n".join(lines[i + 2:end]) + "\n"))
    return blocks


def test_readme_marks_runnable_blocks():
    blocks = runnable_blocks(readme())
    assert len(blocks) >= 3, blocks
    assert any("--make-verifier" in code for _, code in blocks)


def scratch_tree(root):
    """A directory with the repository's files (symlinked) and a bin/ with walgate."""
    for name in os.listdir(REPO_ROOT):
        if name == ".git" or name.startswith("build"):
            continue
        os.symlink(os.path.join(REPO_ROOT, name), os.path.join(root, name))
    bindir = os.path.join(root, ".bin")
    os.mkdir(bindir)
    os.symlink(walgate_bin(), os.path.join(bindir, "walgate"))
    return bindir


@pytest.fixture
def doc_role(pg):
    def drop():
        if pg.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{DOC_ROLE}'").strip():
            pg.sql(f"DROP OWNED BY {DOC_ROLE}; DROP ROLE {DOC_ROLE}", dbname=TEST_DB)
    drop()
    pg.sql(f"CREATE ROLE {DOC_ROLE} LOGIN REPLICATION PASSWORD '{DOC_ROLE_PASSWORD}'")
    yield DOC_ROLE
    drop()


@pytest.mark.parametrize("line, code", runnable_blocks(readme()),
                         ids=[f"README.md:{n}" for n, _ in runnable_blocks(readme())])
def test_runnable_block(pg, walgate_factory, doc_role, tmp_path, line, code):
    for word in re.findall(r"^\s*(\w[\w-]*)", code, re.M):
        if word not in ("walgate", "printf", "psql") and not shutil.which(word):
            pytest.skip(f"{word} is not installed")
    wg = walgate_factory()
    bindir = scratch_tree(str(tmp_path))
    env = _env_without_walgate()
    env.update(PATH=os.pathsep.join([bindir, PG_BINDIR, env.get("PATH", "/usr/bin:/bin")]),
               HOME=str(tmp_path), PGHOST=wg.host, PGPORT=str(wg.port), PGUSER=TEST_USER,
               PGPASSWORD=TEST_PASSWORD, PGDATABASE=TEST_DB, PGSSLMODE="disable",
               WALGATE_METRICS_LISTEN="%s:%d" % wg.metrics_addr)
    script = tmp_path / "block.sh"
    script.write_text(code)
    proc = subprocess.run(["bash", "-e", "-o", "pipefail", str(script)], cwd=str(tmp_path),
                          env=env, input=DOC_ROLE_PASSWORD + "\n", capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"README.md:{line}:\n{code}\n{proc.stdout}\n{proc.stderr}"
    if "--make-verifier" in code:
        verifier = (tmp_path / "verifier.txt").read_text().strip()
        stored = pg.sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{DOC_ROLE}'")
        assert stored.strip() == verifier


# --------------------------------------------------------------------------
# Configurations in the documents pass --check-config

def etc_walgate_files(pg, text, directory):
    """Put a file in directory for every /etc/walgate/... path text names;
    returns text with those paths moved there."""
    paths = sorted(set(re.findall(r"/etc/walgate/[\w./-]+", text)))
    for path in paths:
        target = os.path.join(directory, path[len("/etc/walgate/"):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        name = os.path.basename(path)
        if name.endswith("-ca.crt"):
            shutil.copy(pg.ca_cert, target)
        elif name.endswith((".crt", ".key")):
            stem = os.path.splitext(target)[0]
            if not os.path.exists(stem + ".crt"):
                cert, key = issue_cert(pg.ca, os.path.basename(stem), "walgate.docs",
                                       directory=os.path.dirname(stem))
                assert (cert, key) == (stem + ".crt", stem + ".key")
        elif name == "pgpass":
            with open(target, "w") as f:
                f.write(f"*:*:*:walgate_monitor:{TEST_PASSWORD}\n")
        else:       # the auth file
            with open(target, "w") as f:
                f.write(f'"{TEST_USER}" "{TEST_PASSWORD}"\n')
        os.chmod(target, 0o600)
        text = text.replace(path, target)
    return text


def check_config_text(pg, text, directory, env=None):
    text = etc_walgate_files(pg, text, directory)
    path = os.path.join(directory, "walgate.ini")
    with open(path, "w") as f:
        f.write(text)
    return run_walgate("--check-config", "--config", path, env=dict(env or {}, HOME=directory))


def test_example_with_every_setting_on(pg, walgate_binary, tmp_path):
    """walgate.ini.example with its commented-out settings switched on."""
    with open(EXAMPLE) as f:
        lines = f.read().splitlines()
    on = [re.sub(r"^;(\w+ = \S)", r"\1", line) for line in lines]
    assert sum(a != b for a, b in zip(lines, on)) >= 8
    proc = check_config_text(pg, "\n".join(on) + "\n", str(tmp_path))
    assert proc.returncode == 0, proc.stderr


def man_examples(path):
    with open(path) as f:
        text = f.read()
    blocks = re.findall(r"^\.EX\n(.*?)^\.EE", text, re.M | re.S)
    return [b.replace("\\-", "-").replace("\\e", "\\") for b in blocks]


def test_man_page_configurations_pass(pg, walgate_binary, tmp_path):
    configs = [b for b in man_examples(MAN5) if re.search(r"^\[\w+\]", b, re.M)]
    assert configs, "walgate.ini(5) has no example configuration"
    for i, config in enumerate(configs):
        directory = tmp_path / f"man5-{i}"
        directory.mkdir()
        proc = check_config_text(pg, config, str(directory))
        assert proc.returncode == 0, f"walgate.ini(5) example {i}:\n{config}\n{proc.stderr}"


def test_man_page_environment_example_passes(walgate_binary):
    """walgate(8)'s "from the environment alone" example, checked."""
    found = 0
    for block in man_examples(MAN8):
        for command in block.replace("\\\n", " ").splitlines():
            words = command.split()
            assignments = [w for w in words if re.match(r"^WALGATE_\w+=", w)]
            if not assignments or words[len(assignments):] != ["walgate"]:
                continue
            env = dict(w.split("=", 1) for w in assignments)
            proc = run_walgate("--check-config", env=env)
            assert proc.returncode == 0, f"{command}\n{proc.stderr}"
            found += 1
    assert found >= 1


# --------------------------------------------------------------------------
# The README's configuration table is the code's

def code_settings():
    """{(section, key): default text or None} from config_keys in proxy/config.c."""
    with open(CONFIG_C) as f:
        text = f.read()
    rows = re.findall(r'\{\s*"(\w+)",\s*"(\w+)",\s*KT_\w+,\s*OFF\(\w+\),\s*(NULL|"[^"]*")', text)
    assert len(rows) > 30
    return {(s, k): None if d == "NULL" else d.strip('"') for s, k, d in rows}


def readme_setting_rows(text):
    """{(section, key): (default cell, environment cell)} of the configuration table."""
    section = text.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| `\[(\w+)\] (\w+)`((?:, `\w+`)*) \| ([^|]*) \| ([^|]*) \|", line)
        if not m:
            continue
        keys = [m.group(2)] + re.findall(r"`(\w+)`", m.group(3))
        for key in keys:
            rows[(m.group(1), key)] = (m.group(4).strip(), m.group(5).strip())
    return rows


def test_readme_configuration_table_is_the_code():
    code = code_settings()
    rows = readme_setting_rows(readme())
    assert sorted(set(rows) - set(code)) == [], "in the README, not in proxy/config.c"
    assert sorted(set(code) - set(rows)) == [], "in proxy/config.c, not in the README"
    problems = []
    for (section, key), default in code.items():
        cell, env_cell = rows[(section, key)]
        env = f"WALGATE_{section}_{key}".upper()
        if env not in env_cell:
            problems.append(f"[{section}] {key}: the README names {env_cell}, not {env}")
        if default is not None and cell != f"`{default}`":
            problems.append(f"[{section}] {key}: README default {cell}, code {default!r}")
        if default is None and not cell.startswith("("):
            problems.append(f"[{section}] {key}: README default {cell}, code has none")
    assert problems == []


# --------------------------------------------------------------------------
# The README's metric tables are what walgate exports

def readme_metrics(text):
    """{name: (type, set of labels, may be absent)} from the metric tables."""
    section = text.split("## Metrics and health", 1)[1].split("\n## ", 1)[0]
    metrics = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or "walgate_" not in cells[0]:
            continue
        for name, labels in re.findall(r"`(walgate_\w+)(?:\{([\w,]+)\})?`", cells[0]):
            metrics[name] = (cells[1], set(labels.split(",")) if labels else set(),
                             "absent" in cells[2])
    return metrics


def scrape_families(text):
    """({family: type}, {family: [label sets of its samples]}) of a scrape."""
    types, labels = {}, {}
    for line in text.splitlines():
        m = re.match(r"^# TYPE (\w+) (\w+)$", line)
        if m:
            types[m.group(1)] = m.group(2)
            labels.setdefault(m.group(1), [])
            continue
        m = re.match(r"^(\w+)(?:\{(.*)\})? \S+$", line)
        if m:
            keys = set(re.findall(r'(\w+)="', m.group(2) or ""))
            labels.setdefault(m.group(1), []).append(keys)
    return types, labels


@pytest.fixture
def busy_walgate(pg, walgate_factory, tmp_path):
    """A walgate that exports every family: client TLS (a certificate), the
    monitor polling, a replication slot streamed through it."""
    cert, key = issue_cert(pg.ca, "walgate-docs", "walgate-docs.localhost",
                           san=["IP:127.0.0.1"], directory=str(tmp_path))
    conninfo = (f"host={pg.host} port={pg.port} dbname={TEST_DB} user={TEST_USER} "
                f"password={TEST_PASSWORD} sslmode=disable")
    wg = walgate_factory(sections={"tls": {"client_tls": "allow", "cert_file": cert,
                                           "key_file": key},
                                   "monitor": {"conninfo": conninfo, "interval": "200ms"}})
    slot = "docs_slot"
    pg.sql("DROP TABLE IF EXISTS docs_t; CREATE TABLE docs_t (id int PRIMARY KEY); "
           "DROP PUBLICATION IF EXISTS docs_pub; CREATE PUBLICATION docs_pub FOR TABLE docs_t",
           dbname=TEST_DB)
    pg.sql(f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')", dbname=TEST_DB)
    try:
        pg.sql("INSERT INTO docs_t VALUES (1)", dbname=TEST_DB)
        endpos = pg.sql("SELECT pg_current_wal_lsn()", dbname=TEST_DB).strip()
        proc = run([pg_bin("pg_recvlogical"), "-h", wg.host, "-p", str(wg.port), "-U", TEST_USER,
                    "-d", TEST_DB, "--slot", slot, "--start", "--no-loop", "-o", "proto_version=1",
                    "-o", "publication_names=docs_pub", f"--endpos={endpos}", "-f", "-"],
                   env=client_env(PGSSLMODE="disable"), timeout=60)
        assert proc.returncode == 0, proc.stderr
        wg.wait_for_metric("walgate_monitor_up", lambda v: v == 1, timeout=10)
        # the poll that sees the slot may come after pg_recvlogical is done
        wg.wait_for_metric(f'walgate_upstream_slot_active{{slot="{slot}",database="{TEST_DB}"}}',
                           lambda v: True, timeout=10)
        yield wg
    finally:
        pg.sql(f"SELECT pg_drop_replication_slot('{slot}') FROM pg_replication_slots "
               f"WHERE slot_name = '{slot}' AND NOT active", dbname=TEST_DB)
        pg.sql("DROP PUBLICATION IF EXISTS docs_pub; DROP TABLE IF EXISTS docs_t", dbname=TEST_DB)


def test_readme_metrics_are_the_scrape(busy_walgate):
    status, _, body = busy_walgate.http("/metrics")
    assert status == 200
    types, samples = scrape_families(body.decode())
    documented = readme_metrics(readme())
    problems = []
    for name, (kind, labels, may_be_absent) in documented.items():
        if name not in types:
            if not may_be_absent:
                problems.append(f"{name}: in the README, not exported")
            continue
        if types[name] != kind:
            problems.append(f"{name}: README says {kind}, walgate says {types[name]}")
        implicit = {"slot", "database"} if name.startswith(("walgate_slot_",
                                                            "walgate_upstream_slot_")) else set()
        for keys in samples[name]:
            if keys - implicit != labels:
                problems.append(f"{name}: labels {sorted(keys)}, README {sorted(labels)}")
                break
    for name in sorted(set(types) - set(documented)):
        problems.append(f"{name}: exported, not in the README")
    assert problems == []
    assert parse_metrics(body.decode())     # and it parses as the other tests read it


def test_readme_alert_table_is_the_rules():
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    listed = set(re.findall(r"^\| `(Walgate\w+)` \|", readme(), re.M))
    assert listed == alerts


# --------------------------------------------------------------------------
# scripts/test --suite, as the README prints it

@pytest.mark.parametrize("asked, expected", [
    ([], {"all-but-fuzz": "--no-suite fuzz", "integration": "--suite integration",
          "fuzz": "--suite fuzz"}),
    (["unit"], {"all-but-fuzz": "--suite unit", "integration": "", "fuzz": ""}),
    (["integration", "fuzz"], {"all-but-fuzz": "--suite integration",
                               "integration": "--suite integration", "fuzz": "--suite fuzz"}),
])
def test_scripts_test_suite_selection(asked, expected):
    """`scripts/test --suite unit` runs the unit suite only, in the builds
    that have it (meson would add it to each build's own suites)."""
    script = os.path.join(REPO_ROOT, "scripts", "test")
    with open(script) as f:
        function = re.search(r"^suite_args\(\) \{.*?^\}", f.read(), re.M | re.S).group(0)
    for own, want in expected.items():
        words = " ".join(f"'{a}'" for a in asked)
        proc = subprocess.run(["bash", "-c", f"asked=({words}); {function}\nsuite_args {own}"],
                              capture_output=True, text=True, check=True)
        assert proc.stdout.strip() == want, (asked, own, proc.stdout)
