#!/usr/bin/env bash
# The README walkthrough, run exactly as written: every ```sh block of README.md preceded by a
# `<!-- smoke: <step> [requires=<path>] -->` marker runs, in order, in ONE bash shell (so the
# variables a block sets are there for the next), and each step's output is checked with jq
# below. A block whose `requires` path does not exist is skipped (named in the output). A step
# without a check, or a check without a step, fails the smoke test: the walkthrough cannot rot.
#
# Uses the local stack of scripts/dev-up.sh; when nothing answers on the port, brings it up
# itself and stops the functions again at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${FARMOPS_LOCAL_PORT:-9000}"
bash scripts/install-dev-tools.sh

# ---- the checks: one jq program per step, run on the step's output (--arg of every variable
# named in the step's check is passed from the walkthrough's shell).
declare -A CHECK
CHECK[setup]='true'
CHECK[invoke]='.applied == [] and .bootstrapped == false'
CHECK[chat]='(.drafts | length) == 2
  and ([.drafts[].record_type] | sort) == ["mortality", "sale"]
  and all(.drafts[]; .status == "pending")
  and (.drafts[] | select(.record_type == "mortality") | .payload.count) == 3
  and (.drafts[] | select(.record_type == "sale") | .payload.amount_kobo) == 4500000
  and .credits.charged > 0 and .credits.reserved >= .credits.charged
  and (.reply | type) == "string"'
CHECK[confirm]='.draft.status == "confirmed" and .draft.decided_by == "demo-owner"
  and .record.source == "ai_draft" and .record.draft_id == $MORTALITY'
CHECK[discard]='.status == "discarded" and .decision_note == "the buyer cancelled; we sold 18 crates"
  and .record_id == null'
CHECK[conflict]='.error.code == "conflict" and (.error.message | type) == "string"'
# Four JSON documents (drafts, evidence, credits, grants), slurped.
CHECK[evidence]='length == 4
  and (.[0] | tostring | contains($MORTALITY))
  and (.[1] | tostring | contains($SALE) and contains($MORTALITY))
  and ([.[2] | .. | objects | .balance? | numbers] | length) > 0
  and ([.[2] | .. | objects | .holds? | booleans] | all)
  and .[3].balance == .[2].balance and (.[3].lots | length) >= 1
  and ([.[3].lots[].remaining] | add) == .[3].balance'
# Two JSON documents (the signed charge.success, the grants after it), slurped.
CHECK[topup]='length == 2
  and .[0].verdict == "granted" and .[0].credits == 500
  and any(.[1].lots[]; .source == "payment" and .category == "paid" and .amount == 500)
  and .[1].balance == .[0].balance'
# Two JSON documents (the added document, the chat turn that answers from it), slurped.
CHECK[documents]='length == 2
  and (.[0].id | type) == "string" and .[0].chunks >= 1 and .[0].credits_charged > 0
  and (.[1].reply | contains("From your farm") and contains("first Monday of March"))
  and .[1].drafts == 0'
CHECK[conversations]='(.conversations | length) >= 1
  and all(.conversations[]; .message_count >= 2 and (.started_by | type) == "string")'
# Two JSON documents (the change, the refusal), slurped.
CHECK[autonomy]='length == 2
  and .[0].autonomy.tier == "auto" and .[0].effective.feed_use == "auto" and .[0].effective.sale == "draft"
  and .[1].error.code == "invalid_payload" and (.[1].error.fields[0].message | contains("floor"))'

# Four JSON documents (the caps, the worker's usage, the thresholds, a worker's refusal).
CHECK[budgets]='length == 4
  and .[0] == {"user_id": "demo-worker", "daily": 50, "monthly": 1000}
  and .[1].time_zone == "Africa/Lagos" and .[1].daily.cap == 50
  and .[1].daily.remaining == ([50 - .[1].daily.spent - .[1].daily.held, 0] | max)
  and (.[1].daily.resets_at | test("T23:00:00"))
  and .[2].thresholds == [{"threshold": 100, "armed": true}, {"threshold": 20, "armed": true}]
  and .[3].error.code == "forbidden"'

# Steps whose output is several JSON documents: their check reads the array of them.
SLURPED=(evidence topup documents autonomy budgets)

# ---- the blocks
steps=()
declare -A BLOCK REQUIRES
current=""
in_block=0
while IFS= read -r line; do
  if [ "$in_block" = 1 ]; then
    if [ "$line" = '```' ]; then in_block=0; current=""; else BLOCK[$current]+="$line"$'\n'; fi
  elif [[ "$line" =~ ^\<\!--\ smoke:\ ([a-z0-9-]+)(\ requires=([^ ]+))? ]]; then
    current="${BASH_REMATCH[1]}"
    REQUIRES[$current]="${BASH_REMATCH[3]}"
    steps+=("$current")
  elif [ -n "$current" ] && [ "$line" = '```sh' ]; then
    in_block=1
  fi
done <README.md

fail=0
for step in "${steps[@]}"; do
  [ -n "${CHECK[$step]:-}" ] || { echo "smoke: README step '$step' has no check in $0" >&2; fail=1; }
  [ -n "${BLOCK[$step]:-}" ] || { echo "smoke: README marker '$step' has no \`\`\`sh block" >&2; fail=1; }
done
for step in "${!CHECK[@]}"; do
  [[ " ${steps[*]} " == *" $step "* ]] || { echo "smoke: check '$step' has no README step" >&2; fail=1; }
done
[ "$fail" = 0 ] || exit 1

# ---- the stack
answering() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' -m 10 -X POST \
    "http://127.0.0.1:$PORT/lambda-url/chat/farms/x/ping" || true)" = 401 ]
}
if ! answering; then
  echo "== smoke: no local stack on port $PORT; starting it (scripts/dev-up.sh)"
  bash scripts/dev-up.sh
  trap 'bash scripts/dev-down.sh' EXIT
fi

# ---- one script: every step's block, its output saved, then checked
out=$(mktemp -d)
script="$out/walkthrough.sh"
{
  echo 'set -euo pipefail'
  for step in "${steps[@]}"; do
    req="${REQUIRES[$step]}"
    if [ -n "$req" ] && [ ! -e "$req" ]; then
      echo "echo '== $step: skipped ($req does not exist yet)'"
      continue
    fi
    echo "echo '== $step'"
    echo "{"
    printf '%s' "${BLOCK[$step]}" | sed -e "s#127\.0\.0\.1:9000#127.0.0.1:$PORT#g" -e "s#--invoke-port 9000#--invoke-port $PORT#g"
    echo "} >'$out/$step.json'"
    echo "cat '$out/$step.json'"
    args=""
    for var in $(grep -o '\$[A-Z][A-Z_]*' <<<"${CHECK[$step]}" | sort -u | tr -d '$'); do
      args+=" --arg $var \"\$$var\""
    done
    input='.[0]'
    [[ " ${SLURPED[*]} " == *" $step "* ]] && input='.'
    printf "jq -es%s %q '%s' >/dev/null || { echo 'smoke: step %s: answer fails its check' >&2; exit 1; }\n" \
      "$args" "$input | (${CHECK[$step]})" \
      "$out/$step.json" "$step"
  done
} >"$script"
bash "$script"
echo "== smoke: the README walkthrough works as written"
