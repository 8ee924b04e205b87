#!/usr/bin/env python3
"""The figures of one or two results/refactor/measure.sh output directories.

    compare.py OUT_DIR              one run's figures, one "name value" line each (measure.sh writes figures.txt)
    compare.py BEFORE_DIR AFTER_DIR a table: figure, before, after, after/before, and "worse" where the after
                                    figure is worse in the figure's direction (noise included: judge it)

Reads the README command's report JSON (field names from loadgen/src/report.rs, `Report`) and its summary's
verdict line, and the plain-text output of idle_hold, login_storm and memory_flood (benches/src/bin/). A figure
that a run did not produce is shown as "-".
"""

import json
import re
import statistics
import sys
from pathlib import Path

# name -> which way is better: "higher", "lower", "same" (must not change), or "info" (no better way: it
# depends on the client's pace, e.g. how many SENDs the engine refused as backpressure).
DIRECTIONS = {}


def figure(figures, name, value, better):
    DIRECTIONS[name] = better
    if value is not None:
        figures[name] = value


def copy_figures(figures, values, prefix, rows):
    """One figure per (name, key, better) row: `values[key]` as `prefix.name`."""
    for name, key, better in rows:
        figure(figures, f"{prefix}.{name}", values.get(key), better)


def read_text(path):
    return path.read_text(errors="replace") if path.exists() else ""


def readme_figures(out, figures):
    verdict = re.search(r"^verdict\s+(\S+?):?(\s|$)", read_text(out / "readme.stdout.txt"), re.M)
    figure(figures, "readme.verdict", verdict.group(1) if verdict else None, "same")
    exit_text = read_text(out / "readme.exit.txt").strip()
    figure(figures, "readme.exit_code", int(exit_text) if exit_text else None, "same")
    reports = sorted(out.glob("*.json"))
    if not reports:
        return
    report = json.loads(reports[0].read_text())
    per_connection = lambda bytes_: bytes_ / report["connections_peak"] if report["connections_peak"] else None
    copy_figures(figures, report, "readme", [
        ("connections_target", "connections_target", "same"),
        ("connections_held", "connections_peak", "higher"),
        ("connect_errors", "connect_errors", "lower"),
        ("ramp_s", "ramp_seconds", "lower"),
        ("engine_bytes_per_connection", "server_rss_per_connection_bytes", "lower"),
        ("engine_rss_bytes", "server_rss_bytes", "lower"),
        ("engine_cpu_s", "server_cpu_seconds", "lower"),
        ("kernel_slab_bytes_per_connection", "host_slab_per_connection_bytes", "lower"),
        ("messages_sent", "messages_sent", "info"),
        ("messages_delivered", "messages_delivered", "higher"),
        ("msgs_per_s", "throughput_msgs_per_s", "higher"),
        ("lost", "lost", "lower"),
        ("duplicated", "duplicated", "lower"),
        ("reordered", "reordered", "lower"),
    ])
    for kind, key in [("ack", "latency_ack_us"), ("deliver", "latency_delivery_us")]:
        for percentile in ["p50", "p99", "p999"]:
            figure(figures, f"readme.{kind}_{percentile}_ms", report[key][percentile] / 1000, "lower")
    loadgen_bytes = per_connection(report["loadgen_rss_peak_bytes"])
    figure(figures, "readme.loadgen_bytes_per_connection", loadgen_bytes, "lower")


def key_values(text):
    """`key=number` pairs of a driver's output, as int or float as written (a later one wins)."""
    pairs = re.findall(r"(\w+)=(-?[\d.]+)", text)
    return {key: float(value) if "." in value else int(value) for key, value in pairs}


def idle_hold_figures(out, figures):
    values = key_values(read_text(out / "idle_hold.txt"))
    copy_figures(figures, values, "idle_hold", [
        ("connections", "connections", "higher"),
        ("failed", "failed", "lower"),
        ("ramp_s", "ramp_seconds", "lower"),
        ("engine_rss_before_bytes", "rss_before", "lower"),
        ("plateau_bytes_per_connection", "plateau_bytes_per_connection", "lower"),
        ("slope_bytes_per_connection", "slope_bytes_per_connection", "lower"),
    ])


