#!/usr/bin/python3
"""A throwaway PostgreSQL cluster for walgate's integration tests.

PgCluster creates a cluster in a temporary directory (or one you name),
gives it a test CA and a TLS server certificate, configures it for logical
replication over loopback TCP and starts it:

    cluster = PgCluster.create()      # initdb + certificates + config
    cluster.start()                   # pg_ctl start, then role and database
    cluster.dsn()                     # "host=127.0.0.1 port=... user=walgate_test ..."
    cluster.sql("SELECT 1")           # as superuser over the unix socket
    cluster.stop(); cluster.cleanup()

Layout of the base directory:

    BASE/data/              the cluster (PGDATA)
    BASE/certs/             ca.crt, ca.key, server.crt, server.key, ...
    BASE/postgresql.log     the server log (pg_ctl -l)
    BASE/.s.PGSQL.PORT      the unix socket
    BASE/pgcluster.json     what `stop` and `info` need to find the cluster again

PostgreSQL refuses to run as root, so when this process is root, initdb and
pg_ctl run as the "postgres" user (runuser) and BASE is given to that user.

As a command (used by the demo script):

    /usr/bin/python3 tests/integration/pgcluster.py start DIR
        prints the port on the first line and the libpq connection string
        of the test role on the second; the cluster keeps running.
    /usr/bin/python3 tests/integration/pgcluster.py stop DIR [--remove]
    /usr/bin/python3 tests/integration/pgcluster.py info DIR   (JSON)
"""

import argparse
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile

PG_BINDIR = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")

TEST_USER = "walgate_test"
TEST_PASSWORD = "walgate-test-pw"
TEST_DB = "walgate_test"
SUPERUSER = "postgres"
LOOPBACK_V4 = "127.0.0.1"
LOOPBACK_V6 = "::1"

STATE_FILE = "pgcluster.json"


def pg_bin(name):
    """Absolute path of a PostgreSQL program; fails loudly if it is missing."""
    path = os.path.join(PG_BINDIR, name)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"PostgreSQL program not found: {path} (set PG_BINDIR)")
    return path


def clean_env(**extra):
    """os.environ without libpq's PG* variables, plus extra (None removes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def _port_is_free(port):
    for family, addr in ((socket.AF_INET, LOOPBACK_V4), (socket.AF_INET6, LOOPBACK_V6)):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((addr, port))
            except OSError:
                return False
    return True


def free_port():
    """A TCP port that is free on both 127.0.0.1 and ::1 right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK_V4, 0))
            port = s.getsockname()[1]
        if _port_is_free(port):
            return port
    raise RuntimeError("no free loopback port found")


def closed_port():
    """A loopback port on which nothing listens (connections are refused)."""
    return free_port()


