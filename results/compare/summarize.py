#!/usr/bin/env python3
"""Reads the loadgen reports of one results/compare run (runs.tsv + *.json) and writes compare.json and
compare.md. Usage: summarize.py OUT_DIR P99_MAX_MS [IDLE_RAMP, logins/s the idle run offered; default 5000]"""

import json
import os
import sys

from chat_verdict import passes

out, p99_max_ms = sys.argv[1], float(sys.argv[2])
idle_ramp = float(sys.argv[3]) if len(sys.argv) > 3 else 5000.0
runs = []
with open(os.path.join(out, "runs.tsv")) as tsv:
    for line in tsv:
        server, name, report, status, loadgen_cpu, server_cpu, wall = line.rstrip("\n").split("\t")
        if not os.path.exists(report):
            # A run directory moved or re-summarised elsewhere: the reports sit next to runs.tsv.
            report = os.path.join(out, os.path.basename(report))
        try:
            with open(report) as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = None
        runs.append({
            "server": server, "workload": name, "report": os.path.basename(report), "exit": int(status),
            "loadgen_cpu_s": float(loadgen_cpu or 0), "server_cpu_s": float(server_cpu) if server_cpu else None,
            "wall_s": float(wall), "data": data,
        })


def ms(us):
    return us / 1000.0


def offered(row):
    """The rate a chat run offered, from its workload name (`chat-RATE`)."""
    return int(row["workload"].split("-")[1])


def fmt(value, digits=1, unit=""):
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{unit}"


servers = []
for run in runs:
    if run["server"] not in servers:
        servers.append(run["server"])

summary = {}
for server in servers:
    mine = [run for run in runs if run["server"] == server]
    entry = {"runs": []}
    for run in mine:
        d = run["data"] or {}
        row = {
            "workload": run["workload"], "report": run["report"], "exit": run["exit"],
            "loadgen_cpu_s": run["loadgen_cpu_s"], "server_cpu_s": run["server_cpu_s"], "wall_s": run["wall_s"],
        }
        if d:
            row.update({
                "connections_target": d["connections_target"], "connections_peak": d["connections_peak"],
                "connections_established": d["connections_established"], "connect_errors": d["connect_errors"],
                "ramp_seconds": d["ramp_seconds"], "hold_seconds": d["hold_seconds"],
                "sent": d["messages_sent"], "acked": d["messages_acked"], "delivered": d["messages_delivered"],
                "receipts": d["receipts"], "lost": d["lost"], "duplicated": d["duplicated"],
                "reordered": d["reordered"], "unresolved": d["unresolved"],
                "throughput_msgs_per_s": d["throughput_msgs_per_s"],
                "latency_ack_us": d["latency_ack_us"], "latency_delivery_us": d["latency_delivery_us"],
                "latency_offline_delivery_us": d["latency_offline_delivery_us"],
                "offline_drain_seconds": d["offline_drain_seconds"],
                "server_rss_bytes": d["server_rss_bytes"], "server_rss_baseline_bytes": d["server_rss_baseline_bytes"],
                "server_rss_per_connection_bytes": d["server_rss_per_connection_bytes"], "errors": d["errors"],
                "passes": passes(d, p99_max_ms),
            })
        entry["runs"].append(row)
    idle = next((row for row in entry["runs"] if row["workload"] == "idle" and "connections_peak" in row), None)
    if idle:
        entry["idle_sessions_held"] = idle["connections_peak"]
        entry["idle_sessions_target"] = idle["connections_target"]
        entry["logins_per_s"] = (idle["connections_established"] / idle["ramp_seconds"]) if idle["ramp_seconds"] else None
        entry["rss_per_session_bytes"] = idle["server_rss_per_connection_bytes"]
    chats = [row for row in entry["runs"] if row["workload"].startswith("chat-") and "latency_delivery_us" in row]
    passing = [row for row in chats if row["passes"]]
    best = max(passing, key=lambda row: row["throughput_msgs_per_s"], default=None)
    entry["chat_best_msgs_per_s_within_p99"] = best["throughput_msgs_per_s"] if best else None
    entry["chat_best_offered_rate"] = offered(best) if best else None
    # The knee lies between the best passing rate and the lowest rate tried above it (run.sh bisects there).
    above = [row for row in chats if offered(row) > (entry["chat_best_offered_rate"] or 0) and row not in passing]
    first_failing = min(above, key=offered, default=None)
    entry["chat_lowest_failing_offered_rate"] = offered(first_failing) if first_failing else None
    entry["chat_lowest_failing_p99_ms"] = ms(first_failing["latency_delivery_us"]["p99"]) if first_failing else None
    offline = next((row for row in entry["runs"] if row["workload"] == "offline" and "delivered" in row), None)
    if offline:
        count, seconds = offline["latency_offline_delivery_us"]["count"], offline["offline_drain_seconds"]
        entry["offline"] = {
            "delivered_to_offline": count,
            "drain_seconds": seconds,
            "drain_msgs_per_s": count / seconds if count and seconds else None,
            "lost": offline["lost"],
            "duplicated": offline["duplicated"],
            "reordered": offline["reordered"],
        }
    summary[server] = entry

