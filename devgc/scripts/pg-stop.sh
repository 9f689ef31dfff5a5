#!/usr/bin/env bash
# Stop the throwaway PostgreSQL started by pg-start.sh and delete its data directory.
set -euo pipefail

PORT="${MC_PG_PORT:-54329}"
DIR="${MC_PG_DIR:-/tmp/mc-pg-$PORT}"
BIN="${MC_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"

if [[ -f "$DIR/data/postmaster.pid" ]]; then
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >&2 || true
  else
    "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >&2 || true
  fi
fi
rm -rf "$DIR"
echo "pg-stop: stopped and removed $DIR" >&2
