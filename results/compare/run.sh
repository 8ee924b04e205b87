#!/usr/bin/env bash
# Side by side: ejabberd, prosody and ringline under identical small workloads from ringline-loadgen, one run.
#
#   results/compare/run.sh            # from the repository root, as root (installs and starts the peer servers)
#
# Installs ejabberd and prosody (Debian packages), configures both for load on loopback after
# /work/shared/reference/peer-servers.md (plain passwords, SASL PLAIN without TLS, no shapers or limits, offline
# storage on with high caps, large backlogs, stream management on without resumption, which the load generator
# never uses), creates the users in bulk (ejabberd: a mnesia
# text dump through `ejabberdctl load`; prosody: its accounts/*.dat files), then for each server runs
#   idle     N_IDLE connections offered at IDLE_RAMP/s and held 20 s: sessions, server RSS per session, logins/s
#   chat     N_CHAT connections (ramped at CHAT_RAMP/s) at each of RATES until saturated (p99 > P99_GIVE_UP_MS
#            or under 80% delivered), then KNEE_STEPS bisections between the highest rate that passed (delivery
#            p99 <= P99_MAX_MS, nothing lost, duplicated or reordered) and the next one tried, which did not: the
#            table gives the highest delivered rate that passed, and the bracket the knee lies in
#   offline  N_CHAT connections, 20% offline during the first half of an OFFLINE_DURATION s hold at OFFLINE_RATE
#            msgs/s (OFFLINE_RATE x OFFLINE_DURATION / 2 / N_CHAT stored per offline user, 15 by default), then
#            back: the time from their return until the last stored message arrived, and the drain rate
# and stops the peer servers again (and epmd) whatever happens. Writes results/compare/<host>-<date>/: every
# loadgen report (JSON) and log, compare.json and compare.md (the table).
#
# Environment knobs (defaults keep one run to ~15 minutes on 2 cores): N_IDLE IDLE_RAMP N_CHAT RATES DURATION P99_MAX_MS
# KNEE_STEPS OFFLINE_RATE OFFLINE_DURATION SERVERS ("ejabberd prosody ringline"). Peers listen on 127.0.0.1 only:
# ejabberd 5222, prosody 5322.
set -euo pipefail

N_IDLE=${N_IDLE:-3000}
# Logins offered per second in the idle run: a server that keeps up is only known to do at least this many.
IDLE_RAMP=${IDLE_RAMP:-5000}
N_CHAT=${N_CHAT:-1000}
RATES=${RATES:-"500 1000 2000 4000 8000"}
DURATION=${DURATION:-10}
P99_MAX_MS=${P99_MAX_MS:-10}
# Bisections between the last passing rung of RATES and the first failing one above it: each halves the bracket.
KNEE_STEPS=${KNEE_STEPS:-3}
# The offline run: a rate every server sustains (prosody falls seconds behind at 1,000/s, not at 500/s), long
# enough that the drain is more than the returning users' logins (15 messages stored per offline user by default).
OFFLINE_RATE=${OFFLINE_RATE:-500}
OFFLINE_DURATION=${OFFLINE_DURATION:-60}
# Chat and offline runs ramp slower than the slowest server logs in (prosody ~220/s), so that the hold, which
# starts at the planned end of the ramp, finds every user logged in. The idle run offers IDLE_RAMP/s to measure logins.
CHAT_RAMP=${CHAT_RAMP:-100}
# A chat rate whose delivery p99 passes this, or that delivers under 80% of what was offered, ends the ladder.
P99_GIVE_UP_MS=${P99_GIVE_UP_MS:-2000}
SERVERS=${SERVERS:-"ejabberd prosody ringline"}
PASSWORD=loadtest
EJABBERD_PORT=5222
PROSODY_PORT=5322

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$ROOT/results/compare/$(hostname)-$STAMP"
WORK=$(mktemp -d /tmp/ringline-compare.XXXXXX)
mkdir -p "$OUT"
LOADGEN="$ROOT/target/release/ringline-loadgen"
ENGINE="$ROOT/target/release/ringline"
N_MAX=$(( N_IDLE > N_CHAT ? N_IDLE : N_CHAT ))

