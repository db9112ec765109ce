#!/usr/bin/env bash
# Debian's chromium drives kaleido exports and the browser tests. Install it when missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium (browser tests and static exports need it)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "chromium is missing: install it (Debian/Ubuntu: sudo apt-get install -y chromium)" >&2
  exit 1
fi
