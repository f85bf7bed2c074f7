#!/bin/sh
# Writes VERSION as service_version into an environment file of deploy/environments/ (the GitOps desired state).
# Usage: promote.sh ENV_FILE VERSION
set -eu
env_file="$1"
version="$2"
if [ -z "$version" ]; then
    echo "promote: give the version, e.g. make promote ENV=production VERSION=1.2.3" >&2
    exit 2
fi
# A PEP 440 version has only these characters; refusing others keeps the sed expression below safe.
if ! printf '%s' "$version" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9.+!_-]*$'; then
    echo "promote: '$version' is not a version" >&2
    exit 2
fi
if [ ! -f "$env_file" ]; then
    known=""
    for file in "$(dirname "$env_file")"/*.yml; do
        [ -f "$file" ] && known="$known $(basename "$file" .yml)"
    done
    echo "promote: $env_file does not exist (ENV names a file in deploy/environments/; there are:${known:- none})" >&2
    exit 2
fi
if ! grep -Eq '^service_version:' "$env_file"; then
    echo "promote: $env_file has no service_version line" >&2
    exit 2
fi
tmp="$env_file.tmp.$$"
sed -E "s/^service_version:.*/service_version: \"$version\"/" "$env_file" >"$tmp"
mv "$tmp" "$env_file"
echo "promote: $env_file now wants $version; commit it so the pipeline deploys it"
