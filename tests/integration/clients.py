"""Running PostgreSQL clients (psql, pgbench, pg_recvlogical, psycopg2)
against a target: anything with .host and .port (a Walgate, the cluster
itself, or the direct-mode stand-in)."""

import subprocess
import time

import psycopg2

from pgcluster import TEST_DB, TEST_PASSWORD, TEST_USER, clean_env, pg_bin

CLIENT_TIMEOUT = 120


def client_env(**extra):
    """Environment for libpq programs: no stray PG* variables, the test
    role's password, and a connect timeout."""
    return clean_env(PGPASSWORD=TEST_PASSWORD, PGCONNECT_TIMEOUT="10", **extra)


def conn_args(target, dbname=TEST_DB, user=TEST_USER):
    return ["-h", target.host, "-p", str(target.port), "-U", user, "-d", dbname]


def run(argv, env=None, input=None, timeout=CLIENT_TIMEOUT, check=False):
    """Run a program, capturing bytes; on check, a non-zero exit raises with
    the output in the message."""
    proc = subprocess.run(argv, env=env or client_env(), input=input,
                          stdin=None if input is not None else subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited with {proc.returncode}\n"
                             f"stdout: {proc.stdout.decode(errors='replace')}\n"
                             f"stderr: {proc.stderr.decode(errors='replace')}")
    return proc


def psql(target, sql, *extra_args, check=False, **kwargs):
    """psql -X -A -t -c SQL through target; returns the CompletedProcess."""
    argv = [pg_bin("psql"), "-X", "-A", "-t", *conn_args(target), *extra_args, "-c", sql]
    return run(argv, check=check, **kwargs)


def pgbench(target, *args, **kwargs):
    return run([pg_bin("pgbench"), *conn_args(target), *args], **kwargs)


def connect(target, **overrides):
    """A psycopg2 connection to the test database through target."""
    params = {"host": target.host, "port": target.port, "dbname": TEST_DB, "user": TEST_USER,
              "password": TEST_PASSWORD, "connect_timeout": 10}
    params.update(overrides)
    return psycopg2.connect(**params)


def superuser_connect(cluster, dbname=TEST_DB):
    """A psycopg2 connection to the cluster as its superuser, over the unix socket."""
    conn = psycopg2.connect(**cluster.superuser_params(dbname))
    conn.autocommit = True
    return conn


def drop_slot(cur, slot, timeout=10.0):
    """Drop a replication slot with a superuser cursor, waiting for the
    walsender that may still hold it to let go."""
    deadline = time.monotonic() + timeout
    while True:
        cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        row = cur.fetchone()
        if row is None:
            return
        if not row[0]:
            cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"replication slot {slot} stays active")
        time.sleep(0.1)
