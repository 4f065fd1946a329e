#!/usr/bin/env bash
# Sets up what the tests need on a fresh Debian machine (as root, or with sudo) and runs
# them. Idempotent: what is already installed is not installed again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
# CAP messages are validated against the OASIS CAP 1.2 schema (tests/rendered.rs).
command -v xmllint >/dev/null 2>&1 || need_apt+=(libxml2-utils)
# The console's browser test (tests/e2e_console.rs): headless Chromium over WebDriver, and a
# CJK font so its screenshots are readable.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || need_apt+=(fonts-wqy-zenhei)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing ${need_apt[*]} (end-to-end tests run a real broker and a browser; CAP is checked with xmllint)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  echo "installing aiosmtpd (end-to-end tests run a real SMTP server)"
  python3 -m pip install -q aiosmtpd 2>/dev/null \
    || python3 -m pip install -q --break-system-packages aiosmtpd \
    || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-aiosmtpd >/dev/null; }
fi

cargo test --locked "$@"

# Issue 9: kill, broker restart, SMTP hang and flood against the binary just built;
# fails unless nothing is lost, duplicated or resurrected (about a minute).
python3 scripts/fault_injection.py --bin target/debug/yingji
