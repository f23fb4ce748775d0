"""Per-slot replication metrics: what walgate reads from the streams it
relays (walgate_slot_*), what it polls from the upstream with libpq
(walgate_upstream_*), /slots, and readiness from the poller.

Every number is checked against something independent: the workload the
test ran, the messages the client itself received, or PostgreSQL's own
pg_replication_slots."""

import json
import select
import subprocess
import time

import psycopg2
import psycopg2.extras
import pytest

from clients import client_env, conn_args, drop_slot, psql, run, superuser_connect
from pgcluster import TEST_DB, TEST_PASSWORD, TEST_USER, closed_port, pg_bin
from test_metrics import promtool_check

pytestmark = pytest.mark.walgate_only

TABLE = "slot_t"
PUBLICATION = "slot_pub"


# -- helpers ---------------------------------------------------------------

def slot_key(name, slot, database=TEST_DB, **labels):
    extra = "".join(f',{k}="{v}"' for k, v in labels.items())
    return f'{name}{{slot="{slot}",database="{database}"{extra}}}'


def wait_metric(wg, key, predicate, timeout=10.0):
    value = wg.wait_for_metric(key, predicate, timeout=timeout)
    assert value is not None and predicate(value), f"{key} = {value}"
    return value


def lsn_number(cur, expr):
    cur.execute(f"SELECT pg_wal_lsn_diff({expr}, '0/0')::bigint")
    return cur.fetchone()[0]


def monitor_conninfo(pg):
    return (f"host={pg.host} port={pg.port} dbname={TEST_DB} user={TEST_USER} "
            f"password={TEST_PASSWORD} sslmode=disable")


@pytest.fixture
def slot_walgate(pg, walgate_factory):
    """A walgate polling the upstream every 200 ms, slot series kept 2 s."""
    def make(**sections):
        merged = {"monitor": {"conninfo": monitor_conninfo(pg), "interval": "200ms"},
                  "metrics": {"slot_expiry": "2s"}}
        for name, keys in sections.items():
            merged.setdefault(name, {}).update(keys)
        return walgate_factory(sections=merged)
    return make


class SlotCursor(psycopg2.extensions.cursor):
    """A cursor that remembers the slots to drop after the test."""
    slots = None


@pytest.fixture
def sql(pg):
    """A superuser cursor on the test database, with the table, the
    publication and cleanup of the slots the test names."""
    conn = superuser_connect(pg)
    cur = conn.cursor(cursor_factory=SlotCursor)
    cur.execute(f"DROP PUBLICATION IF EXISTS {PUBLICATION}; DROP TABLE IF EXISTS {TABLE}")
    cur.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, v text)")
    cur.execute(f"ALTER TABLE {TABLE} REPLICA IDENTITY FULL")
    cur.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE {TABLE}")
    cur.slots = []
    yield cur
    for slot in cur.slots:
        drop_slot(cur, slot)
    cur.execute(f"DROP PUBLICATION IF EXISTS {PUBLICATION}; DROP TABLE IF EXISTS {TABLE}")
    conn.close()


def create_logical_slot(cur, slot):
    cur.slots.append(slot)
    cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))




# The known workload: 5 transactions, counted by hand.
WORKLOAD = [
    f"INSERT INTO {TABLE} SELECT g, 'v' || g FROM generate_series(1, 100) g",
    f"UPDATE {TABLE} SET v = v || '!' WHERE id <= 10",
    f"DELETE FROM {TABLE} WHERE id > 95",
    f"TRUNCATE {TABLE}",
    # large: 20,000 changes in one transaction (streamed where streaming is on)
    f"INSERT INTO {TABLE} SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g",
]
WORKLOAD_COUNTS = {"transactions": 5, "insert": 20100, "update": 10, "delete": 5, "truncate": 1}


def run_workload(cur):
    for statement in WORKLOAD:
        cur.execute(statement)


def assert_counts(wg, slot, counts):
    metrics = wg.metrics()
    got = {"transactions": metrics.get(slot_key("walgate_slot_transactions_total", slot))}
    for op in ("insert", "update", "delete", "truncate"):
        got[op] = metrics.get(slot_key("walgate_slot_changes_total", slot, op=op))
    assert got == counts


# -- psycopg2's LogicalReplicationConnection --------------------------------

