#!/usr/bin/env bash
# Soak: run the load generator's `meeting` scenario against a local mc-service for a long
# time and fail if the server's memory grows, a message is lost, or errors appear.
#
#   bench/soak.sh                         # 30 minutes (the documented soak)
#   SOAK_SECS=120 bench/soak.sh           # the 2-minute version CI runs
#   SOAK_SIZES=450x5 SOAK_RATE=1400 bench/soak.sh   # ~70 % of a ramp result of 640x5 @ 2000/s
#
# SOAK_SIZES / SOAK_RATE: meetings x participants and the total signaling messages per
# second over all participants (size them at ~70 % of `mc-loadgen ramp` on the target
# machine; the defaults are small so a 2-core CI box that also runs the load generator
# stays well inside capacity).
# SOAK_RSS_GROWTH_PCT (5): allowed growth of the server's RSS from the sample taken after
# the warm-up (SOAK_WARMUP_SECS, default a third of the run) to the last. Loopback only. Writes bench/results/soak-<stamp>/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${SOAK_SECS:-1800}
SIZES=${SOAK_SIZES:-20x5}
RATE=${SOAK_RATE:-200}
GROWTH=${SOAK_RSS_GROWTH_PCT:-5}
# RSS settles in the first minutes (allocator arenas, histograms, per-connection buffers
# reaching their working size); the baseline is taken after a third of the run.
WARMUP=${SOAK_WARMUP_SECS:-$(( SECS / 3 > 20 ? SECS / 3 : 20 ))}
OUT="$ROOT/bench/results/soak-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
HTTP=127.0.0.1:${SOAK_HTTP_PORT:-18181}
WT=127.0.0.1:${SOAK_WT_PORT:-14481}
# shellcheck source=scripts/local-mc.sh
source "$ROOT/bench/scripts/local-mc.sh"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$MC_PID/status"; }

echo "soak: ${SECS}s of meeting $SIZES at $RATE msg/s in total; results in $OUT"
"$LG" meeting --target "https://$WT/" --dev-dir "$DEV" --sizes "$SIZES" --rate "$RATE" \
  --duration "$SECS" --progress 30 --json "$OUT/meeting.json" >"$OUT/loadgen.txt" 2>&1 &
LG_PID=$!

sleep "$WARMUP"
FIRST=$(rss_kib)
echo "elapsed_s,rss_kib" >"$OUT/rss.csv"
echo "$WARMUP,$FIRST" >>"$OUT/rss.csv"
T=$WARMUP
while kill -0 "$LG_PID" 2>/dev/null; do
  sleep 10
  T=$((T + 10))
  if kill -0 "$LG_PID" 2>/dev/null; then echo "$T,$(rss_kib)" >>"$OUT/rss.csv"; fi
done
set +e
wait "$LG_PID"
LG_STATUS=$?
set -e
LAST=$(tail -1 "$OUT/rss.csv" | cut -d, -f2)
PCT=$(awk -v a="$FIRST" -v b="$LAST" 'BEGIN { printf "%.2f", (b - a) * 100 / a }')
{
  echo "soak $SIZES rate $RATE for ${SECS}s: loadgen exit $LG_STATUS"
  echo "server RSS after warm-up ${FIRST} KiB, at the end ${LAST} KiB: growth ${PCT} % (limit ${GROWTH} %)"
  grep -E "result:|notifications_|joins_ok|errors" -A1 "$OUT/loadgen.txt" | head -20
} | tee "$OUT/summary.txt"
STATUS=0
if [[ $LG_STATUS -ne 0 ]]; then echo "soak: FAIL: load generator reported lost messages or errors" >&2; STATUS=1; fi
if awk -v p="$PCT" -v g="$GROWTH" 'BEGIN { exit !(p > g) }'; then echo "soak: FAIL: RSS grew ${PCT} %" >&2; STATUS=1; fi
[[ $STATUS -eq 0 ]] && echo "soak: PASS"
exit $STATUS