def quote_conninfo(value):
    """Quote a value for a libpq keyword/value connection string."""
    value = str(value)
    if value and not any(c in value for c in " '\\\t\n"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def make_dsn(params):
    return " ".join(f"{k}={quote_conninfo(v)}" for k, v in params.items() if v is not None)


# --------------------------------------------------------------------------
# Certificates (openssl CLI)

def _openssl(*args, cwd=None):
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


class TestCA:
    """A certificate authority for tests, kept as ca.crt/ca.key in a directory."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory):
        self.dir = directory
        self.cert = os.path.join(directory, "ca.crt")
        self.key = os.path.join(directory, "ca.key")

    @classmethod
    def create(cls, directory, cn="walgate test CA"):
        os.makedirs(directory, exist_ok=True)
        ca = cls(directory)
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", ca.key, "-out", ca.cert, "-days", "3650",
                 "-subj", f"/CN={cn}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        os.chmod(ca.key, 0o600)
        return ca

    def issue(self, name, cn, san=None, client=False):
        """Issue NAME.crt/NAME.key in the CA's directory; see issue_cert."""
        return issue_cert(self, name, cn, san=san, client=client)


def issue_cert(ca, name, cn, san=None, client=False, directory=None):
    """Issue a certificate signed by the test CA.

    name: file stem (NAME.crt, NAME.key) in directory (default: the CA's).
    cn:   the subject's common name (for a client certificate, the user).
    san:  subjectAltName entries, e.g. ["DNS:localhost", "IP:127.0.0.1"];
          None means none for a client certificate and DNS:<cn> otherwise.
    Returns (cert_path, key_path); the key is mode 0600.
    """
    directory = directory or ca.dir
    cert = os.path.join(directory, f"{name}.crt")
    key = os.path.join(directory, f"{name}.key")
    csr = os.path.join(directory, f"{name}.csr")
    ext = os.path.join(directory, f"{name}.ext")
    if san is None and not client:
        san = [f"DNS:{cn}"]
    lines = ["basicConstraints=critical,CA:FALSE",
             "keyUsage=critical,digitalSignature,keyEncipherment",
             "extendedKeyUsage=" + ("clientAuth" if client else "serverAuth,clientAuth")]
    if san:
        lines.append("subjectAltName=" + ",".join(san))
    with open(ext, "w") as f:
        f.write("\n".join(lines) + "\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
    _openssl("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key,
             "-CAcreateserial", "-out", cert, "-days", "3650", "-extfile", ext)
    os.chmod(key, 0o600)
    os.unlink(csr)
    os.unlink(ext)
    return cert, key


# --------------------------------------------------------------------------
# The cluster

class PgCluster:
    """One PostgreSQL cluster under a base directory."""

    host = LOOPBACK_V4
    user = TEST_USER
    password = TEST_PASSWORD
    dbname = TEST_DB

    def __init__(self, base_dir, port):
        self.base_dir = os.path.abspath(base_dir)
        self.port = port
        self.data_dir = os.path.join(self.base_dir, "data")
        self.socket_dir = self.base_dir
        self.log_file = os.path.join(self.base_dir, "postgresql.log")
        self.cert_dir = os.path.join(self.base_dir, "certs")
        self.ca = TestCA(self.cert_dir)
        self.ca_cert = self.ca.cert
        self.ca_key = self.ca.key
        self.server_cert = os.path.join(self.cert_dir, "server.crt")
        self.server_key = os.path.join(self.cert_dir, "server.key")
        self._owns_base_dir = False
        self.running = False

    # -- running commands as the cluster's owner

    @staticmethod
    def _as_root():
        return os.geteuid() == 0

    def _owner_cmd(self, argv):
        if self._as_root():
            return ["runuser", "-u", SUPERUSER, "--", *argv]
        return argv

    def _run_owner(self, argv, timeout=120):
        proc = subprocess.run(self._owner_cmd(argv), cwd=self.base_dir, env=clean_env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}{self._log_tail()}")
        return proc.stdout

    def _chown_tree(self, path):
        if not self._as_root():
            return
        pw = pwd.getpwnam(SUPERUSER)
        os.chown(path, pw.pw_uid, pw.pw_gid)
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)

    def _log_tail(self, nbytes=4000):
        try:
            with open(self.log_file, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - nbytes))
                return "\n--- postgresql.log (tail) ---\n" + f.read().decode(errors="replace")
        except OSError:
            return ""

    # -- creation

    @classmethod
    def create(cls, base_dir=None, port=None):
        """initdb, certificates and configuration; the cluster is not started."""
        owns = base_dir is None
        if base_dir is None:
            base_dir = tempfile.mkdtemp(prefix="walgate-pg-")
        else:
            os.makedirs(base_dir, exist_ok=True)
            if os.path.exists(os.path.join(base_dir, "data")):
                raise FileExistsError(f"{base_dir}/data already exists")
        # The socket directory and PGDATA's parent must be reachable by postgres.
        os.chmod(base_dir, 0o755)
        cluster = cls(base_dir, port or free_port())
        cluster._owns_base_dir = owns
        try:
            cluster._make_certs()
            cluster._chown_tree(cluster.base_dir)
            cluster._initdb()
            cluster._configure()
            cluster._save_state()
        except BaseException:
            if owns:
                shutil.rmtree(base_dir, ignore_errors=True)
            raise
        return cluster

    def _make_certs(self):
        TestCA.create(self.cert_dir)
        issue_cert(self.ca, "server", "localhost",
                   san=["DNS:localhost", "IP:127.0.0.1", "IP:::1"])

    def issue_cert(self, name, cn, san=None, client=False):
        """Issue another certificate from the cluster's test CA (NAME.crt/.key
        in the certs directory); returns (cert_path, key_path)."""
        paths = issue_cert(self.ca, name, cn, san=san, client=client)
        if self._as_root():
            pw = pwd.getpwnam(SUPERUSER)
            for p in paths:
                os.chown(p, pw.pw_uid, pw.pw_gid)
        return paths

    def _initdb(self):
        self._run_owner([pg_bin("initdb"), "-D", self.data_dir, "-U", SUPERUSER,
                         "--auth-local=trust", "--auth-host=scram-sha-256",
                         "--encoding=UTF8", "--locale=C", "--no-sync"])

    def _configure(self):
        settings = {
            "listen_addresses": f"{LOOPBACK_V4},{LOOPBACK_V6}",
            "port": self.port,
            "unix_socket_directories": self.socket_dir,
            "wal_level": "logical",
            # Room for test_hardening's soak: 200 sessions through one
            # walgate, 24 of them replication, plus stragglers.
            "max_wal_senders": 64,
            "max_replication_slots": 64,
            "max_connections": 300,
            "ssl": "on",
            "ssl_cert_file": self.server_cert,
            "ssl_key_file": self.server_key,
            "ssl_ca_file": self.ca_cert,
            "password_encryption": "scram-sha-256",
            "fsync": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
            "log_connections": "on",
            "log_disconnections": "on",
            "log_line_prefix": "%m [%p] %q%u@%d ",
        }
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
            f.write("\n# walgate integration tests\n")
            for key, value in settings.items():
                if isinstance(value, int):
                    f.write(f"{key} = {value}\n")
                else:
                    f.write(f"{key} = '{value}'\n")
        hba = [
            "local all all trust",
            "local replication all trust",
            "host all all 127.0.0.1/32 scram-sha-256",
            "host all all ::1/128 scram-sha-256",
            "host replication all 127.0.0.1/32 scram-sha-256",
            "host replication all ::1/128 scram-sha-256",
        ]
        with open(os.path.join(self.data_dir, "pg_hba.conf"), "w") as f:
            f.write("\n".join(hba) + "\n")

    def _save_state(self):
        state = {"base_dir": self.base_dir, "port": self.port}
        path = os.path.join(self.base_dir, STATE_FILE)
        with open(path, "w") as f:
            json.dump(state, f)

    @classmethod
    def load(cls, base_dir):
        """The cluster that `create` made in base_dir (for `stop`/`info`)."""
        with open(os.path.join(base_dir, STATE_FILE)) as f:
            state = json.load(f)
        cluster = cls(state["base_dir"], state["port"])
        cluster.running = os.path.exists(os.path.join(cluster.data_dir, "postmaster.pid"))
        return cluster

    # -- life cycle

    def start(self):
        """Start the server and wait for it; on the first start, create the test
        role and database."""
        if not os.path.exists(self.log_file):
            with open(self.log_file, "a"):
                pass
            self._chown_tree(self.log_file)
        self._run_owner([pg_bin("pg_ctl"), "-D", self.data_dir, "-l", self.log_file,
                         "-w", "-t", "60", "start"])
        self.running = True
        self._bootstrap()

    def stop(self, mode="fast"):
        """pg_ctl stop with mode smart|fast|immediate."""
        if not self.running:
            return
        self._run_owner([pg_bin("pg_ctl"), "-D", self.data_dir, "-m", mode, "-w", "-t", "60",
                         "stop"])
        self.running = False

    def cleanup(self, remove_dir=None):
        """Stop the server if it still runs (immediate mode), then remove the
        base directory: by default only if this object created it."""
        if remove_dir is None:
            remove_dir = self._owns_base_dir
        try:
            if self.running or os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
                self.running = True
                self.stop("immediate")
        finally:
            if remove_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def _bootstrap(self):
        exists = self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{TEST_USER}'")
        if exists.strip() == "1":
            return
        self.sql(f"CREATE ROLE {TEST_USER} LOGIN SUPERUSER REPLICATION "
                 f"PASSWORD '{TEST_PASSWORD}'")
        self.sql(f"CREATE DATABASE {TEST_DB} OWNER {TEST_USER}")

    # -- connecting

    def params(self, **overrides):
        """libpq connection parameters of the test role over loopback TCP."""
        params = {"host": self.host, "port": self.port, "dbname": self.dbname,
                  "user": self.user, "password": self.password}
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def dsn(self, **overrides):
        """The same as a libpq connection string; an override of None drops a key."""
        return make_dsn(self.params(**overrides))

    def superuser_params(self, dbname="postgres"):
        """Connection parameters for the superuser over the unix socket (trust)."""
        return {"host": self.socket_dir, "port": self.port, "dbname": dbname, "user": SUPERUSER}

    def sql(self, query, dbname="postgres", timeout=60):
        """Run SQL as the superuser over the unix socket with psql; returns the
        unaligned, tuples-only output. Raises on error."""
        p = self.superuser_params(dbname)
        proc = subprocess.run(
            [pg_bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", p["host"], "-p", str(p["port"]), "-U", p["user"], "-d", p["dbname"],
             "-c", query],
            env=clean_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed ({proc.returncode}) on {query!r}:\n{proc.stderr}")
        return proc.stdout

    def log_text(self):
        try:
            with open(self.log_file, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def info(self):
        return {
            "base_dir": self.base_dir,
            "data_dir": self.data_dir,
            "socket_dir": self.socket_dir,
            "log_file": self.log_file,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.dbname,
            "dsn": self.dsn(),
            "ca_cert": self.ca_cert,
            "ca_key": self.ca_key,
            "server_cert": self.server_cert,
            "server_key": self.server_key,
            "running": self.running,
        }


# --------------------------------------------------------------------------
# Command line

def main(argv=None):
    parser = argparse.ArgumentParser(description="Throwaway PostgreSQL cluster for walgate tests")
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="create (if needed) and start a cluster in DIR")
    p_start.add_argument("dir")
    p_start.add_argument("--port", type=int, default=None)
    p_stop = sub.add_parser("stop", help="stop the cluster in DIR")
    p_stop.add_argument("dir")
    p_stop.add_argument("--mode", default="fast", choices=["smart", "fast", "immediate"])
    p_stop.add_argument("--remove", action="store_true", help="also remove DIR")
    p_info = sub.add_parser("info", help="print the cluster's paths and settings as JSON")
    p_info.add_argument("dir")
    args = parser.parse_args(argv)

    base = os.path.abspath(args.dir)
    if args.command == "start":
        if os.path.exists(os.path.join(base, STATE_FILE)):
            cluster = PgCluster.load(base)
            if not cluster.running:
                cluster.start()
        else:
            cluster = PgCluster.create(base, port=args.port)
            cluster.start()
        print(cluster.port)
        print(cluster.dsn())
    elif args.command == "stop":
        cluster = PgCluster.load(base)
        if cluster.running:
            cluster.stop(args.mode)
        if args.remove:
            shutil.rmtree(base, ignore_errors=True)
    elif args.command == "info":
        print(json.dumps(PgCluster.load(base).info(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
