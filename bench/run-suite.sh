#!/usr/bin/env bash
# Runs the mc-loadgen suite against a local `mc-service --dev --enable-echo` (started
# here on loopback, or an already running one with TARGET_HOST=host:port and DEV_DIR=dir)
# and records machine, commit, every command and its figures under
# bench/results/<UTC stamp>-<commit>/: the summary table, every command (commands.txt),
# JSON, .hgrm and SVG figures, and each run's printed table. Paths are recorded relative to the repository root. The server
# log and each run's stderr (mc-service.log, *.err) are written beside them for
# debugging but are not committed (.gitignore).
#
#   bench/run-suite.sh                 # full suite (~3 minutes)
#   QUICK=1 bench/run-suite.sh         # shorter runs (smoke)
#   SKIP_BUILD=1 bench/run-suite.sh    # use the binaries already in target/release
#
# Only loopback is used unless TARGET_HOST is set explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-10}
[[ "${QUICK:-0}" == 1 ]] && DUR=3
IDLE=${IDLE_SESSIONS:-10000}
[[ "${QUICK:-0}" == 1 ]] && IDLE=1000

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --release -p mc-service -p mc-bench --bins
fi
LOADGEN=target/release/mc-loadgen
MC=${MC_SERVICE_BIN:-target/release/mc-service}

COMMIT=$(git rev-parse --short HEAD)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=bench/results/$STAMP-$COMMIT
mkdir -p "$OUT"

SERVER_PID=
# SIGTERM makes mc-service drain (up to MC_DRAIN_TIMEOUT_SECS); give it 5 s, then KILL.
cleanup() {
  [[ -z "$SERVER_PID" ]] && return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  [[ -z "${TARGET_HOST:-}" && "${DEV_DIR:-}" == /tmp/mc-suite-dev.* ]] && rm -rf "$DEV_DIR"
  true
}
trap cleanup EXIT

if [[ -n "${TARGET_HOST:-}" ]]; then
  HOSTPORT=$TARGET_HOST
  DEV_DIR=${DEV_DIR:?DEV_DIR (with cert.sha256 and signing-key.pem) is needed with TARGET_HOST}
else
  if ! "$MC" --help | grep -q -- --enable-echo; then
    echo "run-suite: $MC has no --enable-echo (data plane not merged yet)" >&2
    exit 3
  fi
  DEV_DIR=$(mktemp -d /tmp/mc-suite-dev.XXXXXX)   # holds private keys: never under results/
  HOSTPORT=127.0.0.1:${WT_PORT:-14433}
  # Every session comes from 127.0.0.1: lift the per-IP session limit (MC_MAX_SESSIONS_PER_IP)
  # and the meeting capacity, or the suite measures those limits instead of the server.
  EXTRA=()
  "$MC" --help | grep -q -- --max-sessions-per-ip && EXTRA+=(--max-sessions-per-ip 1000000)
  "$MC" --dev --enable-echo --dev-dir "$DEV_DIR" --webtransport-bind-address "$HOSTPORT" \
    --http-bind-address 127.0.0.1:${HTTP_PORT:-18080} --capacity 100000 "${EXTRA[@]}" \
    >"$OUT/mc-service.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do [[ -s "$DEV_DIR/cert.sha256" ]] && break; sleep 0.1; done
  sleep 1
fi

{
  echo "# mc-loadgen suite $STAMP"
  echo
  echo "- commit: $(git rev-parse HEAD)"
  echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
  echo "- memory: $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "- server: ${TARGET_HOST:-local mc-service --dev --enable-echo on $HOSTPORT}"
  echo
} >"$OUT/summary.md"

run() { # name, args...
  local name=$1; shift
  local cmd=("$LOADGEN" --progress 0 --json "$OUT/$name.json" "$@")
  echo "==> $name: ${cmd[*]}" | tee -a "$OUT/commands.txt"
  set +e
  "${cmd[@]}" >"$OUT/$name.txt" 2>"$OUT/$name.err"
  echo "exit $?" >>"$OUT/$name.txt"
  set -e
  tail -n 40 "$OUT/$name.txt"
}