class Stream:
    """A pgoutput stream read with psycopg2 through walgate, counting the
    pgoutput message types it receives itself."""

    def __init__(self, target, slot, options=None):
        self.conn = psycopg2.connect(
            host=target.host, port=target.port, dbname=TEST_DB, user=TEST_USER,
            password=TEST_PASSWORD, connect_timeout=10,
            connection_factory=psycopg2.extras.LogicalReplicationConnection)
        self.cur = self.conn.cursor()
        opts = {"proto_version": "1", "publication_names": PUBLICATION}
        opts.update(options or {})
        self.cur.start_replication(slot_name=slot, decode=False, options=opts)
        self.types = {}
        self.last_start = 0

    def read_until(self, done, timeout=30.0):
        """Read messages (never confirming anything) until done(self)."""
        deadline = time.monotonic() + timeout
        while not done(self):
            assert time.monotonic() < deadline, f"stream stalled; received {self.types}"
            msg = self.cur.read_message()
            if msg is None:
                select.select([self.cur], [], [], 0.2)
                continue
            kind = chr(msg.payload[0])
            self.types[kind] = self.types.get(kind, 0) + 1
            self.last_start = msg.data_start

    def commits(self):
        return self.types.get("C", 0) + self.types.get("c", 0)

    def confirm_all(self):
        """Confirm everything the server has said it sent (keepalives too)."""
        msg = self.cur.read_message()           # take in pending keepalives first
        while msg is not None:
            msg = self.cur.read_message()
        end = max(self.cur.wal_end, self.last_start)
        self.cur.send_feedback(write_lsn=end, flush_lsn=end, force=True)
        return end

    def close(self):
        self.conn.close()


def test_psycopg2_stream_counts_and_acknowledgement(pg, slot_walgate, sql):
    """Withheld feedback shows as unacknowledged bytes and a rising flush
    lag; feedback brings them back to 0 and walgate's flushed position is
    the slot's confirmed_flush_lsn. Transactions and changes match the
    workload exactly, and what the client itself received."""
    wg = slot_walgate()
    create_logical_slot(sql, "slot_psy")
    stream = Stream(wg, "slot_psy")
    try:
        wait_metric(wg, slot_key("walgate_slot_streaming", "slot_psy"), lambda v: v == 1)
        run_workload(sql)
        stream.read_until(lambda s: s.commits() >= 5)
        assert_counts(wg, "slot_psy", WORKLOAD_COUNTS)
        assert stream.types["I"] == 20100 and stream.types["U"] == 10
        assert stream.types["D"] == 5 and stream.types["T"] == 1

        unack_key = slot_key("walgate_slot_unacknowledged_bytes", "slot_psy")
        first = wait_metric(wg, unack_key, lambda v: v > 1_000_000)
        assert wg.metric(slot_key("walgate_slot_flushed_lsn_bytes", "slot_psy")) == 0
        sql.execute(f"INSERT INTO {TABLE} SELECT g, 'more' FROM generate_series(30001, 30100) g")
        stream.read_until(lambda s: s.commits() >= 6)
        assert wait_metric(wg, unack_key, lambda v: v > first) > first
        # unconfirmed for a second at least: the flush lag says so between updates
        time.sleep(1.0)
        lag = wg.metric(slot_key("walgate_slot_flush_lag_seconds", "slot_psy"))
        assert lag >= 1.0, lag

        deadline = time.monotonic() + 15
        while True:
            end = stream.confirm_all()
            time.sleep(0.2)
            if wg.metric(unack_key) == 0 or time.monotonic() > deadline:
                break
        assert wg.metric(unack_key) == 0
        flushed = wg.metric(slot_key("walgate_slot_flushed_lsn_bytes", "slot_psy"))
        assert flushed >= end > 0
        # the walsender takes the same position as confirmed_flush_lsn
        for _ in range(50):
            confirmed = lsn_number(sql, "(SELECT confirmed_flush_lsn FROM pg_replication_slots "
                                        "WHERE slot_name = 'slot_psy')")
            if confirmed == flushed:
                break
            time.sleep(0.1)
        assert confirmed == flushed
        assert wg.metric(slot_key("walgate_slot_status_updates_total", "slot_psy")) >= 1
        counts = dict(WORKLOAD_COUNTS, transactions=6, insert=20200)
        assert_counts(wg, "slot_psy", counts)
        delay = wg.metric(slot_key("walgate_slot_commit_delay_seconds", "slot_psy"))
        assert 0 <= delay < 60

        _, _, body = wg.http("/metrics")
        proc = promtool_check(body)
        assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    finally:
        stream.close()
    wait_metric(wg, slot_key("walgate_slot_streaming", "slot_psy"), lambda v: v == 0)


