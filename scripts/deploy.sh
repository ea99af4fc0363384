#!/usr/bin/env bash
# Deploys the stack and migrates the database, in one command:
#   scripts/deploy.sh dev        (or prod; any environment of samconfig.toml)
# = sam build, sam deploy --config-env ENV, then invokes the migrate function and fails unless
# it answered without a function error. Needs the AWS SAM CLI, the AWS CLI, credentials for the
# target account, and what `sam build` needs (README "Deploy").
set -euo pipefail
cd "$(dirname "$0")/.."

env_name="${1:?usage: scripts/deploy.sh <dev|prod>}"
stack=$(python3 -c "import sys,tomllib;print(tomllib.load(open('samconfig.toml','rb'))[sys.argv[1]]['deploy']['parameters']['stack_name'])" "$env_name")
region=$(python3 -c "import sys,tomllib;print(tomllib.load(open('samconfig.toml','rb'))[sys.argv[1]]['deploy']['parameters']['region'])" "$env_name")

if python3 -c "import sys,tomllib;p=tomllib.load(open('samconfig.toml','rb'))[sys.argv[1]]['deploy']['parameters'];sys.exit(0 if any('<' in v for v in p['parameter_overrides']) else 1)" "$env_name"; then
  echo "samconfig.toml [$env_name.deploy.parameters] still has <...> placeholders: fill them in first" >&2
  exit 1
fi

sam build --config-env "$env_name"
sam deploy --config-env "$env_name"

fn=$(aws cloudformation describe-stacks --region "$region" --stack-name "$stack" \
  --query "Stacks[0].Outputs[?OutputKey=='MigrateFunctionName'].OutputValue" --output text)
out=$(mktemp)
echo "invoking $fn (bootstrap roles, apply migrations)"
error=$(aws lambda invoke --region "$region" --function-name "$fn" \
  --cli-binary-format raw-in-base64-out --payload '{}' \
  --query FunctionError --output text "$out")
cat "$out"; echo
if [ "$error" != "None" ] && [ -n "$error" ]; then
  echo "migrate failed ($error)" >&2
  exit 1
fi
aws cloudformation describe-stacks --region "$region" --stack-name "$stack" \
  --query "Stacks[0].Outputs" --output table
echo "Paystack: until the real secret key is in PaystackSecretArn, every webhook is refused (401);"
echo "put it once with aws secretsmanager put-secret-value (docs/deploy.md, \"The Paystack key\")."
echo "Evidence: until EvidenceKeyFingerprint is set, reconcile signs no checkpoint; publish the"
echo "EvidenceSigningKeyArn public key and set its fingerprint (docs/deploy.md, \"The evidence signing key\")."
