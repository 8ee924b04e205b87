#!/usr/bin/env bash
# One commit's figures for a before/after comparison (issue 18): the README's main command, the memory benches
# (idle_hold, memory_flood) and the login bench (login_storm), each against a fresh engine built from REV.
#
#   results/refactor/measure.sh REV OUT_DIR
#
# REV is built in its own git worktree, measure-<short REV>, with `cargo build --release`: the registered
# worktree of that name if there is one, else a new one in $WORKTREE_ROOT (default: where the other measure-*
# worktrees are, else the directory that holds this checkout). The build is skipped when that worktree's
# release binaries were already built for REV by this script (target/release/.measure-built holds the commit).
# A new worktree starts from a copy of a warm target directory: $WARM_TARGET if set, else the target/ of the
# measure-* worktree this script built last, so that only the changed crates compile.
# Everything lands in OUT_DIR: host.txt, commands.txt, timings.txt, each part's stdout/stderr and engine log,
# the report JSON/SVG of the README command, and figures.txt (compare.py OUT_DIR).
# Compare two runs with: python3 results/refactor/compare.py BEFORE_DIR AFTER_DIR
set -euo pipefail

rev_arg=${1:?usage: measure.sh REV OUT_DIR}
out_arg=${2:?usage: measure.sh REV OUT_DIR}
script_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$script_dir" rev-parse --show-toplevel)

# Bench sizes (README.md here says why these).
users=19000             # provisioned users; idle_hold connections and login_storm users per round
login_rounds=5
login_threads=2
login_in_flight=1024
flood_messages=500000
flood_window=256
flood_stalled=1000
flood_idle_seconds=10

rev=$(git -C "$repo" rev-parse --verify "$rev_arg^{commit}")
short=$(git -C "$repo" rev-parse --short=7 "$rev")
# The registered worktrees named measure-*, the last built first.
measure_trees=$(git -C "$repo" worktree list --porcelain | sed -n 's/^worktree \(.*\/measure-[0-9a-f]*\)$/\1/p' |
  while read -r path; do
    stamp=$path/target/release/.measure-built
    if [ -f "$stamp" ]; then echo "$(stat -c %Y "$stamp") $path"; else echo "0 $path"; fi
  done | sort -rn | cut -d' ' -f2-)
tree=$(grep -m1 "/measure-$short\$" <<< "$measure_trees" || true)
if [ -z "$tree" ]; then
  default_root=$(dirname "$(head -n 1 <<< "$measure_trees")")
  [ -n "$measure_trees" ] || default_root=$(dirname "$repo")
  tree=${WORKTREE_ROOT:-$default_root}/measure-$short
fi
mkdir -p "$out_arg"
out=$(cd "$out_arg" && pwd)
bin=$tree/target/release
: > "$out/commands.txt"
: > "$out/timings.txt"

# Appends a command line to commands.txt, as run (working directory first).
record() {
  echo "[$1] ${*:2}" >> "$out/commands.txt"
}

# Runs one named part and appends its wall-clock seconds to timings.txt.
timed() {
  local name=$1 started
  shift
  started=$(date +%s.%N)
  "$@"
  awk -v name="$name" -v started="$started" -v ended="$(date +%s.%N)" \
    'BEGIN { printf "%s %.1f s\n", name, ended - started }' >> "$out/timings.txt"
}

prepare_worktree() {
  if [ -e "$tree" ]; then
    local head
    head=$(git -C "$tree" rev-parse HEAD)
    if [ "$head" != "$rev" ]; then
      echo "measure.sh: $tree is at $head, not $rev: remove it (git worktree remove)" >&2
      exit 1
    fi
  else
    record "$repo" git worktree add --detach "$tree" "$rev"
    git -C "$repo" worktree add --detach "$tree" "$rev"
  fi
  if [ -f "$bin/.measure-built" ] && [ "$(cat "$bin/.measure-built")" = "$rev" ]; then
    echo "build: skipped, $bin was built for $rev" | tee "$out/build.txt"
    return
  fi
  if [ ! -d "$tree/target" ]; then
    local warm=${WARM_TARGET:-}
    if [ -z "$warm" ] && [ -n "$measure_trees" ]; then
      warm=$(head -n 1 <<< "$measure_trees")/target
      [ -f "$warm/release/.measure-built" ] || warm=
    fi
    if [ -n "$warm" ] && [ -d "$warm" ]; then
      record "$tree" cp -a --reflink=auto "$warm" "$tree/target"
      cp -a --reflink=auto "$warm" "$tree/target"
    fi
  fi
  record "$tree" cargo build --release
  if ! (cd "$tree" && cargo build --release) > "$out/build.txt" 2>&1; then
    echo "measure.sh: building $rev failed, see $out/build.txt" >&2
    exit 1
  fi
  echo "$rev" > "$bin/.measure-built"
}

