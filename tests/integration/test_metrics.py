"""The HTTP endpoint of [metrics]: /metrics in Prometheus text format 0.0.4
(checked with promtool), /healthz, /readyz, and who may ask."""

import re
import signal
import socket
import subprocess
import time

import psycopg2
import pytest

import pgwire

from clients import connect, psql
from pgcluster import LOOPBACK_V4, closed_port

pytestmark = pytest.mark.walgate_only

PROMTOOL = "/usr/bin/promtool"
OTHER_V4 = "127.0.0.2"
ACCEPTED = "walgate_connections_accepted_total"
ACTIVE_REGULAR = 'walgate_connections_active{kind="regular"}'
ACTIVE_REPLICATION = 'walgate_connections_active{kind="replication"}'
NOT_ALLOWED_METRICS = 'walgate_metrics_connections_dropped_total{reason="not_allowed"}'


def promtool_check(body):
    """Run `promtool check metrics` on a scrape; fails (never skips) when
    promtool is missing."""
    try:
        proc = subprocess.run([PROMTOOL, "check", "metrics"], input=body,
                              capture_output=True, timeout=30)
    except FileNotFoundError:
        pytest.fail(f"{PROMTOOL} not found: install Debian's prometheus package", pytrace=False)
    return proc


def wait_value(wg, key, expected, timeout=5.0):
    return wg.wait_for_metric(key, lambda v: v == expected, timeout=timeout)


def test_metrics_format_and_promtool(pg, walgate_factory):
    wg = walgate_factory()
    psql(wg, "SELECT 1", check=True)     # some traffic, so that counters are not all zero
    status, headers, body = wg.http("/metrics")
    assert status == 200
    ctype = headers.get("content-type", "")
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    text = body.decode()
    assert "# TYPE walgate_build_info gauge" in text
    assert any(line.startswith("walgate_build_info{version=") and line.endswith(" 1")
               for line in text.splitlines()), text
    for reason in ("not_allowed", "proxy_header", "proxy_untrusted"):
        assert f'walgate_connections_rejected_total{{reason="{reason}"}}' in text
    for name in ("walgate_config_generation", "walgate_config_reload_failures_total",
                 "walgate_sessions_closed_by_reload_total", ACCEPTED, ACTIVE_REGULAR):
        assert name in text, name

    proc = promtool_check(body)
    assert proc.returncode == 0, (f"promtool check metrics failed ({proc.returncode}):\n"
                                  f"{proc.stdout.decode()}{proc.stderr.decode()}\n--- body ---\n{text}")


