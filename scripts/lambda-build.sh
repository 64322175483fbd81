#!/usr/bin/env bash
# Builds one arm64 (Graviton) `bootstrap` per Lambda function with cargo-lambda, release profile:
#   target/lambda/<binary>/bootstrap      what template.yaml's CodeUri points at (sam build/deploy zip it)
#   target/lambda-zips/<binary>.zip        the same binary zipped, only to report the deployed size
# Every workspace member under functions/ with a binary target is built, in ONE cargo invocation, so
# features unify as in the workspace and the SDK crates compile once for all functions.
# Creates .venv-lambda (gitignored) with the pinned cargo-lambda + ziglang from PyPI, stamp-based like
# scripts/venv.sh. Prints a size table (and writes it to target/lambda/sizes.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv-lambda"
scripts/venv.sh "$venv" tests/deploy/requirements-lambda.txt
# cargo-lambda finds zig through `python3 -m ziglang`: the venv's python must come first.
export PATH="$venv/bin:$PATH"

target=aarch64-unknown-linux-gnu
if ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target"
fi

# The function binaries: workspace members under functions/ (a crate not yet in the workspace is
# skipped with a note) and their bin targets.
mapfile -t lines < <(cargo metadata --no-deps --format-version 1 --locked | python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
root = os.path.realpath(sys.argv[1])
for pkg in meta["packages"]:
    rel = os.path.relpath(os.path.realpath(pkg["manifest_path"]), root)
    if rel.startswith("functions" + os.sep):
        for t in pkg["targets"]:
            if "bin" in t["kind"]:
                print(pkg["name"], t["name"])
' "$root")
for manifest in functions/*/Cargo.toml; do
  dir=$(dirname "$manifest")
  name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -1)
  if ! printf '%s\n' "${lines[@]}" | grep -q "^$name "; then
    echo "note: $dir is not a workspace member (or has no binary) yet: skipped" >&2
  fi
done
if [ ${#lines[@]} -eq 0 ]; then
  echo "no function binaries found under functions/" >&2
  exit 1
fi
packages=()
bins=()
for line in "${lines[@]}"; do
  read -r pkg bin <<< "$line"
  packages+=(-p "$pkg")
  bins+=("$bin")
done

start=$(date +%s)
echo "== cargo lambda build --release --arm64 ${packages[*]}" >&2
# --lambda-dir: template.yaml's CodeUri is target/lambda/<fn>, also with CARGO_TARGET_DIR set.
cargo lambda build --release --arm64 --locked --lambda-dir target/lambda "${packages[@]}"
elapsed=$(( $(date +%s) - start ))

mkdir -p target/lambda-zips
python3 - "$elapsed" "${bins[@]}" <<'PY'
import os, sys, zipfile
elapsed, bins = sys.argv[1], sys.argv[2:]
rows = ["| function | bootstrap (bytes) | bootstrap | zip | arch |", "|---|---:|---:|---:|---|"]
failed = False
for b in bins:
    path = f"target/lambda/{b}/bootstrap"
    if not os.path.isfile(path):
        print(f"missing {path}", file=sys.stderr); failed = True; continue
    with open(path, "rb") as f:
        head = f.read(20)
    # ELF, 64-bit little endian, e_machine 183 = AArch64
    arch = "arm64" if head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183 else "NOT arm64"
    failed |= arch != "arm64"
    extra = [f for f in os.listdir(os.path.dirname(path)) if f != "bootstrap"]
    if extra:
        print(f"unexpected files next to {path} (they would be deployed too): {extra}", file=sys.stderr); failed = True
    zpath = f"target/lambda-zips/{b}.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as f:
            z.writestr(info, f.read(), compresslevel=9)
    size, zsize = os.path.getsize(path), os.path.getsize(zpath)
    rows.append(f"| {b} | {size} | {size/2**20:.1f} MiB | {zsize/2**20:.1f} MiB | {arch} |")
table = "\n".join(rows)
print(table)
print(f"built in {elapsed} s")
with open("target/lambda/sizes.md", "w") as f:
    f.write(table + f"\n\nbuild time: {elapsed} s\n")
sys.exit(1 if failed else 0)
PY
