#!/usr/bin/env bash
# Heap allocations per datagram and per operation of mc-service under load, counted, not
# timed: a uprobe on the allocator's entry points (mimalloc's `mi_malloc_aligned`, which
# Rust's global allocator calls for every allocation, and `mi_free`) counts every call of
# the server process (`perf stat`). Counts do not drift with the host's speed the way CPU
# time does, so a change that removes an allocation shows here even when its CPU saving
# is below what `bench/compare.sh` can resolve. See bench/README.md "Allocations per
# datagram".
#
#   bench/alloc-count.sh                                    # echo 100 × 8, the current build
#   bench/alloc-count.sh --mc-bin target/ab/mc-service-OLD,target/release/mc-service
#                                                           # two builds, one table
#   bench/alloc-count.sh --ops echo100x8,echo10x1,fanout
#   bench/alloc-count.sh --ops fanout \
#     --calls quinn_proto::connection::Connection::poll_transmit,mc_service::conn::Conn::poll_timeout
#                                                           # and calls of these functions
#
# --calls counts, the same way, the calls of any function the binary keeps as a function
# of its own (named as `nm -C` prints it; one that is only ever inlined has no symbol and
# is refused; of a generic function with several copies only the first is counted): how
# many times per datagram a step of the data path runs, which tells whether a change
# removed work even where its time is within the host's drift. Calls are counted
# reliably at the default lengths; allocations vary with the fan-out's join storm (about
# 1.5 million allocations before each run), so count those over a longer --long.
#
# Each operation runs twice per build, with --short and --long seconds of measured load
# after the same warm-up, each on a fresh server pinned to --server-cpu (0) with
# mc-loadgen on --client-cpu (1). Allocations made while sessions are set up and torn
# down are the same in both runs, so the difference between the two runs, divided by the
# difference in datagrams the server received (and sent), is what the steady load costs
# per datagram; per operation multiplies that by the datagrams per operation the load
# generator counted. A uprobe costs the server a few microseconds per hit, so throughput
# and batching under it are lower than in `bench/compare.sh`: compare builds with each
# other here, not with the timed figures.
#
# Needs root (uprobes), perf (Debian: linux-perf), taskset, curl, python3, and release
# builds of mc-service and mc-bench (`cargo build --release -p mc-service -p mc-bench`).
# Writes into bench/results/<UTC stamp>-<commit>-alloc/ its summary (.md and .json),
# commands.txt and each run's load generator report and perf output.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

OPS=echo100x8
MCS=target/release/mc-service
CALLS=
SHORT=2
LONG=8
WARMUP=2
SERVER_CPU=0
CLIENT_CPU=1
WT_PORT=14533
HTTP_PORT=18533

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; cat <<EOF
Flags (defaults): --ops $OPS (echo100x8, echo10x1, fanout) --mc-bin $MCS (comma separated)
  --calls FUNCTION,... (none; Rust paths as nm -C prints them)
  --short $SHORT --long $LONG (seconds of measured load) --warmup $WARMUP (echo; the
  fan-out's is 20: its meeting's join storm) --server-cpu $SERVER_CPU --client-cpu $CLIENT_CPU
  --wt-port $WT_PORT --http-port $HTTP_PORT
EOF
}
while [[ $# -gt 0 ]]; do
  case $1 in
    --ops) OPS=$2; shift ;;
    --mc-bin) MCS=$2; shift ;;
    --calls) CALLS=$2; shift ;;
    --short) SHORT=$2; shift ;;
    --long) LONG=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --server-cpu) SERVER_CPU=$2; shift ;;
    --client-cpu) CLIENT_CPU=$2; shift ;;
    --wt-port) WT_PORT=$2; shift ;;
    --http-port) HTTP_PORT=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "alloc-count: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for tool in perf taskset curl python3 nm; do
  command -v "$tool" >/dev/null || { echo "alloc-count: $tool is required" >&2; exit 2; }
done
(( LONG > SHORT )) || { echo "alloc-count: --long must exceed --short" >&2; exit 2; }
LG=target/release/mc-loadgen
IFS=, read -r -a BINS <<<"$MCS"
for b in "${BINS[@]}" "$LG"; do
  [[ -x $b ]] || { echo "alloc-count: $b is missing (cargo build --release -p mc-service -p mc-bench)" >&2; exit 2; }
done
CALL_LIST=()
[[ -n $CALLS ]] && IFS=, read -r -a CALL_LIST <<<"$CALLS"

# symbol_of BIN PATH: the mangled name of the function nm -C prints as PATH (the first
# address that has it), or nothing when the binary holds no such function.
symbol_of() {
  local addr
  addr=$(nm -C "$1" | awk -v p="$2" '($2 == "t" || $2 == "T") && substr($0, index($0, $3)) == p { print $1; exit }')
  [[ -n $addr ]] && nm "$1" | awk -v a="$addr" '$1 == a && ($2 == "t" || $2 == "T") { print $3; exit }'
  return 0
}
# Resolve every --calls function in every binary before any run starts.
declare -A CALL_SYMBOL
for i in "${!BINS[@]}"; do
  for c in "${!CALL_LIST[@]}"; do
    sym=$(symbol_of "${BINS[$i]}" "${CALL_LIST[$c]}")
    [[ -n $sym ]] || { echo "alloc-count: ${BINS[$i]} has no function ${CALL_LIST[$c]} (misspelt, or always inlined)" >&2; exit 2; }
    CALL_SYMBOL[$i,$c]=$sym
  done
