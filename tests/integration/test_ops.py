"""Operations: the three deployment paths of walgate and their documents.

Container: no container engine runs here, so the image's contract is tested
instead. walgate starts from the environment alone (the Dockerfile's ENV
and the Kubernetes sidecar's env, with only addresses and ports moved to
loopback), as a non-root user, in a read-only working directory, with its
certificates and auth file in directories laid out the way the kubelet
mounts a Secret. It must relay, answer the probes the manifests name, run
the Dockerfile's HEALTHCHECK command, pick up a rotated Secret on SIGHUP and
stop cleanly.

Appliance: `meson install --destdir` puts the binary, both manual pages, the
example configuration and the systemd unit in place; the unit passes
`systemd-analyze verify` and its hardening score; sd_notify reports ready,
reloading and stopping.

Documents: every configuration key is in walgate.ini(5) and the README
with the right reload behaviour, every option in walgate(8), and the alert
rules and the dashboard only use metrics walgate exports.
"""

import glob
import http.client
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
from types import SimpleNamespace

import psycopg2
import pytest
import yaml

from clients import connect
from pgcluster import LOOPBACK_V4, TEST_PASSWORD, TEST_USER, free_port, issue_cert
from walgate import REPO_ROOT, _die_with_parent, _env_without_walgate, parse_metrics, walgate_bin

pytestmark = pytest.mark.walgate_only

DOCKERFILE = os.path.join(REPO_ROOT, "deploy", "docker", "Dockerfile")
SIDECAR = os.path.join(REPO_ROOT, "deploy", "kubernetes", "sidecar.yaml")
RULES = os.path.join(REPO_ROOT, "deploy", "prometheus", "walgate.rules.yml")
DASHBOARD = os.path.join(REPO_ROOT, "deploy", "grafana", "walgate-dashboard.json")
MAN8 = os.path.join(REPO_ROOT, "doc", "walgate.8")
MAN5 = os.path.join(REPO_ROOT, "doc", "walgate.ini.5")
README = os.path.join(REPO_ROOT, "README.md")
CONFIG_C = os.path.join(REPO_ROOT, "proxy", "core", "config.c")

SERVICE_USER = "walgate"
WALGATE_SAN = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
ROTATED_USER = "walgate_ops_rotated"
ROTATED_PASSWORD = "rotated-pw"


# --------------------------------------------------------------------------
# The deployment files, read the way the tools that use them would

def dockerfile_lines(stage=-1):
    """The instructions of one stage of the Dockerfile (default: the last,
    the run-time image), continuation lines joined."""
    with open(DOCKERFILE) as f:
        text = f.read().replace("\\\n", " ")
    stages, current = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            current = []
            stages.append(current)
        elif current is not None:
            current.append(line)
    return stages[stage]


def dockerfile_instruction(name):
    return [line[len(name):].strip() for line in dockerfile_lines()
            if line.upper().startswith(name + " ")]


def dockerfile_env():
    env = {}
    for args in dockerfile_instruction("ENV"):
        for token in shlex.split(args):
            key, _, value = token.partition("=")
            env[key] = value
    return env


def dockerfile_healthcheck():
    (args,) = dockerfile_instruction("HEALTHCHECK")
    return json.loads(args.split("CMD", 1)[1].strip())


def dockerfile_runtime_packages():
    packages = set()
    for args in dockerfile_instruction("RUN"):
        for command in args.split("&&"):
            words = command.split()
            if "apt-get" in words and "install" in words:
                packages.update(w for w in words[words.index("install") + 1:]
                                if not w.startswith("-"))
    return packages


def sidecar_documents():
    with open(SIDECAR) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def sidecar_pod():
    (deployment,) = [d for d in sidecar_documents() if d["kind"] == "Deployment"]
    return deployment["spec"]["template"]


def sidecar_container():
    spec = sidecar_pod()["spec"]
    (container,) = [c for c in spec.get("initContainers", []) + spec["containers"]
                    if c["name"] == "walgate"]
    return container


