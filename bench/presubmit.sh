#!/usr/bin/env bash
# Benchmark the presubmit of a promotion PR: `promoter run --parse-only
# --base REV` on a generated registry.k8s.io-shaped tree (see
# bench/parse-only.sh) kept in git, with a realistic change on top of the
# base commit: a few images added, one removed. Both revisions are parsed
# and compared edge by edge. Prints wall time and peak RSS per run, then
# the median and the worst.
#
#   bench/presubmit.sh [RUNS] [SCALE]
#
# Also times `--parse-only` alone on the same tree in the same run, and
# prints the ratios. Targets: under 1 s on a 2-core machine (issue 12);
# within 3x the time and 2x the memory of --parse-only (issue 22).
set -euo pipefail

runs="${1:-7}"
scale="${2:-1}"
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/time ]; then
    echo "installing GNU time (for peak RSS)..." >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y time >/dev/null; else sudo apt-get install -y time >/dev/null; fi
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
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git -C "$work/tree" init -q .
git -C "$work/tree" add -A
git -C "$work/tree" -c user.name=bench -c user.email=bench@example.invalid commit -qm base

# The change: three images added to the first images file, the last image
# of the second one removed.
mapfile -t files < <(find "$work/tree/images" -name images.yaml | sort)
for i in 1 2 3; do
    hex="$(printf 'bench-added-%s' "$i" | sha256sum | cut -c1-64)"
    printf -- '- name: bench-added-%s\n  dmap:\n    "sha256:%s": ["v%s"]\n' "$i" "$hex" "$i" >>"${files[0]}"
done
last_image_line="$(grep -n '^- name:' "${files[1]}" | tail -1 | cut -d: -f1)"
head -n "$((last_image_line - 1))" "${files[1]}" >"$work/cut" && mv "$work/cut" "${files[1]}"
echo "change: $(git -C "$work/tree" diff --shortstat)"

args=(run --thin-manifest-dir "$work/tree" --parse-only --base HEAD --allow-removals)
"$promoter" "${args[@]}" 2>/dev/null || true # warm the page cache

# One timed run of promoter with "$@": sets wall_ms and rss_mb.
timed() {
    /usr/bin/time -v "$promoter" "$@" 2>"$work/time.txt" >/dev/null || {
        cat "$work/time.txt" >&2
        echo "promoter failed" >&2
        exit 1
    }
    wall_ms="$(sed -n 's/.*Elapsed (wall clock).*: \(.*\)$/\1/p' "$work/time.txt" |
        awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%d", s * 1000 + 0.5 }')"
    rss_kb="$(sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$work/time.txt")"
    rss_mb=$(((rss_kb + 512) / 1024))
}

walls=()
rsss=()
plain_walls=()
plain_rsss=()
for i in $(seq 1 "$runs"); do
    timed run --thin-manifest-dir "$work/tree" --parse-only
    plain_walls+=("$wall_ms")
    plain_rsss+=("$rss_mb")
    timed "${args[@]}"
    grep -q "warning: .* is no longer promoted" "$work/time.txt" || {
        echo "the removal was not reported" >&2
        exit 1
    }
    echo "run $i: --base ${wall_ms} ms wall, ${rss_mb} MB peak RSS; --parse-only ${plain_walls[-1]} ms, ${plain_rsss[-1]} MB"
    walls+=("$wall_ms")
    rsss+=("$rss_mb")
done

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
worst() { printf '%s\n' "$@" | sort -n | tail -1; }
findings="$(grep -c ': warning: ' "$work/time.txt" || true)"
echo "presubmit --base, scale $scale, $runs runs on $(nproc) cores:" \
    "median $(median "${walls[@]}") ms (worst $(worst "${walls[@]}") ms)," \
    "peak RSS median $(median "${rsss[@]}") MB (worst $(worst "${rsss[@]}") MB), $findings finding line(s)"
echo "--parse-only alone: median $(median "${plain_walls[@]}") ms, peak RSS median $(median "${plain_rsss[@]}") MB"
awk -v a="$(median "${walls[@]}")" -v b="$(median "${plain_walls[@]}")" \
    -v c="$(median "${rsss[@]}")" -v d="$(median "${plain_rsss[@]}")" \
    'BEGIN { printf "ratio --base / --parse-only: %.2fx time, %.2fx memory\n", a / (b > 0 ? b : 1), c / (d > 0 ? d : 1) }'
