#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs and starts PostgreSQL with
# pgvector (scripts/setup-postgres.sh), the deploy checks (scripts/check-deploy.sh: cfn-lint),
# then formatting, lints and every test of the workspace against the real database, the README
# walkthrough against the local stack (scripts/smoke.sh), the Lambda build of every function
# (scripts/build-lambdas.sh) and last the short benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."

# CI builds once from a clean clone: incremental caches would only take disk (several GB).
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

bash scripts/setup-postgres.sh
bash scripts/setup-browser.sh

echo "== deploy checks (cfn-lint; PyPI tools the deploy tests need)"
bash scripts/check-deploy.sh

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

echo "== smoke test: the README walkthrough against the local stack (scripts/smoke.sh)"
bash scripts/smoke.sh

# The heaviest step: every function built for Lambda (release, arm64), zipped
# sizes reported. FARMOPS_SKIP_LAMBDA_BUILD=1 skips it for a quick local run (CI never sets it).
if [ "${FARMOPS_SKIP_LAMBDA_BUILD:-0}" != 1 ]; then
  echo "== cargo lambda build --release --arm64"
  bash scripts/build-lambdas.sh
fi

echo "== benchmark (short mode: keeps it from rotting; never fails on a number)"
cargo build -q --workspace --bins
cargo run -q -p farmops-bench -- --short
echo "== disk used by the build: $(du -sh target | cut -f1)"
