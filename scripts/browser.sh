#!/usr/bin/env bash
# Install headless Chromium and its WebDriver from the Debian packages (chromium, chromium-driver) for the
# browser test of the HTML report (tests/test_report_browser.py). CI (.ci/run) runs this as root before
# scripts/test.sh; on your own machine run it once with root rights, or skip it: without a browser that
# test is skipped (it fails only under CI=true). Does nothing when both are installed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "chromium and chromedriver: installed ($(chromium --version 2>/dev/null | head -1))"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "scripts/browser.sh: installing chromium and chromium-driver needs root (apt-get); run it with sudo" >&2
  exit 1
fi
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "chromium and chromedriver installed in $(( $(date +%s) - start )) s: $(chromium --version | head -1)"
