#!/bin/sh
# Install the service into a virtualenv: the Dockerfile's install step, and what the tests run without Docker.
# usage: scripts/install-service.sh WHEEL_DIR VENV_DIR
# WHEEL_DIR holds the service's wheel; wheels of its dependencies there too (the runtime's, before it is on an
# index) are taken from it first.
set -eu
wheel_dir=${1:?usage: install-service.sh WHEEL_DIR VENV_DIR}
venv_dir=${2:?usage: install-service.sh WHEEL_DIR VENV_DIR}
python3 -m venv "$venv_dir"
# the service pins the runtime exactly and the runtime pins its dependencies, so this install is the same everywhere
"$venv_dir/bin/python" -m pip install --no-cache-dir --quiet --find-links "$wheel_dir" "$wheel_dir"/{{ cookiecutter.project_slug.replace('-', '_') }}-*.whl
"$venv_dir/bin/{{ cookiecutter.project_slug }}" --version
