#!/usr/bin/env bash
# Installs what the Ansible deployment tests need on a clean Debian bookworm machine (run as root, idempotent):
# the tools that boot the systemd test hosts, the controller-side Ansible, and the cached debootstrapped root that
# every test host is copied from (HAProxy, the load balancer, is installed inside that root, not on this machine).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

packages=(debootstrap systemd-container iproute2 openssh-client make)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
python3 -m pip install -r "$here/tests/requirements/ansible.txt"

# Building the root takes ~90 s once; later runs reuse the cache.
bash "$here/tests/hosts/build-root.sh"
