#!/usr/bin/env bash
# Installs what the test suite and benchmarks need on a fresh Debian machine:
# the CNCF Distribution registry (the real server the tests run against),
# skopeo (the independent client tests verify with), podman (the second
# client of tests/it/clients.rs, which reads oci: trees), GNU time (peak RSS) and
# kubernetes-validate (the deployment files' schema check).
set -euo pipefail

# The Kubernetes API schema validator for deploy/kubernetes (tests/it/deploy.rs),
# from PyPI, pinned.
KUBERNETES_VALIDATE=1.37.0
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "installing: kubernetes-validate $KUBERNETES_VALIDATE (pip)" >&2
  python3 -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE" >&2
fi

missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v podman >/dev/null 2>&1 || missing+=(podman)
[ -x /usr/bin/time ] || missing+=(time)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "installing: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package may start a registry service on :5000; the tests start
# their own on free loopback ports and need nothing else running.
