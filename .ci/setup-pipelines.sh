#!/usr/bin/env bash
# Installs what tests/test_pipelines_*.py need outside pip: npm-groovy-lint (Node) and the Java it runs CodeNarc
# with. Idempotent: does nothing when the pinned version is already there. Runs as root.
set -euo pipefail

NPM_GROOVY_LINT_VERSION="16.2.0"

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=yes
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

command -v node >/dev/null 2>&1 || apt_install nodejs
command -v npm >/dev/null 2>&1 || apt_install npm
# CodeNarc, the engine of npm-groovy-lint, is Java.
command -v java >/dev/null 2>&1 || apt_install default-jre-headless

installed="$(npm ls -g --depth=0 --json 2>/dev/null | python3 -c '
import json, sys
deps = json.load(sys.stdin).get("dependencies", {})
print(deps.get("npm-groovy-lint", {}).get("version", ""))' || true)"
if [ "$installed" != "$NPM_GROOVY_LINT_VERSION" ]; then
    npm install -g --no-audit --no-fund "npm-groovy-lint@$NPM_GROOVY_LINT_VERSION"
fi
# Not `npm-groovy-lint --version`: without --noserver that starts a CodeNarc server which outlives this script.
npm ls -g --depth=0 npm-groovy-lint
