#!/usr/bin/env bash
# Starts a chat load against spawned engines (`ringline-loadgen run --spawn-engine`), SIGTERMs every engine
# SIGTERM_AFTER_S seconds in (during the hold), and times each engine's exit. Also records, from SIGTERM until
# the last engine is gone: each engine's CPU seconds and run-queue wait seconds (/proc/PID/task/*/schedstat,
# sampled every 0.5 s), which CPUs its threads were allowed, and the whole box's busy CPU seconds (/proc/stat).
# Usage: BIN=DIR CONNS=N RAMP=R RATE=M HOLD=S sigterm.sh OUT_DIR SIGTERM_AFTER_S
set -u
out=$1; after=${2:-12}
bin=${BIN:-./target/release}
data=$(mktemp -d /tmp/sigterm-XXXX)
mkdir -p "$out"
cmd=("$bin/ringline-loadgen" run --spawn-engine --data-dir "$data" --connections "${CONNS:-20000}" --ramp "${RAMP:-5000}"
  --scenario chat --rate "${RATE:-5000}" --duration "${HOLD:-20}")
{ echo "command: ${cmd[*]}; SIGTERM to every engine ${after} s after the start"; echo "host: $(nproc) CPUs, $(uname -r)"; } > "$out/command.txt"
"${cmd[@]}" > "$out/loadgen.txt" 2>&1 &
lg=$!
sleep "$after"
python3 - "$lg" "$out" <<'PY'
import glob, os, signal, sys, time
lg, out = int(sys.argv[1]), sys.argv[2]
def children(pid):
    found = []
    for stat in glob.glob('/proc/[0-9]*/stat'):
        try:
            text = open(stat).read()
        except OSError:
            continue
        name = text[text.index('(') + 1:text.rindex(')')]
        ppid = int(text[text.rindex(')') + 2:].split()[1])
        if ppid == pid and name == 'ringline':
            found.append(int(stat.split('/')[2]))
    return sorted(found)
def sched(pid):
    run = wait = 0
    for path in glob.glob(f'/proc/{pid}/task/*/schedstat'):
        try:
            r, w, _ = open(path).read().split()
        except (OSError, ValueError):
            continue
        run += int(r); wait += int(w)
    return run / 1e9, wait / 1e9
def cpus(pid):
    lists = set()
    for path in glob.glob(f'/proc/{pid}/task/*/status'):
        try:
            for line in open(path):
                if line.startswith('Cpus_allowed_list'):
                    lists.add(line.split()[1])
        except OSError:
            pass
    return ','.join(sorted(lists))
def alive(pid):
    try:
        text = open(f'/proc/{pid}/stat').read()
    except OSError:
        return False
    return text[text.rindex(')') + 2] != 'Z'
def box():
    fields = open('/proc/stat').readline().split()[1:]
    return sum(int(fields[i]) for i in (0, 1, 2, 5, 6)) / os.sysconf('SC_CLK_TCK')
engines = children(lg)
log = open(f'{out}/stop-times.txt', 'w')
first = {pid: sched(pid) for pid in engines}
last = dict(first)
pinned = {pid: cpus(pid) for pid in engines}
box0 = box()
start = time.monotonic()
for pid in engines:
    os.kill(pid, signal.SIGTERM)
left, sampled = set(engines), start
exits = {}
while left:
    now = time.monotonic()
    if now - sampled >= 0.5:
        sampled = now
        for pid in left:
            # Threads that already ended drop out of the sum: keep the largest reading.
            last[pid] = tuple(map(max, last[pid], sched(pid)))
    for pid in list(left):
        if not alive(pid):
            exits[pid] = now - start
            left.discard(pid)
    time.sleep(0.05)
print(f'{len(engines)} engines; box busy {box() - box0:.1f} CPU s of {2 * max(exits.values()):.1f} in the {max(exits.values()):.2f} s until the last exit', file=log)
for pid in engines:
    run = last[pid][0] - first[pid][0]; wait = last[pid][1] - first[pid][1]
    print(f'engine {pid} (CPUs at SIGTERM: {pinned[pid]}) exited {exits[pid]:.2f} s after SIGTERM; '
          f'in between (to its last 0.5 s sample) it ran {run:.2f} CPU s and waited {wait:.2f} s for a CPU', file=log)
times = sorted(exits.values())
print(f'exit after SIGTERM: min {times[0]:.2f} s, median {times[len(times) // 2]:.2f} s, max {times[-1]:.2f} s', file=log)
PY
wait "$lg"; echo "loadgen exit status $?" >> "$out/stop-times.txt"
cp "$data"/engine-*.log "$out/" 2>/dev/null
rm -rf "$data"
cat "$out/stop-times.txt"
