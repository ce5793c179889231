#!/usr/bin/env bash
# Test prerequisites that are not Python packages, from Debian's packages: a headless Chromium
# (dashboard and report browser tests), poppler-utils (PDF report pages to images), a CJK font
# (Chinese labels in charts) and Pango (WeasyPrint, PDF reports).  Installed only where we may
# (root with apt-get); elsewhere the tests that need them skip with a clear reason.
set -u
need=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
fc-list :lang=zh 2>/dev/null | grep -q . || need+=(fonts-wqy-microhei)
ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0 || need+=(libpangoft2-1.0-0)  # PDF reports
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian packages for the browser/PDF tests: ${need[*]}" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null) \
    || echo "Could not install ${need[*]}; the tests that need them will be skipped." >&2
else
  echo "Not root or no apt-get: ${need[*]} missing; the tests that need them will be skipped." >&2
fi
exit 0
