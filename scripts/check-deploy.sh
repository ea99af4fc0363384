#!/usr/bin/env bash
# Offline deploy checks, run by scripts/test.sh before the Rust tests:
#   1. installs what they need from PyPI when missing: cfn-lint, moto[server] (the local STS
#      the assume-role test starts on 127.0.0.1);
#   2. cfn-lint template.yaml (applies the SAM transform locally): zero errors required.
# The Rust side of the checks (template vs workspace and design, IAM token, assumed role, TLS)
# is the `deploy` test of the shared crate; the Lambda build is scripts/build-lambdas.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[check-deploy] %s\n' "$*" >&2; }

need=()
command -v cfn-lint >/dev/null 2>&1 || need+=(cfn-lint)
python3 -c "import moto.server, flask, flask_cors" >/dev/null 2>&1 || need+=("moto[server]")
if [ ${#need[@]} -gt 0 ]; then
  log "installing from PyPI: ${need[*]}"
  python3 -m pip install -q "${need[@]}"
fi

echo "== cfn-lint template.yaml ($(cfn-lint --version))"
set +e
cfn-lint template.yaml
rc=$?
set -e
# cfn-lint's exit code is a bit field: 2 = errors, 4 = warnings, 8 = informational
if [ $((rc & 2)) -ne 0 ] || [ $((rc & 1)) -ne 0 ]; then
  log "cfn-lint found errors in template.yaml"
  exit 1
fi
echo "cfn-lint: 0 errors (exit code $rc)"