def test_flush_lag_measures_the_confirmation_delay(pg, slot_walgate, sql):
    """A client that confirms a position 1.5 s after receiving it, while
    more has been sent since, has a flush lag of about 1.5 s, as
    pg_stat_replication would show. Once it confirms everything sent, the
    lag is 0 at once: it is behind by nothing (pg_stat_replication keeps
    the measured lag until the next report)."""
    wg = slot_walgate()
    create_logical_slot(sql, "slot_lag")
    stream = Stream(wg, "slot_lag")
    try:
        wait_metric(wg, slot_key("walgate_slot_streaming", "slot_lag"), lambda v: v == 1)
        sql.execute(f"INSERT INTO {TABLE} VALUES (1, 'one')")
        stream.read_until(lambda s: s.commits() >= 1)
        received = time.monotonic()
        time.sleep(1.5)
        first_lsn = wg.metric(slot_key("walgate_slot_sent_lsn_bytes", "slot_lag"))
        sql.execute(f"INSERT INTO {TABLE} VALUES (2, 'two')")
        stream.read_until(lambda s: s.commits() >= 2)
        sent_key = slot_key("walgate_slot_sent_lsn_bytes", "slot_lag")
        wait_metric(wg, sent_key, lambda v: v > first_lsn)
        stream.cur.send_feedback(write_lsn=int(first_lsn), flush_lsn=int(first_lsn), force=True)
        confirmed = time.monotonic()
        lag_key = slot_key("walgate_slot_flush_lag_seconds", "slot_lag")
        updates = slot_key("walgate_slot_status_updates_total", "slot_lag")
        wait_metric(wg, slot_key("walgate_slot_flushed_lsn_bytes", "slot_lag"),
                    lambda v: v == first_lsn)
        lag = wg.metric(lag_key)
        assert 1.4 <= lag <= (confirmed - received) + 0.5, lag
        assert wg.metric(updates) >= 1
        write_lag = wg.metric(slot_key("walgate_slot_write_lag_seconds", "slot_lag"))
        assert 1.4 <= write_lag <= (confirmed - received) + 0.5, write_lag
        # everything sent confirmed: sent = written = flushed, and both lags 0
        sent_lsn = wg.metric(sent_key)
        stream.cur.send_feedback(write_lsn=int(sent_lsn), flush_lsn=int(sent_lsn), force=True)
        wait_metric(wg, slot_key("walgate_slot_flushed_lsn_bytes", "slot_lag"),
                    lambda v: v == sent_lsn)
        metrics = wg.metrics()
        if metrics[sent_key] == sent_lsn:      # no keepalive moved it meanwhile
            assert metrics[lag_key] == 0, metrics[lag_key]
            assert metrics[slot_key("walgate_slot_write_lag_seconds", "slot_lag")] == 0
    finally:
        stream.close()


# -- pg_recvlogical, pg_receivewal -----------------------------------------

def recvlogical(target, slot, endpos, outfile, proto_version, streaming):
    argv = [pg_bin("pg_recvlogical"), *conn_args(target), "--slot", slot, "--start",
            "--no-loop", "-o", f"proto_version={proto_version}",
            "-o", f"publication_names={PUBLICATION}", "-s", "1",
            f"--endpos={endpos}", "-f", outfile]
    if streaming:
        argv += ["-o", "streaming=on"]
    # a small decoding memory, so that the large transaction is streamed
    env = client_env(PGOPTIONS="-c logical_decoding_work_mem=64kB")
    return run(argv, env=env, timeout=60)


