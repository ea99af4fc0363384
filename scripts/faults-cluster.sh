#!/usr/bin/env bash
# A private PostgreSQL cluster for the faults bench's full mode (docs/faults.md), which
# restarts the cluster it runs on: never point it at a shared one. Initialises (once) and
# starts a cluster in $FAULTS_PGDATA (default /tmp/farmops-faults-pg) on 127.0.0.1:$FAULTS_PORT
# (default 55439) with the roles of scripts/setup-postgres.sh; pgvector must already be
# installed system-wide (scripts/setup-postgres.sh does it). Run as root or as postgres.
# Stop it with: runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$FAULTS_PGDATA" stop
set -euo pipefail
PGDATA=${FAULTS_PGDATA:-/tmp/farmops-faults-pg}
PORT=${FAULTS_PORT:-55439}
BIN=/usr/lib/postgresql/${PG_MAJOR:-15}/bin
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$PGDATA"; fi
  pwfile=$(mktemp) && echo postgres > "$pwfile" && chmod 644 "$pwfile"
  as_pg "$BIN/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  cat >> "$PGDATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$PGDATA'
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
fi
if ! as_pg "$BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  as_pg "$BIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w start >/dev/null
fi
as_pg psql -q -h "$PGDATA" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'farmops_owner') THEN
    CREATE ROLE farmops_owner LOGIN CREATEDB PASSWORD 'farmops_owner';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'farmops_app') THEN
    CREATE ROLE farmops_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD 'farmops_app';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'farmops_billing') THEN
    CREATE ROLE farmops_billing LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD 'farmops_billing';
  END IF;
END $$;
ALTER ROLE farmops_app SET statement_timeout = '15s';
ALTER ROLE farmops_billing SET statement_timeout = '15s';
SQL
echo "faults cluster ready: FARMOPS_TEST_PORT=$PORT FARMOPS_TEST_ADMIN_URL=postgres://postgres:postgres@127.0.0.1:$PORT/postgres"