host_info() {
  {
    echo "date: $(date -u +%FT%TZ)"
    echo "rev: $rev_arg"
    echo "commit: $rev"
    echo "uname: $(uname -a)"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo "memory: $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
    echo "nofile: $(ulimit -n) (hard $(ulimit -Hn))"
    echo "sched_autogroup_enabled: $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo unknown)"
    echo "rustc: $(rustc --version)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  } > "$out/host.txt"
  # The host settings both runs must share: listen backlogs, port range and autogroup change what the README
  # command's ramp and latencies show.
  "$bin/ringline-tune" check --connections 120000 > "$out/tune-check.txt" 2>&1 || true
}

# The README's main command, taken from REV's README.md ("The two commands"), run as written from the worktree.
# Its report and plot (named by its --report and --plot) are moved into OUT_DIR afterwards.
readme_command() {
  local command report plot status=0
  command=$(awk '/^## The two commands/ { inside = 1 } inside && /^cargo build --release && / { print; exit }' \
    "$tree/README.md")
  if [ -z "$command" ]; then
    echo "measure.sh: no 'cargo build --release && ...' line under '## The two commands' in $tree/README.md" >&2
    exit 1
  fi
  report=$(sed -n 's/.*--report \([^ ]*\).*/\1/p' <<< "$command")
  plot=$(sed -n 's/.*--plot \([^ ]*\).*/\1/p' <<< "$command")
  (cd "$tree" && rm -f -- "$report" "$plot")
  # loadgen keeps its engines' logs in a temporary data directory that it removes at the end: copy them out
  # every second meanwhile (readme-engine-logs/), to see why a run failed.
  mkdir -p "$work/readme-tmp" "$out/readme-engine-logs"
  (
    while :; do
      cp "$work"/readme-tmp/ringline-loadgen-*/engine-*.log "$out/readme-engine-logs/" 2> /dev/null || true
      sleep 1
    done
  ) &
  log_copier_pid=$!
  record "$tree" TMPDIR=readme-tmp "$command"
  (cd "$tree" && TMPDIR="$work/readme-tmp" bash -c "$command") > "$out/readme.stdout.txt" \
    2> "$out/readme.stderr.txt" || status=$?
  kill "$log_copier_pid" 2> /dev/null || true
  wait "$log_copier_pid" 2> /dev/null || true
  log_copier_pid=
  echo "$status" > "$out/readme.exit.txt"
  for file in "$report" "$plot"; do
    if [ -n "$file" ] && [ -f "$tree/$file" ]; then
      mv "$tree/$file" "$out/"
    fi
  done
}

# Waits (at most 70 s) until the TIME-WAIT sockets of earlier runs, e.g. the 95,000 closes of the last
# login_storm, have expired (60 s on Linux), so that every run starts from a settled socket table. Other work on
# the host keeps some around: up to 5,000 count as settled.
settle_sockets() {
  local count waited=0
  count=$(ss -Htan state time-wait | wc -l)
  while [ "$count" -gt 5000 ] && [ "$waited" -lt 70 ]; do
    sleep 1
    waited=$((waited + 1))
    count=$(ss -Htan state time-wait | wc -l)
  done
  echo "time-wait sockets before the README command: $count (after waiting $waited s)" >> "$out/host.txt"
}

work=$(mktemp -d /tmp/ringline-refactor-measure.XXXXXX)
engine_pid=
log_copier_pid=
stop_engine() {
  if [ -n "$engine_pid" ]; then
    kill -TERM "$engine_pid" 2> /dev/null || true
    wait "$engine_pid" 2> /dev/null || true
    engine_pid=
  fi
}
trap 'stop_engine; [ -z "$log_copier_pid" ] || kill "$log_copier_pid" 2> /dev/null; rm -rf "$work"' EXIT

provision() {
  record "$work" "$bin/ringline" users provision --data-dir data --count "$users" --keys-out users.keys
  "$bin/ringline" users provision --data-dir "$work/data" --count "$users" --keys-out "$work/users.keys" \
    > "$out/provision.txt" 2>&1
}

# Starts `ringline serve` (all cores) on a fresh copy of the provisioned data; sets engine_pid and engine_addr.
start_engine() {
  local name=$1
  shift
  rm -rf "$work/data-$name"
  cp -a "$work/data" "$work/data-$name"
  record "$work" "$bin/ringline" serve --listen 127.0.0.1:0 --data-dir "data-$name" "$@"
  "$bin/ringline" serve --listen 127.0.0.1:0 --data-dir "$work/data-$name" "$@" \
    > "$work/engine-$name.stdout" 2> "$out/$name.engine.log" &
  engine_pid=$!
  engine_addr=
  for _ in $(seq 1 100); do
    engine_addr=$(sed -n 's/^ringline listening on \([^ ]*\) .*/\1/p' "$work/engine-$name.stdout")
    [ -n "$engine_addr" ] && break
    sleep 0.1
  done
  if [ -z "$engine_addr" ]; then
    echo "measure.sh: the engine for $name did not say where it listens (see $out/$name.engine.log)" >&2
    exit 1
  fi
  sleep 1
}

# Engine CPU seconds (user + system) so far.
engine_cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$engine_pid/stat"
}

