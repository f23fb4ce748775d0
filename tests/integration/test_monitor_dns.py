"""The monitor resolves host names with evdns, never with the blocking
getaddrinfo() (issue 13, item 9).

The monitor runs on the control thread, which also accepts clients and
serves /healthz and /metrics. libpq given a host name resolves it with
getaddrinfo(); walgate resolves it first with evdns and passes hostaddr=
(keeping host= for TLS verification), so a resolver that never answers
delays nothing but the poll itself.

The unresponsive resolver: walgate runs in a mount namespace of its own
where /etc/resolv.conf names a loopback address on which a UDP socket
takes queries and never answers, for glibc and evdns alike. That needs
root (mount namespaces); elsewhere that test is skipped, saying so.
"""

import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from clients import connect
from pgcluster import TEST_DB, TEST_PASSWORD, TEST_USER

pytestmark = pytest.mark.walgate_only

UP = "walgate_upstream_up"
SILENT_DNS = "127.0.83.53"


def conninfo(pg, host, **extra):
    params = {"host": host, "port": pg.port, "dbname": TEST_DB, "user": TEST_USER,
              "password": TEST_PASSWORD, "sslmode": "disable", **extra}
    return " ".join(f"{k}={v}" for k, v in params.items())


def monitored(walgate_factory, conninfo_text, **kwargs):
    return walgate_factory(sections={"monitor": {"conninfo": conninfo_text, "interval": "200ms",
                                                 "timeout": "3s"}}, **kwargs)


def upstream_view(wg):
    return json.loads(wg.http("/slots")[2])["upstream"]


# --------------------------------------------------------------------------
# names that resolve

@pytest.mark.parametrize("sslmode", ["disable", "verify-full"])
def test_monitor_resolves_localhost_and_polls(pg, walgate_factory, sslmode):
    """host=localhost (from /etc/hosts): resolved by evdns, handed to libpq
    as hostaddr; with verify-full the certificate is still checked against
    the name "localhost"."""
    extra = {"sslmode": sslmode}
    if sslmode == "verify-full":
        extra["sslrootcert"] = pg.ca_cert
    wg = monitored(walgate_factory, conninfo(pg, "localhost", **extra))
    assert wg.wait_for_metric(UP, lambda v: v == 1, timeout=10) == 1, upstream_view(wg)
    assert wg.wait_for_log(r"monitor: host names resolved: hostaddr=(127\.0\.0\.1|::1)$")


def test_monitor_unknown_name_fails_the_poll(pg, walgate_factory):
    """A name no resolver knows: the poll fails with the resolver's reason."""
    wg = monitored(walgate_factory, conninfo(pg, "no-such-host.invalid"))
    assert wg.wait_for_metric(UP, lambda v: v == 0, timeout=15) == 0
    view = upstream_view(wg)
    assert "no-such-host.invalid" in view["error"] or "resolving" in view["error"], view


# --------------------------------------------------------------------------
# a resolver that never answers

def can_unshare():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                          capture_output=True).returncode == 0


@pytest.fixture
def silent_resolver(tmp_path):
    """(wrapper, sock): a walgate launcher that runs it with /etc/resolv.conf
    pointing at a UDP socket that reads queries and never answers."""
    if not can_unshare():
        pytest.skip("needs root and mount namespaces (unshare --mount) to replace "
                    "/etc/resolv.conf for walgate alone")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((SILENT_DNS, 53))
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {SILENT_DNS}\noptions timeout:5 attempts:2\n")
    wrapper = tmp_path / "walgate-silent-dns"
    real = os.environ.get("WALGATE_BIN") or os.path.join(
        os.path.dirname(__file__), "..", "..", "build", "proxy", "walgate")
    wrapper.write_text(
        "#!/bin/sh\n"
        "exec unshare --mount --propagation private sh -c "
        "'mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"' "
        f"'{resolv}' '{os.path.abspath(real)}' \"$@\"\n")
    wrapper.chmod(0o755)
    yield str(wrapper), sock
    sock.close()


def test_silent_resolver_does_not_stall_the_control_thread(pg, walgate_factory, silent_resolver):
    """While the monitor waits on a resolver that never answers, /healthz
    answers and clients are accepted and relayed promptly; the poll itself
    fails at its timeout, saying it was resolving."""
    wrapper, dns = silent_resolver
    wg = monitored(walgate_factory, conninfo(pg, "db.walgate.test"), binary=wrapper)
    # the first poll starts at once: its lookup is under way from here on
    dns.settimeout(5)
    dns.recvfrom(512)
    worst_health, worst_client = 0.0, 0.0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        start = time.monotonic()
        status = wg.http("/healthz", timeout=3)[0]
        worst_health = max(worst_health, time.monotonic() - start)
        assert status == 200
        start = time.monotonic()
        conn = connect(wg, connect_timeout=3)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchone() == (1,)
        finally:
            conn.close()
        worst_client = max(worst_client, time.monotonic() - start)
    assert worst_health < 0.5, f"/healthz took {worst_health:.3f} s"
    assert worst_client < 1.5, f"a client login took {worst_client:.3f} s"
    assert wg.wait_for_metric(UP, lambda v: v == 0, timeout=10) == 0
    assert "timed out resolving the host name" in upstream_view(wg)["error"]