def sidecar_secret_volumes():
    """{volume name: (mount path, {file name: Secret text})} of the walgate container."""
    secrets = {d["metadata"]["name"]: d.get("stringData", {})
               for d in sidecar_documents() if d["kind"] == "Secret"}
    volumes = {v["name"]: v for v in sidecar_pod()["spec"]["volumes"]}
    out = {}
    for mount in sidecar_container()["volumeMounts"]:
        secret = volumes[mount["name"]]["secret"]
        files = secrets[secret["secretName"]]
        if "items" in secret:       # only these keys are mounted, under these names
            files = {item["path"]: files[item["key"]] for item in secret["items"]}
        out[mount["name"]] = (mount["mountPath"], files, secret.get("defaultMode", 0o644))
    return out


def needed_libraries(binary):
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                         check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def links_libsystemd(binary):
    return any(lib.startswith("libsystemd.") for lib in needed_libraries(binary))


# --------------------------------------------------------------------------
# The container's world: a non-root user, Secret volumes, a read-only cwd

def service_account():
    """(uid, gid) to run walgate as: the 'walgate' system user when the tests
    run as root (created as the sysusers.d file would), else ourselves."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        pw = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        SERVICE_USER], check=True, capture_output=True)
        pw = pwd.getpwnam(SERVICE_USER)
    return pw.pw_uid, pw.pw_gid


class SecretVolume:
    """A directory laid out as the kubelet mounts a Secret: each file is a
    symlink through ..data to a versioned directory, and an update swaps
    ..data in one rename. Files belong to root and the pod's fsGroup."""

    def __init__(self, path, gid, mode):
        self.path, self.gid, self.mode = path, gid, mode
        self.version = 0
        os.makedirs(path)
        self._own(path, 0o755)

    def _own(self, path, mode):
        if os.geteuid() == 0:
            os.chown(path, 0, self.gid)
        os.chmod(path, mode)

    def update(self, files):
        self.version += 1
        data = os.path.join(self.path, f"..v{self.version}")
        os.mkdir(data)
        for name, content in files.items():
            target = os.path.join(data, name)
            with open(target, "wb") as f:
                f.write(content if isinstance(content, bytes) else content.encode())
            self._own(target, self.mode)
        self._own(data, 0o755)
        link = os.path.join(self.path, "..data")
        os.symlink(os.path.basename(data), link + "_tmp")
        os.replace(link + "_tmp", link)
        for name in files:
            visible = os.path.join(self.path, name)
            if not os.path.lexists(visible):
                os.symlink(os.path.join("..data", name), visible)
        if self.version > 1:
            shutil.rmtree(os.path.join(self.path, f"..v{self.version - 1}"))


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def http_get(port, path, timeout=5.0):
    conn = http.client.HTTPConnection(LOOPBACK_V4, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def peer_certificate(port):
    """The DER certificate walgate presents after an SSLRequest."""
    with socket.create_connection((LOOPBACK_V4, port), timeout=5) as raw:
        raw.sendall(struct.pack("!II", 8, 80877103))
        assert raw.recv(1) == b"S"
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


def cert_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class Container:
    """walgate started as the image and the sidecar manifest start it."""

    def __init__(self, root, binary, env, uid, gid):
        self.root, self.env, self.uid, self.gid = root, env, uid, gid
        self.binary = os.path.join(root, "bin", "walgate")
        os.makedirs(os.path.dirname(self.binary))
        shutil.copy(binary, self.binary)
        os.chmod(os.path.dirname(self.binary), 0o755)
        os.chmod(self.binary, 0o755)
        self.workdir = os.path.join(root, "workdir")
        os.mkdir(self.workdir)
        os.chmod(self.workdir, 0o555)
        self.log_path = os.path.join(root, "walgate.log")
        self.proc = None

    def _user_args(self):
        if os.geteuid() != 0:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def process_env(self):
        env = _env_without_walgate()
        env.pop("NOTIFY_SOCKET", None)
        env.update(self.env)
        env["HOME"] = "/nonexistent"
        return env

    def start(self, argv=()):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary, *argv], cwd=self.workdir,
                                         env=self.process_env(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, preexec_fn=_die_with_parent,
                                         **self._user_args())

    def run(self, argv):
        """Run a command in the container (as docker exec would)."""
        argv = [self.binary if a == "/usr/sbin/walgate" else a for a in argv]
        return subprocess.run(argv, cwd=self.workdir, env=self.process_env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=15, **self._user_args())

    def wait_healthy(self, port, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"walgate exited:\n{self.log_text()}"
            try:
                if http_get(port, "/healthz", timeout=1.0)[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"walgate not healthy:\n{self.log_text()}"
            time.sleep(0.05)

    def metric(self, port, key):
        status, body = http_get(port, "/metrics")
        assert status == 200
        return parse_metrics(body.decode()).get(key)

    def wait_metric(self, port, key, value, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.metric(port, key) != value and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.metric(port, key)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def container_root():
    # Under /tmp, reachable by the service user (pytest's tmp_path is not).
    root = tempfile.mkdtemp(prefix="walgate-ctr-")
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def rotated_role(pg):
    pg.sql(f"DROP ROLE IF EXISTS {ROTATED_USER}")
    pg.sql(f"CREATE ROLE {ROTATED_USER} LOGIN PASSWORD '{ROTATED_PASSWORD}'")
    yield ROTATED_USER
    pg.sql(f"DROP ROLE IF EXISTS {ROTATED_USER}")


def secret_files(pg, certs_dir, cert_name, users):
    """The contents the sidecar's Secrets hold, by file name."""
    cert, key = issue_cert(pg.ca, cert_name, "localhost", san=WALGATE_SAN, directory=certs_dir)
    return {"tls.crt": read_file(cert), "tls.key": read_file(key),
            "upstream-ca.crt": read_file(pg.ca_cert),
            "users.txt": "".join(f'"{u}" "{p}"\n' for u, p in users)}, cert


def sidecar_env_value(item, pg):
    """The value of one env item of the sidecar: literal, or from a Secret
    (its placeholders filled in for the test cluster)."""
    if "value" in item:
        return str(item["value"])
    ref = item["valueFrom"]["secretKeyRef"]
    (secret,) = [d for d in sidecar_documents()
                 if d["kind"] == "Secret" and d["metadata"]["name"] == ref["name"]]
    value = secret["stringData"][ref["key"]]
    for placeholder, real in {"<database host name>": f"{LOOPBACK_V4} port={pg.port}",
                              "<monitor role>": TEST_USER,
                              "<password>": TEST_PASSWORD}.items():
        value = value.replace(placeholder, real)
    assert "<" not in value, f"unknown placeholder in Secret {ref['name']}: {value}"
    return value


def container_env(volumes, listen_port, metrics_port, pg):
    """The Dockerfile's ENV, then the sidecar's env over it (as Kubernetes
    does), with Secret mount paths moved to the test's volumes and only
    the addresses moved to loopback."""
    env = dockerfile_env()
    for item in sidecar_container()["env"]:
        value = sidecar_env_value(item, pg)
        for mount_path, volume in volumes.values():
            value = value.replace(mount_path + "/", volume.path + "/")
        env[item["name"]] = value
    moved = {"WALGATE_WALGATE_LISTEN": f"{LOOPBACK_V4}:{listen_port}",
             "WALGATE_METRICS_LISTEN": f"{LOOPBACK_V4}:{metrics_port}",
             "WALGATE_UPSTREAM_HOST": LOOPBACK_V4,
             "WALGATE_UPSTREAM_PORT": str(pg.port)}
    for name in moved:
        assert name in env, f"{name} is set by neither the Dockerfile nor the sidecar"
    env.update(moved)
    return env


def make_volumes(root, gid, contents):
    volumes = {}
    for name, (mount_path, keys, mode) in sidecar_secret_volumes().items():
        assert not mode & 0o007, f"volume {name}: defaultMode {mode:o} lets others read"
        missing = set(keys) - set(contents)
        assert not missing, f"the test does not know the Secret files {missing}"
        volume = SecretVolume(os.path.join(root, "secrets", name), gid, mode)
        volume.update({k: contents[k] for k in keys})
        volumes[name] = (mount_path, volume)
    return volumes


def login(port, user=TEST_USER, password=TEST_PASSWORD):
    """A TLS session through the container's walgate, as the pod's client opens it."""
    return connect(SimpleNamespace(host=LOOPBACK_V4, port=port), sslmode="require",
                   user=user, password=password)


# --------------------------------------------------------------------------
# Container: environment only, non-root, read-only, health, reload

def test_container_contract(pg, walgate_binary, container_root, rotated_role):
    uid, gid = service_account()
    certs_dir = os.path.join(container_root, "certs")
    os.mkdir(certs_dir)
    first, first_cert = secret_files(pg, certs_dir, "walgate", [(TEST_USER, TEST_PASSWORD)])
    volumes = make_volumes(container_root, gid, first)
    listen_port, metrics_port = free_port(), free_port()
    while metrics_port == listen_port:
        metrics_port = free_port()
    ctr = Container(container_root, walgate_binary,
                    container_env(volumes, listen_port, metrics_port, pg), uid, gid)
    try:
        ctr.start()
        ctr.wait_healthy(metrics_port)
        check_runs_unprivileged(ctr)
        check_probes(ctr, metrics_port)
        # The optional monitor Secret of the manifest: the upstream series.
        assert ctr.wait_metric(metrics_port, "walgate_upstream_up", 1) == 1, ctr.log_text()
        check_relay(pg, listen_port)
        check_rotation(pg, ctr, volumes, certs_dir, listen_port, metrics_port, first_cert)
        ctr.proc.send_signal(signal.SIGTERM)
        assert ctr.proc.wait(15) == 0, ctr.log_text()
        assert os.listdir(ctr.workdir) == []
        check_json_log(ctr)
    except BaseException:
        print(f"\n----- walgate log -----\n{ctr.log_text()}")
        raise
    finally:
        ctr.kill()


def check_runs_unprivileged(ctr):
    with open(f"/proc/{ctr.proc.pid}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert all(int(u) == ctr.uid for u in uids)
    if os.geteuid() == 0:
        assert ctr.uid != 0


def check_probes(ctr, metrics_port):
    container = sidecar_container()
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert http_get(metrics_port, path)[0] == 200, probe
    healthcheck = dockerfile_healthcheck()
    proc = ctr.run(healthcheck)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = ctr.run([healthcheck[0], "--probe", "/readyz"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = ctr.run([healthcheck[0], "--probe", "/nowhere"])
    assert proc.returncode == 1 and "404" in proc.stderr, proc.stdout + proc.stderr


def check_relay(pg, listen_port):
    conn = login(listen_port)
    try:
        cur = conn.cursor()
        cur.execute("SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone() == (TEST_USER, True)  # and the upstream leg is TLS too
    finally:
        conn.close()


def check_rotation(pg, ctr, volumes, certs_dir, listen_port, metrics_port, first_cert):
    """A Secret update (new certificate, a user added) takes effect on SIGHUP;
    a session from before it goes on."""
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        login(listen_port, ROTATED_USER, ROTATED_PASSWORD).close()
    assert peer_certificate(listen_port) == cert_der(first_cert)
    before = login(listen_port)
    try:
        second, second_cert = secret_files(pg, certs_dir, "walgate2",
                                           [(TEST_USER, TEST_PASSWORD),
                                            (ROTATED_USER, ROTATED_PASSWORD)])
        for _, volume in volumes.values():
            volume.update({k: second[k] for k in os.listdir(os.path.join(volume.path, "..data"))})
        ctr.proc.send_signal(signal.SIGHUP)
        assert ctr.wait_metric(metrics_port, "walgate_config_generation", 2) == 2, ctr.log_text()
        assert peer_certificate(listen_port) == cert_der(second_cert)
        conn = login(listen_port, ROTATED_USER, ROTATED_PASSWORD)
        cur = conn.cursor()
        cur.execute("SELECT current_user")
        assert cur.fetchone()[0] == ROTATED_USER
        conn.close()
        cur = before.cursor()
        cur.execute("SELECT 'still here'")
        assert cur.fetchone()[0] == "still here"
    finally:
        before.close()


def check_json_log(ctr):
    lines = [line for line in ctr.log_text().splitlines() if line.strip()]
    assert lines
    for line in lines:
        json.loads(line)


def test_probe_fails_without_walgate(walgate_binary):
    """The health check's exit status when nothing answers."""
    env = _env_without_walgate()
    env.update(WALGATE_UPSTREAM_HOST=LOOPBACK_V4, WALGATE_ACCESS_ALLOW="127.0.0.1",
               WALGATE_WALGATE_LISTEN=f"{LOOPBACK_V4}:{free_port()}",
               WALGATE_METRICS_LISTEN=f"{LOOPBACK_V4}:{free_port()}")
    proc = subprocess.run([walgate_binary, "--probe", "/healthz"], env=env,
                          capture_output=True, text=True, timeout=15)
    assert proc.returncode == 1
    assert "Connection refused" in proc.stderr
    env["WALGATE_METRICS_LISTEN"] = "off"
    proc = subprocess.run([walgate_binary, "--probe", "/healthz"], env=env,
                          capture_output=True, text=True, timeout=15)
    assert proc.returncode == 1 and "off" in proc.stderr


def test_dockerfile_installs_runtime_libraries(walgate_binary):
    """Every library walgate links comes from a package the run-time stage
    installs (libsystemd aside: the image is built without it)."""
    ignore = re.compile(r"^(libc|libm|libdl|libpthread|librt|ld-linux.*|libgcc_s|"
                        r"libasan|libubsan|liblsan|libtsan|libsystemd)\.so")
    wanted = dockerfile_runtime_packages()
    ldd = subprocess.run(["ldd", walgate_binary], capture_output=True, text=True, check=True)
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd.stdout, re.M))
    for lib in needed_libraries(walgate_binary):
        if ignore.match(lib):
            continue
        real = os.path.realpath(paths[lib])
        owner = subprocess.run(["dpkg", "-S", real, "/usr" + real], capture_output=True,
                               text=True).stdout
        package = owner.split(":")[0].strip()
        assert package in wanted, f"{lib} is in {package}, which the Dockerfile does not install"


def test_dockerfile_contract():
    """Non-root, exec-form entry point and health check (no shell needed)."""
    (user,) = dockerfile_instruction("USER")
    assert user.split(":")[0] not in ("0", "root")
    (entrypoint,) = dockerfile_instruction("ENTRYPOINT")
    assert json.loads(entrypoint) == ["/usr/sbin/walgate"]
    healthcheck = dockerfile_healthcheck()
    assert healthcheck[0] == "/usr/sbin/walgate" and "/healthz" in healthcheck
    with open(DOCKERFILE) as f:
        stages = re.findall(r"^FROM (\S+)", f.read(), re.M)
    assert len(stages) >= 2 and all("-slim" in image for image in stages), stages


def test_sidecar_manifest_is_consistent():
    pod = sidecar_pod()
    container = sidecar_container()
    env = {e["name"]: e.get("value") for e in container["env"]}
    metrics_port = int(env["WALGATE_METRICS_LISTEN"].rpartition(":")[2])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == metrics_port
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(metrics_port)
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ("metrics", metrics_port)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    for name, value in env.items():
        if name.endswith("_FILE"):
            assert any(value.startswith(m + "/") for m in mounts), f"{name}: not on a Secret"
    assert sidecar_reference_problems() == []


def sidecar_reference_problems():
    """Every name the manifest refers to is defined in it: Secrets and their
    keys (env secretKeyRef, secret volumes and their items), volumes of
    volumeMounts, named ports of probes. A structural check, since no
    Kubernetes schema validator is packaged for Debian 12."""
    docs = sidecar_documents()
    problems = [f"document {i} lacks {field}" for i, d in enumerate(docs)
                for field in ("apiVersion", "kind", "metadata") if field not in d]
    secrets = {d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {}))
               for d in docs if d["kind"] == "Secret"}
    spec = sidecar_pod()["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for v in volumes.values():
        if "secret" in v:
            name = v["secret"]["secretName"]
            if name not in secrets:
                problems.append(f"volume {v['name']}: Secret {name} is not defined")
            for item in v["secret"].get("items", []):
                if item["key"] not in secrets.get(name, ()):
                    problems.append(f"volume {v['name']}: Secret {name} has no key {item['key']}")
    for c in spec.get("initContainers", []) + spec["containers"]:
        where = f"container {c['name']}"
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["key"] not in secrets.get(ref["name"], ()):
                problems.append(f"{where}: env {e['name']} reads {ref['name']}/{ref['key']}, "
                                f"which the manifest does not define")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                problems.append(f"{where}: mounts undefined volume {m['name']}")
        ports = {p.get("name") for p in c.get("ports", [])}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            port = c.get(probe, {}).get("httpGet", {}).get("port")
            if isinstance(port, str) and port not in ports:
                problems.append(f"{where}: {probe} names port {port}, which it does not have")
    return problems


# --------------------------------------------------------------------------
# Appliance: sd_notify

def receive_notices(sock, until, timeout=5.0):
    """Datagrams from walgate until one contains `until`; returns them all."""
    got = []
    deadline = time.monotonic() + timeout
    while not any(until in g for g in got):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            raise AssertionError(f"no {until!r} from walgate; got {got}") from None
    return got


def test_sd_notify(walgate_factory, walgate_binary, tmp_path):
    if not links_libsystemd(walgate_binary):
        pytest.skip("walgate was built without libsystemd (meson -Dsystemd): no sd_notify")
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        wg = walgate_factory(env={"NOTIFY_SOCKET": path})
        assert "READY=1" in receive_notices(sock, "READY=1")[-1]
        wg.reload()
        got = receive_notices(sock, "READY=1")
        assert re.search(r"RELOADING=1\nMONOTONIC_USEC=\d+", got[0]), got
        assert "rule set 2" in got[-1]
        wg.write_config(text="[walgate]\nno_such_key = 1\n")
        wg.reload()
        got = receive_notices(sock, "READY=1")
        assert "RELOADING=1" in got[0] and "reload refused" in got[-1], got
        wg.stop()
        assert any("STOPPING=1" in g for g in receive_notices(sock, "STOPPING=1"))


# --------------------------------------------------------------------------
# Appliance: meson install and the systemd unit

def build_dir_of(binary):
    build = os.path.dirname(os.path.dirname(os.path.abspath(binary)))
    if not os.path.exists(os.path.join(build, "build.ninja")):
        pytest.skip(f"{binary} is not in a meson build directory")
    return build


@pytest.fixture(scope="module")
def installed():
    """`meson install --destdir` of the build WALGATE_BIN comes from; yields
    (destdir, {option: value})."""
    build = build_dir_of(walgate_bin())
    with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
        options = {o["name"]: o["value"] for o in json.load(f)}
    dest = tempfile.mkdtemp(prefix="walgate-install-")
    try:
        proc = subprocess.run(["meson", "install", "-C", build, "--destdir", dest,
                               "--no-rebuild", "--quiet"], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield dest, options
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def installed_path(installed, option, *parts):
    dest, options = installed
    base = options[option]
    if not os.path.isabs(base):
        base = os.path.join(options["prefix"], base)
    return os.path.join(dest + base, *parts) if parts else dest + base


def unit_path(installed):
    dest, options = installed
    unitdir = options["systemdunitdir"]
    if unitdir == "no":
        pytest.skip("built with -Dsystemdunitdir=no")
    unitdir = unitdir or os.path.join(options["prefix"], "lib", "systemd", "system")
    return dest + os.path.join(unitdir, "walgate.service")


def test_install_binary_and_example(installed, walgate_binary):
    binary = installed_path(installed, "sbindir", "walgate")
    assert os.access(binary, os.X_OK)
    assert subprocess.run([binary, "--version"], capture_output=True, text=True,
                          check=True).stdout.startswith("walgate ")
    example = installed_path(installed, "datadir", "doc", "walgate", "walgate.ini.example")
    proc = subprocess.run([binary, "--check-config", "--config", example],
                          env=_env_without_walgate(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("section, name", [("8", "walgate.8"), ("5", "walgate.ini.5")])
def test_install_man_pages(installed, section, name):
    page = installed_path(installed, "mandir", f"man{section}", name)
    assert os.path.exists(page)
    if shutil.which("groff"):
        proc = subprocess.run(["groff", "-man", "-z", "-ww", page], capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr, proc.stderr
    if shutil.which("mandoc"):
        proc = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", page],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def unit_settings(path):
    settings = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")):
                key, _, value = line.partition("=")
                settings.setdefault(key, []).append(value)
    return settings


def test_install_systemd_unit(installed, walgate_binary):
    path = unit_path(installed)
    s = unit_settings(path)
    _, options = installed
    sbindir = os.path.join(options["prefix"], options["sbindir"])
    assert s["ExecStart"][0].startswith(os.path.join(sbindir, "walgate") + " --config ")
    assert s["ExecReload"][-1] == "/bin/kill -HUP $MAINPID"
    assert s["Type"] == ["notify" if links_libsystemd(walgate_binary) else "simple"]
    assert s["User"] == ["walgate"] and s["NoNewPrivileges"] == ["yes"]
    assert s["ProtectSystem"] == ["strict"]
    assert s["CapabilityBoundingSet"] == [""] and s["AmbientCapabilities"] == [""]
    unitdir = os.path.dirname(path)
    libdir = os.path.dirname(os.path.dirname(unitdir))
    for sub in ("sysusers.d", "tmpfiles.d"):
        assert os.path.exists(os.path.join(libdir, sub, "walgate.conf")), sub


def systemd_analyze_works(tmp_path):
    if not shutil.which("systemd-analyze"):
        return False
    trivial = tmp_path / "walgate-trivial.service"
    trivial.write_text("[Service]\nExecStart=/bin/true\n")
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(trivial)],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode == 0


def test_systemd_analyze_unit(installed, tmp_path):
    if not systemd_analyze_works(tmp_path):
        pytest.skip("systemd-analyze is missing or cannot verify units here")
    dest, options = installed
    unit = tmp_path / "walgate.service"
    sbin = os.path.join(options["prefix"], options["sbindir"])
    with open(unit_path(installed)) as f:
        unit.write_text(f.read().replace(sbin + "/walgate", dest + sbin + "/walgate"))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    # The threshold is ten times the "exposure level" printed (20: 2.0 of 10).
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20",
                           str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr


# --------------------------------------------------------------------------
# Documents agree with the code

def config_keys():
    """[(section, key, reloadable)] from the table in proxy/core/config.c."""
    with open(CONFIG_C) as f:
        text = f.read()
    rows = re.findall(r'\{\s*"(\w+)",\s*"(\w+)",\s*KT_\w+,[^}]*?\b(true|false)\b[^}]*\}', text)
    assert len(rows) > 30
    return [(s, k, r == "true") for s, k, r in rows]


def env_name(section, key):
    return f"WALGATE_{section}_{key}".upper()


def man_entry(text, section, env):
    """The text of the .TP entry of walgate.ini(5) that names env in its section."""
    at = text.index(env, text.index(f".SH [{section}]"))
    start = text.rfind(".TP", 0, at)
    ends = [i for i in (text.find(".TP", at), text.find(".SH", at)) if i != -1]
    return text[start:min(ends) if ends else len(text)]


def readme_row(text, env):
    return next(line for line in text.splitlines() if line.startswith("|") and env in line)


def key_doc_problems(section, key, reloadable, man, readme):
    """What walgate.ini(5) and the README get wrong or leave out about one key."""
    env = env_name(section, key)
    where = f"[{section}] {key} ({env})"
    if f".SH [{section}]" not in man:
        return [f"doc/walgate.ini.5 has no section [{section}]"]
    problems = []
    if env not in man[man.index(f".SH [{section}]"):]:
        problems.append(f"{where} is not in doc/walgate.ini.5")
    elif key not in man_entry(man, section, env) or \
            ("restart" in man_entry(man, section, env)) == reloadable:
        problems.append(f"{where}: doc/walgate.ini.5 names another key or gets reload wrong")
    if env not in readme:
        problems.append(f"{where} is not in the README's configuration reference")
    elif ("| restart |" in readme_row(readme, env)) == reloadable:
        problems.append(f"{where}: the README gets reload wrong")
    return problems


def test_every_key_documented():
    with open(MAN5) as f:
        man = f.read().replace("\\-", "-")
    with open(README) as f:
        readme = f.read()
    problems = [p for section, key, reloadable in config_keys()
                for p in key_doc_problems(section, key, reloadable, man, readme)]
    assert problems == []


def test_every_option_in_man_page(walgate_binary):
    with open(MAN8) as f:
        man = f.read().replace("\\-", "-")
    help_text = subprocess.run([walgate_binary, "--help"], capture_output=True, text=True,
                               check=True).stdout
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z])\b", help_text))
    assert {"--config", "--check-config", "--probe", "--version", "--help"} <= options
    for option in options:
        assert option in man, f"{option} is not in doc/walgate.8"


def exported_metric_names():
    names = set()
    for path in glob.glob(os.path.join(REPO_ROOT, "proxy", "**", "*.c"), recursive=True):
        with open(path) as f:
            names.update(re.findall(r'"(walgate_[a-z0-9_]+)', f.read()))
    return names


def test_alerts_and_dashboard_use_exported_metrics():
    exported = exported_metric_names()
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    exprs += dashboard_exprs()
    used = {m for e in exprs for m in re.findall(r"\bwalgate_[a-z0-9_]+", e)}
    assert sorted(used - exported) == [], "used but not exported by walgate"
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert len(alerts) >= 7


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = []
    for panel in dash["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    return exprs


def test_dashboard_queries_parse(tmp_path):
    """Every panel query is valid PromQL once Grafana's variables are filled
    in: promtool checks them as recording rules."""
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool is not installed")
    with open(DASHBOARD) as f:
        dash = json.load(f)
    assert any(p.get("repeat") == "slot" for p in dash["panels"]), "no per-slot row"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    rules = []
    for i, expr in enumerate(dashboard_exprs()):
        expr = (expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
                .replace("$slot", "slot"))
        rules.append({"record": f"walgate:dashboard_query_{i}", "expr": expr})
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_import_asks_for_a_data_source():
    """Grafana's import asks for each __inputs entry and puts the choice in
    for its ${NAME}: the dashboard declares a Prometheus input, and the
    data source variable starts on it."""
    with open(DASHBOARD) as f:
        text = f.read()
    dash = json.loads(text)
    inputs = {i["name"]: i for i in dash.get("__inputs", [])}
    assert any(i["type"] == "datasource" and i["pluginId"] == "prometheus"
               for i in inputs.values()), dash.get("__inputs")
    used = set(re.findall(r"\$\{(DS_[A-Z_]+)\}", text))
    assert used and used <= set(inputs), (used, set(inputs))
    (var,) = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    assert var["current"]["value"] == "${DS_PROMETHEUS}"
