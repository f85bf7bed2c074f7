#!/usr/bin/env bash
# Non-pip tools the load-test tests and the benchmark need: wrk (load generator), taskset (CPU pinning) and valgrind
# (app_cost.py's instruction counts).
# Idempotent; run as root before the tests. Python packages: tests/requirements/loadtests.txt.
set -euo pipefail

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)  # app_cost.py --callgrind
command -v curl >/dev/null 2>&1 || missing+=(curl)  # tests/test_adversarial_clients.py: curl is one of the clients
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  # other setup scripts may hold the dpkg lock: wait for it instead of failing
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
fi
wrk -v 2>&1 | head -n 1 || true