@pytest.mark.parametrize("proto_version,streaming", [(1, False), (2, True)])
def test_pg_recvlogical_counts(pg, slot_walgate, sql, tmp_path, proto_version, streaming):
    """pg_recvlogical with pgoutput v1, and v2 with streaming of large
    transactions: exact counts, and the flushed position is what the
    server recorded as confirmed."""
    wg = slot_walgate()
    slot = f"slot_rl{proto_version}"
    create_logical_slot(sql, slot)
    run_workload(sql)
    sql.execute("SELECT pg_current_wal_lsn()")
    endpos = sql.fetchone()[0]
    proc = recvlogical(wg, slot, endpos, str(tmp_path / "out"), proto_version, streaming)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    wait_metric(wg, slot_key("walgate_slot_streaming", slot), lambda v: v == 0)
    assert_counts(wg, slot, WORKLOAD_COUNTS)
    metrics = wg.metrics()
    assert metrics[slot_key("walgate_slot_sent_lsn_bytes", slot)] > 0
    assert metrics[slot_key("walgate_slot_messages_total", slot)] > 20100
    assert metrics[slot_key("walgate_slot_bytes_total", slot, direction="upstream_to_client")] > 4_000_000
    assert metrics[slot_key("walgate_slot_malformed_messages_total", slot)] == 0
    flushed = metrics[slot_key("walgate_slot_flushed_lsn_bytes", slot)]
    confirmed = lsn_number(sql, f"(SELECT confirmed_flush_lsn FROM pg_replication_slots "
                                f"WHERE slot_name = '{slot}')")
    assert flushed == confirmed
    errors = [k for k, v in metrics.items() if k.startswith("walgate_protocol_errors_total") and v]
    assert errors == []
    # the line shows the options pg_recvlogical sent, and only those
    line = wg.wait_for_log(rf"replication: START_REPLICATION SLOT {slot} LOGICAL .*$").group(0)
    assert f'proto_version={proto_version} publication_names="{PUBLICATION}"' in line, line
    assert ("streaming=on" in line) == streaming, line
    assert "streaming=0" not in line and "streaming=off" not in line, line
    if streaming:
        # the large transaction came in stream blocks, and was counted once
        with open(tmp_path / "out", "rb") as f:
            assert len(f.read()) > 0