COMMON=(--dev-dir "$DEV_DIR")
run connect --duration "$DUR" connect --target "https://$HOSTPORT/" "${COMMON[@]}" --sessions 2000 --concurrency 64
run connect-join --duration "$DUR" connect --target "https://$HOSTPORT/" "${COMMON[@]}" --sessions 1000 --concurrency 64 --join
run echo --duration "$DUR" --plot "$OUT/echo.svg" echo --target "https://$HOSTPORT/echo" "${COMMON[@]}" --sessions 100 --window 4
run meeting-100 --duration "$DUR" --plot "$OUT/meeting-100.svg" meeting --target "https://$HOSTPORT/" "${COMMON[@]}" --sizes 1x100 --rate 50 --mix mute=1
run ramp --duration "$DUR" --plot "$OUT/ramp.svg" ramp --target "https://$HOSTPORT/" "${COMMON[@]}"

# Memory per idle session: server RSS before and while holding $IDLE idle sessions.
if [[ -n "$SERVER_PID" ]]; then
  RSS0=$(awk '/VmRSS/{print $2}' /proc/$SERVER_PID/status)
  "$LOADGEN" --progress 0 --duration 60 --max-sessions "$IDLE" --json "$OUT/idle.json" \
    connect --target "https://$HOSTPORT/" "${COMMON[@]}" --sessions "$IDLE" --concurrency 128 --hold \
    >"$OUT/idle.txt" 2>&1 &
  LG=$!
  for _ in $(seq 600); do
    sleep 0.1
    if grep -q "holding" "$OUT/idle.txt" 2>/dev/null; then break; fi
  done
  sleep 3
  RSS1=$(awk '/VmRSS/{print $2}' /proc/$SERVER_PID/status)
  kill -INT "$LG" 2>/dev/null || true
  wait "$LG" 2>/dev/null || true
  HELD=$(python3 -c "import json;print(json.load(open('$OUT/idle.json'))['figures']['counters'].get('sessions_ok',0))" 2>/dev/null || echo 0)
  echo "idle sessions: $HELD, server RSS $RSS0 KiB -> $RSS1 KiB" | tee "$OUT/idle-rss.txt"
fi

python3 - "$OUT" >>"$OUT/summary.md" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(n):
    try: return json.load(open(os.path.join(out, n + ".json")))
    except Exception: return None
rows = []
def lat(f, k):
    l = f["latencies"].get(k)
    return f'{l["p50_ms"]:.2f} / {l["p99_ms"]:.2f} / {l["max_ms"]:.2f}' if l else "-"
print("| run | command | figure | p50 / p99 / max ms | errors | result |")
print("|---|---|---|---|---|---|")
for n, fig, l in [("connect", "sessions_per_s", "connect"), ("connect-join", "joins_per_s", "join"),
                  ("echo", "round_trips_per_s", "rtt"), ("meeting-100", "deliveries_per_s", "fanout"),
                  ("ramp", "deliveries_per_s", "fanout")]:
    r = load(n)
    if not r: continue
    f = r["figures"]
    cmd = " ".join("<out>" + a[len(out):] if a.startswith(out) else ("<dev>" if a.startswith("/tmp/mc-suite-dev.") else a) for a in r["command"][1:])
    print(f'| {n} | `{cmd}` | {fig} {f["throughput"].get(fig, 0):.1f} | {lat(f, l)} | {sum(f["errors"].values())} | {"pass" if r["passed"] else "FAIL"} |')
r = load("ramp")
if r:
    print(f'\nramp capacity (last passing step): {r.get("capacity")}\n')
    for s in r["steps"]:
        print(f'- step {s["step"]} {s["load"]}: deliveries/s {s["figures"]["throughput"].get("deliveries_per_s",0):.1f}, '
              f'p95 {s["figures"]["latencies"].get("fanout",{}).get("p95_ms",0):.2f} ms, {"pass" if s["passed"] else "FAIL " + "; ".join(s["violations"])}')
p = os.path.join(out, "idle-rss.txt")
if os.path.exists(p):
    t = open(p).read().split()
    try:
        held, r0, r1 = int(t[2].rstrip(",")), int(t[5]), int(t[8])
        print(f'\nidle sessions: {held}, server RSS {r0} → {r1} KiB = {(r1 - r0) / max(held, 1):.1f} KiB per idle session')
    except Exception:
        print("\n" + open(p).read())
PY
cat "$OUT/summary.md"
echo "results in $OUT"
