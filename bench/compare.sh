#!/usr/bin/env bash
# Side by side: server CPU per operation, latency and memory of mc-service against a
# tokio + quinn WebTransport server (bench/src/bin/wt-echo-server.rs), same client
# (mc-loadgen), same certificate, same pinning. See bench/README.md "Side by side with
# tokio/quinn".
#
#   bench/compare.sh                               # everything, 3 runs of 10 s each
#   bench/compare.sh --ops echo100x8 --runs 5      # one operation
#   bench/compare.sh --duration 5 --runs 1 --perf  # quick, plus perf profiles of both servers
#   bench/compare.sh --ops echo100x8,echo10x1 --sessions-per-endpoint 1
#                                                  # each session on a client socket of its
#                                                  # own, as browsers connect (mc-loadgen
#                                                  # puts 8 on one by default)
#   bench/compare.sh --skip-build --mc-bin target/ab/mc-service-OLD --ops fanout
#                                                  # another build of mc-service (e.g. an
#                                                  # older commit's, to tell a regression
#                                                  # from a slower host): run it, then the
#                                                  # current build, and compare the two
#
# Operations (--ops, comma separated; default all):
#   setup      new QUIC connection + WebTransport CONNECT + one 32-byte echo + close,
#              --setup-concurrency (32) at once
#   echo100x8  100 sessions × 8 messages in flight × 64 B, one bidi stream per session
#   echo10x1   10 sessions × 1 in flight × 64 B. After each pair of runs, the same
#              datagrams in plain UDP (udp-floor --echo) at the round trips per second
#              the peer reached: what the kernel alone takes per round trip at that pace,
#              once with recvmmsg/sendmmsg/poll and once through io_uring (--io-uring)
#   fanout     mc-service only: one meeting of 1,000 participants, mute toggles at 10 and
#              40 msg/s (each reaches all 1,000): server CPU per delivered notification;
#              up to 30 s of drain for notifications still queued at the end. After each
#              run, the same datagrams in plain UDP (bench/src/bin/udp-floor.rs): the
#              kernel's floor for that delivery on this host in this sitting
#   memory     2,000 sessions, each with one bidi stream that echoed 32 B, held open:
#              server RSS per session at the peak and in the steady hold
#
# The server runs on CPU --server-cpu (0), the load generator on --client-cpu (1), both
# with taskset. Each run starts a fresh server; A/B order alternates between runs. The
# load generator reads the server's CPU (utime + stime from /proc/<pid>/stat) at the
# start and end of its measured phase, after --warmup seconds of load, and counts the
# operations of that phase. Loopback only; servers are stopped on exit.
#
# Writes into bench/results/<UTC stamp>-<commit>-compare/ (<run>/): <run>/summary.md, summary.json,
# commands.txt, each load generator JSON and log, and with --perf the perf reports (each
# splits the server's time by whose code ran, bench/scripts/perf-crates.py; the fan-out's
# also by step of the shard's loop, bench/scripts/perf-phases.py).
# Every flag also has an environment variable (COMPARE_<FLAG>, e.g. COMPARE_RUNS=5).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DURATION=${COMPARE_DURATION:-10}
RUNS=${COMPARE_RUNS:-3}
WARMUP=${COMPARE_WARMUP:-2}
OPS=${COMPARE_OPS:-setup,echo100x8,echo10x1,fanout,memory}
SERVER_CPU=${COMPARE_SERVER_CPU:-0}
CLIENT_CPU=${COMPARE_CLIENT_CPU:-1}
SETUP_CONCURRENCY=${COMPARE_SETUP_CONCURRENCY:-32}
FANOUT_RATES=${COMPARE_FANOUT_RATES:-10,40}
FANOUT_SIZE=${COMPARE_FANOUT_SIZE:-1000}
# A meeting of 1,000 starts with a join storm (every join is announced to everyone
# present, ~500,000 notifications): the fan-out warm-up lets the client drain it.
FANOUT_WARMUP=${COMPARE_FANOUT_WARMUP:-20}
MEM_SESSIONS=${COMPARE_MEM_SESSIONS:-2000}
MEM_HOLD=${COMPARE_MEM_HOLD:-10}
SESSIONS_PER_ENDPOINT=${COMPARE_SESSIONS_PER_ENDPOINT:-${LOADGEN_SESSIONS_PER_ENDPOINT:-8}}
PERF=${COMPARE_PERF:-0}
# Seconds the fan-out's profile records from the start of its measured window (--perf).
PERF_SECONDS=${COMPARE_PERF_SECONDS:-10}
SKIP_BUILD=${COMPARE_SKIP_BUILD:-0}
MC=${COMPARE_MC_BIN:-target/release/mc-service}
WT_PORT=${COMPARE_WT_PORT:-14533}
HTTP_PORT=${COMPARE_HTTP_PORT:-18533}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; cat <<EOF
Flags (defaults): --duration $DURATION --runs $RUNS --warmup $WARMUP --ops $OPS
  --server-cpu $SERVER_CPU --client-cpu $CLIENT_CPU --setup-concurrency $SETUP_CONCURRENCY
  --fanout-rates $FANOUT_RATES --fanout-size $FANOUT_SIZE --fanout-warmup $FANOUT_WARMUP
  --mem-sessions $MEM_SESSIONS
  --mem-hold $MEM_HOLD (seconds of steady hold) --perf --skip-build
  --sessions-per-endpoint $SESSIONS_PER_ENDPOINT (sessions mc-loadgen puts on one client UDP socket)
  --perf-seconds $PERF_SECONDS (how long the fan-out's profile records, from the start of its measured window; at most --duration)
  --mc-bin $MC (the mc-service binary; give a path inside the repository, it is recorded)
  --wt-port $WT_PORT --http-port $HTTP_PORT
EOF
}
while [[ $# -gt 0 ]]; do
  case $1 in
    --duration) DURATION=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --ops) OPS=$2; shift ;;
    --server-cpu) SERVER_CPU=$2; shift ;;
    --client-cpu) CLIENT_CPU=$2; shift ;;
    --setup-concurrency) SETUP_CONCURRENCY=$2; shift ;;
    --fanout-rates) FANOUT_RATES=$2; shift ;;
    --fanout-size) FANOUT_SIZE=$2; shift ;;
    --fanout-warmup) FANOUT_WARMUP=$2; shift ;;
    --mem-sessions) MEM_SESSIONS=$2; shift ;;
    --mem-hold) MEM_HOLD=$2; shift ;;
    --sessions-per-endpoint) SESSIONS_PER_ENDPOINT=$2; shift ;;
    --perf) PERF=1 ;;
    --perf-seconds) PERF_SECONDS=$2; shift ;;
    --skip-build) SKIP_BUILD=1 ;;
    --mc-bin) MC=$2; shift ;;
    --wt-port) WT_PORT=$2; shift ;;
    --http-port) HTTP_PORT=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $SESSIONS_PER_ENDPOINT =~ ^[1-9][0-9]*$ ]] || { echo "compare: --sessions-per-endpoint must be a positive integer" >&2; exit 2; }
