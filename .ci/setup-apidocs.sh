#!/usr/bin/env bash
# What tests/test_api_documents.py needs outside pip: the AsyncAPI CLI (npm), which validates the AsyncAPI document
# a bake serves. 4.1.1 is the newest release that runs on the machine's Node 20 (5.x and later need Node >= 24).
# Python tools (openapi-spec-validator, schemathesis): tests/requirements/apidocs.txt. Idempotent; run as root.
set -euo pipefail

ASYNCAPI_CLI_VERSION=4.1.1
PREFIX=/opt/asyncapi-cli-$ASYNCAPI_CLI_VERSION

if [ ! -x "$PREFIX/node_modules/.bin/asyncapi" ]; then
  command -v npm >/dev/null 2>&1 || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends nodejs npm
  }
  mkdir -p "$PREFIX"
  # its own prefix, not -g: nothing else's global modules are touched, and the version is in the path
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "@asyncapi/cli@$ASYNCAPI_CLI_VERSION"
fi
ln -sf "$PREFIX/node_modules/.bin/asyncapi" /usr/local/bin/asyncapi
# The CLI sends usage data unless its analytics file says no or CI=true: this machine reaches no such host, and
# nothing should try. tests/test_api_documents.py gives it its own file (ASYNCAPI_METRICS_CONFIG_PATH) as well.
CI=true asyncapi --version
