"""Scenarios 4-7 of run_bench.py, on bench/synth_walsender and bench/synth_sink
instead of PostgreSQL:

  4. proxy cost per byte: one session streams --stream-bytes of pgoutput
     through each target; the proxy's CPU seconds per GiB, plaintext (walgate,
     HAProxy) and with TLS on both legs (walgate, stunnel), next to what
     `openssl speed -evp` says one decrypt plus one encrypt of the negotiated
     cipher costs (--ciphersuite, TLS_AES_256_GCM_SHA384 by default);
  5. memory: N idle logged-in sessions held through a fresh proxy; resident
     memory per session;
  6. scrape: /metrics with S replication sessions (slots s_0 ... s_S-1) open;
  7. scaling ("4s"): scenario 4 with TLS on both legs and K concurrent
     streams, through walgate with workers = 1 and with workers = 2; aggregate
     MB/s, walgate CPU s/GiB and the speed-up.

SynthScenarios is mixed into run_bench.Bench, which provides args, workdir,
certs, results, errors, facts and measure().
"""

import json
import os
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from bench_procs import (BenchError, HAProxy, Stunnel, SynthServer, WalgateProc, cpu_seconds,
                         cpu_times, die_with_parent, machine_cpu, rss_kib, thread_cpu, tree_cpu)

GIB = float(1 << 30)
MIB = float(1 << 20)
STREAM_TARGETS = ("direct", "walgate", "haproxy", "direct-tls", "walgate-tls", "stunnel")
TLS_TARGETS = {"direct-tls", "walgate-tls", "stunnel"}
SYSCALLS = ("read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto", "sendmsg",
            "epoll_wait", "epoll_ctl", "ioctl", "splice")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def parse_sink_json(out):
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError(f"no result from synth_sink: {out[-300:]!r}")


def sink_argv(binary, host, port, tls, *extra, timeout=600):
    return [binary, "--connect", f"{host}:{port}", "--sslmode", "require" if tls else "disable",
            "--timeout", str(int(timeout)), *extra]


