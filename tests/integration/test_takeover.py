"""Taking a replication slot over from a stale session: a START_REPLICATION
naming a slot another walgate session streams, whose client has sent no
standby status update for longer than [replication] takeover_after, closes
that session and then goes on; a live stream, another user's stream, or
takeover_after = off leave the old stream alone and the newcomer gets
PostgreSQL's own 55006 error.

Consumers are psycopg2 LogicalReplicationConnections through walgate. A
silent consumer starts its stream and then neither reads nor sends
anything, its connection left open, as a consumer behind a dead network
path would; a live one reads and sends feedback every 0.2 s.
"""

import re
import select
import threading
import time

import psycopg2
import psycopg2.extras
import pytest

from clients import drop_slot, superuser_connect
from pgcluster import TEST_DB, TEST_PASSWORD, TEST_USER
from walgate import render_ini, run_walgate
from test_auth import certs, scram_walgate, write_auth_file  # noqa: F401

pytestmark = pytest.mark.walgate_only

TABLE = "takeover_t"
PUBLICATION = "takeover_pub"
OTHER_USER = "takeover_other"
OTHER_PASSWORD = "takeover-other-pw"
# short, so that a test needs only a little more than this to see a stream go stale
TAKEOVER_AFTER = 2.0
RESULTS = ("taken_over", "timed_out", "refused_live", "refused_user", "refused_busy")


def takeovers(wg, result):
    return wg.metric(f'walgate_slot_takeovers_total{{result="{result}"}}')


def all_takeovers(wg):
    metrics = wg.metrics()
    return {r: metrics.get(f'walgate_slot_takeovers_total{{result="{r}"}}') for r in RESULTS}


class SlotCursor(psycopg2.extensions.cursor):
    """A cursor that remembers the slots it created, to drop them after the test."""
    slots = None

    def create_slot(self, name):
        self.slots.append(name)
        self.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))


@pytest.fixture
def sql(pg):
    """A superuser cursor with the table, the publication, a second
    replication role, and cleanup of the slots the test creates."""
    conn = superuser_connect(pg)
    cur = conn.cursor(cursor_factory=SlotCursor)
    cur.execute(f"DROP PUBLICATION IF EXISTS {PUBLICATION}; DROP TABLE IF EXISTS {TABLE}")
    cur.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY)")
    cur.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE {TABLE}")
    cur.execute(f"DROP ROLE IF EXISTS {OTHER_USER}")
    cur.execute(f"CREATE ROLE {OTHER_USER} LOGIN REPLICATION PASSWORD '{OTHER_PASSWORD}'")
    cur.slots = []
    yield cur
    for name in cur.slots:
        drop_slot(cur, name, timeout=30)
    cur.execute(f"DROP PUBLICATION IF EXISTS {PUBLICATION}; DROP TABLE IF EXISTS {TABLE}")
    cur.execute(f"DROP ROLE IF EXISTS {OTHER_USER}")
    conn.close()


def active_pid(cur, slot):
    cur.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    return cur.fetchone()[0]


class Consumer:
    """A logical replication connection through walgate, not streaming yet."""

    def __init__(self, wg, app, user=TEST_USER, password=TEST_PASSWORD, **params):
        self.app = app
        self.conn = psycopg2.connect(
            host=wg.host, port=wg.port, dbname=TEST_DB, user=user, password=password,
            application_name=app, connect_timeout=10,
            connection_factory=psycopg2.extras.LogicalReplicationConnection, **params)
        self.cur = self.conn.cursor()
        self.commits = 0
        self.error = None
        self._stop = threading.Event()
        self._thread = None

    def start(self, slot):
        self.cur.start_replication(slot_name=slot, decode=False,
                                   options={"proto_version": "1",
                                            "publication_names": PUBLICATION})

    def _read_one(self, timeout):
        msg = self.cur.read_message()
        if msg is None:
            select.select([self.cur], [], [], timeout)
            return None
        if msg.payload[:1] == b"C":
            self.commits += 1
        return msg

    def read_commits(self, n, timeout=30.0):
        """Read (and confirm) until n commits have come."""
        deadline = time.monotonic() + timeout
        while self.commits < n:
            assert time.monotonic() < deadline, f"{self.app}: {self.commits} commits, not {n}"
            msg = self._read_one(0.2)
            if msg is not None:
                self.cur.send_feedback(flush_lsn=msg.data_start)

    def stay_live(self):
        """Read and send a status update every 0.2 s, on a thread, until close()."""
        def loop():
            try:
                while not self._stop.is_set():
                    self._read_one(0.05)
                    self.cur.send_feedback(force=True)
                    self._stop.wait(0.2)
            except psycopg2.Error as e:
                self.error = e
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def read_until_error(self, timeout=15.0):
        """What a stale consumer finds once it reads again: the rest of
        what was sent, then the end of its connection."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._read_one(0.2)
            except psycopg2.Error as e:
                return e
        return None

    def close(self):
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self.conn.close()


@pytest.fixture
def consumers():
    made = []

    def make(*args, **kwargs):
        c = Consumer(*args, **kwargs)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def takeover_walgate(walgate_factory, after=f"{TAKEOVER_AFTER:g}s", workers="1"):
    return walgate_factory(walgate={"workers": workers},
                           sections={"replication": {"takeover_after": after}})


def stale_for_longer_than_takeover_after():
    """The silent consumer's stream must be older than takeover_after."""
    time.sleep(TAKEOVER_AFTER + 1.0)


