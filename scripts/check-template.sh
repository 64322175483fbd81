#!/usr/bin/env bash
# Lints and checks template.yaml, offline:
#   1. cfn-lint with the serverless rules (cfn-lint-serverless): zero errors and zero warnings
#      (informational findings included); waivers live in the template, each with its reason;
#   2. sam validate --lint;
#   3. checkov on the template: no failed check (waivers in the template, each with a comment);
#   4. tests/deploy/render_topology.py on the sample parameter sets in tests/deploy/params/: the
#      valid ones render a well-formed topology JSON (arc-*.json with RoutingBackend=arc: "backend"
#      "arc" and the "arc" block; ArcResources=create: the ARC resources of the Region1 stack), the
#      invalid-*.json ones are refused (the Rust test tests/tests/template_topology.rs checks the
#      results against the shared crate);
#   5. tests/deploy/topology_size.py: the largest topology the parameters allow fits its SSM
#      parameter (8 KB) and every function's environment fits Lambda's 4 KB.
# Each tool lives in a venv under the repository (gitignored), created from pinned requirements and
# reused while the requirements' checksum (stamp) is unchanged, like scripts/venv.sh:
#   .venv-sam      aws-sam-cli, cfn-lint, cfn-lint-serverless (tests/deploy/requirements-sam.txt)
#   .venv-checkov  checkov, which pins an older boto3 than SAM (tests/deploy/requirements-checkov.txt)
# `scripts/check-template.sh venv` only creates .venv-sam and prints its python (for the Rust test).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

ensure_venv() { # <venv dir> <requirements file>
  scripts/venv.sh "$1" "$2"
}

# Offline and quiet: no telemetry, no AWS credentials or instance metadata needed.
export SAM_CLI_TELEMETRY=0 AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1
export BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false

sam_venv="$root/.venv-sam"
ensure_venv "$sam_venv" tests/deploy/requirements-sam.txt
if [ "${1:-}" = venv ]; then
  echo "$sam_venv/bin/python"
  exit 0
fi
checkov_venv="$root/.venv-checkov"
ensure_venv "$checkov_venv" tests/deploy/requirements-checkov.txt

echo "== cfn-lint $("$sam_venv/bin/cfn-lint" --version | awk '{print $2}') + serverless rules (errors, warnings, informational)"
"$sam_venv/bin/cfn-lint" template.yaml --append-rules cfn_lint_serverless.rules --include-checks I
echo "   no findings"

echo "== sam validate --lint ($("$sam_venv/bin/sam" --version))"
"$sam_venv/bin/sam" validate --lint --region us-east-1 --template-file template.yaml

echo "== checkov $("$checkov_venv/bin/checkov" --version)"
"$checkov_venv/bin/checkov" -f template.yaml --framework cloudformation --compact --quiet --skip-download

echo "== render_topology.py on tests/deploy/params/*.json"
rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
for params in tests/deploy/params/*.json; do
  case "$params" in
    *invalid*) if "$sam_venv/bin/python" tests/deploy/render_topology.py --params "$params" > /dev/null 2>&1; then
                 echo "   $params: accepted but should be rejected" >&2; exit 1
               fi
               echo "   $params: rejected, as it should be" ;;
    *) "$sam_venv/bin/python" tests/deploy/render_topology.py --params "$params" > "$rendered"
       "$sam_venv/bin/python" - "$params" "$rendered" <<'PY'
import json, sys
params, out = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
topology = json.loads(out["topology"])  # well-formed JSON
routing, created = topology["routing"], out["arc_resources"]
what = "health_check"
if params.get("RoutingBackend") == "arc":
    arc = routing["arc"]
    assert routing["backend"] == "arc" and len(arc["cluster_endpoints"]) == 5, routing
    assert sorted(arc["routing_controls"]) == sorted(c["region"] for c in topology["cells"]), routing
    assert arc["safety_rule"]["at_least"] == topology["failover_policy"]["min_healthy_regions"], routing
    what = "arc"
else:
    assert "backend" not in routing and "arc" not in routing, routing
if params.get("ArcResources") == "create":
    cells = len(topology["cells"])
    assert len(created) == 3 + 2 * cells, sorted(created)
    what += ", creates the ARC resources"
else:
    assert created == {}, sorted(created)
print(f"   {sys.argv[1]}: rendered ({what})")
PY
       ;;
  esac
done
echo "== topology_size.py: the largest topology and environments the parameters allow"
"$sam_venv/bin/python" tests/deploy/topology_size.py
echo "== template checks passed"
