#!/usr/bin/env python3
"""Engine cost per login, per message and per idle connection, measured from outside the engine.

Starts one `ringline serve` process, drives it with `ringline-loadgen run --target`, and reads the engine's
own CPU time (utime + stime from /proc/PID/stat) and resident set at the points the loadgen's progress line
reports: before the ramp, when every connection is up, and at the end of the hold. Because the load
generator shares the machine, throughput figures from one box understate the engine; CPU time per operation
does not, so the figures printed are engine CPU microseconds per login and per message, the logins/s and
msgs/s that would take if the engine had its cores to itself, and RSS bytes per idle connection.

Usage: engine_cost.py [--bin target/release] [--connections 19000] [--ramp 20000] [--rate 20000]
                      [--duration 10] [--cores 2] [--out results/engine/cost.json]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def engine_sample(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / TICKS
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * PAGE
    return {"t": time.monotonic(), "cpu_s": cpu_s, "rss": rss}


def run_phase(args, keys, target, pid, scenario, rate):
    """Runs one loadgen phase; samples the engine before, when all connections are up, and at the end."""
    cmd = [
        f"{args.bin}/ringline-loadgen", "run", "--target", target, "--users", keys,
        "--connections", str(args.connections), "--ramp", str(args.ramp), "--scenario", scenario,
        "--duration", str(args.duration), "--rate", str(rate), "--report", f"{args.work}/{scenario}.json",
    ]
    before = engine_sample(pid)
    up = None
    settled = None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line_re = re.compile(r"conns (\d+)/(\d+)")
    for line in proc.stdout:
        sys.stdout.write(line)
        m = line_re.search(line)
        if not m or int(m.group(1)) != int(m.group(2)):
            continue
        if up is None:
            up = engine_sample(pid)
        elif settled is None:
            settled = engine_sample(pid)  # one progress line later: hand-offs and handshake buffers are done
    proc.wait()
    end = engine_sample(pid)
    with open(f"{args.work}/{scenario}.json") as f:
        report = json.load(f)
    return cmd, before, up, settled or up, end, report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release")
    ap.add_argument("--connections", type=int, default=19000)
    ap.add_argument("--ramp", type=float, default=20000)
    ap.add_argument("--rate", type=float, default=20000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--port", type=int, default=7050)
    ap.add_argument("--out")
    args = ap.parse_args()
    args.work = tempfile.mkdtemp(prefix="ringline-cost-")
    keys = f"{args.work}/users.keys"
    subprocess.run([f"{args.bin}/ringline", "users", "provision", "--data-dir", f"{args.work}/data",
                    "--count", str(args.connections), "--keys-out", keys], check=True)
    target = f"127.0.0.1:{args.port}"
    engine = subprocess.Popen([f"{args.bin}/ringline", "serve", "--listen", target, "--cores", str(args.cores),
                               "--data-dir", f"{args.work}/data"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    first = engine.stdout.readline()
    if not first.startswith("ringline listening"):
        sys.exit(f"engine did not start: {first!r}")
    try:
        idle_cmd, base, idle_up, idle_settled, idle_end, idle = run_phase(args, keys, target, engine.pid, "idle", 1)
        time.sleep(2)  # the previous run's sessions are closed; their memory stays with the allocator
        chat_cmd, _, chat_up, _, chat_end, chat = run_phase(args, keys, target, engine.pid, "chat",
                                                                   args.rate)
    finally:
        engine.terminate()
        engine.wait(timeout=30)
    n = idle["connections_established"]
    login_cpu_us = (idle_up["cpu_s"] - base["cpu_s"]) * 1e6 / n
    delivered = chat["messages_delivered"]
    msg_cpu_us = (chat_end["cpu_s"] - chat_up["cpu_s"]) * 1e6 / max(delivered, 1)
    result = {
        "engine_cores": args.cores,
        "connections": n,
        "idle_command": " ".join(idle_cmd),
        "chat_command": " ".join(chat_cmd),
        "engine_cpu_us_per_login": round(login_cpu_us, 2),
        "logins_per_s_if_engine_owned_its_cores": round(args.cores * 1e6 / login_cpu_us),
        "logins_per_s_measured_sharing_the_box": round(n / idle["ramp_seconds"]),
        "engine_rss_bytes_per_idle_connection": round((idle_settled["rss"] - base["rss"]) / n),
        "engine_cpu_us_per_message": round(msg_cpu_us, 2),
        "msgs_per_s_if_engine_owned_its_cores": round(args.cores * 1e6 / msg_cpu_us),
        "chat_offered_msgs_per_s": args.rate,
        "chat_throughput_msgs_per_s": chat["throughput_msgs_per_s"],
        "chat_latency_ack_us": chat["latency_ack_us"],
        "chat_latency_delivery_us": chat["latency_delivery_us"],
        "chat_lost": chat["lost"], "chat_duplicated": chat["duplicated"], "chat_reordered": chat["reordered"],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
