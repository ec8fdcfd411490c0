#!/bin/sh
# A promoter after-promote step: sign each promoted digest in its
# destination, by digest, before its tags are written. Keyless in CI (an
# OIDC token from the CI provider), or with a key:
#   promoter run ... --confirm --after-promote 'sh examples/hooks/cosign-sign.sh' \
#       --hook-env COSIGN_KEY --hook-env COSIGN_PASSWORD
# The step runs again on the next run for a digest whose signing failed
# (its tags are only written once this succeeds). A second signature of a
# digest already signed grows its `.sig` manifest in the destination:
# sign once per digest (promoter runs this step once per promoted digest).
set -eu
cat >/dev/null
if [ -n "${COSIGN_KEY:-}" ]; then
    exec cosign sign --yes --key "$COSIGN_KEY" "$PROMOTER_REFERENCE"
fi
exec cosign sign --yes "$PROMOTER_REFERENCE"
