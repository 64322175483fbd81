#!/usr/bin/env bash
# Deploys multisite to every Region of a parameter file, Region1 first (its stack creates the
# ledger), with the same parameters everywhere:
#
#   scripts/deploy.sh PARAMS.json [--update] [--region R] [--skip-build]
#
# PARAMS.json maps template.yaml's parameter names to values (as tests/deploy/params/*.json).
#   1. The set is checked offline as CloudFormation would (tests/deploy/render_topology.py: every
#      AllowedPattern, the template's Rules, the topology the functions will read).
#   2. The arm64 bootstraps are built once (make lambda-build), unless --skip-build.
#   3. The stack `multisite` of every Region the file names is read (CloudFormation
#      DescribeStacks, with the standard AWS chain): a deployed stack whose parameters differ from
#      the file is refused, naming the Region and the parameters, unless --update (the file then
#      goes to every Region, in order). With --region R only that Region is deployed, and it must
#      agree with every other deployed Region: Regions never run different parameters.
#   4. `sam deploy` in each Region (samconfig.toml: stack name, capabilities, managed bucket),
#      Region1 first; the first failure stops the run, and the Regions already done are named.
# Needs the deploy venv (.venv-sam: SAM CLI, cfn-lint, boto3), made here if missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
params="" update=0 only="" build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --update) update=1 ;;
    --region) only="${2:-}"; [ -n "$only" ] || usage; shift ;;
    --skip-build) build=0 ;;
    -h|--help) usage ;;
    -*) echo "deploy: unknown option $1" >&2; usage ;;
    *) [ -z "$params" ] || usage; params="$1" ;;
  esac
  shift
done
[ -n "$params" ] || usage
[ -f "$params" ] || { echo "deploy: no parameter file $params" >&2; exit 2; }

[ -x .venv-sam/bin/python ] || scripts/check-template.sh venv > /dev/null
py=.venv-sam/bin/python
# The SAM CLI on PATH, else the deploy venv's.
sam=$(command -v sam || echo "$root/.venv-sam/bin/sam")
export SAM="$sam"

echo "== checking $params against template.yaml"
mkdir -p target/deploy
topology_file="target/deploy/$(basename "$params" .json).topology.json"
if ! rendered=$("$py" tests/deploy/render_topology.py --params "$params"); then
  echo "deploy: $params is not a parameter set template.yaml accepts (the lines above say why)" >&2
  exit 2
fi
# The topology the functions will read (Region1's stack), for `multisite --topology`.
"$py" -c 'import json, sys; print(json.loads(sys.stdin.read())["topology"])' <<< "$rendered" > "$topology_file"

# The plan: the Regions in order, and the refusals, computed from the file and the deployed stacks.
plan=$("$py" - "$params" "$update" "$only" <<'PY'
import json, os, sys
import boto3, botocore.exceptions

params_file, update, only = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
wanted = {k: str(v) for k, v in json.load(open(params_file)).items()}
regions = [wanted[k] for k in ("Region1", "Region2", "Region3", "Region4") if wanted.get(k)]
if only and only not in regions:
    print(f"refuse --region {only} is not a Region of {params_file} ({', '.join(regions)})")
    sys.exit(0)

def deployed(region):
    cfn = boto3.client("cloudformation", region_name=region)
    try:
        stack = cfn.describe_stacks(StackName="multisite")["Stacks"][0]
    except botocore.exceptions.ClientError as e:
        if "does not exist" in str(e):
            return None
        raise
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}

differences = []
for region in regions:
    # With --region R, R is what changes: it must come to agree with the others.
    if only and region == only:
        continue
    current = deployed(region)
    if current is None:
        continue
    changed = sorted(k for k in wanted if current.get(k) != wanted[k])
    if changed:
        shown = ", ".join(f"{k}={current.get(k, '(unset)')!s} -> {wanted[k]}" for k in changed)
        differences.append(f"{region} runs other parameters: {shown}")
if differences and (only or not update):
    how = ("deploy the file to every Region in order: scripts/deploy.sh " + params_file + " --update"
           if not only else "a single Region must run what the others run: deploy every Region (--update) or fix the file")
    print("refuse " + "; ".join(differences) + f". Regions never run different parameters: {how}")
    sys.exit(0)
for region in ([only] if only else regions):
    print("deploy " + region)
PY
)
if grep -q '^refuse ' <<< "$plan"; then
  echo "deploy: ${plan#refuse }" >&2
  exit 1
fi

if [ "$build" = 1 ]; then
  echo "== make lambda-build (arm64 bootstraps, once for every Region)"
  make lambda-build
fi

done_regions=()
while read -r _ region; do
  echo "== sam deploy in $region"
  # One KEY=VALUE argument per parameter: values with spaces (alarm names) stay whole.
  if ! "$py" - "$params" "$region" <<'PY'
import json, os, subprocess, sys
params = json.load(open(sys.argv[1]))
region = sys.argv[2]
overrides = [f"{k}={v}" for k, v in params.items()]
cmd = [os.environ["SAM"], "deploy", "--config-file", "samconfig.toml", "--region", region, "--parameter-overrides", *overrides]
sys.exit(subprocess.call(cmd))
PY
  then
    echo "deploy: sam deploy failed in $region; done before it: ${done_regions[*]:-none}. Fix and run again (it is idempotent)." >&2
    exit 1
  fi
  done_regions+=("$region")
done <<< "$plan"
echo "== deployed to ${done_regions[*]}: check with \`target/debug/multisite --topology $topology_file status\`"