def test_physical_stream_with_pg_receivewal(pg, slot_walgate, sql, tmp_path):
    """A physical stream from a physical slot is followed like a logical
    one: positions, messages, and the slot appears in both views."""
    wg = slot_walgate()
    sql.slots.append("slot_phys")
    sql.execute("SELECT pg_create_physical_replication_slot('slot_phys', true)")
    sql.execute(f"INSERT INTO {TABLE} SELECT g, repeat('p', 100) FROM generate_series(1, 5000) g")
    sql.execute("SELECT pg_current_wal_lsn()")
    endpos = sql.fetchone()[0]
    endpos_n = lsn_number(sql, f"'{endpos}'::pg_lsn")
    outdir = tmp_path / "wal"
    outdir.mkdir()
    argv = [pg_bin("pg_receivewal"), "-h", wg.host, "-p", str(wg.port), "-U", TEST_USER,
            "--slot", "slot_phys", "-D", str(outdir), "--no-loop", "-s", "1",
            f"--endpos={endpos}"]
    proc = run(argv, env=client_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    key = slot_key("walgate_slot_sent_lsn_bytes", "slot_phys", database="")
    wait_metric(wg, slot_key("walgate_slot_streaming", "slot_phys", database=""), lambda v: v == 0)
    metrics = wg.metrics()
    assert metrics[key] >= endpos_n
    assert metrics[slot_key("walgate_slot_messages_total", "slot_phys", database="")] > 0
    assert metrics[slot_key("walgate_slot_bytes_total", "slot_phys", database="",
                            direction="upstream_to_client")] > 500_000
    assert "START_REPLICATION SLOT slot_phys PHYSICAL" in wg.log_text()
    info = slot_key("walgate_upstream_slot_info", "slot_phys", database="", type="physical", plugin="")
    wait_metric(wg, info, lambda v: v == 1)


# -- the poller --------------------------------------------------------------

def test_consumer_gone_shows_inactive_slot_with_growing_lag(pg, slot_walgate, sql, tmp_path):
    """After its consumer has gone, the poller shows the slot inactive and
    its lag and retained WAL growing with every insert; the stream series
    disappear slot_expiry after the session ended."""
    wg = slot_walgate()
    create_logical_slot(sql, "slot_gone")
    sql.execute(f"INSERT INTO {TABLE} VALUES (1, 'one')")
    sql.execute("SELECT pg_current_wal_lsn()")
    endpos = sql.fetchone()[0]
    proc = recvlogical(wg, "slot_gone", endpos, str(tmp_path / "out"), 1, False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")

    active = slot_key("walgate_upstream_slot_active", "slot_gone")
    lag = slot_key("walgate_upstream_slot_lag_bytes", "slot_gone")
    retained = slot_key("walgate_upstream_slot_retained_bytes", "slot_gone")
    wait_metric(wg, active, lambda v: v == 0)
    before = wg.metrics()
    sql.execute(f"INSERT INTO {TABLE} SELECT g, repeat('g', 500) FROM generate_series(2, 2001) g")
    wait_metric(wg, lag, lambda v: v > before[lag] + 1_000_000)
    assert wg.metric(retained) > before[retained] + 1_000_000
    assert wg.metric(active) == 0
    assert wg.metric(slot_key("walgate_upstream_slot_wal_status", "slot_gone", status="reserved")) == 1
    assert wg.metric("walgate_upstream_up") == 1
    assert wg.metric("walgate_upstream_poll_duration_seconds") > 0

    status, headers, body = wg.http("/slots")
    assert status == 200 and headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["upstream"]["up"] is True
    entry = next(s for s in doc["slots"] if s["slot"] == "slot_gone")
    assert entry["upstream"]["active"] is False and entry["upstream"]["plugin"] == "pgoutput"
    assert entry["upstream"]["lag_bytes"] > 1_000_000
    assert entry["stream"] is None or entry["stream"]["streaming"] is False

    # slot_expiry = 2s: the stream series go, the upstream's stay
    streaming = slot_key("walgate_slot_streaming", "slot_gone")
    deadline = time.monotonic() + 10
    while streaming in wg.metrics() and time.monotonic() < deadline:
        time.sleep(0.2)
    metrics = wg.metrics()
    assert streaming not in metrics
    assert active in metrics


def test_xmin_horizon_ages_with_each_transaction(pg, slot_walgate, sql):
    """A logical slot holds back catalog_xmin: its age, as walgate reports
    it, equals PostgreSQL's age(catalog_xmin) and grows with every
    transaction that takes an xid; a physical slot without
    hot_standby_feedback has no xmin, so no sample."""
    wg = slot_walgate()
    create_logical_slot(sql, "slot_horizon")
    sql.slots.append("slot_horizon_phys")
    sql.execute("SELECT pg_create_physical_replication_slot('slot_horizon_phys', true)")
    catalog_age = slot_key("walgate_upstream_slot_catalog_xmin_age_transactions", "slot_horizon")
    first = wait_metric(wg, catalog_age, lambda v: v >= 0)
    for _ in range(40):                 # 40 transactions, 40 xids
        sql.execute("SELECT txid_current()")
    sql.execute("SELECT age(catalog_xmin) FROM pg_replication_slots WHERE slot_name = 'slot_horizon'")
    expected = sql.fetchone()[0]
    assert expected >= first + 40
    wait_metric(wg, catalog_age, lambda v: v == expected)
    metrics = wg.metrics()
    assert slot_key("walgate_upstream_slot_xmin_age_transactions", "slot_horizon") not in metrics
    assert not any("slot_horizon_phys" in k and "xmin_age" in k for k in metrics)
    doc = json.loads(wg.http("/slots")[2])
    entry = next(s for s in doc["slots"] if s["slot"] == "slot_horizon")
    assert entry["upstream"]["catalog_xmin_age"] == expected
    assert entry["upstream"]["xmin_age"] is None


def test_readyz_follows_the_poller(pg, slot_walgate):
    """/readyz turns 503 when the poller cannot reach the upstream, and 200
    again when it can; walgate_upstream_up follows."""
    wg = slot_walgate()
    wait_metric(wg, "walgate_upstream_up", lambda v: v == 1)
    assert wg.http("/readyz")[0] == 200
    pg.stop()
    try:
        wait_metric(wg, "walgate_upstream_up", lambda v: v == 0)
        status, _, body = wg.http("/readyz")
        assert status == 503, body
        assert b"the monitor could not connect to the upstream" in body, body
        doc = json.loads(wg.http("/slots")[2])
        assert doc["upstream"]["up"] is False and doc["upstream"]["error"]
        assert doc["upstream"]["failed_at"] == "connect", doc
        assert wg.metric("walgate_monitor_up") == 0
    finally:
        pg.start()
    wait_metric(wg, "walgate_upstream_up", lambda v: v == 1)
    assert wg.http("/readyz")[0] == 200
    assert wg.wait_for_log("monitor: polling the upstream failed")


def test_monitor_with_wrong_password_reports_down(pg, walgate_factory):
    """A poller that cannot log in says so in the log, /slots and the
    metrics, and never shows the password. It is the monitor that is down:
    the upstream answered, and clients can be relayed, so walgate stays
    ready (a sidecar's pod must not turn NotReady over the monitor's
    credentials)."""
    conninfo = monitor_conninfo(pg).replace(TEST_PASSWORD, "not-the-password")
    wg = walgate_factory(sections={"monitor": {"conninfo": conninfo, "interval": "200ms"}})
    wait_metric(wg, 'walgate_monitor_poll_failures_total{stage="login"}', lambda v: v >= 2)
    metrics = wg.metrics()
    assert metrics["walgate_monitor_up"] == 0
    assert metrics["walgate_upstream_up"] == 1
    assert metrics['walgate_monitor_poll_failures_total{stage="connect"}'] == 0
    status, _, body = wg.http("/readyz")
    assert status == 200, body
    psql(wg, "SELECT 1", check=True)
    deadline = time.monotonic() + 10
    while True:
        doc = json.loads(wg.http("/slots")[2])
        if "password authentication failed" in doc["upstream"]["error"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "password authentication failed" in doc["upstream"]["error"], doc
    assert doc["upstream"]["up"] is False and doc["upstream"]["reachable"] is True, doc
    assert doc["upstream"]["failed_at"] == "login", doc
    assert "not-the-password" not in wg.log_text()
    assert wg.wait_for_log("monitor: polling the upstream failed at login \\(the upstream answers; "
                           ".*password authentication failed")
    assert wg.http("/readyz")[0] == 200


def test_monitor_of_another_server_leaves_readiness_alone(pg, walgate_factory):
    """A monitor that polls some other host or port (here: nothing listens)
    says nothing about [upstream]: readiness follows the clients."""
    conninfo = (f"host={pg.host} port={closed_port()} dbname={TEST_DB} user={TEST_USER} "
                f"password={TEST_PASSWORD} sslmode=disable connect_timeout=2")
    wg = walgate_factory(sections={"monitor": {"conninfo": conninfo, "interval": "200ms"}})
    wait_metric(wg, 'walgate_monitor_poll_failures_total{stage="connect"}', lambda v: v >= 2)
    assert wg.metric("walgate_upstream_up") == 0    # the server the monitor polls is down
    status, _, body = wg.http("/readyz")
    assert status == 200, body


def test_monitor_reload_enables_polling(pg, walgate_factory):
    """[monitor] conninfo set by a reload starts polling without a restart."""
    wg = walgate_factory()
    assert "walgate_upstream_up" not in wg.metrics()
    wg.write_config(sections={"monitor": {"conninfo": monitor_conninfo(pg), "interval": "200ms"}})
    wg.reload()
    wait_metric(wg, "walgate_upstream_up", lambda v: v == 1)


# -- bad replication input ----------------------------------------------------

def test_malformed_replication_command_is_counted_and_relayed(pg, walgate_factory):
    """A replication command walgate cannot parse is counted and logged,
    and still goes to the server, whose error the client gets."""
    wg = walgate_factory()
    dsn = (f"host={wg.host} port={wg.port} user={TEST_USER} dbname={TEST_DB} "
           f"replication=database")
    proc = subprocess.run([pg_bin("psql"), "-X", "-d", dsn, "-c",
                           'START_REPLICATION SLOT "unterminated LOGICAL 0/0'],
                          env=client_env(), capture_output=True, timeout=30)
    assert proc.returncode != 0
    assert b"syntax error" in proc.stderr or b"unterminated" in proc.stderr, proc.stderr
    key = 'walgate_protocol_errors_total{kind="replication_command"}'
    wait_metric(wg, key, lambda v: v == 1)
    assert wg.wait_for_log("malformed replication command START_REPLICATION")
    assert not any(k.startswith("walgate_slot_streaming") for k in wg.metrics())