def run_sink(binary, host, port, tls, *extra, timeout=600):
    """One synth_sink run to its end; its JSON result plus its own CPU seconds."""
    c0 = children_cpu()
    proc = subprocess.run(sink_argv(binary, host, port, tls, *extra, timeout=timeout),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout + 30, preexec_fn=die_with_parent)
    res = parse_sink_json(proc.stdout) if proc.stdout.strip() else {}
    if proc.returncode != 0 or res.get("failed"):
        raise BenchError(f"synth_sink failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    res["client_cpu"] = children_cpu() - c0
    return res


class HeldSessions:
    """synth_sink --hold: N sessions that stay open until release()."""

    def __init__(self, binary, host, port, tls, *extra, timeout=900):
        self.proc = subprocess.Popen(sink_argv(binary, host, port, tls, "--hold", *extra,
                                               timeout=timeout),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     preexec_fn=die_with_parent)
        self.timeout = timeout

    def wait_ready(self):
        """Wait for "ready N failed M"; returns (N, M)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if r:
                line = self.proc.stdout.readline()
                if not line:
                    break
                m = re.match(r"ready (\d+) failed (\d+)", line)
                if m:
                    return int(m.group(1)), int(m.group(2))
            elif self.proc.poll() is not None:
                break
        err = self.release(check=False)
        raise BenchError(f"synth_sink --hold never got ready: {err}")

    def release(self, check=True):
        """Close stdin (the sink closes its sessions and exits); its JSON."""
        try:
            out, err = self.proc.communicate(input="", timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        if not check:
            return err.strip()[-400:]
        return parse_sink_json(out)

    def release_after_ready(self):
        self.wait_ready()
        return self.release()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# The TLS 1.3 suites and the `openssl speed -evp` name of their cipher.
SUITE_CIPHERS = {"TLS_AES_256_GCM_SHA384": "aes-256-gcm",
                 "TLS_AES_128_GCM_SHA256": "aes-128-gcm",
                 "TLS_CHACHA20_POLY1305_SHA256": "chacha20-poly1305"}


def openssl_speed(secs, decrypt, cipher):
    """bytes/s of `openssl speed -evp CIPHER` on 16 kB blocks (one TLS record)."""
    argv = ["openssl", "speed", "-evp", cipher, "-seconds", str(secs), "-bytes", "16384"]
    if decrypt:
        argv.insert(2, "-decrypt")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout
    m = re.search(r"^" + re.escape(cipher.upper()) + r"\s+([0-9.]+)k\s*$", out, re.M)
    if not m:
        raise BenchError(f"cannot parse openssl speed output: {out[-300:]}")
    return float(m.group(1)) * 1000.0


class SynthScenarios:
    """Scenarios 4-7 (see the module docstring; 7 is ScalingMixin, below)."""

    def synth_bins(self):
        return self.args.synth_walsender, self.args.synth_sink

    def start_proc(self, stack, proc):
        stack.callback(proc.stop)
        proc.start()
        return proc

    # -- scenario 4

    def stream_setup(self, stack):
        a = self.args
        server_bin, _ = self.synth_bins()
        cert, key = self.certs
        synth = self.start_proc(stack, SynthServer(self.workdir, server_bin, cert, key,
                                                   a.stream_bytes, after="done",
                                                   suites=a.ciphersuite))
        self.synth_server = synth
        procs, targets = {}, {}
        for t in [t for t in STREAM_TARGETS if t in a.targets]:
            if t in ("direct", "direct-tls"):
                targets[t] = (synth.host, synth.port, t in TLS_TARGETS)
                continue
            if t == "walgate":
                p = WalgateProc(self.workdir, synth.port, name="walgate-synth")
            elif t == "walgate-tls":
                p = WalgateProc(self.workdir, synth.port, name="walgate-synth-tls", tls=(cert, key))
            elif t == "haproxy":
                p = HAProxy(self.workdir, synth.port, a.haproxy_threads, name="haproxy-synth")
            else:
                p = Stunnel(self.workdir, synth.port, cert, key, name="stunnel-synth")
            self.start_proc(stack, p)
            procs[t] = p
            targets[t] = (p.host, p.port, t in TLS_TARGETS)
        return procs, targets

    def stream_run(self, procs):
        _, sink_bin = self.synth_bins()

        def run(host, port, tls):
            s0 = cpu_seconds(self.synth_server.pid)
            extra = ("--ciphersuites", self.args.ciphersuite) if tls else ()
            res = run_sink(sink_bin, host, port, tls, *extra, timeout=900)
            s1 = cpu_seconds(self.synth_server.pid)
            wall = res["stream_s"] or res["wall_s"]
            return {"wall_s": wall, "bytes": res["bytes"], "mb_s": res["bytes"] / wall / 1e6,
                    "client_cpu": res["client_cpu"], "cipher": res.get("cipher") or None,
                    "server_cpu": (s1 - s0) if s0 is not None and s1 is not None else None}
        return run

    def scenario_stream(self, stack):
        a = self.args
        cipher = SUITE_CIPHERS[a.ciphersuite]
        log(f"scenario 4: openssl speed -evp {cipher} (encrypt, decrypt)")
        secs = 1 if a.quick else 3
        enc = openssl_speed(secs, False, cipher)
        dec = openssl_speed(secs, True, cipher)
        self.facts["aes"] = {"enc_bps": enc, "dec_bps": dec, "cipher": cipher,
                             "suite": a.ciphersuite, "ref_s_per_gib": GIB / enc + GIB / dec}
        procs, targets = self.stream_setup(stack)
        order = list(targets)
        run = self.stream_run(procs)
        log(f"scenario 4: {a.stream_bytes / MIB:.0f} MiB per run; warm-up")
        for t in order:
            self.measure("warmup-stream", t, run, procs=procs, targets=targets)
        self.results.pop("warmup-stream", None)
        self.errors.pop("warmup-stream", None)
        for rep in range(a.reps):
            k = rep % len(order)
            for t in order[k:] + order[:k]:
                r = self.measure("stream", t, run, procs=procs, targets=targets)
                if r:
                    cpu = r.get("proxy_cpu")
                    log(f"  stream rep {rep + 1} {t}: {r['mb_s']:.0f} MB/s"
                        + (f", proxy {cpu / (r['bytes'] / GIB):.2f} CPU s/GiB" if cpu else ""))
        if a.profile:
            self.profile_stream(procs, targets, run)

    # -- profile (--profile): perf stat syscall counts and perf record, one run each

    def profile_stream(self, procs, targets, run):
        if not shutil.which("perf"):
            self.facts["profile_error"] = "perf is not installed"
            return
        prof = {}
        for t, p in procs.items():
            log(f"profile: {t}")
            events = ",".join(f"syscalls:sys_enter_{s}" for s in SYSCALLS)
            with tempfile.NamedTemporaryFile("r", suffix=".perfstat") as out:
                perf = subprocess.Popen(["perf", "stat", "-x,", "-o", out.name, "-e", events,
                                         "-p", str(p.pid)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
                time.sleep(0.3)
                try:
                    r = run(*targets[t])
                finally:
                    perf.send_signal(signal.SIGINT)
                    perf.wait(30)
                counts = {}
                for line in out.read().splitlines():
                    f = line.split(",")
                    if len(f) > 2 and f[2].startswith("syscalls:sys_enter_"):
                        try:
                            counts[f[2][len("syscalls:sys_enter_"):]] = int(f[0])
                        except ValueError:
                            pass
            entry = {"syscalls": counts, "mib": r["bytes"] / MIB}
            if t.startswith("walgate"):
                entry["top"] = self.perf_top(p.pid, lambda: run(*targets[t]))
            prof[t] = entry
        self.facts["profile"] = prof

    def perf_top(self, pid, fn, limit=18):
        data = os.path.join(self.workdir, f"perf-{pid}.data")
        perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", data, "-p", str(pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=die_with_parent)
        time.sleep(0.3)
        try:
            fn()
        finally:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort",
                              "dso,symbol", "--stdio", "-g", "none", "--percent-limit", "0.8"],
                             capture_output=True, text=True, timeout=300).stdout
        lines = [ln.strip() for ln in rep.splitlines() if re.match(r"\s+[0-9.]+%", ln)]
        top = [re.sub(r"\s+", " ", ln).replace(" - -", "") for ln in lines[:limit]]
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso",
                              "--stdio", "-g", "none", "--percent-limit", "0.5"],
                             capture_output=True, text=True, timeout=300).stdout
        dsos = [re.sub(r"\s+", " ", ln.strip()) for ln in rep.splitlines()
                if re.match(r"\s+[0-9.]+%", ln)]
        return ["by shared object:"] + dsos + ["", "by symbol:"] + top

    # -- scenario 5

    def memory_sessions(self):
        """10,000, or as many as RLIMIT_NOFILE lets a proxy hold (two sockets each)."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.facts["nofile"] = soft
        return min(self.args.idle_sessions, (soft - 200) // 2)

    def scenario_memory(self, stack):
        a = self.args
        server_bin, sink_bin = self.synth_bins()
        cert, key = self.certs
        n = self.memory_sessions()
        self.facts["idle_sessions"] = n
        synth = self.start_proc(stack, SynthServer(self.workdir, server_bin, cert, key, 0,
                                                   name="synth-idle", suites=self.args.ciphersuite))
        cases = [("walgate", False), ("walgate-tls", True), ("haproxy", False)]
        rows = []
        for name, tls in cases:
            if name not in a.targets:
                continue
            log(f"scenario 5: {n} idle sessions through {name}")
            if name.startswith("walgate"):
                p = WalgateProc(self.workdir, synth.port, name=f"{name}-idle",
                                tls=(cert, key) if tls else None, max_client_conn=n + 100)
            else:
                p = HAProxy(self.workdir, synth.port, a.haproxy_threads, name="haproxy-idle",
                            maxconn=n + 50)
            row = {"proxy": name, "tls": tls, "sessions": n}
            held = None
            try:
                p.start()
                HeldSessions(sink_bin, p.host, p.port, tls, "--mode", "login", "--conns",
                             "20").release_after_ready()
                time.sleep(0.5)
                row["rss0_kib"] = rss_kib(p.pid)
                held = HeldSessions(sink_bin, p.host, p.port, tls, "--mode", "login", "--conns",
                                    str(n), "--concurrency", "64")
                ok, failed = held.wait_ready()
                time.sleep(1.0)
                row["rss1_kib"] = rss_kib(p.pid)
                row["open"], row["failed"] = ok, failed
                if isinstance(p, WalgateProc):
                    row["active"] = active_connections(p)
                res = held.release()
                held = None
                row["setup_s"] = res.get("setup_s")
                if ok:
                    row["per_session_kib"] = (row["rss1_kib"] - row["rss0_kib"]) / ok
                log(f"  {name}: {ok} sessions, RSS {row['rss0_kib']} -> {row['rss1_kib']} KiB, "
                    f"{row.get('per_session_kib', 0):.1f} KiB per session")
            except BenchError as e:
                row["error"] = str(e)
                log(f"  {name}: FAILED {e}")
            finally:
                if held:
                    held.kill()
                p.stop()
            rows.append(row)
        self.facts["memory"] = rows

    # -- scenario 6

    def scenario_scrape(self, stack):
        a = self.args
        server_bin, sink_bin = self.synth_bins()
        cert, key = self.certs
        synth = self.start_proc(stack, SynthServer(self.workdir, server_bin, cert, key, 64 << 10,
                                                   after="idle", name="synth-slots",
                                                   suites=self.args.ciphersuite))
        wg = self.start_proc(stack, WalgateProc(self.workdir, synth.port, name="walgate-scrape",
                                                max_client_conn=a.scrape_slots + 100))
        info = {"slots": a.scrape_slots, "scrapes": a.scrapes}
        info["empty"] = time_scrapes(wg, a.scrapes)
        log(f"scenario 6: {a.scrape_slots} replication sessions (slots s_0 ...)")
        held = HeldSessions(sink_bin, wg.host, wg.port, False, "--mode", "stream", "--conns",
                            str(a.scrape_slots), "--slot", "s", "--concurrency", "64")
        try:
            ok, failed = held.wait_ready()
            info["open"], info["failed"] = ok, failed
            time.sleep(2.0)
            text = wg.scrape()
            info["slot_series"] = sum(1 for ln in text.splitlines()
                                      if ln.startswith("walgate_slot_"))
            info["slot_names"] = len({m.group(1) for m in
                                      re.finditer(r'^walgate_slot_\w+\{[^}]*slot="([^"]+)"',
                                                  text, re.M)})
            info["full"] = time_scrapes(wg, a.scrapes)
            held.release()
            held = None
        except BenchError as e:
            info["error"] = str(e)
        finally:
            if held:
                held.kill()
        self.facts["scrape"] = info
        full = info.get("full") or {}
        log(f"  scrape: {info.get('slot_series', 0)} walgate_slot_ samples, "
            f"median {full.get('median_ms', 0):.1f} ms")


def scaling_key(workers):
    return f"walgate-tls-w{workers}"


class ScalingMixin:
    """Scenario 7 (mixed into SynthScenarios)."""

    def scaling_run(self, wg, synth):
        """K synth_sink processes at once, one TLS session each, through wg; the
        aggregate and what every process involved spent."""
        a = self.args
        _, sink_bin = self.synth_bins()
        b0 = wg.bytes_relayed()
        m0, s0, w0 = machine_cpu(), tree_cpu(synth.pid), cpu_times(wg.pid)
        t0_threads = thread_cpu(wg.pid)
        c0 = children_cpu()
        t0 = time.perf_counter()
        sinks = [subprocess.Popen(sink_argv(sink_bin, wg.host, wg.port, True, timeout=900),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
                 for _ in range(a.streams)]
        outs = []
        try:
            for p in sinks:
                out, err = p.communicate(timeout=930)
                outs.append((p.returncode, out, err))
        finally:
            for p in sinks:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        wall = time.perf_counter() - t0
        w1, s1, m1 = cpu_times(wg.pid), tree_cpu(synth.pid), machine_cpu()
        t1_threads = thread_cpu(wg.pid)
        client = children_cpu() - c0
        streams = []
        for rc, out, err in outs:
            res = parse_sink_json(out) if out.strip() else {}
            if rc != 0 or res.get("failed") or not res.get("bytes"):
                raise BenchError(f"synth_sink failed ({rc}): {err.strip()[-400:]}")
            streams.append(res)
        total = sum(r["bytes"] for r in streams)
        if w0 is None or w1 is None:
            raise BenchError("walgate exited during the run")
        run = {"wall_s": wall, "bytes": total, "mb_s": total / wall / 1e6,
               "stream_mb_s": [r["bytes"] / (r["stream_s"] or r["wall_s"]) / 1e6
                               for r in streams],
               "proxy_user": w1[0] - w0[0], "proxy_sys": w1[1] - w0[1],
               "client_cpu": client,
               "server_cpu": sum(s1.get(p, 0) - c for p, c in s0.items()),
               "server_busy_procs": sum(1 for p, c in s0.items()
                                        if s1.get(p, c) - c > 0.05 * wall),
               "machine_busy": (m1[0] - m0[0]) / max(1, m1[1] - m0[1]),
               "load1": os.getloadavg()[0]}
        run["proxy_cpu"] = run["proxy_user"] + run["proxy_sys"]
        per_thread = sorted((t1_threads.get(t, c) - c for t, c in t0_threads.items()),
                            reverse=True)
        run["threads_cpu"] = per_thread[:4]
        # threads doing at least a tenth of walgate's work in this run
        run["busy_threads"] = sum(1 for c in per_thread if c >= 0.1 * max(run["proxy_cpu"],
                                                                             0.01))
        b1 = wg.bytes_relayed()
        if b0 is not None and b1 is not None:
            run["wire_bytes"] = b1 - b0
        return run

    def scenario_scaling(self, stack):
        a = self.args
        server_bin, _ = self.synth_bins()
        cert, key = self.certs
        k = a.streams
        info = {"streams": k, "workers": a.scaling_workers, "nproc": os.cpu_count(),
                "load_start": os.getloadavg()}
        self.facts["scaling"] = info
        synth = self.start_proc(stack, SynthServer(self.workdir, server_bin, cert, key,
                                                   a.stream_bytes, after="done",
                                                   name="synth-scaling", procs=k,
                                                   suites=self.args.ciphersuite))
        wgs = {}
        for n in a.scaling_workers:
            wgs[n] = self.start_proc(stack, WalgateProc(
                self.workdir, synth.port, name=f"walgate-scaling-w{n}", tls=(cert, key),
                workers=n))
            text = wgs[n].scrape()
            m = re.search(r"^walgate_workers\s+(\d+)", text, re.M)
            info.setdefault("workers_seen", {})[n] = int(m.group(1)) if m else None
        log(f"scenario 7: {k} TLS streams of {a.stream_bytes / MIB:.0f} MiB at once through "
            f"walgate with workers = {', '.join(map(str, a.scaling_workers))}; warm-up")
        for n, wg in wgs.items():
            try:
                self.scaling_run(wg, synth)
            except (BenchError, subprocess.TimeoutExpired) as e:
                log(f"  warm-up workers={n}: {e}")
        order = list(a.scaling_workers)
        for rep in range(a.reps):
            j = rep % len(order)
            for n in order[j:] + order[:j]:
                key = scaling_key(n)
                try:
                    r = self.scaling_run(wgs[n], synth)
                except (BenchError, subprocess.TimeoutExpired, OSError) as e:
                    log(f"  scaling workers={n}: FAILED {e}")
                    self.errors.setdefault("scaling", {}).setdefault(key, []).append(str(e))
                    continue
                self.results.setdefault("scaling", {}).setdefault(key, []).append(r)
                log(f"  scaling rep {rep + 1} workers={n}: {r['mb_s']:.0f} MB/s "
                    f"({' + '.join(f'{x:.0f}' for x in r['stream_mb_s'])}), walgate "
                    f"{r['proxy_cpu'] / (r['bytes'] / GIB):.2f} CPU s/GiB, threads "
                    f"{' '.join(f'{c:.2f}' for c in r['threads_cpu'])} s, machine "
                    f"{100 * r['machine_busy']:.0f}% busy, load {r['load1']:.2f}")
        info["load_end"] = os.getloadavg()


def active_connections(wg):
    try:
        text = wg.scrape()
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        if line.startswith("walgate_connections_active"):
            total += float(line.rsplit(None, 1)[1])
    return int(total)


def time_scrapes(wg, count):
    """count GETs of /metrics: wall ms per scrape, walgate CPU ms per scrape, size."""
    times, size = [], 0
    c0 = cpu_seconds(wg.pid)
    for _ in range(count):
        t0 = time.perf_counter()
        size = len(wg.scrape().encode())
        times.append((time.perf_counter() - t0) * 1000)
    c1 = cpu_seconds(wg.pid)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "cpu_ms": (c1 - c0) * 1000 / count if c0 is not None and c1 is not None else None,
            "bytes": size}