log() { echo "[compare $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }

# --- stop the peers whatever happens ------------------------------------------------------------------------
EJABBERD_STARTED=0
PROSODY_STARTED=0
stop_peers() {
    if [ "$EJABBERD_STARTED" = 1 ]; then
        ejabberdctl --ctl-config "$WORK/ejabberdctl.cfg" --spool "$WORK/ejabberd-spool" --logs "$WORK/ejabberd-spool" stop >/dev/null 2>&1 || true
        ejabberdctl --ctl-config "$WORK/ejabberdctl.cfg" --spool "$WORK/ejabberd-spool" --logs "$WORK/ejabberd-spool" stopped >/dev/null 2>&1 || true
        EJABBERD_STARTED=0
        # The Erlang port mapper outlives the node; it was started by this run.
        epmd -kill >/dev/null 2>&1 || true
    fi
    if [ "$PROSODY_STARTED" = 1 ]; then
        prosodyctl --config "$WORK/prosody.cfg.lua" stop >/dev/null 2>&1 || true
        PROSODY_STARTED=0
    fi
}
trap stop_peers EXIT
trap "exit 130" INT TERM

# --- build and install --------------------------------------------------------------------------------------
log "building ringline and ringline-loadgen (release)"
cargo build --release -p ringline -p ringline-loadgen 2>&1 | tail -1
if ! command -v ejabberdctl >/dev/null || ! command -v prosodyctl >/dev/null; then
    log "installing ejabberd and prosody"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ejabberd prosody >/dev/null
fi
for port in $EJABBERD_PORT $PROSODY_PORT; do
    if ss -ltn "sport = :$port" | grep -q LISTEN; then
        echo "port $port is already served; stop that server first" >&2
        exit 1
    fi
done
NOFILE=$(ulimit -Hn)
ulimit -n "$NOFILE"

# --- ejabberd -----------------------------------------------------------------------------------------------
setup_ejabberd() {
    # ejabberdctl starts the VM through su: without this pam_limits gives it 1024 fds (sessions stop near 1,000).
    # (At most this shell's hard limit: pam_limits refuses more and leaves 1024.)
    printf 'ejabberd soft nofile %s\nejabberd hard nofile %s\n' "$NOFILE" "$NOFILE" > /etc/security/limits.d/ejabberd-loadtest.conf
    mkdir -p "$WORK/ejabberd-spool"
    chown -R ejabberd:ejabberd "$WORK/ejabberd-spool"
    chmod 755 "$WORK"
    cat > "$WORK/ejabberdctl.cfg" <<EOF
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_PID_PATH=$WORK/ejabberd-spool/ejabberd.pid
EJABBERD_CONFIG_PATH=$WORK/ejabberd.yml
ERL_MAX_PORTS=65536
EOF
    cat > "$WORK/ejabberd.yml" <<EOF
hosts: ["localhost"]
loglevel: warning
certfiles: []
auth_method: internal
auth_password_format: plain
# The default cache_size (1,000 entries) thrashes the auth and roster caches above 1,000 users.
cache_size: 1000000
listen:
  -
    port: $EJABBERD_PORT
    ip: "127.0.0.1"
    module: ejabberd_c2s
    shaper: none
    access: all
    starttls: false
    starttls_required: false
    max_stanza_size: 1048576
    backlog: 4096
shaper_rules:
  c2s_shaper: none
  max_user_sessions: 10
  max_user_offline_messages: 1000000
access_rules:
  local:
    allow: all
  c2s:
    allow: all
modules:
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_stream_mgmt:
    resume_timeout: 0
  mod_ping: {}
  mod_roster: {}
  mod_disco: {}
EOF
    chown ejabberd:ejabberd "$WORK/ejabberd.yml" "$WORK/ejabberdctl.cfg"
    # Debian's ejabberdctl.cfg names /etc/ejabberd/ejabberd.yml: our own ctl config points at ours.
    local ctl=(ejabberdctl --ctl-config "$WORK/ejabberdctl.cfg" --spool "$WORK/ejabberd-spool" --logs "$WORK/ejabberd-spool")
    "${ctl[@]}" start
    EJABBERD_STARTED=1
    "${ctl[@]}" started
    # Users in bulk: a mnesia text dump of passwd records (one ejabberdctl register costs ~0.4 s).
    {
        echo '{tables,[{passwd,[{record_name,passwd},{attributes,[us,password]}]}]}.'
        for n in $(seq 1 "$N_MAX"); do echo "{passwd,{<<\"user$n\">>,<<\"localhost\">>},<<\"$PASSWORD\">>}."; done
    } > "$WORK/ejabberd-users.dump"
    chown ejabberd:ejabberd "$WORK/ejabberd-users.dump"
    "${ctl[@]}" load "$WORK/ejabberd-users.dump"
    local registered
    registered=$("${ctl[@]}" registered_users localhost | wc -l)
    log "ejabberd: $registered users registered"
    [ "$registered" -ge "$N_MAX" ]
}

# --- prosody ------------------------------------------------------------------------------------------------
setup_prosody() {
    local data="$WORK/prosody-data"
    mkdir -p "$data/localhost/accounts"
    for n in $(seq 1 "$N_MAX"); do
        printf 'return {\n\t["password"] = "%s";\n};\n' "$PASSWORD" > "$data/localhost/accounts/user$n.dat"
    done
    chown -R prosody:prosody "$data"
    mkdir -p "$WORK/certs"
    cat > "$WORK/prosody.cfg.lua" <<EOF
-- Load-test configuration: plaintext SASL PLAIN on loopback, no limits, offline storage with a high cap.
pidfile = "$data/prosody.pid"
data_path = "$data"
log = { warn = "$data/prosody.log" }
certificates = "$WORK/certs"
network_backend = "epoll"
network_settings = { tcp_backlog = 4096 }
interfaces = { "127.0.0.1" }
c2s_ports = { $PROSODY_PORT }
s2s_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
storage_archive_item_limit = 1000000
-- The load generator never resumes a stream (XEP-0198 resumption): keep no session after a disconnect.
smacks_hibernation_time = 0
-- Lua GC left at prosody 0.12's default (incremental); generational is faster with long pauses.
modules_enabled = { "roster", "saslauth", "disco", "ping", "offline", "smacks", "posix" }
modules_disabled = { "s2s", "limits", "tls" }
VirtualHost "localhost"
EOF
    chown prosody:prosody "$WORK/prosody.cfg.lua"
    prosodyctl --config "$WORK/prosody.cfg.lua" start
    PROSODY_STARTED=1
    for _ in $(seq 1 50); do
        ss -ltn "sport = :$PROSODY_PORT" | grep -q LISTEN && break
        sleep 0.2
    done
}

server_pid() {
    case "$1" in
        ejabberd) pgrep -u ejabberd -f beam.smp | head -1 ;;
        prosody) cat "$WORK/prosody-data/prosody.pid" ;;
    esac
}

