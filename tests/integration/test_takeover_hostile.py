"""Slot takeover against hostile or unusual newcomers: what must never end
another stream ([replication] takeover_after; see test_takeover.py for the
takeovers that must happen).

- A client that has not logged in (auth = passthrough: walgate relays the
  login, so until AuthenticationOk the user name is only a claim) and
  pipelines START_REPLICATION behind its StartupMessage ends nobody's stream.
- A START the server will refuse for its kind (PHYSICAL naming a logical
  slot), or one sent behind a command not yet answered, ends nobody's stream.
- A physical standby that sends hot standby feedback but no status update
  is alive: it is not taken over.
"""

import struct
import time

import pytest

import pgwire
from pgcluster import TEST_DB, TEST_PASSWORD, TEST_USER
from test_takeover import (PUBLICATION, TAKEOVER_AFTER, active_pid,  # noqa: F401
                           all_takeovers, consumers, sql, stale_for_longer_than_takeover_after,
                           takeover_walgate)

pytestmark = pytest.mark.walgate_only

LOGICAL_START = ("START_REPLICATION SLOT {slot} LOGICAL 0/0 (proto_version '1', "
                 f"publication_names '{PUBLICATION}')")


def query(text):
    return pgwire.message("Q", text.encode() + b"\0")


def replication_login(wg, replication="database"):
    sock = pgwire.connect(wg.host, wg.port, timeout=15)
    params = {"user": TEST_USER, "replication": replication, "application_name": "raw"}
    if replication == "database":
        params["database"] = TEST_DB
    pgwire.login(sock, params, password=TEST_PASSWORD)
    return sock


def read_until(sock, kind):
    while True:
        t, body = pgwire.read_message(sock)
        if t == kind:
            return body
        assert t != "E", pgwire.parse_error_fields(body)


def stream_error(sock, timeout):
    """The ErrorResponse that ends a stream within timeout, or None."""
    sock.settimeout(timeout)
    try:
        while True:
            t, body = pgwire.read_message(sock)
            if t == "E":
                return pgwire.parse_error_fields(body)
    except TimeoutError:       # an OSError: first
        return None
    except (pgwire.ConnectionClosed, OSError):
        return "closed"


def test_unauthenticated_start_ends_no_stream(pg, walgate_factory, sql, consumers):
    """A client that never answers the password request, claiming the
    victim's user name, sends START_REPLICATION right behind its
    StartupMessage: walgate does not judge it (it is not logged in), the
    victim streams on."""
    wg = takeover_walgate(walgate_factory)
    sql.create_slot("th_unauth")
    victim = replication_login(wg)
    victim.sendall(query(LOGICAL_START.format(slot="th_unauth")))
    read_until(victim, "W")
    old_pid = active_pid(sql, "th_unauth")
    stale_for_longer_than_takeover_after()

    intruder = pgwire.connect(wg.host, wg.port, timeout=15)
    intruder.sendall(pgwire.startup_message({"user": TEST_USER, "database": TEST_DB,
                                             "replication": "database"})
                     + query(LOGICAL_START.format(slot="th_unauth")))
    try:
        assert stream_error(victim, 2 * TAKEOVER_AFTER + 2) is None
        assert active_pid(sql, "th_unauth") == old_pid
        assert not any(all_takeovers(wg).values())
    finally:
        intruder.close()
        victim.close()


def test_start_of_the_wrong_kind_ends_no_stream(pg, walgate_factory, sql, consumers):
    """START_REPLICATION ... PHYSICAL naming a logical slot, which the server
    refuses: the stale logical stream is not ended for it."""
    wg = takeover_walgate(walgate_factory)
    sql.create_slot("th_kind")
    stale = consumers(wg, "stale")
    stale.start("th_kind")
    old_pid = active_pid(sql, "th_kind")
    stale_for_longer_than_takeover_after()
    sock = replication_login(wg)
    try:
        sock.sendall(query("START_REPLICATION SLOT th_kind PHYSICAL 0/0"))
        t, body = pgwire.read_message(sock)
        assert t == "E", t
        assert active_pid(sql, "th_kind") == old_pid
        assert stale.read_until_error(timeout=2) is None
        assert not any(all_takeovers(wg).values())
    finally:
        sock.close()


def hot_standby_feedback():
    """'h': send time, xmin, epoch, catalog_xmin, catalog epoch (0: none)."""
    return pgwire.message("d", b"h" + struct.pack("!qIIII", 0, 0, 0, 0, 0))


def test_hot_standby_feedback_is_a_sign_of_life(pg, walgate_factory, sql):
    """A physical standby that sends hot standby feedback, and no standby
    status update, for longer than takeover_after keeps its slot."""
    wg = takeover_walgate(walgate_factory)
    sql.slots.append("th_feedback")
    sql.execute("SELECT pg_create_physical_replication_slot('th_feedback', true)")
    sql.execute("SELECT pg_current_wal_lsn()::text")
    start = sql.fetchone()[0]
    standby = replication_login(wg, replication="true")
    standby.sendall(query(f"START_REPLICATION SLOT th_feedback PHYSICAL {start}"))
    read_until(standby, "W")
    old_pid = active_pid(sql, "th_feedback")
    deadline = time.monotonic() + TAKEOVER_AFTER + 1.5
    while time.monotonic() < deadline:
        standby.sendall(hot_standby_feedback())
        time.sleep(0.2)
    newcomer = replication_login(wg, replication="true")
    try:
        newcomer.sendall(query(f"START_REPLICATION SLOT th_feedback PHYSICAL {start}"))
        t, body = pgwire.read_message(newcomer)
        assert t == "E" and pgwire.parse_error_fields(body).get("C") == "55006", (t, body)
        assert active_pid(sql, "th_feedback") == old_pid
        assert all_takeovers(wg)["refused_live"] == 1
    finally:
        newcomer.close()
        standby.close()


def test_start_behind_an_unanswered_command_ends_no_stream(pg, walgate_factory, sql, consumers):
    """IDENTIFY_SYSTEM and START_REPLICATION in one write: the START waits
    behind a command the server has not answered (it may yet fail), so it
    is not judged: it goes on as sent and gets the server's 55006."""
    wg = takeover_walgate(walgate_factory)
    sql.create_slot("th_ahead")
    stale = consumers(wg, "stale")
    stale.start("th_ahead")
    old_pid = active_pid(sql, "th_ahead")
    stale_for_longer_than_takeover_after()
    sock = replication_login(wg)
    try:
        sock.sendall(query("IDENTIFY_SYSTEM") + query(LOGICAL_START.format(slot="th_ahead")))
        read_until(sock, "Z")           # IDENTIFY_SYSTEM's answer
        t, body = pgwire.read_message(sock)
        assert t == "E" and pgwire.parse_error_fields(body).get("C") == "55006", (t, body)
        assert active_pid(sql, "th_ahead") == old_pid
        assert not any(all_takeovers(wg).values())
    finally:
        sock.close()