# Every mc-loadgen run below reads it (its --sessions-per-endpoint).
export LOADGEN_SESSIONS_PER_ENDPOINT=$SESSIONS_PER_ENDPOINT
for tool in taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "compare: $tool is required" >&2; exit 2; }
done
if [[ $PERF == 1 ]] && ! command -v perf >/dev/null; then
  echo "compare: --perf needs perf (Debian: apt-get install linux-perf)" >&2; exit 2
fi

if [[ $SKIP_BUILD != 1 ]]; then
  cargo build --release -p mc-service -p mc-bench
fi
# Paths relative to the repository root (the working directory from here on), so that
# the recorded commands and reports name no machine path.
PEER=target/release/wt-echo-server
LG=target/release/mc-loadgen
FLOOR=target/release/udp-floor
for b in "$MC" "$PEER" "$LG" "$FLOOR"; do
  [[ -x $b ]] || { echo "compare: $b is missing (run without --skip-build)" >&2; exit 2; }
done

WT=127.0.0.1:$WT_PORT
HTTP=127.0.0.1:$HTTP_PORT
METRICS=http://$HTTP/metrics
COMMIT=$(git rev-parse --short HEAD)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=bench/results/$STAMP-$COMMIT-compare
mkdir -p "$OUT"
DEV=$(mktemp -d target/compare-dev.XXXXXX)   # holds private keys: never under results/
SCRATCH=$(mktemp -d /tmp/mc-compare-scratch.XXXXXX)

