#!/usr/bin/env bash
# The built Lambda bootstraps under cargo-lambda's Lambda Runtime API emulator, fed by events/:
#   1. release `bootstrap` per function for this machine (x86-64) with `cargo lambda build`, into
#      target/lambda-local/<function>/ (scripts/lambda-build.sh's arm64 artifacts in target/lambda/
#      are left alone);
#   2. `drill --setup-only` builds the deployment in a fresh local emulator (hosted zone, health
#      checks, Global Table + ledger provisioned, Aurora global cluster, groups, alarms) and keeps
#      it running; its topology file is what the functions load (MULTISITE_TOPOLOGY_FILE);
#   3. `cargo lambda watch --only-lambda-apis` serves the Runtime API; each bootstrap runs against it
#      with the emulator as AWS_ENDPOINT_URL, and every events/ file of that function is sent with
#      `cargo lambda invoke --data-file`; each answer is checked.
# Uses the pinned cargo-lambda venv of scripts/lambda-build.sh (.venv-lambda,
# tests/deploy/requirements-lambda.txt, same stamp), so the two scripts share one install.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export AWS_EC2_METADATA_DISABLED=true
port=${LAMBDA_INVOKE_PORT:-9000}
start=$(date +%s)

scripts/venv.sh
venv="$root/.venv-lambda"
scripts/venv.sh "$venv" tests/deploy/requirements-lambda.txt
export PATH="$venv/bin:$PATH"

functions=(provisioner failover scaler lag-probe)
echo "== cargo lambda build --release --x86-64 (${functions[*]})" >&2
build_start=$(date +%s)
cargo lambda build --release --x86-64 --locked --lambda-dir target/lambda-local \
  $(printf -- '-p %s ' "${functions[@]}")
echo "== release build: $(( $(date +%s) - build_start )) s" >&2
echo "== drill binary (no-op after \`make test\`)" >&2
cargo build --workspace --all-targets --locked

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Closing the drill's stdin stops it and its emulator.
  [ -n "${DRILL_PID:-}" ] && { exec {DRILL[1]}>&- 2>/dev/null || true; wait "$DRILL_PID" 2>/dev/null || true; }
}
trap cleanup EXIT

coproc DRILL { exec "${CARGO_TARGET_DIR:-target}/debug/drill" --setup-only 2>&1; }
endpoint=""
topology=""
while IFS= read -r -t 120 line <&"${DRILL[0]}"; do
  echo "[drill] $line" >&2
  if [[ $line == DRILL_READY* ]]; then
    read -r _ endpoint topology <<< "$line"
    break
  fi
done
if [ -z "$endpoint" ]; then
  echo "the drill did not report DRILL_READY" >&2
  exit 1
fi
# Keep draining the drill's output in the background so it never blocks on a full pipe.
# (A coproc's descriptors are not inherited by a background job: duplicate it first.)
exec {drill_out}<&"${DRILL[0]}"
cat <&"$drill_out" >/dev/null &
pids+=($!)

cargo lambda watch --only-lambda-apis --invoke-address 127.0.0.1 --invoke-port "$port" >target/lambda-local/watch.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  sleep 0.1
done

failures=0
invocations=0
# invoke <function, for the log> <event file> <python expression over `a` (the answer) that must hold>
# (`cargo lambda watch --only-lambda-apis` serves one function, named `_`.)
invoke() {
  local fn=$1 file=$2 expect=$3 out
  invocations=$((invocations + 1))
  if ! out=$(cargo lambda invoke --invoke-address 127.0.0.1 --invoke-port "$port" _ --data-file "$file" 2>&1); then
    echo "FAIL $fn $file: invoke failed: $out" >&2
    failures=$((failures + 1))
    return
  fi
  if python3 -c 'import json,sys; a=json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' "$out" "$expect"; then
    echo "ok   $fn $(basename "$file"): $(python3 -c '
import json, sys
a = json.loads(sys.argv[1])
if "reports" in a:
    print("outcomes", [(r.get("outcome"), r.get("reason")) for r in a["reports"]])
elif "Outcome" in a:
    print(a["Outcome"], a.get("Reason"))
else:
    print(sys.argv[1][:160])' "$out")" >&2
  else
    echo "FAIL $fn $file: expected $expect, got: $out" >&2
    failures=$((failures + 1))
  fi
}