done

WT=127.0.0.1:$WT_PORT
HTTP=127.0.0.1:$HTTP_PORT
COMMIT=$(git rev-parse --short HEAD)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=bench/results/$STAMP-$COMMIT-alloc
mkdir -p "$OUT"
DEV=$(mktemp -d target/alloc-dev.XXXXXX)   # holds private keys: never under results/

SERVER_PID=
PERF_PID=
GROUP=
# shellcheck source=scripts/lib.sh
source bench/scripts/lib.sh
drop_probes() { [[ -n $GROUP ]] && perf probe -q -d "$GROUP:*" 2>/dev/null; GROUP=; return 0; }
cleanup() {
  if [[ -n $PERF_PID ]]; then kill -INT "$PERF_PID" 2>/dev/null || true; fi
  stop_pid "$SERVER_PID"
  drop_probes
  rm -rf "$DEV"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "alloc-count: $*" >&2; }
record() { printf '%s\n' "$*" >>"$OUT/commands.txt"; }

# load_args OP SECONDS: the load generator's arguments for one run.
load_args() {
  local op=$1 secs=$2
  case $op in
    echo100x8) echo "--warmup $WARMUP --duration $secs echo --target https://$WT/echo --dev-dir $DEV --sessions 100 --window 8 --size 64" ;;
    echo10x1) echo "--warmup $WARMUP --duration $secs echo --target https://$WT/echo --dev-dir $DEV --sessions 10 --window 1 --size 64" ;;
    fanout) echo "--warmup 20 --duration $secs --threads 1 meeting --target https://$WT/ --dev-dir $DEV --sizes 1x1000 --mix mute=100 --rate 10 --join-timeout 120 --drain 30" ;;
    *) echo "alloc-count: unknown operation $op" >&2; exit 2 ;;
  esac
}

# one BIN_INDEX OP SECONDS: one run; writes <name>.json (load), <name>.perf, <name>.metrics.
one() {
  local i=$1 op=$2 secs=$3 bin=${BINS[$1]}
  local name=$op-b$i-${secs}s
  GROUP=mcalloc$i
  perf probe -q -d "$GROUP:*" 2>/dev/null || true
  perf probe -q -x "$bin" --add "$GROUP:malloc=mi_malloc_aligned"
  perf probe -q -x "$bin" --add "$GROUP:free=mi_free"
  local events="$GROUP:malloc,$GROUP:free" c
  for c in "${!CALL_LIST[@]}"; do
    perf probe -q -x "$bin" --add "$GROUP:call$c=${CALL_SYMBOL[$i,$c]}"
    record "# $GROUP:call$c counts calls of ${CALL_LIST[$c]} (${CALL_SYMBOL[$i,$c]})"
    events+=",$GROUP:call$c"
  done
  mc_bench_args "$bin" "$DEV" "$WT" "$HTTP" 2000
  local cmd=(taskset -c "$SERVER_CPU" "$bin" "${MC_ARGS[@]}")
  record "${cmd[*]}"
  "${cmd[@]}" >"$OUT/$name.server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 200); do
    curl -fs "http://$HTTP/ready" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { log "server exited at start:"; cat "$OUT/$name.server.log" >&2; exit 1; }
    sleep 0.1
  done
  record "perf stat -x, -e $events -p <server>"
  perf stat -x, -e "$events" -p "$SERVER_PID" 2>"$OUT/$name.perf" &
  PERF_PID=$!
  sleep 0.5
  # shellcheck disable=SC2207
  local args=($(load_args "$op" "$secs"))
  local lg=(taskset -c "$CLIENT_CPU" "$LG" --progress 0 --json "$OUT/$name.json" "${args[@]}")
  record "${lg[*]}"
  "${lg[@]}" >"$OUT/$name.txt" 2>"$OUT/$name.err" || { log "$name: load generator failed"; cat "$OUT/$name.err" >&2; exit 1; }
  # The shard publishes its counters about once a second.
  sleep 2
  kill -INT "$PERF_PID"; wait "$PERF_PID" || true; PERF_PID=
  curl -fs "http://$HTTP/metrics" | grep '^mc_udp_datagrams_total' >"$OUT/$name.metrics"
  stop_pid "$SERVER_PID"; SERVER_PID=
  drop_probes
}

IFS=, read -r -a OPLIST <<<"$OPS"
for op in "${OPLIST[@]}"; do
  for i in "${!BINS[@]}"; do
    for secs in "$SHORT" "$LONG"; do
      log "$op, ${BINS[$i]}, ${secs} s"
      one "$i" "$op" "$secs"
    done
  done
