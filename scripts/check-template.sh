#!/usr/bin/env bash
# Lints and checks template.yaml, offline:
#   1. cfn-lint with the serverless rules (cfn-lint-serverless): zero errors and zero warnings
#      (informational findings included); waivers live in the template, each with its reason;
#   2. sam validate --lint;
#   3. checkov on the template: no failed check (waivers in the template, each with a comment);
#   4. tests/deploy/render_topology.py on the sample parameter sets in tests/deploy/params/
#      (the Rust test tests/tests/template_topology.rs checks the result against the shared crate).
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
for params in tests/deploy/params/*.json; do
  case "$params" in
    *invalid*) if "$sam_venv/bin/python" tests/deploy/render_topology.py --params "$params" > /dev/null 2>&1; then
                 echo "   $params: accepted but should be rejected" >&2; exit 1
               fi
               echo "   $params: rejected, as it should be" ;;
    *) "$sam_venv/bin/python" tests/deploy/render_topology.py --params "$params" > /dev/null
       echo "   $params: rendered" ;;
  esac
done
echo "== template checks passed"