# run_function <function> <AWS_REGION> (<event file> <expectation>)...: runs one bootstrap
# against the Runtime API, as deployed in that Region, while its events are invoked.
run_function() {
  local fn=$1 region=$2
  shift 2
  env AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256 \
    AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt" AWS_LAMBDA_FUNCTION_NAME=_ \
    AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_REGION="$region" AWS_DEFAULT_REGION="$region" MULTISITE_TOPOLOGY_FILE="$topology" \
    PROVISIONER_POLL_INTERVAL_MS=100 PROVISIONER_RESPONSE_ATTEMPTS=1 \
    RUST_LOG=warn \
    "target/lambda-local/$fn/bootstrap" >>"target/lambda-local/$fn.log" 2>&1 &
  local pid=$!
  while [ $# -gt 0 ]; do
    invoke "$fn" "$1" "$2"
    shift 2
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

outcomes() { echo "[r['outcome'] for r in a['reports']]"; }
reconciled_to() { # <status of us-east-1>: failover converged on it
  echo "$(outcomes) == ['Reconciled'] and a['reports'][0]['desired']['us-east-1'] == '$1'"
}
# The drill's topology: 5 s cool-down for failover's failback and for the scaler's restore.
cooldown_s=6

# One whole evacuation and failback of us-east-1, each event file delivered as Lambda would.
run_function lag-probe eu-west-1 \
  events/scheduled-lag-probe.json "a['rpo_breached'] is False and len(a['active_regions']) == 3"
# ALARM through the three deliveries: the first evacuates, the others are duplicates.
run_function failover eu-west-1 \
  events/alarm-alarm-action-us-east-1-alarm.json "$(reconciled_to Evacuated) and a['reports'][0]['transition_recorded']" \
  events/alarm-eventbridge-us-east-1-alarm.json "$(reconciled_to Evacuated) and not a['reports'][0]['transition_recorded']" \
  events/alarm-sns-us-east-1-alarm.json "$(reconciled_to Evacuated) and not a['reports'][0]['transition_recorded']"
run_function scaler eu-west-1 \
  events/alarm-alarm-action-us-east-1-alarm.json "$(outcomes) == ['Scaled']" \
  events/alarm-eventbridge-us-east-1-alarm.json "$(outcomes) == ['Scaled']" \
  events/alarm-sns-us-east-1-alarm.json "$(outcomes) == ['Scaled']"
# OK right away: failback waits for the cool-down (or, on a machine slow enough to pass it, runs),
# and the scaler keeps the capacity until failback is recorded.
run_function failover eu-west-1 \
  events/alarm-alarm-action-us-east-1-ok.json "$(outcomes)[0] in ('FailbackPending', 'Reconciled')"
run_function scaler eu-west-1 \
  events/alarm-eventbridge-us-east-1-ok.json "$(outcomes) == ['RestorePending']"
# After the cool-down, with a fresh probe verdict: failback, then (after the scaler's cool-down
# from the failback) the capacity is given back; the scheduled sweep then finds nothing to do.
sleep "$cooldown_s"
run_function lag-probe eu-west-1 \
  events/scheduled-lag-probe.json "a['rpo_breached'] is False"
run_function failover eu-west-1 \
  events/alarm-eventbridge-us-east-1-ok.json "$(reconciled_to Active)" \
  events/alarm-sns-us-east-1-ok.json "$(reconciled_to Active) and not a['reports'][0]['transition_recorded']"
sleep "$cooldown_s"
run_function scaler eu-west-1 \
  events/alarm-sns-us-east-1-ok.json "$(outcomes) == ['Restored']" \
  events/scheduled-restore-sweep.json "a['reports'][0]['trigger'] == 'RestoreSweep' and a['reports'][0]['outcome'] in ('Ignored', 'Restored')"

# Last, as they change the drill's global table: the provisioner's Create, Update, Delete.
# The sample events carry the real S3 ResponseURL, unreachable offline: the answer is computed
# (Outcome) but not delivered (one attempt). Update drops eu-west-1 and adds us-west-2.
run_function provisioner us-east-1 \
  events/provisioner-create.json "a['Outcome'] == 'SUCCESS'" \
  events/provisioner-update.json "a['Outcome'] == 'SUCCESS' and 'us-west-2' in a['Reason']" \
  events/provisioner-delete.json "a['Outcome'] == 'SUCCESS'"

echo "== lambda-invoke-test: $invocations invocations, $failures failed, $(( $(date +%s) - start )) s" >&2
[ "$failures" -eq 0 ]