# shellcheck source=scripts/lib.sh
source bench/scripts/lib.sh
mc_bench_args "$MC" "$DEV" "$WT" "$HTTP" $((FANOUT_SIZE * 2))
PEER_ARGS=(--bind "$WT" --cert "$DEV/cert.pem" --key "$DEV/key.pem")

SERVER_PID=
SAMPLER_PID=
LG_PID=
PERF_PID=
stop_server() { stop_pid "$SERVER_PID"; SERVER_PID=; }
cleanup() {
  if [[ -n $PERF_PID ]]; then kill -INT "$PERF_PID" 2>/dev/null || true; fi
  if [[ -n $LG_PID ]]; then kill -INT "$LG_PID" 2>/dev/null || true; fi
  stop_pid "$SAMPLER_PID"
  stop_server
  rm -rf "$DEV" "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "compare: $*" >&2; }
record() { printf '%s\n' "$*" >>"$OUT/commands.txt"; }

# start_server mc|peer LOG: starts it pinned to SERVER_CPU and waits until it serves.
start_server() {
  local kind=$1 logf=$2 cmd
  if [[ $kind == mc ]]; then
    cmd=(taskset -c "$SERVER_CPU" "$MC" "${MC_ARGS[@]}")
  else
    cmd=(taskset -c "$SERVER_CPU" "$PEER" "${PEER_ARGS[@]}")
  fi
  record "${cmd[*]}"
  "${cmd[@]}" >"$logf" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 200); do
    if [[ $kind == mc ]]; then
      curl -fs "http://$HTTP/ready" >/dev/null 2>&1 && break
    else
      grep -q "listening on" "$logf" 2>/dev/null && break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { log "$kind exited at start:"; cat "$logf" >&2; exit 1; }
    sleep 0.1
  done
  sleep 0.5
}

# loadgen NAME ARGS...: runs mc-loadgen pinned to CLIENT_CPU against SERVER_PID.
loadgen() {
  local name=$1; shift
  local cmd=(taskset -c "$CLIENT_CPU" "$LG" --progress 0 --json "$OUT/$name.json" "$@")
  record "${cmd[*]}"
  set +e
  "${cmd[@]}" >"$OUT/$name.txt" 2>"$OUT/$name.err"
  local rc=$?
  set -e
  echo "exit $rc" >>"$OUT/$name.txt"
  [[ $rc -ne 0 ]] && log "$name: mc-loadgen exit $rc (see $name.txt)"
  return 0
}

# Certificate and keys: mc-service --dev writes them on its first start.
start_server mc "$SCRATCH/first-start.log"
stop_server
[[ -s $DEV/cert.pem && -s $DEV/key.pem && -s $DEV/cert.sha256 ]] || { log "no dev certificate in $DEV"; exit 1; }