def start_refused(consumer, slot):
    with pytest.raises(psycopg2.Error) as info:
        consumer.start(slot)
    return info.value


def session_of(wg, app):
    """(session id, worker index) of the connection with that application_name."""
    m = wg.wait_for_log(rf"C-(\d+) [^:]+:\d+: login: .*application_name={app}$")
    assert m, f"no login line for {app}"
    sid = m.group(1)
    w = re.search(rf"C-{sid} [^:]+:\d+: accepted by worker (\d+)", wg.log_text())
    return sid, w.group(1)


def test_silent_consumer_is_taken_over(pg, walgate_factory, sql, consumers):
    """A consumer that went silent loses its slot to a newcomer of the same
    user: the newcomer streams, the old connection ends with FATAL 57P01,
    the walsender is a new one, and it is counted and logged."""
    wg = takeover_walgate(walgate_factory)
    sql.create_slot("to_silent")
    stale = consumers(wg, "stale")
    stale.start("to_silent")
    old_pid = active_pid(sql, "to_silent")
    assert old_pid
    stale_for_longer_than_takeover_after()

    newcomer = consumers(wg, "newcomer")
    newcomer.start("to_silent")
    sql.execute(f"INSERT INTO {TABLE} VALUES (1)")
    newcomer.read_commits(1)
    new_pid = active_pid(sql, "to_silent")
    assert new_pid and new_pid != old_pid

    assert wg.wait_for_metric('walgate_slot_takeovers_total{result="taken_over"}',
                              lambda v: v == 1) == 1
    assert all_takeovers(wg) == dict.fromkeys(RESULTS, 0) | {"taken_over": 1}
    stale_sid, _ = session_of(wg, "stale")
    new_sid, _ = session_of(wg, "newcomer")
    assert wg.wait_for_log(rf"C-{new_sid} .*slot \"to_silent\" is streamed by a session whose "
                           r"client sent no standby status update for \d+\.\d s.*taking it over")
    assert wg.wait_for_log(rf"C-{stale_sid} .*slot \"to_silent\" taken over by C-{new_sid}")
    assert wg.wait_for_log(rf"C-{new_sid} .*slot \"to_silent\" taken over: the stale stream ended")
    # the old consumer, reading again, is told why its connection ended
    error = stale.read_until_error()
    assert error is not None and "was taken over by a new connection" in str(error), error


def test_live_consumer_is_left_alone(pg, walgate_factory, sql, consumers):
    """A consumer that sends status updates keeps its slot: the newcomer's
    START_REPLICATION reaches the server unchanged and gets 55006, and the
    live stream goes on."""
    wg = takeover_walgate(walgate_factory)
    sql.create_slot("to_live")
    live = consumers(wg, "live")
    live.start("to_live")
    live.stay_live()
    pid = active_pid(sql, "to_live")
    stale_for_longer_than_takeover_after()

    error = start_refused(consumers(wg, "newcomer"), "to_live")
    assert error.pgcode == "55006", error
    assert "is active for PID" in str(error)
    assert wg.wait_for_metric('walgate_slot_takeovers_total{result="refused_live"}',
                              lambda v: v == 1) == 1
    assert all_takeovers(wg) == dict.fromkeys(RESULTS, 0) | {"refused_live": 1}
    assert wg.wait_for_log(r'slot "to_live" is streamed by another session whose client sent a '
                           r"standby status update \d+\.\d s ago: not taken over")

    sql.execute(f"INSERT INTO {TABLE} VALUES (1)")
    deadline = time.monotonic() + 15
    while live.commits < 1 and live.error is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live.error is None and live.commits == 1
    assert active_pid(sql, "to_live") == pid


