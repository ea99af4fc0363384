#!/usr/bin/env bash
# Makes a fresh Debian/Ubuntu machine ready for FarmOps local use and tests:
#   1. installs the PostgreSQL 15 server and headers if missing,
#   2. builds and installs pgvector >= 0.8 from Debian's source package if missing,
#   3. starts a private cluster (as the postgres user) on 127.0.0.1:$FARMOPS_PG_PORT,
#   4. creates the owner role (migrations), the application role and the billing role (both own
#      nothing; billing is what the Paystack webhook connects as, migration 0081).
# Idempotent: every step checks before it acts. Needs root (apt-get, runuser).
#
# Environment (all optional):
#   FARMOPS_PG_PORT   port of the private cluster            (default 55432)
#   FARMOPS_PGDATA    data directory of the private cluster  (default /var/lib/postgresql/farmops-15)
set -euo pipefail

PG_MAJOR=15
PORT="${FARMOPS_PG_PORT:-55432}"
PGDATA="${FARMOPS_PGDATA:-/var/lib/postgresql/farmops-${PG_MAJOR}}"
BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
SOCKDIR=/var/run/postgresql

log() { printf '[setup-postgres] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. server and headers
if [ ! -x "$BIN/postgres" ] || [ ! -d "/usr/include/postgresql/${PG_MAJOR}/server" ]; then
  log "installing postgresql-${PG_MAJOR} and postgresql-server-dev-${PG_MAJOR}"
  apt_install "postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}" postgresql-contrib build-essential dpkg-dev ca-certificates
fi

# 2. pgvector
if [ ! -f "/usr/share/postgresql/${PG_MAJOR}/extension/vector.control" ]; then
  log "building pgvector from Debian's source package (trixie)"
  if ! grep -rqs "trixie" /etc/apt/sources.list.d/farmops-src.list 2>/dev/null; then
    echo "deb-src http://deb.debian.org/debian trixie main" | as_root tee /etc/apt/sources.list.d/farmops-src.list >/dev/null
    apt_updated=0
  fi
  apt_install build-essential dpkg-dev "postgresql-server-dev-${PG_MAJOR}"
  work=$(mktemp -d)
  (cd "$work" && apt-get source -qq --download-only pgvector >/dev/null 2>&1 || apt-get source -qq pgvector >/dev/null)
  tarball=$(ls "$work"/pgvector_*.orig.tar.* | head -n1)
  mkdir -p "$work/src" && tar -xf "$tarball" -C "$work/src" --strip-components=1
  make -s -C "$work/src" PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" >/dev/null
  as_root make -s -C "$work/src" PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" install >/dev/null
  rm -rf "$work"
fi
grep -q "default_version = '0\.[89]\|default_version = '[1-9]" "/usr/share/postgresql/${PG_MAJOR}/extension/vector.control" \
  || { log "pgvector >= 0.8 required"; exit 1; }

# 3. private cluster
as_root mkdir -p "$SOCKDIR" && as_root chown postgres:postgres "$SOCKDIR"
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  log "initialising cluster in $PGDATA"
  as_root mkdir -p "$PGDATA" && as_root chown postgres:postgres "$PGDATA" && as_root chmod 700 "$PGDATA"
  pwfile=$(mktemp) && echo postgres > "$pwfile" && chmod 644 "$pwfile"
  as_root runuser -u postgres -- "$BIN/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  cat <<CONF | as_root tee -a "$PGDATA/postgresql.conf" >/dev/null
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKDIR'
max_connections = 300
shared_buffers = 512MB
maintenance_work_mem = 512MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
fi
if ! as_root runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  log "starting cluster on 127.0.0.1:$PORT"
  as_root runuser -u postgres -- "$BIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w start >/dev/null
fi

# 4. roles (passwords are local-development only)
as_root runuser -u postgres -- psql -q -h "$SOCKDIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL'
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
-- migration 0081 creates farmops_billing NOLOGIN when it is missing (a cluster set up before it)
ALTER ROLE farmops_billing LOGIN PASSWORD 'farmops_billing';
ALTER ROLE farmops_app SET statement_timeout = '15s';
ALTER ROLE farmops_billing SET statement_timeout = '15s';
SQL
log "ready: postgres://postgres:postgres@127.0.0.1:$PORT/postgres (admin), roles farmops_owner / farmops_app / farmops_billing"