# mc-service reads its flags from MC_* variables too: the run records which ones it set.
mc_settings=$(env | grep -E '^MC_' | sort | tr '\n' ' ' | sed 's/ $//' || true)
{
  echo "# mc-service vs tokio/quinn (wt-echo-server), $STAMP"
  echo
  echo "- commit: $(git rev-parse HEAD)$(git diff --quiet HEAD -- src bench Cargo.toml || echo ' (with uncommitted changes)')"
  echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- server on CPU $SERVER_CPU, mc-loadgen on CPU $CLIENT_CPU; $RUNS run(s) of ${DURATION} s after ${WARMUP} s of warm-up"
  echo "- mc-service binary: \`$MC\`, built $(date -u -r "$MC" +%FT%TZ)"
  echo "- mc-service settings from the environment: ${mc_settings:-none}"
  echo "- client sockets: mc-loadgen puts up to $SESSIONS_PER_ENDPOINT session(s) on one UDP socket (--sessions-per-endpoint; a browser's sessions have one each)"
  # A container runtime's port forwarding turns connection tracking on for every
  # datagram in this namespace, loopback included (bench/README.md, "Connection tracking
  # on loopback").
  echo "- netfilter connection tracking: $(cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo 'no') flows tracked at start"
  # A virtual machine's idle polling changes what each wake-up costs (tuning.md, "Idle
  # polling in virtual machines").
  echo "- idle: cpuidle driver $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo 'none'), guest_halt_poll_ns $(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo 'n/a')"
} >"$OUT/machine.md"
record "# $(date -u +%FT%TZ) ${mc_settings:+$mc_settings }bench/compare.sh --duration $DURATION --runs $RUNS --warmup $WARMUP --ops $OPS --sessions-per-endpoint $SESSIONS_PER_ENDPOINT --mc-bin $MC"

has_op() { [[ ",$OPS," == *",$1,"* ]]; }
common() { echo --warmup "${1:-$WARMUP}" --duration "$DURATION" --server-pid "$SERVER_PID"; }

# One A/B pair per run, order alternating: mc first in odd runs, the peer in even ones.
ab_order() { if (( $1 % 2 == 1 )); then echo "mc peer"; else echo "peer mc"; fi; }

run_pair_op() { # op, scenario args...
  local op=$1; shift
  for run in $(seq "$RUNS"); do
    for kind in $(ab_order "$run"); do
      log "$op run $run/$RUNS: $kind"
      start_server "$kind" "$OUT/$op-$kind-$run.server.log"
      local extra=()
      [[ $kind == mc ]] && extra=(--server-metrics "$METRICS")
      # shellcheck disable=SC2046
      loadgen "$op-$kind-$run" $(common) "${extra[@]}" "$@"
      stop_server
    done
    [[ $op == echo10x1 ]] && echo_floor "$run"
  done
  return 0
}

# Echo 10 × 1's datagrams with no QUIC, pinned the same way, the clients paced to the
# round trips per second the peer reached in this run: the server sleeps and wakes as
# often as the peer's did, and its CPU per round trip is the kernel's share of that pace.
echo_floor() { # run
  local pace
  pace=$(python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["window"]["ops_per_s"]))' \
    "$OUT/echo10x1-peer-$1.json")
  # A pace of 0 would run the plain clients unpaced: a floor for another load than the pair's.
  (( pace > 0 )) || { log "echo10x1 run $1: the peer completed no round trips; no floor to pace"; exit 1; }
  log "echo10x1 run $1/$RUNS: the same datagrams in plain UDP at $pace round trips/s (udp-floor --echo)"
  local cmd=("$FLOOR" --echo --clients 10 --requests-per-s "$pace" --warmup "$WARMUP" --duration "$DURATION"
    --server-cpu "$SERVER_CPU" --client-cpu "$CLIENT_CPU" --json "$OUT/echo-floor-$1.json")
  record "${cmd[*]}"
  "${cmd[@]}" >"$OUT/echo-floor-$1.txt" 2>&1
  # The same through one io_uring (multishot recvmsg, sendmsg entries submitted with the
  # next wait): what the kernel's part would be with the fewest system calls.
  log "echo10x1 run $1/$RUNS: the same through io_uring (udp-floor --echo --io-uring)"
  cmd=("$FLOOR" --echo --io-uring --clients 10 --requests-per-s "$pace" --warmup "$WARMUP" --duration "$DURATION"
    --server-cpu "$SERVER_CPU" --client-cpu "$CLIENT_CPU" --json "$OUT/echo-floor-uring-$1.json")
  record "${cmd[*]}"
  "${cmd[@]}" >"$OUT/echo-floor-uring-$1.txt" 2>&1
}

if has_op setup; then
  run_pair_op setup --max-sessions 100000000 connect --target "https://$WT/echo" --dev-dir "$DEV" \
    --sessions 100000000 --concurrency "$SETUP_CONCURRENCY" --echo-bytes 32
