# Shell pieces shared by bench/compare.sh and bench/alloc-count.sh (sourced, not run).

# stop_pid PID: TERM, then KILL after 5 s; waits for it.
stop_pid() {
  local pid=$1
  [[ -z $pid ]] && return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

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