cpu_seconds() { # utime+stime of a pid, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# One loadgen run: run_loadgen SERVER NAME ARGS... → $OUT/SERVER-NAME.json, .log; a line in $WORK/runs.tsv.
run_loadgen() {
    local server=$1 name=$2
    shift 2
    local target=() pid="" cpu_before=0
    case "$server" in
        ejabberd) target=(--protocol xmpp --target "127.0.0.1:$EJABBERD_PORT" --xmpp-password "$PASSWORD") ;;
        prosody) target=(--protocol xmpp --target "127.0.0.1:$PROSODY_PORT" --xmpp-password "$PASSWORD") ;;
        ringline) target=(--spawn-engine --engine-bin "$ENGINE") ;;
    esac
    if [ "$server" != ringline ]; then
        pid=$(server_pid "$server")
        target+=(--server-pid "$pid")
        settle "$pid"
        cpu_before=$(cpu_seconds "$pid")
    else
        sleep 3 # the previous engine and agents are gone: their sockets are closed
    fi
    local report="$OUT/$server-$name.json"
    log "$server $name: ringline-loadgen run ${target[*]} $*"
    local started ended status=0
    started=$(date +%s.%N)
    # Loadgen CPU (controller + agents, which it waits for): user and system seconds from bash's time.
    { TIMEFORMAT='loadgen_cpu %U %S'; time "$LOADGEN" run "${target[@]}" --connect-timeout-ms 60000 \
        --report "$report" "$@" > "$OUT/$server-$name.log" 2>&1; } 2> "$WORK/time" || status=$?
    ended=$(date +%s.%N)
    local loadgen_cpu server_cpu=""
    loadgen_cpu=$(awk '/loadgen_cpu/ { print $2 + $3 }' "$WORK/time")
    if [ -n "$pid" ]; then
        server_cpu=$(awk -v a="$cpu_before" -v b="$(cpu_seconds "$pid")" 'BEGIN { printf "%.2f", b - a }')
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$name" "$report" "$status" "$loadgen_cpu" "$server_cpu" \
        "$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.1f", b - a }')" >> "$WORK/runs.tsv"
    tail -n 4 "$OUT/$server-$name.log" | sed 's/^/    /'
    log "$server $name: exit $status, load average now $(cut -d' ' -f1-3 /proc/loadavg)"
}

# Whether a higher rate is worth running: delivery p99 under P99_GIVE_UP_MS and at least 80% of the offered
# rate delivered.
chat_go_on() {
    python3 - "$1" "$P99_GIVE_UP_MS" "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
p99_ms = r["latency_delivery_us"]["p99"] / 1000
sys.exit(0 if p99_ms <= float(sys.argv[2]) and r["throughput_msgs_per_s"] >= 0.8 * float(sys.argv[3]) else 1)
EOF
}

