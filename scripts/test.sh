#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs and starts PostgreSQL with
# pgvector (scripts/setup-postgres.sh), then formatting, lints and every test of the workspace
# against the real database.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-postgres.sh
bash scripts/setup-browser.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast
else
  cargo test --workspace --all-features --no-fail-fast
fi

echo "== benchmark (short mode: keeps it from rotting; never fails on a number)"
cargo run -q -p farmops-bench -- --short
