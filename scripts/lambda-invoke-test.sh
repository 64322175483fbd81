#!/usr/bin/env bash
# The built Lambda bootstraps under cargo-lambda's Lambda Runtime API emulator, fed by events/:
#   1. the function binaries of the workspace's test build (`cargo build --workspace --all-targets`,
#      which `make test` and `make drill` already ran: x86-64, dev profile, debug assertions and
#      overflow checks on), copied to target/lambda-local/<function>/bootstrap. They are the same
#      `main.rs` wiring as the deployed arm64 release bootstraps (scripts/lambda-build.sh, built and
#      size-checked in CI); a second, release build for this machine only cost minutes of every CI
#      run and checked nothing this test observes;
#   2. `drill --setup-only` builds the deployment in a fresh local emulator (hosted zone, health
#      checks, ledger Global Table, data table replicas provisioned, Aurora global cluster, groups,
#      CloudWatch alarms) and keeps it running; its topology file becomes each Region's stack
#      parameter /multisite/<stack>/topology (SSM, as template.yaml's TopologyParameter), which
#      the functions read with their roles (MULTISITE_TOPOLOGY_PARAMETER); its roles file
#      (DRILL_ROLES line, target/drill/roles.json) holds a session of every function's template.yaml role in every Region's stack;
#   3. `cargo lambda watch --only-lambda-apis` serves the Runtime API; each bootstrap runs against it
#      with the emulator as AWS_ENDPOINT_URL and, as on Lambda, the environment credentials of its
#      role's session (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) in the stack of
#      its AWS_REGION: the emulator authorizes every call against that role. Every events/ file of
#      the function is sent with `cargo lambda invoke --data-file`; each answer is checked. The
#      alarm changes that act are real alarm events: SetAlarmState in the watcher Region, and the
#      "CloudWatch Alarm State Change" event the emulator recorded for it (GET /_multisite/events);
#      the events/ samples (dated 2026-11-26, older than those) follow them and must be Stale;
#   4. failover and scaler take this deployment's account and partition from the invocation's
#      function ARN (Lambda-Runtime-Invoked-Function-Arn). cargo-lambda's emulator sends the
#      literal `function-arn` there (fixed in its Runtime API, no option or environment variable
#      sets it), so the bootstraps talk to it through a small proxy (runtime_proxy below) that
#      sets the ARN the function has as deployed in its stack: arn:<partition>:lambda:<Region>:
#      <account>:function:<stack>-<LogicalId>, account and partition from its role's ARN (the
#      emulator's account, 123456789012), so the alarms' ARNs are of the same account.
#      The provisioner's Update is a stack update with new parameters (its Regions drop eu-west-1
#      and add us-west-2): the provisioner's role is rendered again for them before it runs, as
#      CloudFormation updates the role before the custom resource.
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
echo "== the function binaries (cargo build --workspace --all-targets: a no-op after \`make test\`)" >&2
cargo build --workspace --all-targets --locked
for fn in "${functions[@]}"; do
  mkdir -p "target/lambda-local/$fn"
  cp "${CARGO_TARGET_DIR:-target}/debug/$fn" "target/lambda-local/$fn/bootstrap"
done

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Closing the drill's stdin stops it and its emulator.
  [ -n "${DRILL_PID:-}" ] && { exec {DRILL[1]}>&- 2>/dev/null || true; wait "$DRILL_PID" 2>/dev/null || true; }
}
trap cleanup EXIT

# A 15 s cool-down (the drill's default is 5 s): the scenario below must reach its OK event
# inside it, and on a loaded 2-core machine the steps before it have taken more than 5 s.
coproc DRILL { exec "${CARGO_TARGET_DIR:-target}/debug/drill" --setup-only --cooldown-seconds 15 2>&1; }
endpoint=""
topology=""
roles=""
while IFS= read -r -t 120 line <&"${DRILL[0]}"; do
  echo "[drill] $line" >&2
  if [[ $line == DRILL_ROLES* ]]; then
    read -r _ roles <<< "$line"
  fi
  if [[ $line == DRILL_READY* ]]; then
    read -r _ endpoint topology <<< "$line"
    break
  fi
