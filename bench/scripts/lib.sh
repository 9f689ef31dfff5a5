# Shell pieces shared by bench/compare.sh, bench/alloc-count.sh and the run.sh scripts of
# bench/results (sourced, not run).

# stop_pid PID: TERM, then KILL after 5 s; waits for it.
stop_pid() {
  local pid=$1
  [[ -z $pid ]] && return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# start_dev_mc BIN CPUS ARGS...: starts `BIN --dev` with a fresh dev dir on the loopback
# ports the run.sh scripts use (WebTransport 127.0.0.1:14433, admin 127.0.0.1:18080),
# pinned to CPUS (empty: not pinned), with ARGS after the common ones, and waits for
# /ready. Sets MC_PID and DEV, and makes stop_dev_mc the EXIT trap: the server is gone,
# and its ports free, when the script ends.
start_dev_mc() {
  local bin=$1 cpus=$2 pin=()
  shift 2
  [[ -n $cpus ]] && pin=(taskset -c "$cpus")
  DEV=$(mktemp -d)
  "${pin[@]}" "$bin" --dev --dev-dir "$DEV" --webtransport-bind-address 127.0.0.1:14433 \
    --http-bind-address 127.0.0.1:18080 --log-filter warn "$@" &
  MC_PID=$!
  trap stop_dev_mc EXIT
  for _ in $(seq 50); do curl -sf 127.0.0.1:18080/ready >/dev/null && break; sleep 0.2; done
}

stop_dev_mc() {
  stop_pid "$MC_PID"
  rm -rf "$DEV"
}

# delivery_line JSON: one line from an `mc-loadgen meeting --json` file and its
# `--server-pid` figures: deliveries a second, the server's CPU per delivery and in
# cores, the generator's cores, and whether the run passed.
delivery_line() {
  python3 - "$1" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
w = j["window"]
s = w["server"][0]
print(f"{w['ops_per_s']:.0f} deliveries/s, server {s['us_per_op']:.2f} µs per delivery "
      f"({s['cores']:.3f} cores), generator {w['generator']['cores']:.3f} cores, "
      f"passed {j['passed']}")
PY
}

# cpu_ticks PID: the user and system time of process PID, in clock ticks
# (`getconf CLK_TCK` a second).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# mc_bench_args BIN DEV WT HTTP PARTICIPANTS: sets MC_ARGS to the command line of one
# benchmark shard, `BIN --dev --enable-echo --shards 1` on those addresses, with the
# limits lifted that would stop load from a single 127.0.0.1 client (meeting capacity,
# sessions per IP, participants per meeting) and a one-second drain. A flag the build
# does not have (an older commit's binary) is left out.
mc_bench_args() {
  local bin=$1 dev=$2 wt=$3 http=$4 participants=$5 help
  help=$("$bin" --help)
  MC_ARGS=(--dev --enable-echo --shards 1 --dev-dir "$dev" --webtransport-bind-address "$wt"
    --http-bind-address "$http" --log-filter warn)
  local flag value
  while read -r flag value; do
    grep -q -- "$flag " <<<"$help" && MC_ARGS+=("$flag" "$value")
  done <<EOF2
--capacity 100000
--max-sessions-per-ip 1000000
--max-participants-per-meeting $participants
--drain-timeout-secs 1
EOF2
  return 0
}

# veth_pair_up NS SERVER_IP CLIENT_IP: a network namespace NS (made afresh) reached over a
# veth pair, mcb-c here with CLIENT_IP/30 and mcb-s in NS with SERVER_IP/30, each end
# steering its receive processing (RPS) to its own side's CPU: mcb-s to CPU 0 (the
# server's), mcb-c to CPU 1 (the clients'). Take the addresses from 198.18.0.0/15, the
# range set aside for benchmarks (RFC 2544); no packet leaves the host. Needs root and
# iproute2; `ip netns del NS` removes it all.
veth_pair_up() {
  local ns=$1 srv=$2 cli=$3
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"
  ip link add mcb-c type veth peer name mcb-s netns "$ns"
  ip addr add "$cli/30" dev mcb-c
  ip link set mcb-c up
  ip -n "$ns" addr add "$srv/30" dev mcb-s
  ip -n "$ns" link set mcb-s up
  ip -n "$ns" link set lo up
  # RPS masks: bit 0 is CPU 0, bit 1 is CPU 1.
  echo 2 >/sys/class/net/mcb-c/queues/rx-0/rps_cpus
  ip netns exec "$ns" sh -c 'echo 1 >/sys/class/net/mcb-s/queues/rx-0/rps_cpus'
}

# cpu0_sample: CPU 0's busy, softirq and stolen ticks (/proc/stat: user, nice, system,
# irq and softirq; softirq; steal), then the function-call and rescheduling interrupts
# (IPIs) CPU 0 and CPU 1 have received (/proc/interrupts), on one line. With RPS each
# datagram steered to the other CPU's idle backlog costs that CPU one.
cpu0_sample() {
  awk '$1 == "cpu0" { printf "%d %d %d ", $2 + $3 + $4 + $7 + $8, $8, $9 }' /proc/stat
  awk '$1 == "RES:" || $1 == "CAL:" { a += $2; b += $3 } END { print a, b }' /proc/interrupts
}
