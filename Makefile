# multisite: the commands a newcomer needs. See README.md.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Never let the SDK probe the instance-metadata address on a developer machine or CI.
export AWS_EC2_METADATA_DISABLED := true

.PHONY: test test-emulator test-rust venv venv-sam emulator fmt

## The full test suite on a fresh machine: venv + emulator self-tests + every Rust test.
test: venv test-emulator test-rust

## The venvs, from pinned requirements and reused while unchanged: .venv for the emulator;
## .venv-sam (SAM CLI, cfn-lint) for the template tests. Prepared before the tests run: `cargo
## test` installs nothing.
venv:
	@scripts/venv.sh

venv-sam:
	@scripts/check-template.sh venv > /dev/null

test-emulator: venv
	cd tests/emulator && ../../$(PY) -m pytest -q -p no:cacheprovider

test-rust: venv venv-sam
	cargo test --workspace --locked

## Run the local AWS emulator in the foreground (port 4566) to explore it with the AWS CLI or SDKs.
emulator: venv
	cd tests/emulator && ../../$(PY) -m multisite_emulator --host 127.0.0.1 --port 4566

fmt:
	cargo fmt --all

.PHONY: check-template lambda-build

## Check template.yaml offline: cfn-lint (+ serverless rules), sam validate --lint, checkov, and the
## Parameters -> topology rendering of tests/deploy/params/ (pinned tools in .venv-sam/.venv-checkov).
check-template:
	scripts/check-template.sh

## Build one arm64 `bootstrap` per function into target/lambda/<function>/ (cargo-lambda, release
## profile), the CodeUri of each function in template.yaml; prints bootstrap and zip sizes.
lambda-build:
	scripts/lambda-build.sh

.PHONY: bench

## Performance: cold start vs a hello-world Lambda, peak RSS, sizes, failover's critical path and
## lag-probe's cost, measured side by side in one run; rewrites the README's Performance table.
## Slow (release builds) and noise-sensitive: not part of CI (CI's `cargo test` runs each bench once).
bench: venv
	scripts/bench.sh

.PHONY: drill lambda-invoke-test check-report

## The drill: a disaster-recovery game day against a fresh local emulator (3 Regions, us-east-1
## fails), with a timeline, measured RTO/RPO figures and PASS/FAIL checks; exits non-zero on a FAIL.
## Options: make drill DRILL_ARGS="--planned --replication-delay-ms 800 --json=drill.json" (see
## `target/debug/drill --help`). The build is `--all-targets`: the same features as `cargo test
## --workspace` (dev-dependencies turn on the SDK's test-util), so drill and tests share one build.
drill: venv
	cargo build --workspace --all-targets --locked
	$${CARGO_TARGET_DIR:-target}/debug/drill $(DRILL_ARGS)

## The drill's HTML report (`drill --html FILE`) in headless Chromium (Debian's package, installed
## when missing): first the checker's self-test (it must fail tests/report/'s page with a JS error
## and its page with an empty chart), then the page: it loads with no console error or exception,
## each chart holds data; screenshot in target/drill/report.png. REPORT=FILE checks that page (CI:
## the one `make drill` wrote); without it the drill runs first, with --html target/drill/report.html.
check-report:
	scripts/check-report.sh --self-test
	scripts/check-report.sh $(REPORT)

## The function binaries (the test build's, x86-64) as bootstraps under cargo-lambda's Runtime API
## emulator, each as its template.yaml role, invoked with its events/ files against a deployment
## the drill builds in the emulator.
lambda-invoke-test: venv
	scripts/lambda-invoke-test.sh
