#!/usr/bin/env bash
# Start a throwaway PostgreSQL for the development GC (mc-devgc) and the tests that use
# it, and print the DATABASE_URL to use (on stdout, last line: DATABASE_URL=...).
#
#   eval "$(devgc/scripts/pg-start.sh)"      # exports DATABASE_URL
#   devgc/scripts/pg-stop.sh                  # stops it and deletes its data
#
# Debian's PostgreSQL (/usr/lib/postgresql/<ver>/bin); listens on 127.0.0.1 only, port
# $MC_PG_PORT (54329); data in $MC_PG_DIR (/tmp/mc-pg-<port>); trust auth (loopback,
# throwaway). As root it runs the server as the `postgres` OS user (initdb refuses root).
set -euo pipefail

PORT="${MC_PG_PORT:-54329}"
DIR="${MC_PG_DIR:-/tmp/mc-pg-$PORT}"
DB="${MC_PG_DB:-mc}"
BIN="${MC_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
URL="postgres://postgres@127.0.0.1:$PORT/$DB"

if [[ -z "$BIN" || ! -x "$BIN/initdb" ]]; then
  echo "pg-start: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  exit 1
fi

as_pg() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  echo "pg-start: already running on 127.0.0.1:$PORT" >&2
else
  mkdir -p "$DIR"
  if [[ "$(id -u)" == 0 ]]; then chown postgres: "$DIR"; fi
  chmod 700 "$DIR"
  if [[ ! -f "$DIR/data/PG_VERSION" ]]; then
    as_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >"$DIR/initdb.log" 2>&1 || {
      cat "$DIR/initdb.log" >&2
      exit 1
    }
  fi
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off" start >&2 || {
    cat "$DIR/server.log" >&2
    exit 1
  }
fi

if ! "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = '$DB'" postgres | grep -q 1; then
  "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB"
fi
echo "pg-start: PostgreSQL on 127.0.0.1:$PORT, data in $DIR" >&2
echo "export DATABASE_URL=$URL"
