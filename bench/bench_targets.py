"""The targets of issue #14 (and the memory bounds of issue #7) as rows of the
report: what was measured in this run and whether it met the target. A target
whose scenario did not run is left out."""

import statistics

GIB = float(1 << 30)
TARGET_KIB = {False: 16, True: 64}   # scenario 5: resident memory per idle session
REPL_RATIO_MAX = 1.05                 # scenario 1: walgate-tls wall time / direct-tls


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def stream_medians(bench):
    """target -> (proxy CPU s/GiB, MB/s) medians of scenario 4."""
    out = {}
    for t, runs in bench.results.get("stream", {}).items():
        cpu = median([r["proxy_cpu"] / (r["bytes"] / GIB) for r in runs
                      if r.get("proxy_cpu") is not None and r.get("bytes")])
        out[t] = (cpu, median([r.get("mb_s") for r in runs]))
    return out


def stream_rows(bench):
    st = stream_medians(bench)
    rows = []
    cpu = {t: v[0] for t, v in st.items()}
    wg, hp, wgt, stn = (cpu.get(t) for t in ("walgate", "haproxy", "walgate-tls", "stunnel"))
    aes = bench.facts.get("aes")
    if wgt is not None and aes:
        ref = aes["ref_s_per_gib"]
        rows.append(("4", f"TLS both legs: proxy CPU per GiB at most 2x one {aes['cipher']} "
                          "decrypt + encrypt",
                     f"{wgt:.3f} vs 2 x {ref:.3f} = {2 * ref:.3f} ({wgt / ref:.1f}x the cipher)",
                     wgt <= 2 * ref))
    if wgt is not None and stn is not None:
        rows.append(("4", "TLS both legs: proxy CPU per GiB below stunnel's",
                     f"{wgt:.3f} vs {stn:.3f}", wgt < stn))
        mb_w, mb_s = st["walgate-tls"][1], st["stunnel"][1]
        if mb_w is not None and mb_s is not None:
            rows.append(("4", "TLS both legs: throughput at or above stunnel's",
                         f"{mb_w:.0f} vs {mb_s:.0f} MB/s", mb_w >= mb_s))
    if wg is not None and hp is not None:
        rows.append(("4", "plaintext: proxy CPU per GiB at or below HAProxy's",
                     f"{wg:.3f} vs {hp:.3f}", wg <= hp))
    return rows


def rt_medians(bench, key):
    """target -> (TPS / direct TPS, proxy CPU µs per transaction) of scenario 3."""
    runs = bench.results.get(key, {})
    direct = median([r.get("tps") for r in runs.get("direct", [])])
    out = {}
    for t in ("walgate", "haproxy", "pgbouncer"):
        tps = median([r.get("tps") for r in runs.get(t, [])])
        cpu = median([r["proxy_cpu"] / r["transactions"] * 1e6 for r in runs.get(t, [])
                      if r.get("proxy_cpu") is not None and r.get("transactions")])
        out[t] = (tps / direct if tps and direct else None, cpu)
    return out


def rt_rows(bench):
    rows = []
    for c in bench.args.clients if "rt" in bench.args.scenarios else ():
        m = rt_medians(bench, f"rt{c}")
        (w_ratio, w_cpu), peers = m["walgate"], [m["haproxy"], m["pgbouncer"]]
        label = f"{c} client{'s' if c > 1 else ''}"
        if w_ratio is not None and all(p[0] is not None for p in peers):
            rows.append(("3", f"{label}: TPS ratio to direct ahead of HAProxy's and PgBouncer's",
                         f"{w_ratio:.3f} vs {peers[0][0]:.3f}, {peers[1][0]:.3f}",
                         all(w_ratio > p[0] for p in peers)))
        if w_cpu is not None and all(p[1] is not None for p in peers):
            rows.append(("3", f"{label}: proxy CPU per transaction below HAProxy's and "
                              "PgBouncer's",
                         f"{w_cpu:.1f} vs {peers[0][1]:.1f}, {peers[1][1]:.1f} µs",
                         all(w_cpu < p[1] for p in peers)))
    return rows


def replication_rows(bench):
    runs = bench.results.get("replication", {})
    direct = median([r.get("wall_s") for r in runs.get("direct-tls", [])])
    wgt = median([r.get("wall_s") for r in runs.get("walgate-tls", [])])
    if not direct or wgt is None:
        return []
    ratio = wgt / direct
    return [("1", f"TLS both legs, auth = scram: wall time at most {REPL_RATIO_MAX}x direct TLS",
             f"{wgt:.2f} vs {direct:.2f} s ({ratio:.3f}x)", ratio <= REPL_RATIO_MAX)]


def memory_rows(bench):
    rows = []
    for r in bench.facts.get("memory") or []:
        if r["proxy"].startswith("walgate") and r.get("per_session_kib") is not None:
            tgt = TARGET_KIB[r["tls"]]
            rows.append(("5", f"{'TLS' if r['tls'] else 'plaintext'}: resident memory per idle "
                              f"session under {tgt} KiB",
                         f"{r['per_session_kib']:.1f} KiB ({r['open']:,} sessions)",
                         r["per_session_kib"] < tgt))
    return rows


def summary_rows(bench):
    return (replication_rows(bench) + rt_rows(bench) + stream_rows(bench) + memory_rows(bench))