fi
if has_op echo100x8; then
  run_pair_op echo100x8 echo --target "https://$WT/echo" --dev-dir "$DEV" --sessions 100 --window 8 --size 64
fi
if has_op echo10x1; then
  run_pair_op echo10x1 echo --target "https://$WT/echo" --dev-dir "$DEV" --sessions 10 --window 1 --size 64
fi

if has_op fanout; then
  for rate in ${FANOUT_RATES//,/ }; do
    for run in $(seq "$RUNS"); do
      log "fanout rate $rate run $run/$RUNS"
      start_server mc "$OUT/fanout$rate-mc-$run.server.log"
      # shellcheck disable=SC2046
      loadgen "fanout$rate-mc-$run" $(common "$FANOUT_WARMUP") --server-metrics "$METRICS" --threads 1 \
        meeting --target "https://$WT/" --dev-dir "$DEV" \
        --sizes "1x$FANOUT_SIZE" --mix mute=100 --rate "$rate" --join-timeout 120 --drain 30
      stop_server
      # The same datagrams with no QUIC and no meeting, pinned the same way: what the
      # kernel alone takes per delivery, measured right after the run above.
      log "fanout rate $rate run $run/$RUNS: the same datagrams in plain UDP (udp-floor)"
      cmd=("$FLOOR" --clients "$FANOUT_SIZE" --rate "$rate" --warmup "$WARMUP" --duration "$DURATION"
        --server-cpu "$SERVER_CPU" --client-cpu "$CLIENT_CPU" --json "$OUT/floor$rate-$run.json")
      record "${cmd[*]}"
      "${cmd[@]}" >"$OUT/floor$rate-$run.txt" 2>&1
    done
  done
fi

if has_op memory; then
  for kind in mc peer; do
    log "memory: $kind, $MEM_SESSIONS sessions"
    start_server "$kind" "$OUT/memory-$kind.server.log"
    csv=$OUT/memory-$kind.rss.csv
    echo "t_ms,rss_kib" >"$csv"
    # RSS every 200 ms; the phases are marked in memory-<kind>.phases.
    ( while kill -0 "$SERVER_PID" 2>/dev/null; do
        echo "$(date +%s%3N),$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null)" >>"$csv"
        sleep 0.2
      done ) &
    SAMPLER_PID=$!
    sleep 1
    phases=$OUT/memory-$kind.phases
    echo "idle_end $(date +%s%3N)" >"$phases"
    cmd=(taskset -c "$CLIENT_CPU" "$LG" --progress 0 --json "$OUT/memory-$kind.json"
      --max-sessions "$MEM_SESSIONS" --duration $((MEM_HOLD + 120)) --server-pid "$SERVER_PID"
      connect --target "https://$WT/echo" --dev-dir "$DEV" --sessions "$MEM_SESSIONS"
      --concurrency 64 --echo-bytes 32 --hold)
    record "${cmd[*]}"
    "${cmd[@]}" >"$OUT/memory-$kind.txt" 2>"$OUT/memory-$kind.err" &
    LG_PID=$!
    for _ in $(seq 1200); do
      grep -q "holding" "$OUT/memory-$kind.err" 2>/dev/null && break
      kill -0 "$LG_PID" 2>/dev/null || break
      sleep 0.1
    done
    echo "hold_start $(date +%s%3N)" >>"$phases"
    sleep "$MEM_HOLD"
    echo "hold_end $(date +%s%3N)" >>"$phases"
    kill -INT "$LG_PID" 2>/dev/null || true
    wait "$LG_PID" 2>/dev/null || true
    LG_PID=
    stop_pid "$SAMPLER_PID"; SAMPLER_PID=
    stop_server
  done
fi

# Profiles: separate runs, so that perf's own cost stays out of the figures above.
if [[ $PERF == 1 ]]; then
  # wakeups: a timestamp, the server's context switches (all its threads) and the
  # cross-CPU wake-ups each pinned CPU received (/proc/interrupts: CAL, the
  # function-call IPIs that wake a sleeping task on another CPU, and RES).
  wakeups() {
    local ctx
    ctx=$(cat /proc/"$SERVER_PID"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}')
    echo "$(date +%s.%N) $ctx $(awk -v s=$((SERVER_CPU + 2)) -v c=$((CLIENT_CPU + 2)) \
      '$1 == "CAL:" {cal = $s " " $c} $1 == "RES:" {res = $s " " $c} END {print cal, res}' /proc/interrupts)"
  }
  wakeup_rates() { # before, after (from wakeups), what the span was
    python3 - "$1" "$2" "$SERVER_CPU" "$CLIENT_CPU" "$3" <<'PY'
import sys
a, b = ([float(x) for x in v.split()] for v in sys.argv[1:3])
t = b[0] - a[0]
r = [f"{round((y - x) / t):,}" for x, y in zip(a[1:], b[1:])]
# Kernels without x86's CAL/RES lines (arm64 names its IPIs differently) give no counts.
r += ["n/a"] * (5 - len(r))
print(f"# wake-ups per second over {sys.argv[5]} (the IPI counts are the CPUs', "
      f"whoever caused them): server context switches {r[0]}; function-call IPIs (CAL) received "
      f"by the server's CPU {sys.argv[3]} {r[1]}, by the client's CPU {sys.argv[4]} {r[2]}; "
      f"rescheduling IPIs (RES) {r[3]} / {r[4]}")
PY
  }
  perf_run() { # mc|peer, name, loadgen args...
    local kind=$1 name=$2; shift 2
    local file=perf-$name server=mc-service
    if [[ $kind == peer ]]; then
      file=perf-$name-peer
      server="wt-echo-server (tokio/quinn)"
    fi
    start_server "$kind" "$OUT/$file.server.log"
    local data=$SCRATCH/$file.data
    local before after
    record "# wake-ups: ctxt_switches of /proc/$SERVER_PID/task/*/status and CAL/RES of /proc/interrupts, before and after the recording below"
    if [[ ${PERF_PHASES:-0} == 1 ]]; then
      # The fan-out: perf starts when mc-loadgen opens its measured window (its stderr
      # line "measured window opens"), so the 1,000 joins, the join storm's
      # announcements and the warm-up stay out, and records for PERF_SECONDS (at most
      # the window) with full call chains (DWARF: the release build keeps no frame
      # pointers) for the step-by-step split below.
      # shellcheck disable=SC2046
      loadgen "$file" $(common "${PERF_WARMUP:-$WARMUP}") "$@" &
      local lg_pid=$! waited=0 secs
      until grep -q "^measured window opens" "$OUT/$file.err" 2>/dev/null; do
        kill -0 "$lg_pid" 2>/dev/null && (( waited++ < 3000 )) || break
        sleep 0.1
      done
      secs=$(awk -v a="$PERF_SECONDS" -v b="$DURATION" 'BEGIN {print (a < b ? a : b)}')
      record "perf record --call-graph dwarf,16384 -F 999 -p $SERVER_PID -o $file.data -- sleep $secs  # once mc-loadgen's stderr says: measured window opens"
      before=$(wakeups)
      perf record --call-graph dwarf,16384 -F 999 -p "$SERVER_PID" -o "$data" -- sleep "$secs" \
        >/dev/null 2>"$SCRATCH/$file.err" || true
      after=$(wakeups)
      wait "$lg_pid"
    else
      # DWARF call chains (the release build keeps no frame pointers), so that
      # perf-crates.py below can give generic code and libc to the crate that called it.
      record "perf record --call-graph dwarf,16384 -F 999 -p $SERVER_PID -o $file.data  # during the run below"
      perf record --call-graph dwarf,16384 -F 999 -p "$SERVER_PID" -o "$data" 2>"$SCRATCH/$file.err" &
      PERF_PID=$!
      before=$(wakeups)
      # shellcheck disable=SC2046
      loadgen "$file" $(common "${PERF_WARMUP:-$WARMUP}") "$@"
      after=$(wakeups)
      kill -INT "$PERF_PID" 2>/dev/null || true
      wait "$PERF_PID" 2>/dev/null || true
      PERF_PID=
    fi
    stop_server
    record "perf report --no-children --stdio -g none --sort dso -i $file.data | grep -v '^#' | grep -v '^\$' | head -6"
    record "perf report --no-children --stdio -g none --percent-limit 0.1 -i $file.data | grep -v '^#' | grep -v '^\$' | head -30"
    {
      if [[ ${PERF_PHASES:-0} == 1 ]]; then
        echo "# perf record --call-graph dwarf -F 999 -p <$server pid> for the first $secs s of the measured window of: ${*}"
        wakeup_rates "$before" "$after" "the recording"
      else
        echo "# perf record --call-graph dwarf -F 999 -p <$server pid> during: ${*}"
        wakeup_rates "$before" "$after" "this run, warm-up included"
      fi
      echo "# perf report --no-children --stdio -g none --sort dso (share of samples by binary)"
      perf report --no-children --stdio -g none --sort dso -i "$data" 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | head -6 || true
      echo "# perf report --no-children --stdio -g none (top 30 by overhead; self time)"
      perf report --no-children --stdio -g none --percent-limit 0.1 -i "$data" 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | head -30 || true
      local us
      us=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["window"]["server"][0]["us_per_op"])' \
        "$OUT/$file.json" 2>/dev/null || true)
      perf script -F comm,ip,sym -i "$data" 2>/dev/null >"$SCRATCH/$file.script" || true
      echo "# µs per operation below: shares of the profiled run's server CPU per operation, ${us:-n/a} µs (perf's own cost included)"
      record "perf script -F comm,ip,sym -i $file.data | python3 bench/scripts/perf-crates.py $us"
      python3 bench/scripts/perf-crates.py $us <"$SCRATCH/$file.script" || true
      # Where the server waits and is woken: the kernel's lock releases (whose locks),
      # the shard's park (one ppoll), the io_uring waits (glommio's, the peer's none)
      # and epoll's (the peer's tokio; the shard's before it parked with ppoll).
      local frames="_raw_spin_unlock_irqrestore do_sys_poll __do_sys_io_uring_enter __x64_sys_epoll_pwait2 __x64_sys_epoll_wait __x64_sys_epoll_ctl"
      record "perf script -F comm,ip,sym -i $file.data | python3 bench/scripts/perf-callers.py $frames"
      # shellcheck disable=SC2086
      python3 bench/scripts/perf-callers.py $frames <"$SCRATCH/$file.script" || true
      if [[ ${PERF_PHASES:-0} == 1 ]]; then
        record "perf script -F comm,ip,sym -i $file.data | python3 bench/scripts/perf-phases.py $us"
        python3 bench/scripts/perf-phases.py $us <"$SCRATCH/$file.script" || true
      fi
      rm -f "$SCRATCH/$file.script"
      if grep -qi "kptr_restrict\|kernel symbols\|kallsyms" "$SCRATCH/$file.err" 2>/dev/null; then
        echo "# perf warned about kernel symbols: kernel frames may be unresolved"
      fi
    } >"$OUT/$file.txt"
    log "wrote $OUT/$file.txt"
  }
  if has_op echo100x8; then
    for kind in mc peer; do
      perf_run "$kind" echo-100x8 echo --target "https://$WT/echo" --dev-dir "$DEV" --sessions 100 --window 8 --size 64
    done
  fi
  if has_op echo10x1; then
    for kind in mc peer; do
      perf_run "$kind" echo-10x1 echo --target "https://$WT/echo" --dev-dir "$DEV" --sessions 10 --window 1 --size 64
    done
  fi
  if has_op fanout; then
    rate=${FANOUT_RATES##*,}
    PERF_PHASES=1 PERF_WARMUP=$FANOUT_WARMUP perf_run mc fanout --server-metrics "$METRICS" --threads 1 meeting \
      --target "https://$WT/" --dev-dir "$DEV" --sizes "1x$FANOUT_SIZE" --mix mute=100 --rate "$rate" --join-timeout 120 \
      --drain 30
  fi
fi

echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.md"
find "$OUT" -type f -empty -delete
python3 bench/scripts/compare-summary.py "$OUT" "$RUNS"
log "results in $OUT"
