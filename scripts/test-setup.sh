#!/usr/bin/env bash
# Test prerequisites that are not Python packages: a headless Chromium for the dashboard's
# browser tests (Debian's package).  Installed only where we may (root with apt-get); elsewhere
# the browser tests skip with a clear reason.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "Could not install chromium; browser tests will be skipped." >&2
fi
exit 0
