#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on a free loopback port and prints its URL.
# Usage: eval "$(scripts/postgres.sh start DIR)"; ...; scripts/postgres.sh stop DIR
# fsync is off (a throwaway server) unless RANKERY_PG_FSYNC=on.
set -euo pipefail
action=$1 dir=$2
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$action" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync > "$dir/initdb.log"
    fsync=-F; [ "${RANKERY_PG_FSYNC:-off}" != on ] || fsync=
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start \
      -o "-h 127.0.0.1 -p $port -k $dir $fsync -c max_connections=200 -c synchronous_commit=on" > /dev/null
    echo "export RANKERY_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop > /dev/null || true
    rm -rf "$dir"
    ;;
esac
