#!/usr/bin/env bash
# Installs the local-development tools when missing (idempotent): cargo-lambda (from PyPI, it
# ships the prebuilt binary), jq and curl (apt). Called by dev-up.sh and smoke.sh.
set -euo pipefail

log() { printf '[install-dev-tools] %s\n' "$*" >&2; }

if ! cargo lambda --version >/dev/null 2>&1; then
  log "installing cargo-lambda from PyPI"
  python3 -m pip install -q cargo-lambda
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
  cargo lambda --version >/dev/null || { log "cargo-lambda did not install a working binary"; exit 1; }
fi
missing=()
for tool in jq curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (apt)"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
