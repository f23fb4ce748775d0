"""Fixtures for walgate's integration tests.

One PostgreSQL cluster serves the whole run (`pg`); each test that wants a
walgate in front of it gets a fresh one (`walgate`), or makes its own with
`walgate_factory(...)`. Nothing is skipped for a missing program: a missing
walgate binary or PostgreSQL program fails the tests that need it, loudly.

Environment:
  WALGATE_BIN=PATH        the binary (default <repo>/build/proxy/walgate)
  WALGATE_TEST_DIRECT=1   debugging aid: the `walgate` fixture yields
                          PostgreSQL's own address, so the relay tests run
                          against PostgreSQL directly; tests of walgate's own
                          behaviour (marked walgate_only) are skipped
  WALGATE_TEST_KEEP=1     keep the cluster's and walgate's directories
  PG_BINDIR=DIR           PostgreSQL programs (default /usr/lib/postgresql/15/bin)
"""

import atexit
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from pgcluster import PG_BINDIR, PgCluster, pg_bin  # noqa: E402
from walgate import Walgate, walgate_bin  # noqa: E402

DIRECT = os.environ.get("WALGATE_TEST_DIRECT") == "1"
KEEP = os.environ.get("WALGATE_TEST_KEEP") == "1"

PG_PROGRAMS = ("initdb", "pg_ctl", "postgres", "psql", "pgbench", "pg_recvlogical")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "walgate_only: tests walgate's own behaviour; skipped with WALGATE_TEST_DIRECT=1")


def pytest_collection_modifyitems(config, items):
    if not DIRECT:
        return
    skip = pytest.mark.skip(reason="WALGATE_TEST_DIRECT=1: needs the walgate binary")
    for item in items:
        if "walgate_only" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the item, so that fixtures can tell
    in their teardown whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


def _test_failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and rep.failed


class DirectTarget:
    """What the `walgate` fixture yields with WALGATE_TEST_DIRECT=1: the
    address of PostgreSQL itself."""

    is_direct = True

    def __init__(self, cluster):
        self.host = cluster.host
        self.port = cluster.port

    def log_text(self):
        return ""


@pytest.fixture(scope="session")
def pg_programs():
    missing = [p for p in PG_PROGRAMS if not os.access(os.path.join(PG_BINDIR, p), os.X_OK)]
    if missing:
        pytest.fail(f"PostgreSQL programs missing in {PG_BINDIR}: {', '.join(missing)} "
                    f"(install postgresql-15, or set PG_BINDIR)", pytrace=False)
    return {p: pg_bin(p) for p in PG_PROGRAMS}


@pytest.fixture(scope="session")
def pg(pg_programs):
    """The PostgreSQL cluster of the whole run, started."""
    cluster = PgCluster.create()
    # A safety net for exits that skip fixture teardown; a no-op after it.
    atexit.register(cluster.cleanup, remove_dir=not KEEP)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup(remove_dir=not KEEP)
        if KEEP:
            print(f"\nkept the cluster's directory: {cluster.base_dir}")


@pytest.fixture(scope="session")
def walgate_binary():
    """The walgate binary's path; fails (never skips) when it is missing."""
    path = walgate_bin()
    if not os.access(path, os.X_OK):
        pytest.fail(f"walgate binary not found or not executable: {path}\n"
                    f"Build it (meson setup build && ninja -C build) or set WALGATE_BIN; "
                    f"WALGATE_TEST_DIRECT=1 runs the relay tests against PostgreSQL alone.",
                    pytrace=False)
    return path


@pytest.fixture
def walgate_factory(request, pg):
    """walgate_factory(**Walgate kwargs, start=True) -> a Walgate in front of
    the cluster (upstream_port defaults to the cluster's). Every walgate made
    is stopped and its files removed after the test; a failed test's output
    shows their logs."""
    made = []

    def make(start=True, **kwargs):
        request.getfixturevalue("walgate_binary")
        kwargs.setdefault("upstream_port", pg.port)
        wg = Walgate(**kwargs)
        made.append(wg)
        if start:
            wg.start()
        return wg

    yield make

    failed = _test_failed(request)
    reports = []
    for wg in made:
        try:
            wg.stop()
            reports += sanitizer_reports(wg.log_text())
        finally:
            if failed or reports:
                print(f"\n----- walgate log ({wg.log_path}) -----\n{wg.log_text()}")
            if KEEP:
                print(f"\nkept walgate's directory: {wg.workdir}")
            wg.cleanup(keep_files=KEEP)
    if reports:
        pytest.fail("walgate's sanitizers reported:\n" + "\n".join(reports), pytrace=False)


@pytest.fixture
def stand_in():
    """stand_in(cls, *args, **kwargs) -> cls(*args, **kwargs), a scripted
    peer (fake upstream, relay ...) whose close() is called after the test."""
    made = []

    def make(cls, *args, **kwargs):
        obj = cls(*args, **kwargs)
        made.append(obj)
        return obj

    yield make
    for obj in made:
        obj.close()


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
                     "runtime error:")


def sanitizer_reports(log):
    """The first line of every sanitizer report in a walgate log (sanitizer
    builds print them on stderr, which the harness keeps in the log)."""
    return [line for line in log.splitlines() if any(m in line for m in SANITIZER_MARKERS)]


@pytest.fixture
def walgate(pg, walgate_factory):
    """A walgate in front of the cluster, with the default settings; with
    WALGATE_TEST_DIRECT=1, PostgreSQL's own address instead."""
    if DIRECT:
        yield DirectTarget(pg)
    else:
        yield walgate_factory()


# -- measured numbers, repeated at the end of the run ---------------------

_MEASUREMENTS = []


@pytest.fixture
def report_measurement(request, record_property):
    """report_measurement(text): print a number a test measured (walgate's
    RSS, fd counts), keep it in the JUnit XML as a property, and repeat it
    in a "walgate measurements" section at the end of the run, since
    pytest -q shows nothing of a passing test's output."""
    def report(text):
        line = f"{request.node.nodeid}: {text}"
        print(line)
        record_property("measurement", text)
        _MEASUREMENTS.append(line)
    return report


def pytest_terminal_summary(terminalreporter):
    if _MEASUREMENTS:
        terminalreporter.section("walgate measurements")
        for line in _MEASUREMENTS:
            terminalreporter.write_line(line)
