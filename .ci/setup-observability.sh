#!/usr/bin/env bash
# What tests/test_observability.py needs outside pip: Debian's Prometheus (the server and promtool) and its
# blackbox exporter (the readiness probe of /readyz). The packages do not start a server here; the tests start
# their own on 127.0.0.1 and stop them by PID. Idempotent; run as root.
set -euo pipefail

missing=()
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-blackbox-exporter >/dev/null 2>&1 || missing+=(prometheus-blackbox-exporter)
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  # other setup scripts may hold the dpkg lock: wait for it instead of failing
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
fi
promtool --version 2>&1 | head -n 1
prometheus-blackbox-exporter --version 2>&1 | head -n 1