# Engine RSS per idle logged-in connection: slope over the ramp and (plateau - before) / N.
memory_idle() {
  start_engine idle_hold
  record "$work" "$bin/idle_hold" --target ENGINE --users users.keys --count "$users" --engine-pid ENGINE_PID
  "$bin/idle_hold" --target "$engine_addr" --users "$work/users.keys" --count "$users" --engine-pid "$engine_pid" \
    > "$out/idle_hold.txt" 2> "$out/idle_hold.stderr.txt" || echo "driver_exit=$?" >> "$out/idle_hold.txt"
  stop_engine
}

# Engine RSS during and after a burst of SENDs and with stalled readers, then idle.
memory_flood() {
  start_engine memory_flood --durability async
  record "$work" "$bin/memory_flood" --target ENGINE --users users.keys --engine-pid ENGINE_PID \
    --messages "$flood_messages" --window "$flood_window" --stalled "$flood_stalled" \
    --idle-seconds "$flood_idle_seconds"
  "$bin/memory_flood" --target "$engine_addr" --users "$work/users.keys" --engine-pid "$engine_pid" \
    --messages "$flood_messages" --window "$flood_window" --stalled "$flood_stalled" \
    --idle-seconds "$flood_idle_seconds" > "$out/memory_flood.txt" 2> "$out/memory_flood.stderr.txt" \
    || echo "driver_exit=$?" >> "$out/memory_flood.txt"
  grep -E 'VmRSS|VmHWM' "/proc/$engine_pid/status" >> "$out/memory_flood.txt"
  stop_engine
}

# Logins per second with a minimal client; engine CPU over all rounds.
login() {
  start_engine login_storm
  record "$work" "$bin/login_storm" --target ENGINE --users users.keys --count "$users" \
    --in-flight "$login_in_flight" --rounds "$login_rounds" --threads "$login_threads"
  "$bin/login_storm" --target "$engine_addr" --users "$work/users.keys" --count "$users" \
    --in-flight "$login_in_flight" --rounds "$login_rounds" --threads "$login_threads" \
    > "$out/login_storm.txt" 2> "$out/login_storm.stderr.txt" || echo "driver_exit=$?" >> "$out/login_storm.txt"
  echo "engine_cpu_seconds=$(engine_cpu_seconds) logins=$((users * login_rounds))" >> "$out/login_storm.txt"
  stop_engine
}

timed build prepare_worktree
host_info
timed settle settle_sockets
timed readme_command readme_command
timed provision provision
timed idle_hold memory_idle
timed login_storm login
timed memory_flood memory_flood
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/host.txt"
python3 "$script_dir/compare.py" "$out" > "$out/figures.txt"
cat "$out/timings.txt" "$out/figures.txt"
