#!/usr/bin/env bash
# Handshake flood while a meeting runs: the meeting must lose nothing and
# keep its fan-out p99 under FLOOD_P99_MS (50 ms) while new QUIC+WebTransport sessions
# are opened as fast as FLOOD_CONCURRENCY allows (far above 10x a normal join rate).
#
#   bench/flood.sh                        # 20 s, writes bench/results/flood-<stamp>/ (FLOOD_OUT moves it)
#   FLOOD_SECS=60 FLOOD_CONCURRENCY=128 bench/flood.sh
# Loopback only. Exits non-zero when the meeting loses a message or breaks the p99.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${FLOOD_SECS:-20}
CONC=${FLOOD_CONCURRENCY:-64}
P99=${FLOOD_P99_MS:-50}
OUT=${FLOOD_OUT:-$ROOT/bench/results/flood-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
HTTP=127.0.0.1:${FLOOD_HTTP_PORT:-18182}
WT=127.0.0.1:${FLOOD_WT_PORT:-14482}
# shellcheck source=scripts/local-mc.sh
source "$ROOT/bench/scripts/local-mc.sh"

# The meeting under test: 4 meetings of 5, 100 messages/s in total.
"$LG" meeting --target "https://$WT/" --dev-dir "$DEV" --sizes 4x5 --rate 100 \
  --duration "$SECS" --progress 0 --json "$OUT/meeting.json" >"$OUT/meeting.txt" 2>&1 &
MEET=$!
sleep 3
# The flood: sessions opened and closed as fast as CONC in flight allows, for the rest of
# the meeting's run (bounded by count and by time).
"$LG" connect --target "https://$WT/" --dev-dir "$DEV" --sessions 20000 --concurrency "$CONC" \
  --duration "$((SECS - 5))" --progress 0 --json "$OUT/flood.json" >"$OUT/flood.txt" 2>&1 || true
set +e
wait "$MEET"
MEET_STATUS=$?
set -e
python3 - "$OUT" "$P99" "$MEET_STATUS" <<'PY'
import json, sys
out, limit, status = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
m = json.load(open(f"{out}/meeting.json"))["figures"]
f = json.load(open(f"{out}/flood.json"))["figures"]
p99 = m["latencies"]["fanout"]["p99_ms"]
rate = f["throughput"].get("sessions_per_s") or f["throughput"]
print(f"flood: {rate} new sessions/s; meeting fan-out p99 {p99:.2f} ms (limit {limit} ms); "
      f"delivered {m['counters'].get('notifications_delivered')} of {m['counters'].get('notifications_expected')}; "
      f"meeting loadgen exit {status}")
ok = status == 0 and p99 < limit
print("flood: PASS" if ok else "flood: FAIL")
sys.exit(0 if ok else 1)
PY