def test_takeover_across_workers(pg, walgate_factory, sql, consumers):
    """workers = 2: the stale session and the newcomer on different worker
    threads; the newcomer's worker has the other close its session."""
    wg = takeover_walgate(walgate_factory, workers="2")
    sql.create_slot("to_workers")
    stale = consumers(wg, "stale")
    stale.start("to_workers")
    old_pid = active_pid(sql, "to_workers")
    _, stale_worker = session_of(wg, "stale")
    # connections go to the workers in turn: the next one or the one after is on the other
    candidates = [consumers(wg, "cand0")]
    if session_of(wg, "cand0")[1] == stale_worker:
        candidates.append(consumers(wg, "cand1"))
    newcomer = candidates[-1]
    assert session_of(wg, newcomer.app)[1] != stale_worker
    stale_for_longer_than_takeover_after()

    newcomer.start("to_workers")
    sql.execute(f"INSERT INTO {TABLE} VALUES (1)")
    newcomer.read_commits(1)
    assert active_pid(sql, "to_workers") not in (None, old_pid)
    assert wg.wait_for_metric('walgate_slot_takeovers_total{result="taken_over"}',
                              lambda v: v == 1) == 1
    stale_sid, _ = session_of(wg, "stale")
    assert wg.wait_for_log(rf"C-{stale_sid} .*slot \"to_workers\" taken over by C-")
    error = stale.read_until_error()
    assert error is not None and "was taken over" in str(error), error


def test_takeover_off(pg, walgate_factory, sql, consumers):
    """takeover_after = off: a silent stream keeps its slot, the newcomer
    gets 55006, nothing is counted."""
    wg = takeover_walgate(walgate_factory, after="off")
    sql.create_slot("to_off")
    stale = consumers(wg, "stale")
    stale.start("to_off")
    pid = active_pid(sql, "to_off")
    stale_for_longer_than_takeover_after()

    error = start_refused(consumers(wg, "newcomer"), "to_off")
    assert error.pgcode == "55006", error
    assert active_pid(sql, "to_off") == pid
    assert all_takeovers(wg) == dict.fromkeys(RESULTS, 0)
    assert "taking it over" not in wg.log_text()


def test_other_user_cannot_take_over(pg, walgate_factory, sql, consumers):
    """A stale stream of one role is not taken over by another role, which
    could otherwise end anyone's stream by naming their slot."""
    wg = takeover_walgate(walgate_factory)
    sql.create_slot("to_other")
    stale = consumers(wg, "stale")
    stale.start("to_other")
    pid = active_pid(sql, "to_other")
    stale_for_longer_than_takeover_after()

    intruder = consumers(wg, "intruder", user=OTHER_USER, password=OTHER_PASSWORD)
    error = start_refused(intruder, "to_other")
    assert error.pgcode == "55006", error
    assert active_pid(sql, "to_other") == pid
    assert wg.wait_for_metric('walgate_slot_takeovers_total{result="refused_user"}',
                              lambda v: v == 1) == 1
    assert all_takeovers(wg) == dict.fromkeys(RESULTS, 0) | {"refused_user": 1}
    assert wg.wait_for_log(r'slot "to_other" is streamed by another user\'s session: not taken over')


