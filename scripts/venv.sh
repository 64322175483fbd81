#!/usr/bin/env bash
# Creates a Python venv from pinned requirements; every venv of the repository comes from here:
#   scripts/venv.sh                                  .venv, the emulator's (tests/emulator/requirements.txt)
#   scripts/venv.sh <venv dir> <requirements file>   the tool venvs (.venv-lambda, .venv-sam, ...)
# Idempotent: a venv whose stamp matches the requirements' checksum is reused, so repeated runs
# skip the install. One creator at a time (tests and scripts may ask for the same venv at once).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$root/.venv}
requirements=${2:-$root/tests/emulator/requirements.txt}
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "creating $venv from $requirements" >&2
rm -rf "$venv"
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
echo "$want" > "$stamp"