with open(os.path.join(out, "compare.json"), "w") as f:
    json.dump({"p99_max_ms": p99_max_ms, "servers": summary}, f, indent=2)

env = open(os.path.join(out, "environment.txt")).read().strip() if os.path.exists(os.path.join(out, "environment.txt")) else ""
lines = [f"# ejabberd vs prosody vs ringline, side by side", "", "```", env, "```", ""]
lines.append("## Headline")
lines.append("")
# The yardstick: ringline against ejabberd, row by row ("≥" where ringline's figure is only a floor).
with_ratio = "ringline" in servers and "ejabberd" in servers
lines.append("| | " + " | ".join(servers) + (" | ringline vs ejabberd |" if with_ratio else " |"))
lines.append("|---|" + "---|" * (len(servers) + (1 if with_ratio else 0)))


def ratio(better, worse, floor=False):
    """`better / worse` as "12.3×", or "—" when either is missing or zero."""
    if not with_ratio or better is None or worse is None or worse <= 0 or better <= 0:
        return "—"
    return f"{'≥ ' if floor else ''}{better / worse:,.1f}×"


def ratio_cell(text):
    return f" {text} |" if with_ratio else ""


def cell(server, key, digits=0, unit="", scale=1.0):
    value = summary[server].get(key)
    return fmt(value * scale if value is not None else None, digits, unit)


R, E = summary.get("ringline", {}), summary.get("ejabberd", {})
lines.append("| idle sessions held / target | " + " | ".join(
    f"{summary[s].get('idle_sessions_held', '—')} / {summary[s].get('idle_sessions_target', '—')}" for s in servers)
    + " |" + ratio_cell(ratio(R.get("idle_sessions_held"), E.get("idle_sessions_held"))))
def logins(server):
    value = summary[server].get("logins_per_s")
    if value is None:
        return "—"
    # A server that keeps up with the offered logins is limited by the offer, not measured.
    return f"≥ {value:,.0f} (as fast as offered)" if value >= 0.95 * idle_ramp else f"{value:,.0f}"


ringline_logins = R.get("logins_per_s")
lines.append(f"| logins per second (ramp offered at {idle_ramp:,.0f}/s) | " + " | ".join(logins(s) for s in servers)
             + " |" + ratio_cell(ratio(ringline_logins, E.get("logins_per_s"),
                                       floor=ringline_logins is not None and ringline_logins >= 0.95 * idle_ramp)))
lines.append("| server RSS per idle session | " + " | ".join(cell(s, "rss_per_session_bytes", 1, " KB", 1 / 1000) for s in servers)
             + " |" + ratio_cell(ratio(E.get("rss_per_session_bytes"), R.get("rss_per_session_bytes")) + " less"))
ringline_best, top_rate = R.get("chat_best_offered_rate"), max(
    (offered(row) for row in R.get("runs", []) if row["workload"].startswith("chat-")), default=None)
def knee(server):
    entry = summary[server]
    best, failing = entry.get("chat_best_msgs_per_s_within_p99"), entry.get("chat_lowest_failing_offered_rate")
    if failing is None:
        return fmt(best, 0) + (" (every rate tried passed)" if best is not None else "")
    return f"{fmt(best, 0)} ({failing:,} offered: p99 {entry['chat_lowest_failing_p99_ms']:,.1f} ms)"


