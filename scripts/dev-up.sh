#!/usr/bin/env bash
# Brings up the whole local stack: PostgreSQL + pgvector (scripts/setup-postgres.sh), the
# `farmops` database migrated, a demo farm seeded (a member of every role, 1,000 credits,
# autonomy set), the credit pack `starter` (500 credits for 500,000 kobo, i.e. ₦5,000), and
# every HTTP function (the ones docs/openapi.yaml routes to, billing included: Paystack's
# webhook, checking signatures with the local key sk_test_farmops_local) served by
# `cargo lambda watch` with the offline model and embedder on
# http://127.0.0.1:$FARMOPS_LOCAL_PORT (default 9000), its log in target/dev/watch.log.
# Idempotent: run it again at any time. scripts/dev-down.sh stops the functions.
#
#   FARMOPS_DEV_NO_SERVE=1 scripts/dev-up.sh   database and demo farm only
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${FARMOPS_PG_PORT:-55432}"
DB="${FARMOPS_DB_NAME:-farmops}"
DEMO_FARM="11111111-1111-4111-8111-111111111111"
export FARMOPS_OWNER_DATABASE_URL="postgres://farmops_owner:farmops_owner@127.0.0.1:${PORT}/${DB}"
export FARMOPS_DATABASE_URL="postgres://farmops_app:farmops_app@127.0.0.1:${PORT}/${DB}"
# billing (Paystack's webhook) connects as its own role and checks signatures with this key;
# scripts/paystack-event.sh signs with the same one
export FARMOPS_BILLING_DATABASE_URL="postgres://farmops_billing:farmops_billing@127.0.0.1:${PORT}/${DB}"
export FARMOPS_PAYSTACK_SECRET_KEY="${FARMOPS_PAYSTACK_SECRET_KEY:-sk_test_farmops_local}"

LOCAL_PORT="${FARMOPS_LOCAL_PORT:-9000}"
BASE="http://127.0.0.1:${LOCAL_PORT}/lambda-url"

bash scripts/setup-postgres.sh
bash scripts/install-dev-tools.sh

psql_admin() { runuser -u postgres -- psql -q -h /var/run/postgresql -p "$PORT" -v ON_ERROR_STOP=1 "$@"; }
if ! psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  psql_admin -d postgres -c "CREATE DATABASE $DB OWNER farmops_owner"
fi
psql_admin -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS vector"

cargo build -q -p farmops
farmops="${CARGO_TARGET_DIR:-target}/debug/farmops"
$farmops migrate
if ! psql_admin -d "$DB" -tAc "SELECT 1 FROM farms WHERE id = '$DEMO_FARM'" | grep -q 1; then
  $farmops create-farm "Demo Farm" --id "$DEMO_FARM"
  $farmops grant "$DEMO_FARM" 1000 --reason "demo credits" --actor dev-up
fi
for member in owner manager worker viewer; do
  $farmops add-member "$DEMO_FARM" "demo-$member" --role "$member" >/dev/null
done
$farmops set-autonomy "$DEMO_FARM" --tier auto --auto-categories feed_use,water,weight >/dev/null
# What a farm can buy through Paystack (scripts/paystack-event.sh pays for it).
$farmops set-pack starter --credits 500 --price-kobo 500000 >/dev/null
# Knowledge documents in the global base, once the CLI has a `documents seed-demo` command.
if $farmops documents seed-demo --help >/dev/null 2>&1; then
  $farmops documents seed-demo
fi
$farmops audit "$DEMO_FARM" >/dev/null

# The functions: every function docs/openapi.yaml routes to (its `x-farmops-function`s; the
# handler tests check each function's route table against it), whatever its main runs
# (reembed runs `lambda_runtime` over raw events: its HTTP routes and its schedule), served by
# one `cargo lambda watch` (debug build, offline model and embedder, dev identity header on).
http_functions=()
for f in $(grep -o 'x-farmops-function: [a-z-]*' docs/openapi.yaml | awk '{print $2}' | sort -u); do
  [ -f "functions/$f/src/main.rs" ] || { echo "docs/openapi.yaml names function $f, not in functions/" >&2; exit 1; }
  http_functions+=("$f")
done
mkdir -p target/dev
# the local evidence-checkpoint signing key (in AWS: a KMS key); kept across restarts
export FARMOPS_EVIDENCE_KEY_FILE="$PWD/target/dev/evidence-key.pem"
if [ ! -s "$FARMOPS_EVIDENCE_KEY_FILE" ]; then
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$FARMOPS_EVIDENCE_KEY_FILE")
fi
if [ "${FARMOPS_DEV_NO_SERVE:-0}" != 1 ]; then
  pidfile=target/dev/watch.pid
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "cargo lambda watch already running (pid $(cat "$pidfile"))"
  else
    packages=()
    for f in "${http_functions[@]}"; do packages+=(-p "$f"); done
    echo "building ${http_functions[*]} (debug)"
    cargo build -q "${packages[@]}"
    FARMOPS_DEV_IDENTITY=1 FARMOPS_CHAT_PROVIDER=offline FARMOPS_EMBEDDER=offline \
      RUST_LOG="${RUST_LOG:-info}" \
      setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$LOCAL_PORT" \
      >target/dev/watch.log 2>&1 </dev/null &
    echo $! >"$pidfile"
  fi
  # Ready when every HTTP function answers (a request without identity: 401 JSON; billing's
  # webhook without a signature: 401 too).
  for f in "${http_functions[@]}"; do
    ping="farms/$DEMO_FARM/ping"
    [ "$f" = billing ] && ping="payments/paystack"
    for i in $(seq 1 180); do
      code=$(curl -s -o /dev/null -w '%{http_code}' -m 120 -X POST \
        "$BASE/$f/$ping" || true)
      [ "$code" = 401 ] && break
      if [ "$i" = 180 ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "function $f did not answer on $BASE/$f (last status $code); see target/dev/watch.log" >&2
        exit 1
      fi
      sleep 1
    done
  done
fi

cat <<MSG

FarmOps local stack is ready.
  database (app role):   $FARMOPS_DATABASE_URL
  database (owner role): $FARMOPS_OWNER_DATABASE_URL
  demo farm:             $DEMO_FARM  (1,000 credits; members demo-owner, demo-manager, demo-worker, demo-viewer;
                         autonomy auto for feed_use, water, weight; everything else drafts)
  credit pack:           starter (500 credits for 500,000 kobo); Paystack's webhook at
                         $BASE/billing/payments/paystack (key $FARMOPS_PAYSTACK_SECRET_KEY)
  functions:             $BASE/<function>/farms/...  (${http_functions[*]})
                         caller named by the header  x-farmops-dev-user: demo-owner  (or demo-manager, ...)
                         log: target/dev/watch.log   stop: scripts/dev-down.sh
Try (the README walkthrough has more):
  curl -s -X POST $BASE/chat/farms/$DEMO_FARM/chat \\
    -H 'x-farmops-dev-user: demo-manager' -H 'content-type: application/json' \\
    -d '{"message": "3 birds died in pen 2 and we sold 20 crates of eggs for 45,000 naira"}' | jq
  FARMOPS_OWNER_DATABASE_URL=$FARMOPS_OWNER_DATABASE_URL $farmops audit
  scripts/paystack-event.sh      # a signed charge.success: pack starter for the demo farm
  FARMOPS_OWNER_DATABASE_URL=$FARMOPS_OWNER_DATABASE_URL $farmops payments
  FARMOPS_OWNER_DATABASE_URL=$FARMOPS_OWNER_DATABASE_URL $farmops sign-checkpoints --key-file $FARMOPS_EVIDENCE_KEY_FILE
MSG
