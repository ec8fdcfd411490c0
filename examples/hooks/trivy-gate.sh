#!/bin/sh
# A promoter gate (`--gate 'sh examples/hooks/trivy-gate.sh'`): refuse any
# image with a HIGH or CRITICAL vulnerability that has a fix. promoter gives
# the source reference in $PROMOTER_SOURCE (REGISTRY/IMAGE@DIGEST) and the
# whole JSON document on stdin; exit 0 admits, anything else refuses, and the
# first line on stderr is the reason the plan shows.
set -eu
cat >/dev/null # the JSON document; this gate needs only the reference
if ! trivy image --quiet --exit-code 1 --ignore-unfixed \
    --severity "${SEVERITY:-HIGH,CRITICAL}" "$PROMOTER_SOURCE" >&2; then
    echo "trivy: fixable ${SEVERITY:-HIGH,CRITICAL} vulnerabilities in $PROMOTER_SOURCE" >&2
    exit 1
fi
