#!/bin/sh
# A promoter gate: admit only images signed in staging by the release key.
#   promoter run ... --gate 'sh examples/hooks/cosign-verify-gate.sh' \
#       --hook-env COSIGN_PUBLIC_KEY
set -eu
cat >/dev/null
if ! cosign verify --key "${COSIGN_PUBLIC_KEY:?set COSIGN_PUBLIC_KEY}" \
    "$PROMOTER_SOURCE" >/dev/null 2>&1; then
    echo "no valid staging signature on $PROMOTER_SOURCE" >&2
    exit 1
fi