def login_storm_figures(out, figures):
    text = read_text(out / "login_storm.txt")
    rounds = [
        (int(logins), float(seconds), float(rate), int(failures))
        for logins, seconds, rate, failures in re.findall(
            r"^round \d+: (\d+) logins in ([\d.]+) s = ([\d.]+) logins/s, (\d+) failures", text, re.M
        )
    ]
    warm = rounds[1:] or rounds
    figure(figures, "login_storm.rounds", len(rounds) or None, "same")
    figure(figures, "login_storm.first_round_logins_per_s", rounds[0][2] if rounds else None, "higher")
    figure(figures, "login_storm.logins_per_s_median", statistics.median(r[2] for r in warm) if warm else None,
           "higher")
    figure(figures, "login_storm.logins_per_s_min", min(r[2] for r in warm) if warm else None, "higher")
    figure(figures, "login_storm.round_s_median", statistics.median(r[1] for r in warm) if warm else None, "lower")
    figure(figures, "login_storm.failures", sum(r[3] for r in rounds) if rounds else None, "lower")
    values = key_values(text)
    if "engine_cpu_seconds" in values and values.get("logins", 0) > 0:
        micros = values["engine_cpu_seconds"] / values["logins"] * 1e6
        figure(figures, "login_storm.engine_cpu_us_per_login", micros, "lower")
    else:
        figure(figures, "login_storm.engine_cpu_us_per_login", None, "lower")


def memory_flood_figures(out, figures):
    text = read_text(out / "memory_flood.txt")
    values = key_values(text)
    flood = re.search(r"^flood: (\d+) SENDs answered \((\d+) rejected.* in ([\d.]+) s \(([\d.]+)/s\)", text, re.M)
    figure(figures, "memory_flood.sends_per_s", float(flood.group(4)) if flood else None, "higher")
    figure(figures, "memory_flood.sends_rejected", int(flood.group(2)) if flood else None, "info")
    idle = sorted((int(seconds), float(mib)) for seconds, mib in re.findall(r"idle_(\d+)s_mib=([\d.]+)", text))
    memory = ["start_mib", "flood_peak_mib", "after_flood_mib", "stalled_peak_mib", "with_stalled_mib",
              "stalled_bytes_per_connection"]
    copy_figures(figures, values, "memory_flood", [(key, key, "lower") for key in memory])
    figure(figures, "memory_flood.idle_end_mib", idle[-1][1] if idle else None, "lower")
    hwm = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    figure(figures, "memory_flood.engine_peak_rss_mib", int(hwm.group(1)) / 1024 if hwm else None, "lower")


def timing_figures(out, figures):
    for name, seconds in re.findall(r"^(\w+) ([\d.]+) s$", read_text(out / "timings.txt"), re.M):
        if name == "readme_command":
            figure(figures, "readme.wall_s", float(seconds), "lower")


def run_figures(out):
    figures = {}
    readme_figures(out, figures)
    timing_figures(out, figures)
    idle_hold_figures(out, figures)
    login_storm_figures(out, figures)
    memory_flood_figures(out, figures)
    return figures


def shown(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.1f}" if abs(value) < 10_000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def compared(before, after, better):
    """The after/before ratio and whether after is worse, as text."""
    if before is None or after is None:
        return "-", ""
    if isinstance(before, str) or isinstance(after, str):
        return ("same", "") if before == after else ("differs", "worse")
    ratio = f"{after / before:.3f}" if before else ("1.000" if after == before else "-")
    if better == "info" or shown(before) == shown(after):
        return ratio, ""
    worse = (
        (better == "higher" and after < before)
        or (better == "lower" and after > before)
        or (better == "same" and after != before)
    )
    return ratio, "worse" if worse else ""


def main(args):
    if len(args) == 1:
        for name, value in run_figures(Path(args[0])).items():
            print(f"{name} {shown(value)}")
        return 0
    if len(args) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    before, after = run_figures(Path(args[0])), run_figures(Path(args[1]))
    rows = [("figure", "before", "after", "after/before", "")]
    for name, better in DIRECTIONS.items():
        ratio, worse = compared(before.get(name), after.get(name), better)
        label = f"{name} ({better} is better)" if better in ("higher", "lower") else name
        rows.append((label, shown(before.get(name)),
                     shown(after.get(name)), ratio, worse))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                        for column, (cell, width) in enumerate(zip(row, widths))).rstrip())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:
        # The reader stopped early (`| head`): nothing left to say.
        sys.stderr.close()
        sys.exit(0)