# Whether a chat run meets the table's bar (chat_verdict.py, which summarize.py uses too).
chat_passes() {
    python3 "$ROOT/results/compare/chat_verdict.py" "$1" "$P99_MAX_MS"
}

# Waits (60 s at most) until the server's CPU use falls under 5% for a second: what the previous run left behind
# (closing thousands of sessions) must not be charged to the next one.
settle() {
    local pid=$1 before after
    for _ in $(seq 1 60); do
        before=$(cpu_seconds "$pid")
        sleep 1
        after=$(cpu_seconds "$pid")
        awk -v a="$before" -v b="$after" 'BEGIN { exit !(b - a < 0.05) }' && return 0
    done
    log "server $pid still busy after 60 s"
}

workloads() {
    local server=$1 rate ran=()
    run_loadgen "$server" idle --scenario idle --connections "$N_IDLE" --ramp "$IDLE_RAMP" --duration 20
    for rate in $RATES; do
        chat_run "$server" "$rate"
        ran+=("$rate")
        if ! chat_go_on "$OUT/$server-chat-$rate.json" "$rate"; then
            log "$server: saturated at $rate msgs/s (p99 over $P99_GIVE_UP_MS ms or under 80% delivered): higher rates skipped"
            break
        fi
    done
    # The knee: the highest rung that passed (0 if none) and the lowest rung above it, which did not.
    local low=0 high="" step middle
    for rate in "${ran[@]}"; do
        if [ "$rate" -gt "$low" ] && chat_passes "$OUT/$server-chat-$rate.json"; then low=$rate; fi
    done
    for rate in "${ran[@]}"; do
        if [ "$rate" -gt "$low" ] && { [ -z "$high" ] || [ "$rate" -lt "$high" ]; }; then high=$rate; fi
    done
    if [ -z "$high" ]; then
        log "$server: every rate up to $low msgs/s passed: the knee is above the ladder"
    else
        for step in $(seq 1 "$KNEE_STEPS"); do
            middle=$(( ((low + high) / 2 + 5) / 10 * 10 ))
            if [ "$middle" -le "$low" ] || [ "$middle" -ge "$high" ]; then break; fi
            chat_run "$server" "$middle"
            if chat_passes "$OUT/$server-chat-$middle.json"; then low=$middle; else high=$middle; fi
        done
        log "$server: knee between $low msgs/s (passed) and $high msgs/s (did not)"
    fi
    run_loadgen "$server" offline --scenario offline --connections "$N_CHAT" --ramp "$CHAT_RAMP" \
        --duration "$OFFLINE_DURATION" --rate "$OFFLINE_RATE" --offline-share 0.2 --drain-timeout 120
}

chat_run() {
    run_loadgen "$1" "chat-$2" --scenario chat --connections "$N_CHAT" --ramp "$CHAT_RAMP" \
        --duration "$DURATION" --rate "$2" --drain-timeout 20
}

: > "$WORK/runs.tsv"
{
    echo "command: $0 (N_IDLE=$N_IDLE IDLE_RAMP=$IDLE_RAMP N_CHAT=$N_CHAT CHAT_RAMP=$CHAT_RAMP RATES='$RATES' DURATION=$DURATION P99_MAX_MS=$P99_MAX_MS P99_GIVE_UP_MS=$P99_GIVE_UP_MS KNEE_STEPS=$KNEE_STEPS OFFLINE_RATE=$OFFLINE_RATE OFFLINE_DURATION=$OFFLINE_DURATION)"
    echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared)"
    echo "commit: $(git rev-parse HEAD)$(git diff --quiet HEAD -- . ':!results' || echo ' (with uncommitted changes)')"
    echo "host: $(hostname), $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
    echo "ejabberd: $(dpkg-query -W -f '${Version}' ejabberd), prosody: $(dpkg-query -W -f '${Version}' prosody)"
} | tee "$OUT/environment.txt"

for server in $SERVERS; do
    case "$server" in
        ejabberd) log "starting ejabberd"; setup_ejabberd ;;
        prosody) log "starting prosody"; setup_prosody ;;
    esac
    workloads "$server"
    stop_peers
done

cp "$WORK/runs.tsv" "$OUT/runs.tsv"
python3 "$ROOT/results/compare/summarize.py" "$OUT" "$P99_MAX_MS" "$IDLE_RAMP"
log "written: $OUT/compare.md, $OUT/compare.json"
rm -rf "$WORK"
