"""Shared by the hardening tests (test_hardening.py, test_soak.py,
test_hostile_relay.py): what kind of build walgate is, its memory and
descriptors from /proc, the server seen blocked writing, paced reading,
and waiting for log lines.

Environment:
  WALGATE_TEST_SANITIZER    none, address or thread: the kind of build
                            WALGATE_BIN is (default: looked up in the binary);
                            sanitizer builds get looser memory bounds, see
                            build_profile()
"""

import contextlib
import os
import subprocess
import threading
import time


from clients import client_env, superuser_connect
from walgate import walgate_bin

ACTIVE_REGULAR = 'walgate_connections_active{kind="regular"}'
ACTIVE_REPLICATION = 'walgate_connections_active{kind="replication"}'
CONFIG_GENERATION = "walgate_config_generation"
RELOADED_LINE = "configuration reloaded"
MIB = 1 << 20


# --------------------------------------------------------------------------
# helpers: the process, the build, the environment

def env_number(name, default, cast=int):
    value = os.environ.get(name, "").strip()
    return cast(value) if value else default


ASAN_QUARANTINE_MB = 16


class BuildProfile:
    """What the measuring tests expect of one kind of walgate build.

    name:             "normal", "address" (AddressSanitizer, with UBSan) or
                      "thread" (ThreadSanitizer)
    slow_reader_mb:   default size of the slow reader's COPY, MiB
    rss_bound_mb:     walgate's RSS must stay under this with the slow reader
    soak_growth_mb:   walgate's idle RSS may grow this much over the soak
    env:              extra environment for a walgate whose memory is measured
    """

    def __init__(self, name, slow_reader_mb, rss_bound_mb, soak_growth_mb, env=None):
        self.name = name
        self.slow_reader_mb = slow_reader_mb
        self.rss_bound_mb = rss_bound_mb
        self.soak_growth_mb = soak_growth_mb
        self.env = env or {}

    @property
    def label(self):
        return "" if self.name == "normal" else f", {self.name} sanitizer build"


def _asan_env():
    # AddressSanitizer keeps freed blocks in a quarantine (256 MiB by
    # default, in RSS on purpose, to catch use after free): with it walgate's
    # RSS reaches 185 MiB after 512 MiB relayed, from freed relay buffers
    # alone. Capped for a walgate whose memory is measured.
    options = [os.environ.get("ASAN_OPTIONS", ""), f"quarantine_size_mb={ASAN_QUARANTINE_MB}"]
    return {"ASAN_OPTIONS": ":".join(o for o in options if o)}


def build_profile(binary=None):
    """The profile of the walgate binary under test, from the sanitizer
    runtime linked into it; WALGATE_TEST_SANITIZER=none|address|thread
    overrides the look into the binary."""
    name = os.environ.get("WALGATE_TEST_SANITIZER", "").strip()
    if not name:
        with open(binary or walgate_bin(), "rb") as f:
            data = f.read()
        name = "address" if b"__asan_init" in data else "thread" if b"__tsan_init" in data \
            else "normal"
    if name in ("normal", "none"):
        # glibc gives each worker thread its own malloc arena; over ten soaks
        # back to back idle RSS settled 3-5 MiB above the first warm-up and
        # stayed there. A leak of what 1,000 sessions hold goes well past 12.
        return BuildProfile("normal", 1024, 64, 12)
    if name == "address":
        # Shadow memory and redzones on top; the quarantine may fill between
        # the soak's two measurements. Small leaks are LeakSanitizer's job.
        return BuildProfile("address", 256, 64 + 2 * ASAN_QUARANTINE_MB,
                            8 + ASAN_QUARANTINE_MB, _asan_env())
    if name == "thread":
        # ThreadSanitizer's shadow memory and its per-thread state (measured:
        # 26 MiB idle, 32 MiB at most with the slow reader).
        return BuildProfile("thread", 256, 96, 24)
    raise ValueError(f"WALGATE_TEST_SANITIZER={name!r}: none, address or thread")


