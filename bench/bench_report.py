"""The Markdown report of run_bench.py: tables of medians, spreads and ratios
for every scenario, the targets of issue #14 (bench_targets.py) and whether they were met, the
machine and the versions of everything measured."""

import shlex
import statistics

from bench_targets import TARGET_KIB, summary_rows
from bench_teardown import teardown_section

GIB = float(1 << 30)
MIB = float(1 << 20)
PLAIN = ("direct", "walgate", "haproxy", "pgbouncer")
TLS = ("direct-tls", "walgate-tls", "stunnel")
LEGS = {"direct": "plaintext", "walgate": "plaintext", "haproxy": "plaintext",
        "pgbouncer": "plaintext", "direct-tls": "TLS", "walgate-tls": "TLS both legs",
        "stunnel": "TLS both legs"}


def fmt(v, digits):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def yes_no(ok):
    return "n/a" if ok is None else ("**yes**" if ok else "**no**")


def metric_table(bench, key, field, label, digits, higher_is_better, group):
    runs = bench.results.get(key, {})
    direct = stats([r.get(field) for r in runs.get(group[0], [])])
    lines = [f"| target | legs | median {label} | min | max | ratio to {group[0]} | runs |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    rows = 0
    for t in group:
        if t in bench.unsupported.get(key, {}):
            lines.append(f"| {t} | {LEGS[t]} | n/a | | | | {bench.unsupported[key][t]} |")
            continue
        if t not in runs and t not in bench.errors.get(key, {}):
            continue
        rows += 1
        s = stats([r.get(field) for r in runs.get(t, [])])
        nerr = len(bench.errors.get(key, {}).get(t, []))
        nruns = f"{len(runs.get(t, []))}" + (f" ({nerr} failed)" if nerr else "")
        if s is None:
            lines.append(f"| {t} | {LEGS[t]} | failed | | | | {nruns} |")
            continue
        ratio = f"{s[0] / direct[0]:.3f}" if direct and direct[0] else "n/a"
        lines.append(f"| {t} | {LEGS[t]} | {fmt(s[0], digits)} | {fmt(s[1], digits)} | "
                     f"{fmt(s[2], digits)} | {ratio} | {nruns} |")
    if not rows:
        return []
    better = "higher" if higher_is_better else "lower"
    lines += ["", f"Ratio = target median / {group[0]} median ({better} is better)."]
    return lines


def cpu_per_gib_table(bench, key, rows, group):
    """Proxy CPU seconds per GiB relayed; the bytes are the walgate of the same
    group's own count (walgate_bytes_total, both directions) for that scenario."""
    runs = bench.results.get(key, {})
    counter = "walgate-tls" if group is TLS else "walgate"
    wire = stats([r.get("wire_bytes") for r in runs.get(counter, [])])
    if wire is None:
        return []
    lines = ["| proxy | legs | median CPU s per run | CPU s per GiB (median) | min | max | "
             "CPU µs per row | CPU s / wall s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for t in group[1:]:
        per_gib, cpu, util = [], [], []
        for r in runs.get(t, []):
            if r.get("proxy_cpu") is None:
                continue
            gib = (r.get("wire_bytes") or wire[0]) / GIB
            per_gib.append(r["proxy_cpu"] / gib)
            cpu.append(r["proxy_cpu"])
            util.append(r["proxy_cpu"] / r["wall_s"])
        s = stats(per_gib)
        if s is None:
            continue
        lines.append(f"| {t} | {LEGS[t]} | {statistics.median(cpu):.3f} | {s[0]:.3f} | "
                     f"{s[1]:.3f} | {s[2]:.3f} | {statistics.median(cpu) / rows * 1e6:.3f} | "
                     f"{statistics.median(util):.2f} |")
    lines += ["", f"GiB relayed per run: {wire[0] / GIB:.3f} (both directions, walgate's "
                  f"`walgate_bytes_total` for `{counter}`; the same byte stream passes the "
                  f"other proxies of this table)."]
    return lines


def cpu_per_txn_table(bench, key, secs):
    runs = bench.results.get(key, {})
    lines = ["| proxy | CPU µs per transaction (median) | CPU s / wall s |",
             "| --- | ---: | ---: |"]
    n = 0
    for t in ("walgate", "haproxy", "pgbouncer", "walgate-tls", "stunnel"):
        per, util = [], []
        for r in runs.get(t, []):
            if r.get("proxy_cpu") is None or not r.get("transactions"):
                continue
            per.append(r["proxy_cpu"] / r["transactions"] * 1e6)
            util.append(r["proxy_cpu"] / secs)
        if per:
            n += 1
            lines.append(f"| {t} | {statistics.median(per):.1f} | {statistics.median(util):.2f} |")
    return lines if n else []


def error_lines(bench, key):
    out = []
    for t, errs in bench.errors.get(key, {}).items():
        for e in errs[:3]:
            out.append(f"- {t}: failed run: `{e.splitlines()[0][:300] if e else '?'}`")
    return out


# -- scenario 4

def stream_stats(bench):
    """target -> dict of medians for scenario 4."""
    out = {}
    for t, runs in bench.results.get("stream", {}).items():
        d = {"runs": len(runs)}
        for field, fn in (("mb_s", lambda r: r["mb_s"]),
                          ("cpu_gib", lambda r: r.get("proxy_cpu") / (r["bytes"] / GIB)
                           if r.get("proxy_cpu") is not None else None),
                          ("user_gib", lambda r: r.get("proxy_user") / (r["bytes"] / GIB)
                           if r.get("proxy_user") is not None else None),
                          ("sys_gib", lambda r: r.get("proxy_sys") / (r["bytes"] / GIB)
                           if r.get("proxy_sys") is not None else None),
                          ("util", lambda r: r.get("proxy_cpu") / r["wall_s"]
                           if r.get("proxy_cpu") is not None else None),
                          ("client_gib", lambda r: r["client_cpu"] / (r["bytes"] / GIB)),
                          ("server_gib", lambda r: r["server_cpu"] / (r["bytes"] / GIB)
                           if r.get("server_cpu") is not None else None)):
            d[field] = stats([fn(r) for r in runs])
        out[t] = d
    return out


def split(d):
    if not d.get("user_gib") or not d.get("sys_gib"):
        return ""
    return f"{d['user_gib'][0]:.2f} / {d['sys_gib'][0]:.2f}"


def negotiated(bench):
    """The ciphers the sink's TLS sessions of scenario 4 reported, by target."""
    seen = {}
    for t, runs in bench.results.get("stream", {}).items():
        for r in runs:
            if r.get("cipher"):
                seen.setdefault(r["cipher"], []).append(t)
    return "; ".join(f"{c} through {', '.join(sorted(set(ts)))}" for c, ts in seen.items()) \
        or "no cipher"


def stream_section(bench, w):
    a = bench.args
    st = stream_stats(bench)
    aes = bench.facts.get("aes")
    w("One session: `synth_walsender` streams pgoutput (XLogData messages of Begin, 1,000 "
      "Inserts of an int and an 80-byte text, Commit; about 135 bytes per message) as fast as "
      "the socket takes it, `synth_sink` reads it, counts it and sends a status update every "
      f"16 MiB. {a.stream_bytes / MIB:,.0f} MiB per run. TLS legs use TLS 1.3 with "
      f"{a.ciphersuite} (the sink offers only that suite and the server accepts only "
      "that suite, so every TLS leg of every proxy negotiates it; the sink reported "
      f"{negotiated(bench)}). The proxy's CPU is its "
      "utime+stime from /proc/PID/stat around the run; the client's from its rusage; the "
      "server's from /proc.")
    w("")
    w("| target | legs | median MB/s | min | max | ratio to direct | proxy CPU s/GiB (median) "
      "| min | max | of which user / sys | proxy CPU s / wall s | sink CPU s/GiB | "
      "server CPU s/GiB | runs |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
      "| ---: |")
    for t in ("direct", "walgate", "haproxy", "direct-tls", "walgate-tls", "stunnel"):
        if t not in st:
            continue
        d = st[t]
        direct = st.get("direct-tls" if t in TLS else "direct", {}).get("mb_s")
        ratio = f"{d['mb_s'][0] / direct[0]:.3f}" if d["mb_s"] and direct else "n/a"
        cg = d["cpu_gib"] or (None, None, None)
        nerr = len(bench.errors.get("stream", {}).get(t, []))
        w(f"| {t} | {LEGS[t]} | {fmt(d['mb_s'][0], 0)} | {fmt(d['mb_s'][1], 0)} | "
          f"{fmt(d['mb_s'][2], 0)} | {ratio} | {fmt(cg[0], 3)} | {fmt(cg[1], 3)} | "
          f"{fmt(cg[2], 3)} | {split(d)} | {fmt(d['util'][0] if d['util'] else None, 2)} | "
          f"{fmt(d['client_gib'][0] if d['client_gib'] else None, 3)} | "
          f"{fmt(d['server_gib'][0] if d['server_gib'] else None, 3)} | "
          f"{d['runs']}{f' ({nerr} failed)' if nerr else ''} |")
    w("")
    if aes:
        w(f"Reference: `openssl speed -evp {aes['cipher']} -bytes 16384` (one TLS record per block) "
          f"encrypts {aes['enc_bps'] / 1e9:.2f} GB/s and decrypts (`-decrypt`) "
          f"{aes['dec_bps'] / 1e9:.2f} GB/s on one core here: one decrypt plus one encrypt of a "
          f"GiB costs **{aes['ref_s_per_gib']:.3f} CPU s**, so the target for walgate with TLS on "
          f"both legs (within 2x of that) is **{2 * aes['ref_s_per_gib']:.3f} CPU s/GiB**.")
        w("")
    out = error_lines(bench, "stream")
    if bench.facts.get("stream_error"):
        out.append(f"- scenario failed: `{bench.facts['stream_error'][:300]}`")
    for line in out:
        w(line)
    if out:
        w("")


def profile_section(bench, w):
    prof = bench.facts.get("profile")
    if not prof:
        if bench.facts.get("profile_error"):
            w(f"(profile not taken: {bench.facts['profile_error']})")
            w("")
        return
    w("### Profile (`--profile`: one extra scenario-4 run per proxy)")
    w("")
    w("System calls per MiB streamed (`perf stat -e syscalls:sys_enter_*` on the proxy's "
      "process, both legs, status updates included); the last column is the stream's bytes "
      "per read-like call (a proxy reads each byte of the stream once, from the server's leg).")
    w("")
    names = [s for s in ("read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto",
                         "sendmsg", "epoll_wait", "epoll_ctl", "ioctl", "splice")
             if any(p["syscalls"].get(s) for p in prof.values())]
    w("| proxy | " + " | ".join(names) + " | all counted | KiB per read |")
    w("| --- |" + " ---: |" * (len(names) + 2))
    for t, p in prof.items():
        c = p["syscalls"]
        mib = p["mib"] or 1
        reads = sum(c.get(s, 0) for s in ("read", "readv", "recvfrom", "recvmsg"))
        per_read = f"{mib * 1024 / reads:.1f}" if reads else "n/a"
        w(f"| {t} | " + " | ".join(f"{c.get(s, 0) / mib:.1f}" for s in names)
          + f" | {sum(c.values()) / mib:.1f} | {per_read} |")
    w("")
    for t, p in prof.items():
        if p.get("top"):
            w(f"`perf record` of {t}, self time by symbol (top entries, at least 0.8%):")
            w("")
            w("```")
            for line in p["top"]:
                w(line)
            w("```")
            w("")


# -- scenarios 5 and 6

def memory_section(bench, w):
    rows = bench.facts.get("memory") or []
    n = bench.facts.get("idle_sessions")
    nofile = bench.facts.get("nofile")
    w(f"`synth_sink --mode login --hold` opens {n:,} sessions (64 logging in at a time), each "
      "completing its startup (and, for TLS, an SSLRequest and a full TLS 1.3 handshake with no "
      "session tickets) against `synth_walsender` through a freshly started proxy, and keeps "
      "them idle. RSS is the proxy's VmRSS after 20 sessions came and went (before) and 1 s after "
      "the last session logged in (with sessions); per session = the difference / sessions. "
      "Kernel socket buffers are not in RSS." if n else "")
    if n and nofile and n < bench.args.idle_sessions:
        w("")
        w(f"Sessions were capped at {n:,}: the RLIMIT_NOFILE hard limit here is {nofile:,} and "
          "cannot be raised, and a proxy holds two sockets per session.")
    w("")
    if rows:
        w("| proxy | legs | sessions open | RSS before (MiB) | RSS with sessions (MiB) | "
          "KiB per session | target | met | time to log all in (s) |")
        w("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
        for r in rows:
            if r.get("error"):
                w(f"| {r['proxy']} | | failed: {r['error'][:120]} | | | | | | |")
                continue
            per = r.get("per_session_kib")
            tgt = TARGET_KIB[r["tls"]] if r["proxy"].startswith("walgate") else None
            met = (per < tgt) if (per is not None and tgt) else None
            w(f"| {r['proxy']} | {LEGS[r['proxy']]} | {r.get('open', 0):,} | "
              f"{r['rss0_kib'] / 1024:.1f} | {r['rss1_kib'] / 1024:.1f} | {fmt(per, 1)} | "
              f"{f'< {tgt} KiB' if tgt else ''} | {yes_no(met) if tgt else ''} | "
              f"{fmt(r.get('setup_s'), 1)} |")
        w("")
    if bench.facts.get("memory_error"):
        w(f"- scenario failed: `{bench.facts['memory_error'][:300]}`")
        w("")


def scrape_section(bench, w):
    info = bench.facts.get("scrape")
    if bench.facts.get("scrape_error"):
        w(f"- scenario failed: `{bench.facts['scrape_error'][:300]}`")
        w("")
    if not info:
        return
    w(f"A fresh walgate in front of `synth_walsender --after idle`; `synth_sink --mode stream "
      f"--conns {info['slots']} --slot s` opens {info['slots']:,} replication sessions "
      f"(`START_REPLICATION SLOT \"s_0\" LOGICAL 0/0 (proto_version '1', publication_names "
      f"'p')` ... `s_{info['slots'] - 1}`), each receiving 64 KiB and then a keepalive every "
      f"10 s. {info['scrapes']} sequential GETs of /metrics are timed (wall time to the whole "
      f"body, Python urllib on loopback) before the sessions open and while they are open.")
    w("")
    if info.get("error"):
        w(f"- failed: `{info['error'][:300]}`")
        w("")
    if not info.get("slot_series"):
        w(f"**Not measured as specified**: this walgate build exports no `walgate_slot_` series "
          f"(the per-slot metrics are not in it yet), so the times below are the scrape of "
          f"walgate's global series with {info.get('open', 0):,} replication sessions open, a "
          f"baseline for the per-slot version.")
        w("")
    w("| state | replication sessions | `walgate_slot_` samples | slots named | body bytes | "
      "median ms per scrape | min | max | walgate CPU ms per scrape |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, key, sessions in (("no sessions", "empty", 0),
                                 ("sessions open", "full", info.get("open", 0))):
        d = info.get(key)
        if not d:
            continue
        series = info.get("slot_series", 0) if key == "full" else 0
        names = info.get("slot_names", 0) if key == "full" else 0
        w(f"| {label} | {sessions:,} | {series:,} | {names:,} | {d['bytes']:,} | "
          f"{d['median_ms']:.2f} | {d['min_ms']:.2f} | {d['max_ms']:.2f} | "
          f"{fmt(d['cpu_ms'], 2)} |")
    w("")


# -- scenario 7

def scaling_section(bench, w):
    a = bench.args
    info = bench.facts.get("scaling") or {}
    runs = bench.results.get("scaling", {})
    k = info.get("streams", a.streams)
    w(f"Scenario 4 with TLS on both legs, {k} sessions at once: {k} `synth_sink` processes "
      f"(one session each, `--sslmode require`) start together and each pulls "
      f"{a.stream_bytes / MIB:,.0f} MiB of pgoutput from `synth_walsender --procs {k}` (one "
      f"serving process per session, so the server is not a single event loop) through one "
      f"walgate with `client_tls = require` and `server_tls = require`. Two walgate processes "
      f"run side by side, identical except for `[walgate] workers` "
      f"({', '.join(str(n) for n in info.get('workers', a.scaling_workers))}); the runs "
      "alternate between them, the order swapping every repetition, after one untimed "
      "warm-up each. walgate's control thread hands connections to the workers round-robin, "
      "so with 2 workers the 2 sessions run on different threads. Aggregate MB/s = the bytes "
      "all sinks received / wall time from starting the first sink to the exit of the last "
      "(logins and TLS handshakes included); walgate CPU s/GiB = walgate's utime + stime "
      "(all threads) over those bytes.")
    w("")
    nproc = info.get("nproc")
    w(f"**CPU budget**: this machine has {nproc} CPU{'s' if nproc != 1 else ''}, and the "
      f"{k} server processes and {k} sinks run on it too; with TLS the servers and sinks "
      "together spend about as much CPU per byte as walgate itself (see the table), so "
      "walgate can have at most about one CPU's worth even with 2 workers. `machine busy` is the share of all CPUs in use "
      "during the run (/proc/stat); near 100% means the run was CPU-bound for the machine as "
      "a whole and a speed-up below 2 says as much about the machine as about walgate.")
    w("")
    seen = info.get("workers_seen") or {}
    base = None
    rows = []
    for n in info.get("workers", a.scaling_workers):
        rs = runs.get(f"walgate-tls-w{n}", [])
        nerr = len(bench.errors.get("scaling", {}).get(f"walgate-tls-w{n}", []))
        if not rs:
            rows.append(f"| {n} | failed | | | | | | | | | | | | | | {nerr} failed |")
            continue
        mb = stats([r["mb_s"] for r in rs])
        cpu = stats([r["proxy_cpu"] / (r["bytes"] / GIB) for r in rs])
        user = stats([r["proxy_user"] / (r["bytes"] / GIB) for r in rs])
        sys_ = stats([r["proxy_sys"] / (r["bytes"] / GIB) for r in rs])
        util = stats([r["proxy_cpu"] / r["wall_s"] for r in rs])
        srv = stats([r["server_cpu"] / (r["bytes"] / GIB) for r in rs])
        cli = stats([r["client_cpu"] / (r["bytes"] / GIB) for r in rs])
        busy = stats([r["machine_busy"] for r in rs])
        threads = stats([r["busy_threads"] for r in rs])
        # what the machine's CPUs allow when every byte costs walgate + server + sinks
        ceil = stats([nproc * (r["bytes"] / 1e6) / (r["proxy_cpu"] + r["server_cpu"]
                                                     + r["client_cpu"]) for r in rs
                      if nproc and r["proxy_cpu"] + r["server_cpu"] + r["client_cpu"] > 0])
        if base is None:
            base = mb[0]
        w_seen = seen.get(n)
        rows.append(f"| {n}{'' if w_seen in (None, n) else f' (reports {w_seen})'} | "
                    f"{mb[0]:,.0f} | {mb[1]:,.0f} | {mb[2]:,.0f} | **{mb[0] / base:.2f}** | "
                    f"{cpu[0]:.3f} | {cpu[1]:.3f} | {cpu[2]:.3f} | "
                    f"{user[0]:.2f} / {sys_[0]:.2f} | {util[0]:.2f} | {threads[0]:.0f} | "
                    f"{srv[0]:.2f} | {cli[0]:.2f} | {100 * busy[0]:.0f}% | "
                    f"{fmt(ceil[0] if ceil else None, 0)} | "
                    f"{len(rs)}{f' ({nerr} failed)' if nerr else ''} |")
    w("| workers | aggregate MB/s (median) | min | max | speed-up vs "
      f"{info.get('workers', a.scaling_workers)[0]} worker | walgate CPU s/GiB (median) | min "
      "| max | of which user / sys | walgate CPU s / wall s | walgate threads busy | "
      "server CPU s/GiB | sinks CPU s/GiB | machine busy | CPU ceiling MB/s | runs |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
      "---: | ---: | ---: | ---: |")
    for r in rows:
        w(r)
    w("")
    w("Speed-up = median aggregate MB/s / the first row's. `walgate threads busy` counts "
      "walgate's threads that did at least a tenth of its CPU in the run (median): 2 shows "
      "the sessions ran on two workers. Server and sink CPU are over the same bytes. "
      "`CPU ceiling` = CPUs x MB / (walgate + server + sinks CPU seconds) of the run: the "
      "aggregate rate at which every CPU of the machine would be busy with this work, the "
      "most any number of workers could reach here.")
    w("")
    loads = [r["load1"] for rs in runs.values() for r in rs]
    if info.get("load_start"):
        w(f"Load average (1, 5, 15 min) when the scenario started: "
          f"{' '.join(f'{x:.2f}' for x in info['load_start'])}"
          + (f"; at the end: {' '.join(f'{x:.2f}' for x in info['load_end'])}"
             if info.get("load_end") else "")
          + (f"; 1-minute load after the runs: {min(loads):.2f}-{max(loads):.2f}"
             if loads else "") + ".")
        w("")
    out = error_lines(bench, "scaling")
    if bench.facts.get("scaling_error"):
        out.append(f"- scenario failed: `{bench.facts['scaling_error'][:300]}`")
    for line in out:
        w(line)
    if out:
        w("")


def render(bench, started, m, argv):
    a = bench.args
    v = bench.facts.get("versions", {})
    out = []
    w = out.append
    w("# walgate benchmark results")
    w("")
    w(f"Generated by `bench/run_bench.py` on {started:%Y-%m-%d %H:%M} UTC"
      f"{' (--quick)' if a.quick else ''}; the scenarios took "
      f"{bench.facts.get('elapsed_s', 0):.0f} s. Medians of {a.reps} repetitions; in each "
      "repetition every target runs once, the order of the targets rotating from one "
      "repetition to the next. Scenarios are numbered as in issue #7.")
    w("")
    w("Targets: **direct** (the client talks to the server), **walgate**, **haproxy** "
      f"(`mode tcp`, nbthread {a.haproxy_threads}), **pgbouncer** (`pool_mode = session`, "
      "scram-sha-256), all with plaintext legs; and with TLS: **direct-tls** (libpq "
      "`sslmode=require`, or the sink's SSLRequest, straight to the server), **walgate-tls** "
      "(`client_tls = require`, `server_tls = require`, `auth = scram` with the role's SCRAM "
      "verifier in its auth file: walgate authenticates the client and logs in upstream "
      "itself) and **stunnel** (TLS on both legs: a `protocol = pgsql` "
      "server-mode service chained over a Unix socket to a `protocol = pgsql` client-mode "
      "service, in one process). Everything runs on this one machine over 127.0.0.1, sharing "
      "its CPUs: server, proxy and client compete for them, which is part of what the ratios "
      "show. libpq clients of every TLS target use `channel_binding=disable`, which stunnel "
      "needs (the server would see a binding to stunnel's certificate).")
    w("")
    for note in a.note:
        w(f"**Note**: {note}")
        w("")
    busy = bench.facts.get("load_start")
    if busy and busy[0] > 0.5:
        w(f"**Noise**: the 1-minute load average was already {busy[0]:.2f} on {m['nproc']} CPUs "
          "when the scenarios started: other work shared the machine, so expect wide min-max "
          "spreads and read small ratio differences as noise. CPU seconds per byte and memory "
          "per session are much less sensitive to that than times and rates.")
        w("")
    rows = summary_rows(bench)
    if rows:
        w("## Targets of issue #14")
        w("")
        w("| scenario | target | measured | met |")
        w("| --- | --- | --- | --- |")
        for sc, what, val, ok in rows:
            w(f"| {sc} | {what} | {val} | {yes_no(ok)} |")
        w("")
    w("## Machine and versions")
    w("")
    w("| | |")
    w("| --- | --- |")
    w(f"| CPUs (nproc) | {m['nproc']} |")
    w(f"| CPU model | {m['cpu']} |")
    w(f"| memory | {m['memory']} |")
    w(f"| OS, kernel | {m['os']}, {m['kernel']} |")
    for k, label in (("load_start", "load average at start"), ("load_end", "load average at end")):
        if bench.facts.get(k):
            w(f"| {label} | {' '.join(f'{x:.2f}' for x in bench.facts[k])} |")
    for name in ("walgate", "postgres", "pgbench", "haproxy", "pgbouncer", "stunnel", "openssl",
                 "libevent"):
        w(f"| {name} | {v.get(name, '?')} |")
        if name == "walgate" and bench.facts.get("walgate_binary"):
            w(f"| walgate binary run (a copy taken at start) | {bench.facts['walgate_binary']} |")
    ciphers = bench.facts.get("pg_ciphers")
    if ciphers:
        w(f"| TLS to PostgreSQL (scenarios 1-2) | "
          + ", ".join(f"{t}: {c}" for t, c in ciphers.items()) + " |")
    w("")
    w("## Parameters")
    w("")
    w(f"- repetitions: {a.reps}")
    if "replication" in a.scenarios:
        w(f"- 1, replication backlog: one transaction of {a.repl_rows:,} inserted rows "
          f"(int, md5 text) behind a pgoutput slot; each run reads a copy of the slot with "
          f"`pg_recvlogical --start --no-loop --endpos={bench.facts.get('repl_endpos', '?')} "
          f"-o proto_version=1 -o publication_names=bench_pub -f /dev/null`")
    if "snapshot" in a.scenarios:
        snap = bench.facts.get("snapshot_bytes")
        w(f"- 2, snapshot: `COPY bench_snapshot TO STDOUT` with psql into /dev/null, "
          f"{a.snapshot_rows:,} rows" + (f", {snap / 1e6:.1f} MB of COPY text" if snap else ""))
    if "rt" in a.scenarios:
        w(f"- 3, round trips: `pgbench -S -n -M simple -T {a.pgbench_secs}`, "
          + ", ".join(f"{c} client{'s' if c > 1 else ''} (-j {min(c, 2)})" for c in a.clients)
          + f"; pgbench scale {a.pgbench_scale}; a 1 s warm-up per target first")
    if "stream" in a.scenarios:
        w(f"- 4, cost per byte: {a.stream_bytes / MIB:,.0f} MiB per run from synth_walsender "
          "to synth_sink; one warm-up run per target first")
    if "memory" in a.scenarios:
        w(f"- 5, memory: {a.idle_sessions:,} idle sessions asked for")
    if "scaling" in a.scenarios:
        w(f"- 7, scaling: {a.streams} concurrent TLS streams of {a.stream_bytes / MIB:,.0f} MiB "
          f"each, walgate `workers` = {', '.join(map(str, a.scaling_workers))}")
    if "scrape" in a.scenarios:
        w(f"- 6, scrape: {a.scrape_slots:,} replication sessions, {a.scrapes} scrapes")
    if "teardown" in a.scenarios:
        w(f"- 8, teardown: {a.teardown_reps} runs per target and close mode, after one "
          "untimed warm-up each")
    if a.scenarios & {"replication", "snapshot", "rt", "teardown"}:
        w("- PostgreSQL: `shared_buffers = 512MB`, `logical_decoding_work_mem = 1GB`, "
          "`fsync = off`, `ssl = on` (plaintext targets use `sslmode=disable`; one query "
          "through every target checks that its server leg is plaintext or TLS as named), "
          "`wal_level = logical`")
    w("- walgate: default relay settings (`relay_buffer_size = 256kB`), `log_level = info`")
    w("")

    if "replication" in a.scenarios:
        w("## 1. Replication backlog (pg_recvlogical, pgoutput)")
        w("")
        w("Wall time of the pg_recvlogical run (connect, decode and stream the backlog, "
          "stop at endpos). The walsender sends each change as its own small CopyData "
          "message.")
        w("")
        for group in (PLAIN, TLS):
            t = metric_table(bench, "replication", "wall_s", "s", 3, False, group)
            out.extend(t + ([""] if t else []))
            c = cpu_per_gib_table(bench, "replication", a.repl_rows, group)
            if c:
                w("Proxy CPU:")
                w("")
                out.extend(c + [""])
        out.extend(error_lines(bench, "replication"))
        w("")

    if "snapshot" in a.scenarios:
        w("## 2. Snapshot (COPY TO STDOUT)")
        w("")
        w("Throughput (COPY text bytes / wall time of the psql run, MB = 10^6 bytes):")
        w("")
        for group in (PLAIN, TLS):
            t = metric_table(bench, "snapshot", "mb_s", "MB/s", 1, True, group)
            out.extend(t + ([""] if t else []))
            c = cpu_per_gib_table(bench, "snapshot", a.snapshot_rows, group)
            if c:
                w("Proxy CPU:")
                w("")
                out.extend(c + [""])
        out.extend(error_lines(bench, "snapshot"))
        w("")

    if "rt" in a.scenarios:
        w("## 3. Round trips (pgbench -S, simple protocol)")
        w("")
        for c in a.clients:
            key = f"rt{c}"
            w(f"### {c} client{'s' if c > 1 else ''}")
            w("")
            for group in (PLAIN, TLS):
                t = metric_table(bench, key, "tps", "TPS", 0, True, group)
                out.extend(t + ([""] if t else []))
                t = metric_table(bench, key, "latency_ms", "ms (mean latency)", 3, False, group)
                out.extend(t + ([""] if t else []))
            cpu = cpu_per_txn_table(bench, key, a.pgbench_secs)
            if cpu:
                w("Proxy CPU:")
                w("")
                out.extend(cpu + [""])
            out.extend(error_lines(bench, key))
        w("")

    if "stream" in a.scenarios:
        w("## 4. Proxy cost per byte (synthetic walsender)")
        w("")
        stream_section(bench, w)
        profile_section(bench, w)

    if "memory" in a.scenarios:
        w("## 5. Memory per idle session")
        w("")
        memory_section(bench, w)

    if "scrape" in a.scenarios:
        w("## 6. Scrape with many slots")
        w("")
        scrape_section(bench, w)

    if "scaling" in a.scenarios:
        w("## 7. Scaling with workers (scenario 4, TLS both legs, concurrent streams)")
        w("")
        scaling_section(bench, w)

    if "teardown" in a.scenarios:
        w("## 8. Teardown: slot free after the client closes")
        w("")
        teardown_section(bench, w)

    errs = bench.facts.get("walgate_log_errors") or []
    if errs:
        w("## walgate log: errors and warnings (last 10)")
        w("")
        w("```")
        out.extend(errs)
        w("```")
        w("")

    w("## How to reproduce")
    w("")
    w(f"`ninja -C build && /usr/bin/python3 bench/run_bench.py{' --quick' if a.quick else ''}` "
      f"(as run: `{shlex.join(argv)}`), or `meson test -C build --benchmark` for the quick "
      "version; see bench/README.md.")
    w("")
    return "\n".join(out)