def test_racing_newcomers_one_takes_over(pg, walgate_factory, sql, consumers):
    """Two newcomers ask for the same stale slot at once, on two workers:
    one takes it over, the other's START_REPLICATION goes on unchanged and
    gets 55006 (the slot is the taker's from the moment it is taken), so
    exactly one of them streams."""
    wg = takeover_walgate(walgate_factory, workers="2")
    sql.create_slot("to_race")
    stale = consumers(wg, "stale")
    stale.start("to_race")
    racers = [consumers(wg, f"racer{i}") for i in range(2)]
    stale_for_longer_than_takeover_after()

    outcome = {}
    go = threading.Barrier(len(racers))

    def race(c):
        go.wait()
        try:
            c.start("to_race")
            outcome[c.app] = "streams"
        except psycopg2.Error as e:
            outcome[c.app] = e.pgcode or repr(e)
    threads = [threading.Thread(target=race, args=(c,)) for c in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcome.values()) == ["55006", "streams"], outcome
    winner = next(c for c in racers if outcome[c.app] == "streams")
    sql.execute(f"INSERT INTO {TABLE} VALUES (1)")
    winner.read_commits(1)
    counts = all_takeovers(wg)
    assert counts["taken_over"] == 1, counts
    assert counts["timed_out"] == 0 and counts["refused_user"] == 0, counts
    # the loser found the slot being taken, or taken already
    assert counts["refused_busy"] + counts["refused_live"] == 1, counts


def test_newcomer_that_leaves_while_held(pg, walgate_factory, sql, consumers):
    """A newcomer that sends START_REPLICATION and closes at once, while its
    command is held back: the stale stream is still ended, walgate frees the
    newcomer's session when it resumes (no use after free: the sanitizer
    builds run this too), and the slot is free for the next consumer."""
    wg = takeover_walgate(walgate_factory, workers="2")
    sql.create_slot("to_leaver")
    stale = consumers(wg, "stale")
    stale.start("to_leaver")
    stale_for_longer_than_takeover_after()

    leaver = psycopg2.connect(
        host=wg.host, port=wg.port, dbname=TEST_DB, user=TEST_USER, password=TEST_PASSWORD,
        application_name="leaver", connect_timeout=10, async_=True,
        connection_factory=psycopg2.extras.LogicalReplicationConnection)
    while leaver.poll() != psycopg2.extensions.POLL_OK:
        select.select([leaver], [leaver], [], 1.0)
    leaver.cursor().start_replication(slot_name="to_leaver", decode=False,
                                      options={"proto_version": "1",
                                               "publication_names": PUBLICATION})
    leaver.close()

    leaver_sid, _ = session_of(wg, "leaver")
    assert wg.wait_for_log(rf"C-{leaver_sid} [^:]+:\d+: closed: ", timeout=15)
    error = stale.read_until_error()
    assert error is not None and "was taken over" in str(error), error
    # the slot is free again once the leaver's walsender has seen it go
    deadline = time.monotonic() + 15
    while True:
        nxt = consumers(wg, "next")
        try:
            nxt.start("to_leaver")
            break
        except psycopg2.Error as e:
            assert e.pgcode == "55006" and time.monotonic() < deadline, e
            time.sleep(0.2)
    sql.execute(f"INSERT INTO {TABLE} VALUES (1)")
    nxt.read_commits(1)
    assert wg.metric('walgate_slot_takeovers_total{result="taken_over"}') == 1


@pytest.mark.parametrize("value, ok", [
    ("30s", True), ("off", True), ("OFF", True), ("0", True), ("1s", True), ("10min", True),
    ("500ms", False), ("never", False), ("-5s", False), ("25h", False),
])
def test_takeover_after_values(walgate_binary, tmp_path, value, ok):
    """takeover_after is a duration from 1 s to 24 h, or off (0 too);
    --check-config refuses anything else, naming the key and the range."""
    from test_config import valid_sections, write
    sections = valid_sections()
    sections["replication"] = {"takeover_after": value}
    proc = run_walgate("--check-config", "--config", write(tmp_path, render_ini(sections)))
    if ok:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == 1, proc.stderr
        assert "takeover_after" in proc.stderr and "or off" in proc.stderr, proc.stderr


