#!/usr/bin/env bash
# Run one fuzz target for N minutes (outside CI):
#
#   fuzz/run.sh manifest_loader 10
#
# Uses `cargo fuzz` when it and a nightly toolchain are installed; otherwise
# builds the target with the same instrumentation by hand (libFuzzer from the
# libfuzzer-sys crate), on nightly when installed, else on the default
# (stable) toolchain, which is all a fresh machine has. Crashes land in
# fuzz/artifacts/TARGET/: add each as a regression test next to the code it
# broke, then fix it. See fuzz/README.md.
set -euo pipefail
target="${1:?usage: fuzz/run.sh TARGET MINUTES}"
minutes="${2:-5}"
cd "$(dirname "$0")"
mkdir -p "corpus/$target" "artifacts/$target"

# Committed seeds (tiny, hand-written) start every run; the corpus the
# fuzzer grows stays in corpus/TARGET, outside git.
if [ -d "seeds/$target" ]; then
    cp seeds/"$target"/* "corpus/$target/"
fi
# Seed the loader with every manifest of the golden corpus.
if [ "$target" = manifest_loader ]; then
    find ../testdata/manifests -name '*.yaml' -size -64k -exec cp {} "corpus/$target/" \; 2>/dev/null || true
fi

toolchain=()
if rustc +nightly -V >/dev/null 2>&1; then
    toolchain=(+nightly)
fi

if [ ${#toolchain[@]} -gt 0 ] && cargo fuzz --help >/dev/null 2>&1; then
    exec cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time=$((minutes * 60)) -artifact_prefix="artifacts/$target/"
fi

export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros.
host="$(rustc "${toolchain[@]}" -vV | sed -n 's/^host: //p')"
cargo "${toolchain[@]}" build --release --locked --target "$host" --bin "$target"
exec "${CARGO_TARGET_DIR:-target}/$host/release/$target" "corpus/$target" \
    -max_total_time=$((minutes * 60)) -artifact_prefix="artifacts/$target/" -max_len=65536