lines.append(f"| chat: highest delivered msgs/s with p99 ≤ {p99_max_ms:g} ms (the lowest rate tried above it) | " + " | ".join(
    knee(s) for s in servers) + " |"
    + ratio_cell(ratio(R.get("chat_best_msgs_per_s_within_p99"), E.get("chat_best_msgs_per_s_within_p99"),
                       floor=ringline_best is not None and ringline_best == top_rate)))
rates = sorted({offered(row) for e in summary.values() for row in e["runs"]
                if row["workload"].startswith("chat-")})
for rate in rates:
    cells = []
    for server in servers:
        row = next((r for r in summary[server]["runs"] if r["workload"] == f"chat-{rate}"), None)
        if row is None or "latency_delivery_us" not in row:
            cells.append("not run (saturated below)" if row is None else "no report")
            continue
        bad = row["lost"] + row["duplicated"] + row["reordered"]
        note = f", {row['lost']} lost / {row['duplicated']} dup / {row['reordered']} reord" if bad else ""
        cells.append(f"{row['throughput_msgs_per_s']:,.0f}/s, p99 {ms(row['latency_delivery_us']['p99']):,.1f} ms{note}")
    lines.append(f"| chat offered {rate:,}/s: delivered, delivery p99 | " + " | ".join(cells) + " |" + ratio_cell(""))
def offline_stored(server):
    offline = summary[server].get("offline")
    if not offline:
        return "—"
    bad = offline["lost"] + offline["duplicated"] + offline["reordered"]
    note = f" ({offline['lost']} lost / {offline['duplicated']} dup / {offline['reordered']} reord)" if bad else ""
    return fmt(offline["delivered_to_offline"], 0) + note


lines.append("| offline: messages stored then drained (ledger of the whole run) | " + " | ".join(
    offline_stored(s) for s in servers) + " |" + ratio_cell(""))


def drain_rate(entry):
    return (entry.get("offline") or {}).get("drain_msgs_per_s")


lines.append("| offline: drain time, from the users' return to the last stored message | " + " | ".join(
    fmt(summary[s].get("offline", {}).get("drain_seconds"), 3, " s") for s in servers) + " |" + ratio_cell(""))
lines.append("| offline: drain rate (messages stored / drain time) | " + " | ".join(
    fmt(drain_rate(summary[s]), 0, "/s") for s in servers) + " |" + ratio_cell(ratio(drain_rate(R), drain_rate(E))))
lines.append("")
lines.append("## Every run")
lines.append("")
lines.append("| server | workload | conns up | sent | delivered | lost / dup / reord | msgs/s | ack p99 | deliver p50 | deliver p99 | deliver max | offline p99 | server CPU s | loadgen CPU s | wall s | report |")
lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for server in servers:
    for row in summary[server]["runs"]:
        if "latency_delivery_us" not in row:
            lines.append(f"| {server} | {row['workload']} | no report (exit {row['exit']}) |" + " |" * 13)
            continue
        lines.append(
            f"| {server} | {row['workload']} | {row['connections_peak']}/{row['connections_target']} | {row['sent']} | "
            f"{row['delivered']} | {row['lost']} / {row['duplicated']} / {row['reordered']} | "
            f"{row['throughput_msgs_per_s']:,.0f} | {ms(row['latency_ack_us']['p99']):.2f} ms | "
            f"{ms(row['latency_delivery_us']['p50']):.2f} ms | {ms(row['latency_delivery_us']['p99']):.2f} ms | "
            f"{ms(row['latency_delivery_us']['max']):.1f} ms | {ms(row['latency_offline_delivery_us']['p99']):.1f} ms | "
            f"{fmt(row['server_cpu_s'], 1)} | {row['loadgen_cpu_s']:.1f} | {row['wall_s']:.0f} | {row['report']} |"
        )
lines.append("")
lines.append("Notes: latency is from the *scheduled* send time (coordinated omission corrected) to the recipient's "
             "agent; ack is XEP-0198 `<a/>` for the XMPP servers and ACK for ringline. The load generator shares the "
             "2 cores with the server: its CPU seconds are listed per run. Server CPU is not measured for the "
             "spawned ringline (—). RSS per session = (RSS during the hold − RSS before the ramp) / sessions.")
with open(os.path.join(out, "compare.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
