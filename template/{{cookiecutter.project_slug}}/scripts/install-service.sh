#!/bin/sh
# Install the service into a virtualenv: the Dockerfile's install step, and what the tests run without Docker.
# usage: scripts/install-service.sh WHEEL_DIR VENV_DIR [VERSION]
# WHEEL_DIR holds the service's wheel; wheels of its dependencies there too (the runtime's, before it is on an
# index; every one in the image's wheelhouse) are taken from it first. With VERSION, the wheel of that version is
# installed, or the install fails; without, the one wheel of the service in WHEEL_DIR. PIP_NO_INDEX=1 (the image
# build) installs from WHEEL_DIR alone.
set -eu
wheel_dir=${1:?usage: install-service.sh WHEEL_DIR VENV_DIR [VERSION]}
venv_dir=${2:?usage: install-service.sh WHEEL_DIR VENV_DIR [VERSION]}
version=${3:-}
dist={{ cookiecutter.project_slug.replace('-', '_') }}
if [ -n "$version" ]; then
    wheel="$wheel_dir/$dist-$version-py3-none-any.whl"
    if [ ! -f "$wheel" ]; then
        echo "install-service.sh: no wheel of version $version in $wheel_dir" >&2
        exit 1
    fi
else
    set -- "$wheel_dir/$dist"-*.whl
    if [ $# -ne 1 ] || [ ! -f "$1" ]; then
        echo "install-service.sh: want one wheel of $dist in $wheel_dir (or name its VERSION), found: $*" >&2
        exit 1
    fi
    wheel=$1
fi
python3 -m venv "$venv_dir"
# the service pins the runtime exactly and the runtime pins its dependencies, so this install is the same everywhere
"$venv_dir/bin/python" -m pip install --no-cache-dir --quiet --disable-pip-version-check \
    --find-links "$wheel_dir" "$wheel"
"$venv_dir/bin/{{ cookiecutter.project_slug }}" --version
