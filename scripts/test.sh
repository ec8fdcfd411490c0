#!/usr/bin/env bash
# The test command README.md gives and .ci/run runs: install what the tests
# need (the real registry and skopeo), then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo test --locked