def test_physical_slot_taken_over(pg, walgate_factory, sql, consumers):
    """A physical stream (a connection without a database) is taken over
    the same way: the slot name is the key."""
    wg = takeover_walgate(walgate_factory)
    sql.slots.append("to_physical")
    sql.execute("SELECT pg_create_physical_replication_slot('to_physical', true)")

    def physical(app):
        conn = psycopg2.connect(
            host=wg.host, port=wg.port, user=TEST_USER, password=TEST_PASSWORD,
            application_name=app, connect_timeout=10,
            connection_factory=psycopg2.extras.PhysicalReplicationConnection)
        cur = conn.cursor()
        cur.start_replication(slot_name="to_physical", slot_type=psycopg2.extras.REPLICATION_PHYSICAL,
                              start_lsn=start)
        return conn, cur
    sql.execute("SELECT pg_current_wal_lsn()::text")
    start = sql.fetchone()[0]
    stale_conn, _ = physical("stale")
    try:
        old_pid = active_pid(sql, "to_physical")
        stale_for_longer_than_takeover_after()
        new_conn, _ = physical("newcomer")
        try:
            assert active_pid(sql, "to_physical") not in (None, old_pid)
            assert wg.wait_for_metric('walgate_slot_takeovers_total{result="taken_over"}',
                                      lambda v: v == 1) == 1
        finally:
            new_conn.close()
    finally:
        stale_conn.close()


def test_clients_mapped_to_one_upstream_role(pg, walgate_factory, certs, tmp_path, sql,  # noqa: F811
                                             consumers):
    """auth = scram with two clients logged in upstream as one role: neither
    can end the other's stale stream (the client's user must match too),
    while the same client can take its own over."""
    users = write_auth_file(tmp_path / "users.txt", [], extra_lines=[
        f'"alice" "{TEST_PASSWORD}" upstream_user="{TEST_USER}"',
        f'"bob" "{TEST_PASSWORD}" upstream_user="{TEST_USER}"'])
    wg = scram_walgate(walgate_factory, certs, users,
                       walgate_keys={"log_level": "debug", "workers": "1"})
    wg.write_config(sections={"replication": {"takeover_after": f"{TAKEOVER_AFTER:g}s"}})
    wg.reload()
    assert wg.wait_for_metric("walgate_config_generation", lambda v: v == 2) == 2
    sql.create_slot("to_mapped")
    stale = consumers(wg, "stale", user="alice", sslmode="require")
    stale.start("to_mapped")
    pid = active_pid(sql, "to_mapped")
    stale_for_longer_than_takeover_after()

    error = start_refused(consumers(wg, "bob", user="bob", sslmode="require"), "to_mapped")
    assert error.pgcode == "55006", error
    assert active_pid(sql, "to_mapped") == pid
    assert wg.wait_for_metric('walgate_slot_takeovers_total{result="refused_user"}',
                              lambda v: v == 1) == 1
    # alice again: her own stale stream is hers to take over
    again = consumers(wg, "alice-again", user="alice", sslmode="require")
    again.start("to_mapped")
    assert active_pid(sql, "to_mapped") not in (None, pid)
    assert all_takeovers(wg) == dict.fromkeys(RESULTS, 0) | {"refused_user": 1, "taken_over": 1}


def test_start_in_pieces_is_not_held(pg, walgate_factory, sql, consumers):
    """A START_REPLICATION that arrives in two reads cannot be held back
    whole (its first bytes went on already): walgate forwards the rest
    unchanged and takes nothing over; the server answers 55006 and the
    stream (and walgate's framing) goes on."""
    import pgwire
    wg = takeover_walgate(walgate_factory)
    sql.create_slot("to_pieces")
    stale = consumers(wg, "stale")
    stale.start("to_pieces")
    pid = active_pid(sql, "to_pieces")
    stale_for_longer_than_takeover_after()

    sock = pgwire.connect(wg.host, wg.port, timeout=10)
    try:
        pgwire.login(sock, {"user": TEST_USER, "database": TEST_DB, "replication": "database",
                            "application_name": "pieces"}, password=TEST_PASSWORD)
        start = pgwire.message("Q", b'START_REPLICATION SLOT "to_pieces" LOGICAL 0/0 '
                                    b"(proto_version '1', publication_names '"
                                    + PUBLICATION.encode() + b"')\0")
        sock.sendall(start[:12])
        time.sleep(0.5)             # walgate reads and forwards the first piece alone
        sock.sendall(start[12:])
        assert pgwire.read_error(sock)["C"] == "55006"
        assert pgwire.read_message(sock)[0] == "Z"
        # the session is still framed right: a query after it is answered
        assert pgwire.simple_query(sock, "IDENTIFY_SYSTEM")
    finally:
        sock.close()
    assert active_pid(sql, "to_pieces") == pid
    assert all_takeovers(wg) == dict.fromkeys(RESULTS, 0)
    assert wg.wait_for_log(r"START_REPLICATION came in pieces: no takeover")