def proc_status_kib(pid, field):
    """A 'kB' field of /proc/<pid>/status, e.g. VmRSS or VmHWM (the peak RSS
    of the process's whole life)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def open_fds(pid):
    """{fd number: what it points to} of a process."""
    fds = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            pass  # closed while we looked
    return fds


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


class Poller:
    """Calls self._run() in a daemon thread from start() to stop(); _run
    loops until self._stop is set, waiting self.interval between rounds."""

    def __init__(self, interval):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)


class RssSampler(Poller):
    """Samples a process's VmRSS every `interval` seconds, from start() to
    stop(); max_kib is the highest sample (stop() returns it)."""

    def __init__(self, pid, interval=0.02):
        super().__init__(interval)
        self.pid = pid
        self.max_kib = 0
        self.samples = 0

    def _run(self):
        while not self._stop.is_set():
            try:
                rss = proc_status_kib(self.pid, "VmRSS")
            except (OSError, AssertionError):
                return  # the process is gone; the test notices that itself
            self.max_kib = max(self.max_kib, rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def stop(self):
        super().stop()
        return self.max_kib


class ClientWriteWatch(Poller):
    """Polls pg_stat_activity for a backend of one application_name waiting
    on ClientWrite: the server blocked because nobody reads (backpressure
    reached PostgreSQL)."""

    def __init__(self, cluster, application_name, interval=0.25):
        super().__init__(interval)
        self.cluster = cluster
        self.app = application_name
        self.polls = 0
        self.blocked = 0

    def _run(self):
        conn = superuser_connect(self.cluster)
        try:
            with conn.cursor() as cur:
                while not self._stop.is_set():
                    cur.execute("SELECT wait_event FROM pg_stat_activity "
                                "WHERE application_name = %s AND state = 'active'", (self.app,))
                    rows = cur.fetchall()
                    if rows:
                        self.polls += 1
                        self.blocked += sum(1 for (w,) in rows if w == "ClientWrite")
                    self._stop.wait(self.interval)
        finally:
            conn.close()


def paced_read(stream, rate, consume, chunk=64 * 1024):
    """Read a pipe to its end at no more than `rate` bytes/s on average
    (None: as fast as it comes), handing every chunk to consume(); returns
    (bytes read, seconds). The writer blocks on the full pipe meanwhile."""
    fd = stream.fileno()
    start = time.monotonic()
    total = 0
    while True:
        data = os.read(fd, chunk)
        if not data:
            return total, time.monotonic() - start
        consume(data)
        total += len(data)
        if rate:
            ahead = total / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)


def read_program(argv, rate=None, consume=None, timeout=600, env=None):
    """Run a program and read its stdout with paced_read. Returns (exit
    code, bytes read, seconds, stderr text)."""
    chunks = []
    proc = subprocess.Popen(argv, env=env or client_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        total, seconds = paced_read(proc.stdout, rate, consume or chunks.append)
        stderr = proc.stderr.read().decode(errors="replace")
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return proc.returncode, total, seconds, stderr


def wait_log_count(wg, text, n, timeout=5.0):
    """How often text occurs in walgate's log, once that is n (or at the
    timeout: a line may follow its effect by a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        count = wg.log_text().count(text)
        if count == n or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def assert_clean_exit(wg):
    """SIGTERM: walgate exits 0 and its log has no sanitizer report (the
    sanitizer build makes its errors fatal and checks leaks at exit)."""
    rc = wg.stop()
    log = wg.log_text()
    assert "Sanitizer" not in log, log[-5000:]
    assert rc == 0, f"walgate exited with {rc}:\n{log[-3000:]}"


@contextlib.contextmanager
def superuser_session(cluster):
    """A cursor of an autocommit superuser session, closed afterwards (a
    psycopg2 2.9 `with conn` would open a transaction)."""
    conn = superuser_connect(cluster)
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


