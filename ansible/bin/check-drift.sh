#!/bin/sh
# Runs the deploy playbook in --check --diff mode and fails when any host would change: the drift check.
# ansible-playbook itself exits 0 whatever --check finds, so the recap's changed= counts decide.
# Usage: check-drift.sh INVENTORY PLAYBOOK [ansible-playbook options...]
set -eu
inventory="$1"
playbook="$2"
shift 2
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
${ANSIBLE_PLAYBOOK:-ansible-playbook} -i "$inventory" "$playbook" --check --diff "$@" >"$log" 2>&1 || status=$?
cat "$log"
if [ "$status" -ne 0 ]; then
    echo "drift check: ansible-playbook failed (exit $status)" >&2
    exit "$status"
fi
if grep -Eq '^[^ ].* : ok=[0-9]+ +changed=[1-9]' "$log"; then
    echo "drift check: the hosts differ from what git describes (see the changes above)" >&2
    exit 3
fi
echo "drift check: no drift"
