#!/usr/bin/env bash
# What tests/test_container.py needs outside pip (podman-compose is in tests/requirements/template.txt): podman with
# runc as its runtime (Debian's crun fails on this machine's cgroups), the docker CLI that `make image` runs against
# podman's socket, and the cached Debian root that the test's local base image is imported from (no container
# registry is reachable). Idempotent; run as root.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

packages=(podman runc debootstrap)
# the docker CLI only (Debian's docker.io also brings an engine, which the test does not use): install it only
# where the machine has no docker client of its own
command -v docker >/dev/null 2>&1 || packages+=(docker.io)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    # other setup scripts may hold the dpkg lock: wait for it instead of failing
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
fi
podman --version
docker --version

# the root is shared with the Ansible host tests: ~90 s once, then cached
bash "$here/tests/hosts/build-root.sh"
