#!/usr/bin/env bash
# Stops the functions that scripts/dev-up.sh serves (`cargo lambda watch`, by the process group
# it recorded in target/dev/watch.pid). PostgreSQL keeps running (it is shared with the tests);
# stop it with: runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /var/lib/postgresql/farmops-15 stop
set -euo pipefail
cd "$(dirname "$0")/.."

pidfile=target/dev/watch.pid
if [ ! -s "$pidfile" ]; then
  echo "no local functions running (no $pidfile)"
  exit 0
fi
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill -- "-$pid" 2>/dev/null || kill "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  echo "stopped cargo lambda watch (process group $pid)"
else
  echo "cargo lambda watch (pid $pid) was not running"
fi
rm -f "$pidfile"
