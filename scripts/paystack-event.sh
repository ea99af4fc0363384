#!/usr/bin/env bash
# Signs a sample Paystack webhook event and sends it to the local billing function
# (scripts/dev-up.sh serves it with the secret key sk_test_farmops_local), printing the answer.
# The event is Paystack's documented shape (shared/fixtures/paystack/), signed as Paystack signs
# it: x-paystack-signature = hex HMAC-SHA512 of the exact body bytes, keyed with the secret key.
#
#   scripts/paystack-event.sh                       charge.success: pack starter (500 credits,
#                                                   500000 kobo) for the demo farm, a new reference
#   scripts/paystack-event.sh charge --reference R  the same payment again (a redelivery: duplicate)
#   scripts/paystack-event.sh refund --reference R  refund.processed of payment R (the whole amount)
#
# Options (all optional):
#   --farm F           metadata.farm_id        (default: the demo farm 11111111-...)
#   --pack P           metadata.pack           (default: starter)
#   --amount KOBO      data.amount             (default: 500000)
#   --currency C       data.currency           (default: NGN)
#   --reference R      data.reference / data.transaction_reference (default: a new one)
#   --refund-reference RR                      (default: a new one)
#   --bad-signature    sign with another key (the function answers 401 and records nothing)
#   --print            print the signed request instead of sending it
# Environment: FARMOPS_PAYSTACK_SECRET_KEY (default sk_test_farmops_local),
#              FARMOPS_LOCAL_PORT (default 9000).
set -euo pipefail
cd "$(dirname "$0")/.."

kind=charge
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then kind=$1; shift; fi
farm=11111111-1111-4111-8111-111111111111
pack=starter
amount=500000
currency=NGN
reference="fo-local-$(date +%s)-$RANDOM"
refund_reference="rf-local-$(date +%s)-$RANDOM"
secret="${FARMOPS_PAYSTACK_SECRET_KEY:-sk_test_farmops_local}"
print=0
while [ $# -gt 0 ]; do
  case "$1" in
    --farm) farm=$2; shift 2 ;;
    --pack) pack=$2; shift 2 ;;
    --amount) amount=$2; shift 2 ;;
    --currency) currency=$2; shift 2 ;;
    --reference) reference=$2; shift 2 ;;
    --refund-reference) refund_reference=$2; shift 2 ;;
    --bad-signature) secret="sk_test_not_the_key"; shift ;;
    --print) print=1; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$amount" =~ ^[0-9]+$ ]] || { echo "--amount is a whole number of kobo, not $amount" >&2; exit 2; }

case "$kind" in
  charge)
    body=$(jq -c --arg ref "$reference" --arg farm "$farm" --arg pack "$pack" \
      --argjson amount "$amount" --arg currency "$currency" \
      '.data.reference = $ref | .data.amount = $amount | .data.currency = $currency
       | .data.metadata = {farm_id: $farm, pack: $pack}' shared/fixtures/paystack/charge-success.json) ;;
  refund)
    body=$(jq -c --arg ref "$reference" --arg rref "$refund_reference" --arg amount "$amount" \
      --arg currency "$currency" \
      '.data.transaction_reference = $ref | .data.refund_reference = $rref
       | .data.amount = $amount | .data.currency = $currency' shared/fixtures/paystack/refund-processed.json) ;;
  *) echo "the event is charge or refund, not $kind" >&2; exit 2 ;;
esac

# the signature of the exact bytes sent (printf: no trailing newline)
signature=$(printf '%s' "$body" | openssl dgst -sha512 -hmac "$secret" -hex | sed 's/^.*= //')
url="http://127.0.0.1:${FARMOPS_LOCAL_PORT:-9000}/lambda-url/billing/payments/paystack"
if [ "$print" = 1 ]; then
  printf 'POST %s\nx-paystack-signature: %s\n\n%s\n' "$url" "$signature" "$body"
  exit 0
fi
if [ "$kind" = refund ]; then
  echo "refund.processed of $reference (refund $refund_reference)" >&2
else
  echo "charge.success $reference" >&2
fi
curl -s -X POST "$url" -H 'content-type: application/json' \
  -H "x-paystack-signature: $signature" --data-binary "$body"
echo