done
if [ -z "$endpoint" ] || [ -z "$roles" ]; then
  echo "the drill did not report DRILL_ROLES and DRILL_READY" >&2
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

# The emulator's venv has boto3 (the administrator's CloudWatch and Route 53 calls below).
py="$root/.venv/bin/python"

# runtime_proxy <function ARN> <port file>: the Runtime API as Lambda serves it to a function, in
# front of cargo-lambda's (which answers every invocation with Lambda-Runtime-Invoked-Function-Arn:
# function-arn): it forwards every request to cargo-lambda and puts <function ARN> into that
# header. Stdlib only; one thread per connection (the runtime's poll for the next invocation and
# its response POST may overlap). One proxy per bootstrap, stopped with it: a bootstrap's pending
# poll must end with it (else cargo-lambda hands the next invocation to the dead poll).
runtime_proxy() {
  exec "$py" - "$port" "$1" "$2" <<'PY'
import http.client, http.server, os, sys

upstream_port, arn, port_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "date", "server"}

class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def forward(self):
        body = self.body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        upstream = http.client.HTTPConnection("127.0.0.1", upstream_port)
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() in HOP:
                continue
            if k.lower() == "lambda-runtime-invoked-function-arn":
                v = arn
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = forward

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
server.daemon_threads = True
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
PY
}
# helper <command> ...: the roles file and the emulator's control API, in Python (stdlib + boto3).
#   credentials <function> <region>            -> "KEY SECRET TOKEN" of that role session
#   function-arn <function> <region>           -> the function's ARN in that Region's stack
#                                                 (account and partition of its role's ARN)
#   rerender <function> <region> <R1,R2,..>    -> renders the stack in <region> again for the
#                                                 drill's parameters with those Regions (a stack
#                                                 update), prints "KEY SECRET TOKEN ROLE" of a fresh
#                                                 session of <function>'s role in it
#   alarm-event <alarm> <watcher> <state> <out> -> SetAlarmState (administrator), then writes the
#                                                 EventBridge event recorded for it to <out>
#   clear-requests                             -> empties the emulator's request log
#   iam-summary                                -> the calls role sessions signed since, per role,
#                                                 and IAM's denials; fails on a denial or on a
#                                                 function whose role signed nothing
helper() {
  "$py" - "$roles" "$endpoint" "$@" <<'PY'
import json, sys, time, urllib.request

roles_file, endpoint, command, *args = sys.argv[1:]
roles = json.load(open(roles_file))

def control(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(endpoint + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as err:
        sys.exit(f"{method} {path}: HTTP {err.code} {err.read().decode(errors='replace')}")

def admin(service, region):
    import boto3
    return boto3.client(service, region_name=region, endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")

if command == "credentials":
    function, region = args
    c = roles["functions"][function][region]
    print(c["access_key_id"], c["secret_access_key"], c["session_token"])
elif command == "topology-parameters":
    # Each stack's TopologyParameter, as CloudFormation writes it: /multisite/<stack>/topology in
    # the stack's Region. Prints "<Region> <name>" lines.
    topology_file, = args
    for region, session in roles["functions"]["failover"].items():
        name = f"/multisite/{session['stack_name']}/topology"
        admin("ssm", region).put_parameter(Name=name, Value=open(topology_file).read(), Type="String", Overwrite=True)
        print(region, name)
elif command == "function-arn":
    function, region = args
    c = roles["functions"][function][region]
    # arn:aws:iam::123456789012:role/<stack>-<Logical>Role
    _, partition, _, _, account, _ = c["role_arn"].split(":", 5)
    logical = {"provisioner": "ProvisionerFunction", "failover": "FailoverFunction",
               "scaler": "ScalerFunction", "lag-probe": "LagProbeFunction"}[function]
    print(f"arn:{partition}:lambda:{region}:{account}:function:{c['stack_name']}-{logical}")
elif command == "rerender":
    function, region, regions = args[0], args[1], args[2].split(",")
    old = roles["parameters"]
    cell_keys = ["", "HealthCheckId", "AutoScalingGroup", "AlarmName", "AuroraClusterId"]
    old_index = {old[f"Region{n}"]: n for n in range(1, 5) if old.get(f"Region{n}")}
    params = {k: v for k, v in old.items() if not (k.startswith("Region") and k[6:7].isdigit())}
    for n, r in enumerate(regions, 1):
        if r in old_index:
            for key in cell_keys:
                if f"Region{old_index[r]}{key}" in old:
                    params[f"Region{n}{key}"] = old[f"Region{old_index[r]}{key}"]
        else:
            # A Region the update adds comes with its cell's parameters: a real health check for
            # it, and the group, alarm and Aurora member named as the drill names them.
            check = admin("route53", "us-east-1").create_health_check(
                CallerReference=f"lambda-invoke-test-{r}-{time.time()}",
                HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": f"{r}.{old['RecordName']}",
                                   "Port": 443, "ResourcePath": "/health"})
            params.update({f"Region{n}": r, f"Region{n}HealthCheckId": check["HealthCheck"]["Id"],
                           f"Region{n}AutoScalingGroup": f"web-{r}", f"Region{n}AlarmName": f"web-{r}-unhealthy"})
            if old.get("AuroraGlobalClusterId"):
                params[f"Region{n}AuroraClusterId"] = f"sessions-{r}"
    stack = f"multisite-{region}"
    logical = {"provisioner": "ProvisionerFunction", "failover": "FailoverFunction",
               "scaler": "ScalerFunction", "lag-probe": "LagProbeFunction"}[function]
    rendered = control("POST", "/_multisite/iam/template-roles",
                       {"template": roles["template"], "parameters": params, "region": region, "stack_name": stack})
    role = rendered["roles"][rendered["functions"][logical]["role"]]
    session = control("POST", "/_multisite/iam/session",
                      {"role_name": role["role_name"], "session_name": f"{function}-{region}-update"})
    print(session["access_key_id"], session["secret_access_key"], session["session_token"], role["role_name"])
elif command == "alarm-event":
    alarm, watcher, state, out = args
    seen = len(control("GET", f"/_multisite/events?region={watcher}")["events"])
    admin("cloudwatch", watcher).set_alarm_state(AlarmName=alarm, StateValue=state,
                                                 StateReason=f"lambda-invoke-test: {state}")
    deadline = time.time() + 5
    while True:
        events = control("GET", f"/_multisite/events?region={watcher}")["events"][seen:]
        found = [e for e in events if e["detail"]["alarmName"] == alarm and e["detail"]["state"]["value"] == state]
        if found:
            json.dump(found[-1], open(out, "w"), indent=2)
            print(found[-1]["id"])
            break
        if time.time() > deadline:
            sys.exit(f"no CloudWatch Alarm State Change event for {alarm} -> {state} in {watcher}")
        time.sleep(0.05)
elif command == "clear-requests":
    control("DELETE", "/_multisite/requests")
elif command == "iam-summary":
    per_role, denied = {}, []
    for r in control("GET", "/_multisite/requests")["requests"]:
        principal = r.get("principal") or ""
        if ":assumed-role/" not in principal:
            continue
        role = principal.split("/")[1]
        per_role[role] = per_role.get(role, 0) + 1
        if r.get("denied"):
            denied.append(f"{role}: {r['denied']['action']} on {r['denied']['resource']}")
    print(", ".join(f"{role} {n}" for role, n in sorted(per_role.items())) + f"; {len(denied)} denied"
          + "".join(f"; {d}" for d in denied))
    missing = [f for f in ("ProvisionerRole", "FailoverRole", "ScalerRole", "LagProbeRole")
               if not any(role.endswith("-" + f) for role in per_role)]
    if denied or missing:
        sys.exit(f"IAM: denied {denied}, roles that signed no call: {missing}")
else:
    sys.exit(f"unknown helper command {command}")
PY
}

failures=0
invocations=0
# From here on the request log holds the bootstraps' calls (and this script's administrator calls).
helper clear-requests
# invoke <function, for the log> <event file> <python expression over `a` (the answer) that must hold>
# or `refused:<phrase>`: the invocation must fail (the function's error) with <phrase> in it
# (cargo-lambda prints `Error: <errorType>`, then the message wrapped to its width).
# (`cargo lambda watch --only-lambda-apis` serves one function, named `_`.)
invoke() {
  local fn=$1 file=$2 expect=$3 out
  invocations=$((invocations + 1))
  if [[ $file == multisite:* ]]; then
    operator "$fn" "${file#multisite:}" "$expect"
    return
  fi
  if [[ $expect == refused:* ]]; then
    if out=$(cargo lambda invoke --invoke-address 127.0.0.1 --invoke-port "$port" _ --data-file "$file" 2>&1); then
      echo "FAIL $fn $file: expected the invocation to be refused, got: $out" >&2
      failures=$((failures + 1))
    elif grep -qF -- "${expect#refused:}" <<< "$out"; then
      echo "ok   $fn $(basename "$file"): refused: $(grep -oF -- "${expect#refused:}" <<< "$out" | head -1)" >&2
    else
      echo "FAIL $fn $file: refused, but not saying \"${expect#refused:}\": $out" >&2
      failures=$((failures + 1))
    fi
    return
  fi
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
    print("outcomes", [(r.get("outcome"), r.get("reason")) for r in a["reports"]],
          *(["calls", a["calls"]] if not a["reports"] and "calls" in a else []))
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
# against the Runtime API, as deployed in that Region (its role's session in that Region's stack,
# or the one in $session_override), while its events are invoked.
session_override=""
run_function() {
  local fn=$1 region=$2 session key secret token
  shift 2
  if [ -n "$session_override" ]; then
    session=$session_override
  else
    session=$(helper credentials "$fn" "$region")
  fi
  read -r key secret token _ <<< "$session"
  local arn port_file=target/lambda-local/runtime-proxy.port proxy proxy_port="" parameter=""
  arn=$(helper function-arn "$fn" "$region")
  # The provisioner reads its own settings, not the topology (template.yaml).
  [ "$fn" = provisioner ] || parameter=${topology_parameter[$region]}
  echo "== $fn as deployed in $region: $arn" >&2
  rm -f "$port_file"
  runtime_proxy "$arn" "$port_file" >>target/lambda-local/runtime-proxy.log 2>&1 &
  proxy=$!
  pids+=("$proxy")
  for _ in $(seq 1 100); do
    [ -s "$port_file" ] && break
    sleep 0.05
  done
  proxy_port=$(cat "$port_file" 2>/dev/null || true)
  if [ -z "$proxy_port" ]; then
    echo "the Runtime API proxy did not start: $(tail -5 target/lambda-local/runtime-proxy.log)" >&2
    exit 1
  fi
  env AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256 \
    AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$proxy_port/.rt" AWS_LAMBDA_FUNCTION_NAME=_ \
    AWS_ENDPOINT_URL="$endpoint" \
    AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_SESSION_TOKEN="$token" \
    AWS_REGION="$region" AWS_DEFAULT_REGION="$region" MULTISITE_TOPOLOGY_PARAMETER="$parameter" \
    PROVISIONER_POLL_INTERVAL_MS=100 PROVISIONER_RESPONSE_ATTEMPTS=1 \
    MULTISITE_PROVISIONER_ALLOW_LOCAL_RESPONSE_URL=1 \
    RUST_LOG=warn \
    "target/lambda-local/$fn/bootstrap" >>"target/lambda-local/$fn.log" 2>&1 &
  local pid=$!
  while [ $# -gt 0 ]; do
    invoke "$fn" "$1" "$2"
    shift 2
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  kill "$proxy" 2>/dev/null || true
  wait "$proxy" 2>/dev/null || true
}

# Every stack's topology parameter, written once (a helper call costs a Python start, and the
# scenario below runs against the cool-down).
declare -A topology_parameter
while read -r region name; do
  topology_parameter[$region]=$name
done < <(helper topology-parameters "$topology")
[ "${#topology_parameter[@]}" -gt 0 ] || { echo "no topology parameter written" >&2; exit 1; }

# operator <function> "<multisite arguments>" <expectation>: the operator command as against a
# deployed stack: `multisite --function _` sends its typed request with Lambda's Invoke API to the
# running bootstrap (cargo-lambda's Runtime API emulator serves that API: AWS_ENDPOINT_URL_LAMBDA),
# so the function's role acts; its own calls (STS GetCallerIdentity, the ledger) reach the
# emulator as the administrator, the operator here. The expectation reads its --json answer (a).
operator() {
  local fn=$1 args=$2 expect=$3 out
  # shellcheck disable=SC2086 # the arguments are words
  if ! out=$(env AWS_ENDPOINT_URL="$endpoint" AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$port" \
      AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION="$actor" \
      MULTISITE_TOPOLOGY_FILE="$topology" \
      "${CARGO_TARGET_DIR:-target}/debug/multisite" --function _ --via "$actor" $args --json 2>&1 </dev/null); then
    echo "FAIL $fn multisite $args: $out" >&2
    failures=$((failures + 1))
    return
  fi
  if python3 -c 'import json,sys; a=json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' "$out" "$expect"; then
    echo "ok   $fn multisite $args: $(python3 -c '
import json, sys
a = json.loads(sys.argv[1])
print("runner", a["runner"], "outcomes", [(r.get("outcome"), r.get("reason")) for r in a["response"]["reports"]])' "$out")" >&2
  else
    echo "FAIL $fn multisite $args: expected $expect, got: $out" >&2
    failures=$((failures + 1))
  fi
}

outcomes() { echo "[r['outcome'] for r in a['reports']]"; }
operator_outcomes() { echo "a['runner'] == '_' and [r['outcome'] for r in a['response']['reports']]"; }
reconciled_to() { # <status of us-east-1>: failover converged on it
  echo "$(outcomes) == ['Reconciled'] and a['reports'][0]['desired']['us-east-1'] == '$1'"
}
stale() { echo "$(outcomes) == ['Stale']"; }
# The scheduled reconcile with nothing to do: no report, and only reads among its calls.
idle_reconcile="a['reports'] == [] and a['calls'] and not set(a['calls']) & {'UpdateItem', 'PutItem', 'UpdateHealthCheck', 'FailoverGlobalCluster', 'SwitchoverGlobalCluster'}"
# The drill's topology (--cooldown-seconds above): 15 s for failover's failback and for the
# scaler's restore.
cooldown_s=16
# The drill's Regions us-east-1, eu-west-1, ap-southeast-1 (its topology file): us-east-1 fails;
# its alarm lives in its watcher eu-west-1, the actor of its changes (Topology::actor_region); the
# ledger's arbiter is the last Region no alarm of the drill watches, ap-southeast-1
# (tools/drill/src/world.rs).
actor=$("$py" -c '
import json, sys
t = json.load(open(sys.argv[1]))
cell = next(c for c in t["cells"] if c["region"] == "us-east-1")
print(cell["alarms"][0]["region"])' "$topology")
echo "== topology: web-us-east-1-unhealthy lives in $actor (the actor of its changes); arbiter $("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["arbiter"]["region"])' "$topology")" >&2
# A sample of the same alarm from another account: not this deployment's alarm.
foreign=target/lambda-local/foreign-account-us-east-1-alarm.json
sed 's/123456789012/210987654321/g' events/alarm-eventbridge-us-east-1-alarm.json >"$foreign"

# One whole evacuation and failback of us-east-1, each event file delivered as Lambda would.
run_function lag-probe "$actor" \
  events/scheduled-lag-probe.json "a['rpo_breached'] is False and len(a['active_regions']) == 3"
# ALARM: the real alarm's event (SetAlarmState in eu-west-1, the event recorded for it) evacuates;
# then the three decoders' samples of the same state (direct alarm action, EventBridge, SNS), older
# than it: Stale (failover confirms the state with DescribeAlarms, then the ordering mark refuses
# them). A foreign account's alarm of the same name is Rejected.
recorded=target/lambda-local/recorded-alarm-us-east-1-alarm.json
recorded_alarm=$recorded
event_id=$(helper alarm-event web-us-east-1-unhealthy "$actor" ALARM "$recorded")
echo "== SetAlarmState web-us-east-1-unhealthy ALARM in $actor: event $event_id recorded ($recorded)" >&2
run_function failover "$actor" \
  "$recorded" "$(reconciled_to Evacuated) and a['reports'][0]['transition_recorded']" \
  events/alarm-alarm-action-us-east-1-alarm.json "$(stale)" \
  events/alarm-eventbridge-us-east-1-alarm.json "$(stale)" \
  events/alarm-sns-us-east-1-alarm.json "$(stale)" \
  "$foreign" "$(outcomes) == ['Rejected']"
run_function scaler "$actor" \
  "$recorded" "$(outcomes) == ['Scaled']" \
  events/alarm-alarm-action-us-east-1-alarm.json "$(stale)" \
  events/alarm-eventbridge-us-east-1-alarm.json "$(stale)" \
  events/alarm-sns-us-east-1-alarm.json "$(stale)"
# Only the actor Region acts: failover as deployed in us-east-1 (the watched Region itself) and in
# ap-southeast-1 ignores the same changes (SNS may deliver to every Region).
run_function failover us-east-1 \
  events/alarm-eventbridge-us-east-1-alarm.json "$(outcomes) == ['Ignored']"
run_function failover ap-southeast-1 \
  events/alarm-sns-us-east-1-alarm.json "$(outcomes) == ['Ignored']"
# OK right away (a real OK event), inside the 15 s cool-down from the evacuation: failback
# waits for it (FailbackPending, refused by the cool-down, no mark recorded: the same event fails
# back after the cool-down below), and the scaler keeps the capacity until failback is recorded.
# A machine too slow to get here within the cool-down does not run this scenario: that fails here.
recorded=target/lambda-local/recorded-alarm-us-east-1-ok.json
event_id=$(helper alarm-event web-us-east-1-unhealthy "$actor" OK "$recorded")
echo "== SetAlarmState web-us-east-1-unhealthy OK in $actor: event $event_id recorded ($recorded)" >&2
run_function failover "$actor" \
  "$recorded" "$(outcomes) == ['FailbackPending'] and 'cool-down' in a['reports'][0]['reason']"
run_function scaler "$actor" \
  "$recorded" "$(outcomes) == ['RestorePending']"
# After the cool-down, with a fresh probe verdict: the recorded OK fails back (a FailbackPending
# recorded no mark, so it is not stale), the older OK samples are Stale, and so is the recorded
# ALARM delivered again late (DescribeAlarms: the alarm is OK now); then (after the scaler's
# cool-down from the failback) the capacity is given back; the scheduled sweep then finds nothing
# to do, and so does the scheduled reconcile (an EventBridge rule's and a Scheduler's envelope).
sleep "$cooldown_s"
run_function lag-probe "$actor" \
  events/scheduled-lag-probe.json "a['rpo_breached'] is False"
run_function failover "$actor" \
  "$recorded" "$(reconciled_to Active) and a['reports'][0]['transition_recorded']" \
  events/alarm-alarm-action-us-east-1-ok.json "$(stale)" \
  events/alarm-eventbridge-us-east-1-ok.json "$(stale)" \
  events/alarm-sns-us-east-1-ok.json "$(stale)" \
  "$recorded_alarm" "$(stale) and 'a late delivery' in a['reports'][0]['reason']"
sleep "$cooldown_s"
# The OK's own pass restored and settled every group (no record left open): a scheduled sweep
# has no evacuation to cover and nothing to restore, one RestoreSweep report, Ignored.
sweep_done="[(r['trigger'], r['outcome']) for r in a['reports']] == [('RestoreSweep', 'Ignored')]"
run_function scaler "$actor" \
  "$recorded" "$(outcomes) == ['Restored']" \
  events/scheduled-restore-sweep.json "$sweep_done" \
  events/scheduled-reconcile-scheduler.json "$sweep_done"
run_function failover "$actor" \
  events/scheduled-reconcile.json "$idle_reconcile" \
  events/scheduled-reconcile-scheduler.json "$idle_reconcile"

# An operator's evacuation and failback of us-east-1 through the deployed function (above:
# operator): the plan first (a dry run: nothing written), then the evacuation, which holds; after
# the cool-down and a fresh probe verdict, the failback (the topology's auto_failback is off).
run_function failover "$actor" \
  "multisite:plan evacuate us-east-1" "$(operator_outcomes) == ['DryRun'] and a['response']['reports'][0]['plan']['actions']" \
  "multisite:evacuate us-east-1 --yes" "$(operator_outcomes) == ['Reconciled'] and a['response']['reports'][0]['desired']['us-east-1'] == 'Evacuated'" \
  events/scheduled-reconcile.json "a['reports'] == [] or all(r['desired']['us-east-1'] == 'Evacuated' for r in a['reports'])"
sleep "$cooldown_s"
run_function lag-probe "$actor" \
  events/scheduled-lag-probe.json "a['rpo_breached'] is False"
run_function failover "$actor" \
  "multisite:failback us-east-1 --yes" "$(operator_outcomes) == ['Reconciled'] and a['response']['reports'][0]['desired']['us-east-1'] == 'Active'"

# Last, as they change the drill's global table: the provisioner's Create, Update, Delete.
# The sample events carry the real S3 ResponseURL, unreachable offline: the answer is computed
# (Outcome) but not delivered (one attempt). Update adds us-west-2 and drops eu-west-1 from the
# list; eu-west-1 stays, as the drill's own DataTableReplicas recorded it (another live resource's
# claim), so the Delete removes only us-west-2.
# The forged sample (a look-alike ResponseURL host) is refused first: the invocation's error, no
# AWS call (the IAM summary below counts the calls), even with the test switch
# MULTISITE_PROVISIONER_ALLOW_LOCAL_RESPONSE_URL on (it allows loopback hosts only).
run_function provisioner us-east-1 \
  events/provisioner-create-forged-response-url.json "refused:Error: Refused" \
  events/provisioner-create.json "a['Outcome'] == 'SUCCESS'"
# The Update is a stack update: the parameters' Regions become the event's (us-east-1,
# ap-southeast-1, us-west-2), and CloudFormation updates ProvisionerRole before the custom
# resource, so the provisioner runs the Update (and the later Delete) as the re-rendered role.
session_override=$(helper rerender provisioner us-east-1 us-east-1,ap-southeast-1,us-west-2)
echo "== stack update: $(awk '{print $4}' <<< "$session_override") rendered again for Regions us-east-1, ap-southeast-1, us-west-2" >&2
# The upgrade sample, an Update whose id is in the format from before ids were versioned (same
# TableName), is answered with that id echoed, not a new one (which would be a replacement).
run_function provisioner us-east-1 \
  events/provisioner-update.json "a['Outcome'] == 'SUCCESS' and 'us-west-2' in a['Reason']" \
  events/provisioner-update-old-id.json "a['Outcome'] == 'SUCCESS' and a['PhysicalResourceId'] == 'us-east-1/UserSessions/UserSessionsReplicas'" \
  events/provisioner-delete.json "a['Outcome'] == 'SUCCESS' and a['Reason'] == 'removed the replicas this resource added: us-west-2'"
session_override=""

# Every call a bootstrap made was signed by its role's session and none was denied.
if iam=$(helper iam-summary); then
  echo "== IAM: calls signed by role sessions: $iam" >&2
else
  echo "FAIL IAM: $iam" >&2
  failures=$((failures + 1))
fi

echo "== lambda-invoke-test: $invocations invocations, $failures failed, $(( $(date +%s) - start )) s" >&2
[ "$failures" -eq 0 ]