def test_promtool_after_rejections_and_reload(pg, walgate_factory):
    """Every counter non-zero and a reload done: the scrape still lints."""
    wg = walgate_factory(sections={"access": {"allow": "127.0.0.1/32"}})
    with socket.socket() as s:
        s.bind((OTHER_V4, 0))
        s.connect((wg.host, wg.port))
    wg.reload()
    assert wg.wait_for_metric("walgate_config_generation", lambda v: v >= 2) == 2
    _, _, body = wg.http("/metrics")
    proc = promtool_check(body)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_counters_follow_a_session(pg, walgate_factory):
    wg = walgate_factory()
    # The harness's readiness probe (a bare connect) may not be reaped yet.
    assert wait_value(wg, ACTIVE_REGULAR, 0) == 0
    before = wg.metrics()
    assert before["walgate_config_generation"] == 1

    conn = connect(wg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT repeat('x', 10000)")
            assert len(cur.fetchone()[0]) == 10000
        during = wg.metrics()
        assert during[ACTIVE_REGULAR] == 1
        assert during[ACTIVE_REPLICATION] == 0
        assert during[ACCEPTED] == before[ACCEPTED] + 1
        up = 'walgate_bytes_total{direction="upstream_to_client"}'
        down = 'walgate_bytes_total{direction="client_to_upstream"}'
        assert during[up] >= before[up] + 10000
        assert during[down] > before[down]
    finally:
        conn.close()
    assert wait_value(wg, ACTIVE_REGULAR, 0) == 0
    after = wg.metrics()
    assert after[ACCEPTED] == before[ACCEPTED] + 1
    for reason in ("not_allowed", "proxy_header", "proxy_untrusted"):
        key = f'walgate_connections_rejected_total{{reason="{reason}"}}'
        assert after[key] == before[key] == 0, key


def test_healthz_and_readyz_after_login(pg, walgate_factory):
    wg = walgate_factory()
    status, _, body = wg.http("/healthz")
    assert status == 200, body
    psql(wg, "SELECT 1", check=True)
    status, _, body = wg.http("/readyz")
    assert status == 200, body


def test_readyz_follows_upstream_reachability(pg, walgate_factory):
    wg = walgate_factory(upstream_port=closed_port(), upstream={"connect_timeout": "1s"})
    with pytest.raises(psycopg2.OperationalError):
        connect(wg)
    status, _, body = wg.http("/readyz")
    assert status == 503, body
    assert wg.http("/healthz")[0] == 200     # alive, just not ready
    assert wg.metric("walgate_upstream_connect_failures_total") >= 1

    wg.write_config(upstream={"port": pg.port})
    wg.reload()
    assert wg.wait_for_metric("walgate_config_generation", lambda v: v >= 2) == 2
    psql(wg, "SELECT 1", check=True)
    status, _, body = wg.http("/readyz")
    assert status == 200, body


def test_readyz_503_while_draining(pg, walgate_factory):
    wg = walgate_factory(walgate={"drain_timeout": "5s"})
    conn = connect(wg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        conn.commit()
        assert wg.http("/readyz")[0] == 200
        wg.signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        status = None
        while time.monotonic() < deadline:
            status = wg.http("/readyz")[0]
            if status == 503:
                break
            time.sleep(0.05)
        assert status == 503
        assert wg.http("/healthz")[0] == 200
    finally:
        conn.close()
    assert wg.proc.wait(10) == 0


@pytest.mark.parametrize("path", ["/nope", "/", "/metricsx", "/metrics/extra"])
def test_unknown_path_404(walgate_factory, path):
    wg = walgate_factory()
    status, _, _ = wg.http(path)
    assert status == 404


@pytest.mark.parametrize("method,path", [("POST", "/metrics"), ("PUT", "/metrics"),
                                         ("DELETE", "/healthz"), ("POST", "/readyz")])
def test_other_methods_405(walgate_factory, method, path):
    wg = walgate_factory()
    status, headers, _ = wg.http(path, method=method, body=b"x" if method != "DELETE" else None)
    assert status == 405
    assert "GET" in headers.get("allow", "")


def test_head_metrics(walgate_factory):
    wg = walgate_factory()
    status, headers, body = wg.http("/metrics", method="HEAD")
    assert status == 200
    assert body == b""


def test_query_string_ignored(walgate_factory):
    wg = walgate_factory()
    status, _, body = wg.http("/metrics?name[]=walgate_build_info")
    assert status == 200 and b"walgate_build_info" in body


def closed_unread(wg, source, timeout=2.0):
    """Connect to the metrics port from source and send nothing: True when
    walgate closes within timeout without a byte (it judges the source at
    accept, before reading)."""
    sock = socket.create_connection(wg.metrics_addr, timeout=timeout, source_address=(source, 0))
    try:
        closed, data, _ = pgwire.wait_closed(sock, timeout)
    finally:
        sock.close()
    return closed and data == b""


def test_scrape_from_non_allowed_source_closed_at_accept(walgate_factory):
    wg = walgate_factory(sections={"metrics": {"allow": "127.0.0.1/32"}})
    for path in ("/metrics", "/healthz", "/readyz", "/nope"):
        with pytest.raises((ConnectionError, OSError)):
            wg.http(path, source=OTHER_V4)
    assert closed_unread(wg, OTHER_V4)
    status, _, body = wg.http("/metrics", source=LOOPBACK_V4)
    assert status == 200 and b"walgate_build_info" in body
    assert wg.metric(NOT_ALLOWED_METRICS) == 5
    assert wg.wait_for_log(r"metrics: closed connection from 127\.0\.0\.2:\d+: source not allowed")


def test_default_metrics_allow_admits_loopback(walgate_factory):
    wg = walgate_factory()
    assert "allow" not in wg.extra_sections["metrics"]     # the default applies
    for source in (LOOPBACK_V4, OTHER_V4):
        status, _, _ = wg.http("/healthz", source=source)
        assert status == 200, source


def test_metrics_allow_reloads(walgate_factory):
    wg = walgate_factory(sections={"metrics": {"allow": "127.0.0.0/8"}})
    assert wg.http("/healthz", source=OTHER_V4)[0] == 200
    wg.write_config(sections={"metrics": {"allow": "127.0.0.1/32"}})
    wg.reload()
    assert wg.wait_for_metric("walgate_config_generation", lambda v: v >= 2) == 2
    assert closed_unread(wg, OTHER_V4)


def test_workers_share_sessions_and_merge_counters(pg, walgate_factory):
    """workers = 3: sessions are spread over three event loops, and one
    scrape adds up what every loop counted."""
    wg = walgate_factory(walgate={"workers": "3"})
    assert wg.metric("walgate_workers") == 3
    assert wg.wait_for_log(r"started; 3 workers")
    conns = [connect(wg) for _ in range(6)]
    try:
        for c in conns:
            with c.cursor() as cur:
                cur.execute("SELECT 1")
        assert wait_value(wg, ACTIVE_REGULAR, 6) == 6
        workers = set(re.findall(r"accepted by worker (\d+)", wg.log_text()))
        assert workers == {"0", "1", "2"}
        before = wg.metrics()
        assert before[ACCEPTED] >= 6
        assert before['walgate_bytes_total{direction="upstream_to_client"}'] > 0
    finally:
        for c in conns:
            c.close()
    assert wait_value(wg, ACTIVE_REGULAR, 0) == 0
