#!/usr/bin/env bash
# Brings up the local stack: PostgreSQL + pgvector (scripts/setup-postgres.sh), the `farmops`
# database migrated, and a demo farm seeded with a member of every role and 1,000 credits.
# Idempotent: run it again at any time.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${FARMOPS_PG_PORT:-55432}"
DB="${FARMOPS_DB_NAME:-farmops}"
DEMO_FARM="11111111-1111-4111-8111-111111111111"
export FARMOPS_OWNER_DATABASE_URL="postgres://farmops_owner:farmops_owner@127.0.0.1:${PORT}/${DB}"
export FARMOPS_DATABASE_URL="postgres://farmops_app:farmops_app@127.0.0.1:${PORT}/${DB}"

bash scripts/setup-postgres.sh

psql_admin() { runuser -u postgres -- psql -q -h /var/run/postgresql -p "$PORT" -v ON_ERROR_STOP=1 "$@"; }
if ! psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  psql_admin -d postgres -c "CREATE DATABASE $DB OWNER farmops_owner"
fi
psql_admin -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS vector"

cargo build -q -p farmops
farmops=target/debug/farmops
$farmops migrate
if ! psql_admin -d "$DB" -tAc "SELECT 1 FROM farms WHERE id = '$DEMO_FARM'" | grep -q 1; then
  $farmops create-farm "Demo Farm" --id "$DEMO_FARM"
  $farmops grant "$DEMO_FARM" 1000 --reason "demo credits" --actor dev-up
fi
for member in owner manager worker viewer; do
  $farmops add-member "$DEMO_FARM" "demo-$member" --role "$member" >/dev/null
done
$farmops set-autonomy "$DEMO_FARM" --tier auto --auto-categories feed_use,water,weight >/dev/null
$farmops audit "$DEMO_FARM" >/dev/null

cat <<MSG

FarmOps local stack is ready.
  database (app role):   $FARMOPS_DATABASE_URL
  database (owner role): $FARMOPS_OWNER_DATABASE_URL
  demo farm:             $DEMO_FARM  (1,000 credits; members demo-owner, demo-manager, demo-worker, demo-viewer;
                         autonomy auto for feed_use, water, weight; everything else drafts)
Try:
  FARMOPS_OWNER_DATABASE_URL=$FARMOPS_OWNER_DATABASE_URL target/debug/farmops audit
MSG
