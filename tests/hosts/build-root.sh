#!/usr/bin/env bash
# Builds (once) the Debian bookworm root that every systemd test host is copied from, and caches it.
# Idempotent: an existing complete root is kept. Needs root, debootstrap and the Debian mirror.
set -euo pipefail
cache_dir="${CES_HOST_CACHE:-/var/cache/cookiecutter-event-service}"
root="$cache_dir/bookworm-root"
# Bump when the package list changes so an old cached root is rebuilt rather than silently reused.
root_revision=2
stamp="$root/.ces-root-revision"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$root_revision" ]]; then
    exit 0
fi
mkdir -p "$cache_dir"
exec 9>"$cache_dir/build.lock"
flock 9
if [[ -f "$stamp" && "$(cat "$stamp")" == "$root_revision" ]]; then
    exit 0  # another process built it while we waited for the lock
fi

building="$root.building"
rm -rf "$building" "$root"
# python3-venv: the role builds one virtualenv per release; python3-apt: ansible's apt module on the balancer;
# haproxy: the example load balancer (the hosts have no internet, so it must be in the image).
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,python3,python3-venv,python3-apt,iproute2,openssh-server,haproxy,procps \
    bookworm "$building" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

# haproxy runs only where the load-balancer role configures it; sshd accepts root keys only.
rm -f "$building/etc/systemd/system/multi-user.target.wants/haproxy.service"
mkdir -p "$building/root/.ssh"
chmod 700 "$building/root/.ssh"
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n' \
    >"$building/etc/ssh/sshd_config.d/ces-test.conf"
# Units that wait for hardware or a console that a container does not have only slow the boot down.
for unit in systemd-networkd-wait-online.service getty@tty1.service console-getty.service; do
    ln -sf /dev/null "$building/etc/systemd/system/$unit"
done
echo "$root_revision" >"$building/.ces-root-revision"
mv "$building" "$root"