done

python3 - "$OUT" "$SHORT" "$LONG" "$OPS" "$MCS" "$CALLS" <<'PY'
import json, re, sys
out, short, long_, ops, bins = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(","), sys.argv[5].split(",")
calls = [c for c in sys.argv[6].split(",") if c]

def counts(name):
    c = {}
    for line in open(f"{out}/{name}.perf"):
        f = line.strip().split(",")
        if len(f) > 2 and re.search(r":(malloc|free|call\d+)$", f[2]) and f[0].isdigit():
            c[f[2].rsplit(":", 1)[1]] = int(f[0])
    for line in open(f"{out}/{name}.metrics"):
        m = re.match(r'mc_udp_datagrams_total\{direction="(in|out)".*\} (\S+)', line)
        if m:
            c[m.group(1)] = float(m.group(2))
    j = json.load(open(f"{out}/{name}.json"))
    c["to_per_op"] = j["window"]["udp"]["to_server_per_op"]
    c["from_per_op"] = j["window"]["udp"]["from_server_per_op"]
    c["op"] = j["window"]["operation"]
    c["errors"] = sum(j["figures"].get("errors", {}).values())
    return c

def rates(n, d_in, d_out, l):
    """n counted events per datagram received, per datagram sent, and per op: per
    datagram in the direction with more datagrams per op, which carries the operation's
    payload, times those datagrams."""
    per_in = n / d_in if d_in > 0 else float("nan")
    per_out = n / d_out if d_out > 0 else float("nan")
    per_op = per_in * l["to_per_op"] if l["to_per_op"] >= l["from_per_op"] else per_out * l["from_per_op"]
    return per_in, per_out, per_op

rows = []
for op in ops:
    for i, b in enumerate(bins):
        s, l = counts(f"{op}-b{i}-{short}s"), counts(f"{op}-b{i}-{long_}s")
        d_in, d_out = l["in"] - s["in"], l["out"] - s["out"]
        per_in, per_out, per_op = rates(l["malloc"] - s["malloc"], d_in, d_out, l)
        calls_rows = {}
        for k, fn in enumerate(calls):
            c_in, _, c_op = rates(l[f"call{k}"] - s[f"call{k}"], d_in, d_out, l)
            calls_rows[fn] = {"per_datagram_in": c_in, "per_op": c_op}
        rows.append({
            "operation": op, "binary": b, "operation_unit": l["op"],
            "allocations": [s["malloc"], l["malloc"]], "frees": [s["free"], l["free"]],
            "datagrams_in": [s["in"], l["in"]], "datagrams_out": [s["out"], l["out"]],
            "allocations_per_datagram_in": per_in, "allocations_per_datagram_out": per_out,
            "frees_per_datagram_in": rates(l["free"] - s["free"], d_in, d_out, l)[0],
            "allocations_per_op": per_op,
            "datagrams_per_op_to_from": [l["to_per_op"], l["from_per_op"]],
            "errors": s["errors"] + l["errors"],
            "calls": calls_rows,
        })
json.dump(rows, open(f"{out}/summary.json", "w"), indent=1)
with open(f"{out}/summary.md", "w") as f:
    f.write(f"# Heap allocations of mc-service per datagram and per operation ({out.split('/')[-1]})\n\n")
    f.write(f"Counted by uprobes on mi_malloc_aligned and mi_free over each server's whole run; "
            f"the {long_} s run minus the {short} s run, over the datagrams the server received "
            f"and sent in between (mc_udp_datagrams_total). Per op: allocations per datagram in the "
            f"direction that carries the operation, times the datagrams per op the load generator counted.\n\n")
    f.write("| operation | binary | allocations per datagram received | per datagram sent | frees per datagram received | allocations per op | datagrams per op to / from the server | errors |\n|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        f.write(f"| {r['operation']} | `{r['binary']}` | **{r['allocations_per_datagram_in']:.2f}** | "
                f"{r['allocations_per_datagram_out']:.2f} | {r['frees_per_datagram_in']:.2f} | "
                f"{r['allocations_per_op']:.3f} per {r['operation_unit']} | "
                f"{r['datagrams_per_op_to_from'][0]:.3f} / {r['datagrams_per_op_to_from'][1]:.3f} | {r['errors']} |\n")
    if calls:
        f.write("\nCalls of each function per datagram received, and per op (per datagram in the "
                "direction that carries the operation, as for the allocations):\n\n"
                "| operation | binary | function | calls per datagram received | calls per op |\n|---|---|---|---|---|\n")
        for r in rows:
            for fn, c in r["calls"].items():
                f.write(f"| {r['operation']} | `{r['binary']}` | `{fn}` | {c['per_datagram_in']:.3f} | "
                        f"**{c['per_op']:.3f}** per {r['operation_unit']} |\n")
print(open(f"{out}/summary.md").read())
PY
log "results in $OUT"
