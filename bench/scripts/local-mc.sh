# Sourced by bench/soak.sh and bench/flood.sh: build if needed, then start a local
# `mc-service --dev` on loopback with load-test limits (capacity and per-IP sessions
# raised so the scripts measure the server, not those limits), wait until /ready, and
# stop it (TERM, then KILL) on exit.
#
# In:  ROOT, OUT (log directory), HTTP and WT (loopback addresses).
# Out: MC, LG (binaries), DEV (dev dir with cert.sha256 and signing key), MC_PID.
MC=${MC_SERVICE_BIN:-$ROOT/target/release/mc-service}
LG=${MC_LOADGEN_BIN:-$ROOT/target/release/mc-loadgen}
if [[ ! -x "$MC" || ! -x "$LG" ]]; then
  cargo build --release -p mc-service -p mc-bench --bins
fi
DEV=$(mktemp -d)
"$MC" --dev --dev-dir "$DEV" --http-bind-address "$HTTP" --webtransport-bind-address "$WT" \
  --capacity 100000 --max-sessions-per-ip 1000000 --drain-timeout-secs 1 >"$OUT/mc-service.log" 2>&1 &
MC_PID=$!
local_mc_stop() { kill -TERM "$MC_PID" 2>/dev/null || true; sleep 2; kill -KILL "$MC_PID" 2>/dev/null || true; rm -rf "$DEV"; }
trap local_mc_stop EXIT
for _ in $(seq 100); do curl -fs "http://$HTTP/ready" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://$HTTP/ready" >/dev/null
