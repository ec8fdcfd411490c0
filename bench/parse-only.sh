#!/usr/bin/env bash
# Benchmark `promoter run --parse-only` on a generated tree shaped like
# registry.k8s.io (75 subprojects, 20,000 digests, 2.2 MB of YAML, 22
# destinations each: about 720,000 edges). Prints wall time and peak RSS per
# run, then the median and the worst.
#
#   bench/parse-only.sh [RUNS] [SCALE]
#
# Target (issue 2): under 300 ms wall and 150 MB peak RSS on a 2-core machine.
set -euo pipefail

runs="${1:-7}"
scale="${2:-1}"
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/time ]; then
    echo "installing GNU time (for peak RSS)..." >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y time >/dev/null
    else
        sudo apt-get install -y time >/dev/null
    fi
fi

cargo build --release --quiet --bin promoter --example gen_thin_tree
target_dir="$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
target_dir="${target_dir:-target}"
promoter="$target_dir/release/promoter"
generator="$target_dir/release/examples/gen_thin_tree"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$generator" "$work/tree" "$scale"

# One untimed run warms the page cache, as a CI checkout would be.
"$promoter" run --thin-manifest-dir "$work/tree" --parse-only 2>/dev/null

walls=()
rsss=()
for i in $(seq 1 "$runs"); do
    /usr/bin/time -v "$promoter" run --thin-manifest-dir "$work/tree" --parse-only \
        2>"$work/time.txt" >/dev/null || {
        cat "$work/time.txt" >&2
        echo "promoter failed on the generated tree" >&2
        exit 1
    }
    # "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:00.12"
    wall_ms="$(sed -n 's/.*Elapsed (wall clock).*: \(.*\)$/\1/p' "$work/time.txt" |
        awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%d", s * 1000 + 0.5 }')"
    rss_kb="$(sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$work/time.txt")"
    rss_mb=$(( (rss_kb + 512) / 1024 ))
    echo "run $i: ${wall_ms} ms wall, ${rss_mb} MB peak RSS"
    walls+=("$wall_ms")
    rsss+=("$rss_mb")
done

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
worst() { printf '%s\n' "$@" | sort -n | tail -1; }
echo "parse-only, scale $scale, $runs runs on $(nproc) cores:" \
    "median $(median "${walls[@]}") ms (worst $(worst "${walls[@]}") ms)," \
    "peak RSS median $(median "${rsss[@]}") MB (worst $(worst "${rsss[@]}") MB)"
