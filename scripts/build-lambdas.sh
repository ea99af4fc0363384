#!/usr/bin/env bash
# Builds every Lambda of the workspace (functions/*) for AWS Lambda: release profile, arm64,
# provided.al2023 (`cargo lambda build --release --arm64`, cross-linking with zig), zips each
# bootstrap and prints a table of zipped sizes (the benchmark tracks them).
# Installs cargo-lambda and ziglang from PyPI and the aarch64 Rust target when missing.
#
#   scripts/build-lambdas.sh            build all functions
#   FARMOPS_LAMBDAS="migrate chat" scripts/build-lambdas.sh   only these
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[build-lambdas] %s\n' "$*" >&2; }

if ! command -v cargo-lambda >/dev/null 2>&1; then
  log "installing cargo-lambda from PyPI"
  python3 -m pip install -q cargo-lambda
fi
if ! python3 -c "import ziglang" >/dev/null 2>&1 && ! command -v zig >/dev/null 2>&1; then
  log "installing ziglang from PyPI"
  python3 -m pip install -q ziglang
fi
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  log "adding the aarch64-unknown-linux-gnu target"
  rustup target add aarch64-unknown-linux-gnu
fi

if [ -n "${FARMOPS_LAMBDAS:-}" ]; then
  read -r -a functions <<<"$FARMOPS_LAMBDAS"
else
  functions=()
  for manifest in functions/*/Cargo.toml; do
    functions+=("$(basename "$(dirname "$manifest")")")
  done
fi
packages=()
for f in "${functions[@]}"; do packages+=(-p "$f"); done

log "cargo lambda build --release --arm64 ${packages[*]}"
cargo lambda build --release --arm64 --output-format zip "${packages[@]}"

printf '\n%-22s %12s %12s\n' "function" "bootstrap" "zipped"
status=0
for f in "${functions[@]}"; do
  zip="target/lambda/$f/bootstrap.zip"
  if [ ! -f "$zip" ]; then
    printf '%-22s %12s %12s\n' "$f" "-" "MISSING"; status=1; continue
  fi
  raw=$(unzip -l "$zip" | awk '$4 == "bootstrap" {print $1}')
  zipped=$(stat -c %s "$zip")
  printf '%-22s %12s %12s\n' "$f" "$raw" "$zipped"
  # every artifact must be an aarch64 executable
  # (ELF, 64-bit, little-endian, e_machine 0xb7 = aarch64; `|| true`: head closes the pipe early)
  magic=$( (unzip -p "$zip" bootstrap | head -c 20 | od -An -tx1 | tr -d ' \n') 2>/dev/null || true)
  if ! grep -q '^7f454c46020101.\{22\}b700' <<<"$magic"; then
    log "$f: bootstrap is not an aarch64 ELF executable"; status=1
  fi
done
exit $status
