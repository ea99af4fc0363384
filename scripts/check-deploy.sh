#!/usr/bin/env bash
# Offline deploy checks, run by scripts/test.sh before the Rust tests:
#   1. installs what they need from PyPI when missing: cfn-lint, moto[server] (the local STS
#      the assume-role test starts on 127.0.0.1);
#   2. cfn-lint template.yaml (applies the SAM transform locally): zero errors required;
#   3. checkov on template.yaml (installed from PyPI into its own virtualenv under target/tools,
#      so its pins never touch cfn-lint's): zero failed checks required. A finding is fixed in
#      the template or skipped there, in the resource's Metadata, with the reason as comment.
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

CHECKOV_VENV="${FARMOPS_CHECKOV_VENV:-target/tools/checkov}"
if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
  log "installing checkov from PyPI into $CHECKOV_VENV"
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install -q checkov
fi
echo "== checkov template.yaml ($("$CHECKOV_VENV/bin/checkov" --version))"
if ! "$CHECKOV_VENV/bin/checkov" -f template.yaml --framework cloudformation --compact --quiet; then
  log "checkov found failed checks in template.yaml (fix them, or skip one in its resource's Metadata with the reason)"
  exit 1
fi
echo "checkov: 0 failed checks"

echo "== SAM transform, applied locally (samtranslator, installed with cfn-lint)"
AWS_DEFAULT_REGION=eu-west-1 python3 - <<'PY'
from cfnlint.decode import decode
from samtranslator.translator.transform import transform

tpl, errors = decode("template.yaml")
assert not errors, errors
for r in tpl["Resources"].values():  # sam build would upload the code: any S3 URI will do here
    if r["Type"] == "AWS::Serverless::Function":
        r["Properties"]["CodeUri"] = "s3://bucket/key.zip"

class NoManagedPolicies:
    def load(self):
        return {}

params = {"VpcId": "vpc-1", "PrivateSubnetIds": ["subnet-1", "subnet-2"],
          "JwtIssuer": "https://issuer.example", "JwtAudience": ["client"]}
out = transform(tpl, params, NoManagedPolicies())["Resources"]
functions = {k: v for k, v in out.items() if v["Type"] == "AWS::Lambda::Function"}
for name, f in functions.items():
    groups = f["Properties"]["VpcConfig"]["SecurityGroupIds"]
    want = "MigrateSecurityGroup" if name == "MigrateFunction" else "FunctionSecurityGroup"
    assert groups == [{"Ref": want}], (name, groups)
    assert f["Properties"]["Architectures"] == ["arm64"], name
    assert "FARMOPS_DEV_IDENTITY" not in str(f["Properties"].get("Environment")), name
api = next(v for v in out.values() if v["Type"] == "AWS::ApiGatewayV2::Api")
ops = [(m.upper(), p) for p, methods in api["Properties"]["Body"]["paths"].items() for m in methods]
def security(op):
    return api["Properties"]["Body"]["paths"][op[1]][op[0].lower()].get("security") or []
authorized = [o for o in ops if any("JwtAuthorizer" in s for s in security(o))]
rules = [k for k, v in out.items() if v["Type"] == "AWS::Events::Rule"]
# Paystack's webhook is the one route without a JWT: the signature of its body authenticates it
unsigned = sorted(set(ops) - set(authorized))
assert unsigned == [("POST", "/payments/paystack")], f"routes without the JWT authorizer: {unsigned}"
assert security(unsigned[0]) == [{"NONE": []}], security(unsigned[0])
print(f"{len(functions)} functions, {len(ops)} routes ({len(authorized)} JWT-authorized, "
      f"POST /payments/paystack signed by Paystack), {len(rules)} schedules: transform OK")
PY
