#!/bin/sh
# Install the service into a virtualenv: the Dockerfile's install step, and what the tests run without Docker.
# usage: scripts/install-runtime.sh WHEEL_DIR VENV_DIR
set -eu
wheel_dir=${1:?usage: install-runtime.sh WHEEL_DIR VENV_DIR}
venv_dir=${2:?usage: install-runtime.sh WHEEL_DIR VENV_DIR}
python3 -m venv "$venv_dir"
# the wheel pins every runtime dependency, so this install is the same on every machine
"$venv_dir/bin/python" -m pip install --no-cache-dir --quiet "$wheel_dir"/*.whl
"$venv_dir/bin/{{ cookiecutter.project_slug }}" --version
