"""Run a walgate binary for a test.

    with Walgate(upstream_port=cluster.port) as wg:
        psycopg2.connect(host=wg.host, port=wg.port, ...)
        wg.write_config(upstream={"port": other})  # then
        wg.reload()                                 # SIGHUP
    # leaving the block stops it (SIGTERM, then SIGKILL if it hangs)

The config file and the log (walgate's stderr and stdout) live in a
temporary directory, removed by cleanup() (and on leaving the block). The binary is $WALGATE_BIN, by default
<repo>/build/proxy/walgate.
"""

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from pgcluster import LOOPBACK_V4, free_port

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_BIN = os.path.join(REPO_ROOT, "build", "proxy", "walgate")

START_TIMEOUT = 10.0


def walgate_bin():
    return os.environ.get("WALGATE_BIN") or DEFAULT_BIN


def _die_with_parent():
    """preexec_fn: have the kernel kill walgate if the test process dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def format_addr(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def render_ini(sections):
    """{section: {key: value}} -> INI text, sections and keys in given order."""
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        for key, value in keys.items():
            lines.append(f"{key} = {value}")
        lines.append("")
    return "\n".join(lines)


class WalgateError(Exception):
    pass


_features = {}


def binary_features(binary=None):
    """Which optional config sections this build of walgate knows.

    Builds from the [access]/[metrics] work on require "[access] allow" and
    listen for metrics on a fixed default port; older builds refuse both
    sections. Probed once per binary with --check-config."""
    binary = binary or walgate_bin()
    key = (binary, os.stat(binary).st_mtime_ns)
    if key in _features:
        return _features[key]
    base = {"walgate": {"listen": f"{LOOPBACK_V4}:{free_port()}"},
            "upstream": {"host": LOOPBACK_V4, "port": 5432}}
    with tempfile.TemporaryDirectory(prefix="walgate-probe-") as tmp:
        path = os.path.join(tmp, "probe.ini")
        attempts = [({"access", "metrics"}, dict(base, **_access_metrics_sections())),
                    (set(), base)]
        errors = []
        for features, sections in attempts:
            with open(path, "w") as f:
                f.write(render_ini(sections))
            proc = subprocess.run([binary, "--check-config", "--config", path],
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  env=_env_without_walgate(), timeout=10)
            if proc.returncode == 0:
                _features[key] = features
                return features
            errors.append(proc.stderr.strip())
    raise WalgateError(f"{binary} accepts none of the harness's config forms:\n"
                       + "\n".join(errors))


def _access_metrics_sections():
    return {"access": {"allow": "127.0.0.0/8, ::1/128"},
            "metrics": {"listen": f"{LOOPBACK_V4}:{free_port()}"}}


def _env_without_walgate():
    return {k: v for k, v in os.environ.items() if not k.startswith("WALGATE_")}


class Walgate:
    """One walgate process with its own config file and log.

    listen:   [(host, port)] to listen on; default one free port on 127.0.0.1.
    upstream_host/upstream_port: the [upstream] section.
    walgate:  extra [walgate] keys (override the defaults below).
    upstream: extra [upstream] keys.
    env:      extra environment variables for the process.
    sections: more sections, {section: {key: value}}, merged last.

    For builds that know [access] and [metrics] (see binary_features), the
    file also admits loopback clients and puts metrics on a free port.
    """

    DEFAULTS = {
        "log_level": "debug",
        "log_format": "text",
        "max_client_conn": "100",
        "startup_timeout": "10s",
        "drain_timeout": "5s",
    }

    def __init__(self, upstream_port, upstream_host=LOOPBACK_V4, listen=None, walgate=None,
                 upstream=None, env=None, binary=None, workdir=None, sections=None):
        self.binary = binary or walgate_bin()
        self.listen = list(listen) if listen else [(LOOPBACK_V4, free_port())]
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.walgate_keys = dict(walgate or {})
        self.upstream_keys = dict(upstream or {})
        self.env = dict(env or {})
        self.extra_sections = {}
        if os.access(self.binary, os.X_OK) and "access" in binary_features(self.binary):
            self.extra_sections = _access_metrics_sections()
            # free_port() holds nothing: never hand the metrics endpoint a
            # port that the client listener was just given.
            taken = {port for _, port in self.listen}
            while int(self.extra_sections["metrics"]["listen"].rpartition(":")[2]) in taken:
                self.extra_sections["metrics"]["listen"] = f"{LOOPBACK_V4}:{free_port()}"
        for name, keys in (sections or {}).items():
            self.extra_sections.setdefault(name, {}).update(keys)
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="walgate-wg-")
        self.config_path = os.path.join(self.workdir, "walgate.ini")
        self.log_path = os.path.join(self.workdir, "walgate.log")
        self.proc = None
        self.write_config()

    # -- addresses

    @property
    def host(self):
        return self.listen[0][0]

    @property
    def port(self):
        return self.listen[0][1]

    def sections(self):
        walgate_keys = {"listen": ", ".join(format_addr(h, p) for h, p in self.listen)}
        walgate_keys.update(self.DEFAULTS)
        walgate_keys.update(self.walgate_keys)
        upstream_keys = {"host": self.upstream_host, "port": self.upstream_port,
                         "connect_timeout": "5s"}
        upstream_keys.update(self.upstream_keys)
        return {"walgate": walgate_keys, **self.extra_sections, "upstream": upstream_keys}

    @property
    def metrics_addr(self):
        """(host, port) of the first [metrics] listen address, or None when
        this build has no metrics endpoint or it is "off"."""
        listen = self.extra_sections.get("metrics", {}).get("listen")
        if not listen or str(listen).strip() == "off":
            return None
        first = str(listen).split(",")[0].strip()
        host, _, port = first.rpartition(":")
        return host.strip("[]"), int(port)

    def write_config(self, walgate=None, upstream=None, text=None, sections=None):
        """(Re)write the config file, merging new keys into the current ones;
        or write text as it is. sections: {section: {key: value}} merged into
        the other sections (a value of None removes the key). Call reload()
        to make a running walgate read it."""
        for name, keys in (sections or {}).items():
            target = self.extra_sections.setdefault(name, {})
            for key, value in keys.items():
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
        if walgate:
            self.walgate_keys.update(walgate)
        if upstream:
            self.upstream_keys.update(upstream)
            if "port" in upstream:
                self.upstream_port = upstream["port"]
            if "host" in upstream:
                self.upstream_host = upstream["host"]
        if text is None:
            text = render_ini(self.sections())
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    # -- life cycle

    def process_env(self):
        env = _env_without_walgate()
        env.update({k: str(v) for k, v in self.env.items()})
        return env

    def start(self, wait=True):
        if not os.access(self.binary, os.X_OK):
            raise WalgateError(f"walgate binary not found or not executable: {self.binary} "
                               f"(build it: meson setup build && ninja -C build, or set WALGATE_BIN)")
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.binary, "--config", self.config_path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.workdir,
                env=self.process_env(), preexec_fn=_die_with_parent)
        finally:
            log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        """Wait until every listen address, and the metrics endpoint when
        there is one (it may be bound after the listeners), accepts TCP
        connections."""
        deadline = time.monotonic() + timeout
        pending = list(self.listen)
        if self.metrics_addr:
            pending.append(self.metrics_addr)
        while pending:
            if self.proc.poll() is not None:
                raise WalgateError(f"walgate exited with {self.proc.returncode} during start-up; "
                                   f"log:\n{self.log_text()}")
            host, port = pending[0]
            try:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                with socket.socket(family, socket.SOCK_STREAM) as s:
                    s.settimeout(1.0)
                    s.connect((host, port))
                pending.pop(0)
                continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise WalgateError(f"walgate did not accept connections on "
                                   f"{format_addr(host, port)} within {timeout} s; log:\n"
                                   f"{self.log_text()}")
            time.sleep(0.02)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        """SIGHUP: re-read the config file."""
        self.signal(signal.SIGHUP)

    def stop(self, timeout=15.0):
        """SIGTERM and wait for the exit; SIGKILL after timeout. Returns the
        exit code (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def returncode(self):
        return None if self.proc is None else self.proc.poll()

    def cleanup(self, keep_files=False):
        """Kill the process if it still runs and remove the work directory."""
        self.kill()
        if self._own_workdir and not keep_files:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- the metrics endpoint

    def http(self, path, method="GET", source=None, timeout=5.0, body=None):
        """One HTTP request to the metrics endpoint, optionally from a given
        source address (e.g. "127.0.0.2"); returns (status, headers, body)
        with header names in lower case."""
        import http.client
        host, port = self.metrics_addr
        conn = http.client.HTTPConnection(host, port, timeout=timeout,
                                          source_address=(source, 0) if source else None)
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def metrics(self):
        """GET /metrics parsed: {'name' or 'name{labels}' as rendered: value}."""
        status, _, body = self.http("/metrics")
        if status != 200:
            raise WalgateError(f"GET /metrics returned {status}: {body!r}")
        return parse_metrics(body.decode())

    def metric(self, key, default=None):
        """One sample of /metrics, e.g. 'walgate_connections_rejected_total{reason="not_allowed"}'."""
        return self.metrics().get(key, default)

    def wait_for_metric(self, key, predicate, timeout=5.0):
        """Poll /metrics until predicate(value) holds; returns the last value.
        A scrape closed at accept (walgate keeps the last eighth of its
        descriptors for clients, which a test that exhausts them may still
        hold for a moment) counts as no value yet."""
        deadline = time.monotonic() + timeout
        value = None
        while True:
            try:
                value = self.metric(key)
            except ConnectionError:
                if time.monotonic() > deadline:
                    raise
            if (value is not None and predicate(value)) or time.monotonic() > deadline:
                return value
            time.sleep(0.05)

    def wait_for_log(self, pattern, timeout=5.0):
        """Wait until the log matches the regex pattern; returns the match or None."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_text())
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            self.cleanup()
        return False


def parse_metrics(text):
    """Prometheus text format -> {'name' or 'name{labels}' as written: float}."""
    samples = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        samples[key] = float(value)
    return samples


def run_walgate(*args, env=None, timeout=10):
    """Run the binary with command-line arguments (for --check-config,
    --version, --help); returns the CompletedProcess with text output."""
    full_env = _env_without_walgate()
    full_env.update(env or {})
    return subprocess.run([walgate_bin(), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=full_env, timeout=timeout)
