#!/usr/bin/env bash
# `make bench`: every performance figure of the README's "Performance" section, measured side by
# side in one run on this machine, and the table between <!-- bench:start --> / <!-- bench:end -->
# regenerated. Slow (release builds with fat LTO; ~20-40 min on 2 busy cores) and noisy: not in CI
# (CI's `cargo test` runs every bench once, quickly, so they keep building).
#
#   1. release binaries of every function and of bench/hello (the hello-world baseline), one
#      workspace build so they share the profile, the lock and SDK feature unification;
#   2. criterion benches (in-process: alarm decoding, topology, failover planning, scaler math)
#      and the emulator benches (failover's critical path, lag-probe's cost); bench profile =
#      the release profile without LTO (see below);
#   3. bench/runner.py: cold start and peak RSS per binary through a loopback Runtime API, one
#      handled event each against the deployment `drill --setup-only` builds (the debug drill), and
#      sizes (arm64 bootstraps of scripts/lambda-build.sh when present, zipped here);
#   4. scripts/bench_report.py: the README table.
#
# Environment: BENCH_STARTS (cold starts per binary, default 21), BENCH_SKIP_BUILD=1 (reuse the
# binaries already built), BENCH_SKIP_CARGO_BENCH=1 (reuse target/bench + target/criterion),
# CARGO_TARGET_DIR (honoured throughout: a private one avoids waiting on others' build lock),
# BENCH_TARGET_DIR (target dir of the `cargo bench` step only, default <target>/bench-profile),
# BENCH_LAMBDA_DIR (arm64 bootstraps of scripts/lambda-build.sh, default target/lambda).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export AWS_EC2_METADATA_DISABLED=true
target="${CARGO_TARGET_DIR:-$root/target}"
out="$target/bench"
export CRITERION_HOME="$target/criterion"
mkdir -p "$out"
scripts/venv.sh

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  echo "== release build (all workspace binaries, incl. bench/hello)"
  # No `-p`: it would change SDK feature unification and rebuild everything. tools/drill is left
  # out: not a Lambda function, it enables no feature the functions do not (same unification), and
  # its own fat-LTO link of every SDK crate would add minutes.
  cargo build --workspace --exclude drill --release --locked --bins
fi

if [ "${BENCH_SKIP_CARGO_BENCH:-0}" != 1 ]; then
  echo "== cargo bench (criterion + emulator benches)"
  rm -rf "$out"/failover_critical_path.json "$out"/lag_probe_cost.json "$CRITERION_HOME"
  # The bench profile is the release profile (opt-level "s", panic unwind) without LTO and with
  # parallel codegen: fat LTO of four bench binaries that each link the SDK would add ~20 min on
  # 2 cores, for in-process figures that cross-crate LTO barely moves. The process-level figures
  # below use the real release binaries. BENCH_TARGET_DIR: a separate target dir for this step.
  # Its own target dir: the bench profile writes to `release/` too, and building the benches
  # builds their package's binaries, which would overwrite the fat-LTO release binaries measured
  # below with no-LTO ones (twice the size, slower to start).
  CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$target/bench-profile}" CARGO_PROFILE_BENCH_LTO=off CARGO_PROFILE_BENCH_CODEGEN_UNITS=16 \
    MULTISITE_BENCH_OUT="$out" cargo bench --workspace --exclude drill --locked \
    --bench failover_inprocess --bench scaler_capacity \
    --bench failover_critical_path --bench lag_probe_cost
fi

echo "== the drill (the test build: a no-op after make test), which builds the runner's deployment"
cargo build --workspace --all-targets --locked

echo "== process-level runner (init, peak RSS, sizes)"
.venv/bin/python bench/runner.py --starts "${BENCH_STARTS:-21}" --release-dir "$target/release" \
  --lambda-dir "${BENCH_LAMBDA_DIR:-$root/target/lambda}" --out "$out/process.json"

echo "== README table"
python3 scripts/bench_report.py --bench-dir "$out" --criterion-dir "$CRITERION_HOME" --readme README.md
