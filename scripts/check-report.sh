#!/usr/bin/env bash
# The drill's HTML report, rendered and checked in a real headless browser:
#   scripts/check-report.sh              runs the drill with --html target/drill/report.html, then
#                                        checks that page
#   scripts/check-report.sh FILE         checks an existing page (e.g. the one `make drill` wrote)
#   scripts/check-report.sh --self-test  the checker itself: it must pass tests/report/good.html and
#                                        fail bad-js-error.html (an uncaught exception) and
#                                        bad-no-data.html (a chart without data), each for its fault
# The check (scripts/check_report.py, over the Chrome DevTools Protocol): the page loads with no
# console error, uncaught exception or error log entry; every chart of the drill's series exists
# once and holds data points and markers; the screenshot goes to target/drill/report.png.
# Chromium is Debian's package, installed when missing (apt-get, no recommends: the browser only);
# the DevTools client is websocket-client, pinned in tests/report/requirements.txt, in .venv-report.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
chromium=${CHROMIUM:-chromium}
series=dns-share,writer,capacity,lag

if ! command -v "$chromium" > /dev/null; then
  if ! command -v apt-get > /dev/null; then
    echo "check-report: no $chromium and no apt-get to install it; set CHROMIUM to a Chromium binary" >&2
    exit 2
  fi
  echo "== installing chromium (Debian package, --no-install-recommends)"
  started=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium > /dev/null
  echo "   $(chromium --version 2> /dev/null) installed in $(( $(date +%s) - started )) s"
  chromium=chromium
fi
venv="$root/.venv-report"
scripts/venv.sh "$venv" tests/report/requirements.txt
py="$venv/bin/python"
export CHROMIUM="$chromium"

if [ "${1:-}" = --self-test ]; then
  echo "== check-report self-test (tests/report/)"
  "$py" scripts/check_report.py tests/report/good.html || {
    echo "check-report self-test: tests/report/good.html should pass" >&2; exit 1; }
  for case in "bad-js-error.html:uncaught exception" "bad-no-data.html:no data points"; do
    page="tests/report/${case%%:*}" fault="${case#*:}"
    status=0
    out=$("$py" scripts/check_report.py "$page" 2>&1) || status=$?
    echo "$out"
    if [ "$status" -ne 1 ] || ! grep -q "FAIL .*$fault" <<< "$out"; then
      echo "check-report self-test: $page should fail (exit 1) with \"$fault\"; exit $status" >&2
      exit 1
    fi
    echo "   $page failed for \"$fault\", as it should"
  done
  exit 0
fi

page=${1:-}
if [ -z "$page" ]; then
  page=target/drill/report.html
  echo "== the drill, with --html $page"
  make drill DRILL_ARGS="--html $page"
fi
echo "== check-report: $page in headless $("$chromium" --version 2> /dev/null)"
mkdir -p target/drill
"$py" scripts/check_report.py "$page" --expect-series "$series" --screenshot target/drill/report.png
