#!/usr/bin/env bash
# Renders `sluice report` for a run with injected failures in a real headless browser and checks
# the result: a screenshot that is not blank and a DOM that holds the timeline.
#
#   bash scripts/report-screenshot.sh            # `make report-check` (after `make release`)
#
# Environment: SLUICE (binary, default .build/release/sluice), OUT (work folder, default
# out/report-check), SCREENSHOT (PNG path, default $OUT/report.png). Chromium is installed with
# apt-get when missing (as root, else with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

SLUICE=${SLUICE:-.build/release/sluice}
OUT=${OUT:-out/report-check}
SCREENSHOT=${SCREENSHOT:-$OUT/report.png}

[ -x "$SLUICE" ] || { echo "no $SLUICE: run 'make release' first (or set SLUICE)" >&2; exit 1; }

browser=""
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null 2>&1; then browser=$name; break; fi
done
if [ -z "$browser" ]; then
  echo "installing chromium"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  browser=chromium
fi

rm -rf "$OUT"
mkdir -p "$OUT" "$(dirname "$SCREENSHOT")"
OUT=$(cd "$OUT" && pwd)

# Six map tasks: one hangs (its worker is killed after 1 s), one crashes its worker, and one
# reduce task throws; all are retried, so the run succeeds with every recovery on the timeline.
"$SLUICE" gen text --size 24m --output "$OUT/words.txt" >/dev/null
"$SLUICE" run wordcount --input "$OUT/words.txt" --split-size 4m --workers 2 --output "$OUT/run" \
  --inject 'hang@0.2.0,crash@0.4.0,throw@1.1.0' --task-timeout 1 --quiet >/dev/null 2>"$OUT/run.log" \
  || { cat "$OUT/run.log" >&2; echo "the run failed" >&2; exit 1; }
"$SLUICE" report "$OUT/run" -o "$OUT/report.html"

chrome() { timeout 120 "$browser" --headless --disable-gpu --no-sandbox --disable-dev-shm-usage --hide-scrollbars "$@"; }
chrome --window-size=1400,1800 --screenshot="$SCREENSHOT" "file://$OUT/report.html" 2>"$OUT/chromium.log" \
  || { cat "$OUT/chromium.log" >&2; echo "chromium could not take the screenshot" >&2; exit 1; }
chrome --dump-dom "file://$OUT/report.html" >"$OUT/dom.html" 2>>"$OUT/chromium.log" \
  || { cat "$OUT/chromium.log" >&2; echo "chromium could not load the page" >&2; exit 1; }

size=$(wc -c <"$SCREENSHOT")
if [ "$size" -le 20000 ]; then
  echo "FAIL: the screenshot is only $size bytes (a blank page?): $SCREENSHOT" >&2; exit 1
fi
for needle in '<svg class="timeline"' '<svg class="dag"' 'class="bar failed'; do
  if ! grep -q "$needle" "$OUT/dom.html"; then
    echo "FAIL: the rendered page has no $needle ($OUT/dom.html)" >&2; exit 1
  fi
done
echo "report-check passed: $OUT/report.html, screenshot $SCREENSHOT ($size bytes)"
