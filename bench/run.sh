#!/usr/bin/env bash
# The benchmark suite against skopeo (issue 6 §1, issue 5 §7). Not part of the
# test suite. One command from a fresh clone:
#
#   bench/run.sh                 # everything: floor a b c d e f big parse snap
#   bench/run.sh a c             # only some parts
#
# Parts:
#   floor       what one request of each kind costs the registry (CPU, and
#               requests/s at 4 in flight): the floor under the numbers below
#   a, b, c, d  promote a workload (see examples/bench_workload.rs) from a
#               source registry into a fresh destination registry, with
#               promoter and with skopeo (sync, and a parallel copy loop);
#               cold, then a no-op re-run; every digest verified
#   e           fan-out: 30 images × 2 × 4 MiB to four destination registries
#               at once; promoter (one run, every source blob read once) vs
#               skopeo (a parallel copy loop per destination); source GETs
#               per distinct blob, peak RSS
#   f           no-op at scale: 200 repositories × 10 tags already in the
#               destination (cold once, then the no-op, measured)
#   quota       promotions into registries behind quotas (issue 26): workload
#               q (120 images in 40 repositories) to four destinations, each
#               behind its own quota proxy (the test suite's token buckets:
#               BENCH_QUOTA_RPM requests and BENCH_QUOTA_WPM writes a minute),
#               with and without Retry-After, adaptive pacing on and off; then
#               60 of its images into one destination at 10 requests/s.
#               Prints wall against the quota-limited optimum (the requests
#               each registry accepted ÷ its quota), 429s as a share of
#               requests, failed edges
#   k8s         the no-op inventory of a registry.k8s.io-shaped promotion
#               (issue 26 §5): workload f (200 repositories × 10 tags) in four
#               destination registries, each behind a counting proxy, read
#               plainly (a HEAD per destination tag) and with Google's
#               tags/list digest map (google_listing); requests, wall, RSS
#   big         peak RSS while copying one 1 GiB layer (promoter and skopeo)
#   parse       --parse-only on the generated 20,000-digest thin tree
#               (needs examples/gen_thin_tree.rs)
#   snap        snapshot of 1,000 repositories × 5 tags: promoter --snapshot
#               vs skopeo list-tags + inspect --raw per tag
#
# Environment:
#   BENCH_REPS=2            repetitions of every timing (the table shows the best;
#                           skopeo sync's slow cold run is done once, see run_workload)
#   BENCH_DIR=target/bench  generated workloads (cached) and results
#   BENCH_SEED=skopeo       how the source registry is seeded for a-d and big:
#                           skopeo (copy from the OCI layouts) or promoter.
#                           The seeded storage is kept in BENCH_DIR/workloads
#                           and reused (verified again) by later runs.
#   BENCH_SKOPEO_JOBS=4     parallel skopeo processes in copy loops
#   BENCH_SNAP_SKOPEO_REPOS=1000  repositories the skopeo inventory reads (fewer
#                           saves time; the figure is then extrapolated, and
#                           labelled so)
#   BENCH_QUOTA_RPM=3000    quota part: requests a minute per destination
#   BENCH_QUOTA_WPM=1200    quota part: writes a minute per destination
#   BENCH_QUOTA_MODES="adaptive off"  quota part: pacing modes to run
#   BENCH_NICE=             e.g. -10 (root only): run the harness, and all it
#                           starts, at this priority, and give its scheduler
#                           autogroup the same nice, so that other work on a
#                           shared machine disturbs the figures less
#
# Everything listens on 127.0.0.1 only; every process started here is killed
# on exit. Registries log every request (access log), which is how requests
# are counted: per run, the lines the run added to each registry's log.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
REPS=${BENCH_REPS:-2}
BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench}
SEED_WITH=${BENCH_SEED:-skopeo}
JOBS=${BENCH_SKOPEO_JOBS:-4}
SNAP_SKOPEO_REPOS=${BENCH_SNAP_SKOPEO_REPOS:-1000}
ALL_PARTS=(floor a b c d e f quota k8s big parse snap)
QUOTA_RPM=${BENCH_QUOTA_RPM:-3000}
QUOTA_WPM=${BENCH_QUOTA_WPM:-1200}
QUOTA_MODES=${BENCH_QUOTA_MODES:-adaptive off}

if [ $# -eq 0 ]; then
  PARTS=("${ALL_PARTS[@]}")
else
  PARTS=("$@")
fi
for p in "${PARTS[@]}"; do
  case " ${ALL_PARTS[*]} " in
    *" $p "*) ;;
    *) echo "unknown part '$p'; known: ${ALL_PARTS[*]}" >&2; exit 2 ;;
  esac
done
want() { case " ${PARTS[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# ------------------------------------------------------------------ setup

if [ -n "${BENCH_NICE:-}" ]; then
  renice -n "$BENCH_NICE" -p $$ >/dev/null
  # With sched_autogroup, nice only ranks processes within their session;
  # sessions share the CPU equally unless the autogroup itself is niced.
  # The autogroup outlives this script (it is the caller's session): its nice
  # is put back on exit.
  if [ -w /proc/$$/autogroup ]; then
    AUTOGROUP_NICE=$(sed -n 's/.* nice \(-\?[0-9]*\).*/\1/p' /proc/$$/autogroup)
    echo "$BENCH_NICE" >/proc/$$/autogroup
  fi
fi

./scripts/install-test-deps.sh

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HAVE_THIN_GEN=0
[ -f examples/gen_thin_tree.rs ] && HAVE_THIN_GEN=1
log "building (release)"
build=(cargo build --release --locked --bin promoter --example bench_workload)
if want parse && [ $HAVE_THIN_GEN = 1 ]; then
  build+=(--example gen_thin_tree)
fi
"${build[@]}" >&2
PROMOTER=$TARGET_DIR/release/promoter
GENERATOR=$TARGET_DIR/release/examples/bench_workload
THIN_GEN=$TARGET_DIR/release/examples/gen_thin_tree

WORKLOADS_DIR=$BENCH_DIR/workloads
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$BENCH_DIR/results/$STAMP
mkdir -p "$WORKLOADS_DIR" "$RESULTS/runs"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/promoter-bench.XXXXXX")
CLK_TCK=$(getconf CLK_TCK)

declare -A REG_PID REG_PORT REG_DIR QUOTA_PID QUOTA_HOST
cleanup() {
  local name
  for name in "${!QUOTA_PID[@]}"; do
    kill "${QUOTA_PID[$name]}" 2>/dev/null || true
    wait "${QUOTA_PID[$name]}" 2>/dev/null || true
  done
  for name in "${!REG_PID[@]}"; do
    kill "${REG_PID[$name]}" 2>/dev/null || true
    wait "${REG_PID[$name]}" 2>/dev/null || true
  done
  rm -rf "$TMP"
  if [ -n "${AUTOGROUP_NICE:-}" ]; then echo "$AUTOGROUP_NICE" >/proc/$$/autogroup 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ registries

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_registry NAME: a docker-registry on a free loopback port, fresh
# storage, access log on (its stdout, one line per request).
# With STORAGE, the registry serves (and keeps) that storage directory.
start_registry() {
  local name=$1 storage=${2:-} attempt port dir pid
  for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    dir=$TMP/registry-$name
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ -z "$storage" ]; then
      storage=$dir/storage
      mkdir -p "$storage"
    fi
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $storage
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: bench-$port
EOF
    docker-registry serve "$dir/config.yml" >"$dir/access.log" 2>"$dir/registry.log" &
    pid=$!
    local i
    for i in $(seq 1 300); do
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      if port_in_use "$port"; then
        REG_PID[$name]=$pid
        REG_PORT[$name]=$port
        REG_DIR[$name]=$dir
        return 0
      fi
      sleep 0.02
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  die "docker-registry $name would not start: $(cat "$dir/registry.log")"
}

stop_registry() {
  local name=$1
  kill "${REG_PID[$name]}" 2>/dev/null || true
  wait "${REG_PID[$name]}" 2>/dev/null || true
  rm -rf "${REG_DIR[$name]}"
  unset "REG_PID[$name]" "REG_PORT[$name]" "REG_DIR[$name]"
}

host() { echo "127.0.0.1:${REG_PORT[$1]}"; }
log_lines() { wc -l <"${REG_DIR[$1]}/access.log"; }
# CPU seconds (user+sys) the registry process has used so far.
reg_cpu() {
  awk -v tck="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / tck }' "/proc/${REG_PID[$1]}/stat"
}

# classify FILE FROM_LINE: requests after FROM_LINE, counted by
# "METHOD class status"; classes name the API endpoint.
classify() {
  awk -v from="$2" -F'"' 'NR > from {
      split($2, req, " "); method = req[1]; path = req[2]
      split($3, rest, " "); status = rest[1]
      if (path ~ /^\/v2\/?$/) class = "/v2/ (ping)"
      else if (path ~ /^\/v2\/_catalog/) class = "_catalog"
      else if (path ~ /\/tags\/list/) class = "tags/list"
      else if (path ~ /\/manifests\/sha256:/) class = "manifests/<digest>"
      else if (path ~ /\/manifests\//) class = "manifests/<tag>"
      else if (path ~ /\/blobs\/uploads\/?(\?.*)?$/) class = (path ~ /mount=/ ? "blobs/uploads/?mount=" : "blobs/uploads/")
      else if (path ~ /\/blobs\/uploads\//) class = "blobs/uploads/<session>"
      else if (path ~ /\/blobs\/sha256:/) class = "blobs/<digest>"
      else if (path ~ /\/referrers\//) class = "referrers"
      else class = "other " path
      n[method " " class " " status]++
    }
    END { for (k in n) printf "%6d  %s\n", n[k], k }' "$1" | sort -k2
}

# ------------------------------------------------------------------ measuring

RESULTS_TSV=$RESULTS/results.tsv
printf 'part\ttool\tphase\trep\twall_s\tuser_s\tsys_s\trss_kb\tsrc_reqs\tdst_reqs\tsrc_cpu_s\tdst_cpu_s\n' >"$RESULTS_TSV"

# measure PART TOOL PHASE REP SRC_REG DST_REG -- COMMAND...
# Runs COMMAND under GNU time, and records wall time, the client's CPU and
# peak RSS (the largest single process, for a loop), the requests each
# registry saw (by class in runs/) and each registry's CPU.
measure() {
  local part=$1 tool=$2 phase=$3 rep=$4 src=$5 dst=$6
  shift 7
  local id=$part.$tool.$phase.$rep
  local src_from dst_from src_cpu0 dst_cpu0 t0 t1 status=0
  src_from=$(log_lines "$src"); src_cpu0=$(reg_cpu "$src")
  dst_from=0; dst_cpu0=0
  if [ "$dst" != - ]; then dst_from=$(log_lines "$dst"); dst_cpu0=$(reg_cpu "$dst"); fi
  t0=$(date +%s%N)
  /usr/bin/time -v -o "$RESULTS/runs/$id.time" "$@" >"$RESULTS/runs/$id.out" 2>"$RESULTS/runs/$id.err" || status=$?
  t1=$(date +%s%N)
  sleep 0.05 # the access log line is written after the response
  [ $status = 0 ] || die "$id exited $status: $(tail -5 "$RESULTS/runs/$id.err")"
  local src_cpu dst_cpu=0
  src_cpu=$(awk -v a="$src_cpu0" -v b="$(reg_cpu "$src")" 'BEGIN { printf "%.2f", b - a }')
  classify "${REG_DIR[$src]}/access.log" "$src_from" >"$RESULTS/runs/$id.src"
  tail -n +"$((src_from + 1))" "${REG_DIR[$src]}/access.log" >"$RESULTS/runs/$id.src.log"
  if [ "$dst" != - ]; then
    dst_cpu=$(awk -v a="$dst_cpu0" -v b="$(reg_cpu "$dst")" 'BEGIN { printf "%.2f", b - a }')
    classify "${REG_DIR[$dst]}/access.log" "$dst_from" >"$RESULTS/runs/$id.dst"
    tail -n +"$((dst_from + 1))" "${REG_DIR[$dst]}/access.log" >"$RESULTS/runs/$id.dst.log"
  else
    : >"$RESULTS/runs/$id.dst"
  fi
  local src_n dst_n
  src_n=$(awk '{ s += $1 } END { print s + 0 }' "$RESULTS/runs/$id.src")
  dst_n=$(awk '{ s += $1 } END { print s + 0 }' "$RESULTS/runs/$id.dst")
  awk -F': ' -v part="$part" -v tool="$tool" -v phase="$phase" -v rep="$rep" \
      -v wall="$(( (t1 - t0) / 1000000 ))" -v sn="$src_n" -v dn="$dst_n" -v sc="$src_cpu" -v dc="$dst_cpu" '
    /User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident/ { r = $2 }
    END { printf "%s\t%s\t%s\t%s\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", part, tool, phase, rep, wall / 1000, u, s, r, sn, dn, sc, dc }
  ' "$RESULTS/runs/$id.time" >>"$RESULTS_TSV"
  log "$(tail -1 "$RESULTS_TSV" | awk -F'\t' '{ printf "%-5s %-12s %-6s rep %s: %7.2fs  rss %4d MiB  src %5d req  dst %5d req  cpu client %.2fs src-reg %.2fs dst-reg %.2fs", $1, $2, $3, $4, $5, $8 / 1024, $9, $10, $6 + $7, $11, $12 }')"
}

# ------------------------------------------------------------------ workloads

SKOPEO_FLAGS=(--all --preserve-digests)

# promoter_manifest FILE SRC_REGISTRY DST_REGISTRY IMAGES_YAML
promoter_manifest() {
  { printf 'registries:\n- name: %s\n  src: true\n- name: %s\n' "$2" "$3"; cat "$4"; } >"$1"
}

# seed W: put workload W into the source registry under bench-W/.
seed() {
  local w=$1 dir=$WORKLOADS_DIR/$1 src
  src=$(host src)
  local t0=$SECONDS marker=$SOURCE_STORAGE.seeded.$w
  # The source storage is kept between runs (it is only read); a workload is
  # seeded again only when it changed.
  if [ -f "$marker" ] && cmp -s "$marker" "$dir/stamp"; then
    log "$w: already in the source registry's storage (seeded by an earlier run with $(cat "$marker.how"))"
  elif [ "$SEED_WITH" = promoter ]; then
    promoter_manifest "$TMP/seed-$w.yaml" "oci:$dir/oci" "$src/bench-$w" "$dir/images.yaml"
    "$PROMOTER" run --manifest "$TMP/seed-$w.yaml" --confirm --no-attachments >/dev/null ||
      die "seeding $w with promoter"
  else
    awk -v d="$dir/oci" -v s="$src/bench-$w" -F'\t' '{ print "oci:" d "/" $1 ":" $2; print "docker://" s "/" $1 ":" $2 }' "$dir/refs.tsv" |
      xargs -P "$JOBS" -n 2 skopeo copy -q "${SKOPEO_FLAGS[@]}" --dest-tls-verify=false >/dev/null ||
      die "seeding $w with skopeo"
  fi
  if ! cmp -s "$marker" "$dir/stamp"; then
    log "seeded $w into $src/bench-$w with $SEED_WITH in $((SECONDS - t0))s"
    echo "$SEED_WITH" >"$marker.how"
    cp "$dir/stamp" "$marker"
  fi
  verify "$w" src "bench-$w" "source"
  cp "$dir/info" "$RESULTS/info.$w"
}

# verify W REG PATH WHAT: the registry's snapshot under PATH equals the
# workload's expected snapshot (every tag and index child, by digest), and
# skopeo, an independent client, reads the same digests for a sample of tags.
verify() {
  local w=$1 reg=$2 path=$3 what=$4 dir=$WORKLOADS_DIR/$1 h
  h=$(host "$reg")
  "$PROMOTER" run --snapshot "$h/$path" --output csv | LC_ALL=C sort >"$TMP/snapshot.csv" ||
    die "snapshot of $what $h/$path"
  if ! cmp -s "$TMP/snapshot.csv" "$dir/expected.csv"; then
    diff "$dir/expected.csv" "$TMP/snapshot.csv" | head -20 >&2
    die "$what of $w: snapshot differs from the expected digests"
  fi
  local n lines name tag digest got
  n=$(wc -l <"$dir/refs.tsv")
  lines=$( (echo 1; echo "$n"; seq 1 $(( (n + 3) / 4 )) "$n") | sort -un | head -6)
  for line in $lines; do
    IFS=$'\t' read -r name tag digest < <(sed -n "${line}p" "$dir/refs.tsv")
    got=sha256:$(skopeo inspect --raw --tls-verify=false "docker://$h/$path/$name:$tag" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$digest" ] || die "$what of $w: skopeo reads $got for $name:$tag, want $digest"
  done
  echo "verified $what $w: $(wc -l <"$dir/expected.csv") snapshot rows, $(echo "$lines" | wc -w) skopeo spot checks" >>"$RESULTS/verified.txt"
}

# run_tool W TOOL REP: a fresh destination, the cold run, verification, the no-op run.
# run_tool W TOOL REP [NOOPS]: NOOPS no-op runs (numbered REP, REP+1, …).
run_tool() {
  local w=$1 tool=$2 rep=$3 noops=${4:-1} dir=$WORKLOADS_DIR/$1 src dst
  start_registry dst
  src=$(host src); dst=$(host dst)
  case $tool in
    promoter | promoter-noatt)
      promoter_manifest "$TMP/$w.yaml" "$src/bench-$w" "$dst/bench-$w" "$dir/images.yaml"
      local cmd=("$PROMOTER" run --manifest "$TMP/$w.yaml" --confirm --output json)
      # The same without looking for signatures/attestations/SBOMs to carry
      # along: shows what that lookup costs (skopeo does not do it).
      [ "$tool" = promoter ] || cmd+=(--no-attachments) ;;
    skopeo-sync)
      awk -v s="$src" -F'\t' 'BEGIN { print s ":\n  tls-verify: false\n  images:" }
        { print "    bench-'"$w"'/" $1 ":\n    - \"" $2 "\"" }' "$dir/refs.tsv" >"$TMP/$w.sync.yaml"
      local cmd=(skopeo sync "${SKOPEO_FLAGS[@]}" --src yaml --dest docker --dest-tls-verify=false "$TMP/$w.sync.yaml" "$dst/bench-$w") ;;
    skopeo-copy)
      awk -v s="$src/bench-$w" -v d="$dst/bench-$w" -F'\t' \
        '{ print "docker://" s "/" $1 ":" $2 " docker://" d "/" $1 ":" $2 }' "$dir/refs.tsv" >"$TMP/$w.copy.txt"
      local cmd=(xargs -a "$TMP/$w.copy.txt" -P "$JOBS" -n 2 skopeo copy -q "${SKOPEO_FLAGS[@]}" --src-tls-verify=false --dest-tls-verify=false) ;;
  esac
  measure "$w" "$tool" cold "$rep" src dst -- "${cmd[@]}"
  if [ "$rep" = 1 ]; then
    verify "$w" dst "bench-$w" "$tool destination"
  fi
  local k
  for ((k = 0; k < noops; k++)); do
    measure "$w" "$tool" noop "$((rep + k))" src dst -- "${cmd[@]}"
  done
  stop_registry dst
}

run_workload() {
  local w=$1 rep order tools=(promoter skopeo-sync skopeo-copy)
  # Small workloads also run promoter --no-attachments, to price that lookup.
  case $w in
    a | d) tools=(promoter promoter-noatt skopeo-sync skopeo-copy) ;;
    # 2,000 images: skopeo sync copies one at a time (minutes); its copy
    # loop is its faster approach here.
    f) tools=(promoter skopeo-copy) ;;
  esac
  for rep in $(seq 1 "$REPS"); do
    # Alternate the order, so that neither tool always runs on a warmer machine.
    order=("${tools[@]}")
    if [ $((rep % 2)) = 0 ]; then
      local i
      order=()
      for ((i = ${#tools[@]} - 1; i >= 0; i--)); do order+=("${tools[$i]}"); done
    fi
    for tool in "${order[@]}"; do
      # skopeo sync copies one image at a time: its cold run is never
      # skopeo's faster approach (the parallel copy loop is) and takes
      # minutes on a loaded machine, so it runs cold once, then its no-op
      # (where it is skopeo's faster approach) BENCH_REPS times.
      if [ "$tool" = skopeo-sync ]; then
        [ "$rep" = 1 ] && run_tool "$w" "$tool" 1 "$REPS"
        continue
      fi
      run_tool "$w" "$tool" "$rep"
    done
  done
}

# ------------------------------------------------------------------ the parts

MACHINE="$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
{
  echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine:  $MACHINE"
  if [ -n "${BENCH_COMMIT:-}" ]; then
    echo "commit:   $BENCH_COMMIT"
  elif git rev-parse --git-dir >/dev/null 2>&1; then
    echo "commit:   $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (src/ modified)')"
  else
    echo "commit:   unknown (not a git checkout; set BENCH_COMMIT)"
  fi
  echo "nice:     $(nice) (the harness and everything it starts)$( [ -r /proc/$$/autogroup ] && echo "; $(cat /proc/$$/autogroup)")"
  echo "load:     $(cut -d" " -f1-3 /proc/loadavg) (1, 5, 15 min load average at the start)"
  echo "command:  bench/run.sh ${*:-}  (BENCH_REPS=$REPS BENCH_SEED=$SEED_WITH BENCH_SKOPEO_JOBS=$JOBS)"
  echo "versions: $("$PROMOTER" --version); $(docker-registry --version 2>&1 | head -1); $(skopeo --version)"
} >"$RESULTS/header.txt"
cat "$RESULTS/header.txt" >&2

gen=()
for w in a b c d e f big snap; do want "$w" && gen+=("$w"); done
want quota && gen+=(q)
want k8s && gen+=(f)
if [ ${#gen[@]} -gt 0 ]; then
  log "generating workloads: ${gen[*]} (cached in $WORKLOADS_DIR)"
  "$GENERATOR" "$WORKLOADS_DIR" "${gen[@]}"
fi
if want a || want b || want c || want d || want e || want f || want quota || want k8s || want big; then
  SOURCE_STORAGE=$WORKLOADS_DIR/source-registry
  mkdir -p "$SOURCE_STORAGE"
  start_registry src "$SOURCE_STORAGE"
  log "source registry on $(host src)"
fi

if want floor; then
  start_registry floor
  printf 'step\trequests\tseconds\tregistry_cpu_s\n' >"$RESULTS/floor.tsv"
  for step in upload manifest-put head-tag head-tag-absent head-blob get-manifest get-blob tags-list mount ping; do
    best_line=""
    for rep in $(seq 1 "$REPS"); do
      # Writes run once (a second run would find everything there).
      case $step in upload | manifest-put | mount) [ "$rep" = 1 ] || continue ;; esac
      cpu0=$(reg_cpu floor)
      out=$("$GENERATOR" floor "$(host floor)" "$step" 400) || die "floor step $step"
      line=$(awk -v o="$out" -v a="$cpu0" -v b="$(reg_cpu floor)" -v s="$step" 'BEGIN { split(o, x, " "); printf "%s\t%s\t%s\t%.2f", s, x[1], x[2], b - a }')
      if [ -z "$best_line" ] || [ "$(echo "$line" | cut -f3)" \< "$(echo "$best_line" | cut -f3)" ]; then best_line=$line; fi
    done
    echo "$best_line" >>"$RESULTS/floor.tsv"
    log "floor $(echo "$best_line" | awk -F'\t' '{ printf "%-16s %5d requests in %.2fs (%4.0f/s), registry CPU %.2f ms each", $1, $2, $3, $2 / $3, $4 * 1000 / $2 }')"
  done
  stop_registry floor
fi

for w in a b c d f; do
  want "$w" || continue
  seed "$w"
  run_workload "$w"
done

# run_fanout REP: workload e into four fresh destination registries, with
# promoter (one run naming all four) and with skopeo (one parallel copy
# loop over every (image, destination) pair). Requests are counted at the
# source (the figure fan-out is about) and at the first destination.
run_fanout() {
  local rep=$1 tool=$2 dir=$WORKLOADS_DIR/e src i
  for i in 1 2 3 4; do start_registry "fan$i"; done
  src=$(host src)
  case $tool in
    promoter)
      { printf 'registries:\n- name: %s/bench-e\n  src: true\n' "$src"
        for i in 1 2 3 4; do printf -- '- name: %s/bench-e\n' "$(host "fan$i")"; done
        cat "$dir/images.yaml"; } >"$TMP/e.yaml"
      local cmd=("$PROMOTER" run --manifest "$TMP/e.yaml" --confirm --output json) ;;
    skopeo-copy)
      : >"$TMP/e.copy.txt"
      for i in 1 2 3 4; do
        awk -v s="$src/bench-e" -v d="$(host "fan$i")/bench-e" -F'\t' \
          '{ print "docker://" s "/" $1 ":" $2 " docker://" d "/" $1 ":" $2 }' "$dir/refs.tsv" >>"$TMP/e.copy.txt"
      done
      local cmd=(xargs -a "$TMP/e.copy.txt" -P "$JOBS" -n 2 skopeo copy -q "${SKOPEO_FLAGS[@]}" --src-tls-verify=false --dest-tls-verify=false) ;;
  esac
  measure e "$tool" cold "$rep" src fan1 -- "${cmd[@]}"
  if [ "$rep" = 1 ]; then
    for i in 1 2 3 4; do verify e "fan$i" bench-e "$tool destination $i"; done
  fi
  for i in 1 2 3 4; do stop_registry "fan$i"; done
}

if want e; then
  seed e
  for rep in $(seq 1 "$REPS"); do
    if [ $((rep % 2)) = 1 ]; then order=(promoter skopeo-copy); else order=(skopeo-copy promoter); fi
    for tool in "${order[@]}"; do run_fanout "$rep" "$tool"; done
  done
fi

# start_quota NAME REGISTRY RPM WPM RETRY_AFTER: the test suite's quota proxy
# (bench_workload quota-proxy) in front of REGISTRY; its counts go to
# $TMP/quota-NAME.stats ("requests throttled accepted accepted_writes").
start_quota() {
  start_proxy "$1" quota-proxy "$(host "$2")" "$3" "$4" "$5"
}

# start_proxy NAME KIND ARGS...: bench_workload KIND ARGS... STATS_FILE,
# its HOST:PORT in QUOTA_HOST[NAME] and its counts in $TMP/quota-NAME.stats.
start_proxy() {
  local name=$1 kind=$2 i
  shift 2
  : >"$TMP/quota-$name.addr"
  "$GENERATOR" "$kind" "$@" "$TMP/quota-$name.stats" \
    >"$TMP/quota-$name.addr" 2>"$TMP/quota-$name.err" &
  QUOTA_PID[$name]=$!
  for i in $(seq 1 200); do
    [ -s "$TMP/quota-$name.addr" ] && break
    sleep 0.02
  done
  QUOTA_HOST[$name]=$(head -1 "$TMP/quota-$name.addr")
  [ -n "${QUOTA_HOST[$name]}" ] || die "proxy $name would not start: $(cat "$TMP/quota-$name.err")"
}

stop_quota() {
  kill "${QUOTA_PID[$1]}" 2>/dev/null || true
  wait "${QUOTA_PID[$1]}" 2>/dev/null || true
  unset "QUOTA_PID[$1]" "QUOTA_HOST[$1]"
}

# run_quota LABEL MODE RETRY_AFTER DESTINATIONS IMAGES_YAML RPM WPM VERIFY:
# the images into DESTINATIONS fresh registries, each behind its own quota,
# pacing MODE (adaptive, or off: the ceilings only and 429s retried like
# any failure). One line in quota.tsv.
run_quota() {
  local label=$1 mode=$2 ra=$3 n=$4 images=$5 rpm=$6 wpm=$7 check=$8 i
  local id=quota.$label.$mode.ra$ra
  for i in $(seq 1 "$n"); do
    start_registry "q$i"
    start_quota "q$i" "q$i" "$rpm" "$wpm" "$ra"
  done
  { printf 'registries:\n- name: %s/bench-q\n  src: true\n' "$(host src)"
    for i in $(seq 1 "$n"); do printf -- '- name: %s/bench-q\n' "${QUOTA_HOST[q$i]}"; done
    cat "$images"; } >"$TMP/$id.yaml"
  if [ "$mode" = off ]; then echo '{"defaults": {"adaptive": false}}'; else echo '{}'; fi >"$TMP/$id.options.json"
  local t0 t1 rc=0
  t0=$(date +%s%N)
  /usr/bin/time -v -o "$RESULTS/runs/$id.time" "$PROMOTER" run --manifest "$TMP/$id.yaml" --confirm \
    --output json --registry-config "$TMP/$id.options.json" -v \
    >"$RESULTS/runs/$id.json" 2>"$RESULTS/runs/$id.err" || rc=$?
  t1=$(date +%s%N)
  sleep 0.5 # the proxies' counts are written every 200 ms
  for i in $(seq 1 "$n"); do cp "$TMP/quota-q$i.stats" "$RESULTS/runs/$id.q$i.stats"; done
  if [ "$check" = 1 ] && [ $rc = 0 ]; then
    for i in $(seq 1 "$n"); do verify q "q$i" bench-q "quota $label $mode ra=$ra destination $i"; done
  fi
  local failed
  failed=$(grep -c '"status": "failed"' "$RESULTS/runs/$id.json" || true)
  cat "$RESULTS/runs/$id".q*.stats | awk -v label="$label" -v mode="$mode" -v ra="$ra" -v rc="$rc" -v failed="$failed" \
      -v wall="$(( (t1 - t0) / 1000000 ))" -v rps="$(awk -v r="$rpm" 'BEGIN { print r / 60 }')" \
      -v wps="$(awk -v w="$wpm" 'BEGIN { print w / 60 }')" -v cpu="$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { print u + s }' "$RESULTS/runs/$id.time")" '
    { requests += $1; throttled += $2
      opt = $3 / rps; if (wps > 0 && $4 / wps > opt) opt = $4 / wps
      if (opt > optimum) optimum = opt }
    END { w = wall / 1000
      printf "%s\t%s\t%s\t%.2f\t%.2f\t%.3f\t%d\t%d\t%.2f\t%d\t%d\t%.2f\n", label, mode, ra, w, optimum, w / optimum, requests, throttled, 100 * throttled / requests, failed, rc, cpu }' >>"$RESULTS/quota.tsv"
  log "$(tail -1 "$RESULTS/quota.tsv" | awk -F'\t' '{ printf "quota %-6s %-8s retry-after=%s: %6.2fs wall, optimum %6.2fs (%.3f×), %5d requests, %4d answered 429 (%.2f%%), %d failed edges, exit %d", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }')"
  for i in $(seq 1 "$n"); do stop_quota "q$i"; stop_registry "q$i"; done
}

if want quota; then
  seed q
  printf 'workload\tmode\tretry_after\twall_s\toptimum_s\tratio\trequests\tthrottled\tthrottled_pct\tfailed_edges\texit\tclient_cpu_s\n' >"$RESULTS/quota.tsv"
  echo "quota: q to 4 destinations at $QUOTA_RPM requests and $QUOTA_WPM writes a minute each; q60 (60 of its images) to 1 at 600 requests a minute" >"$RESULTS/quota.txt"
  for mode in $QUOTA_MODES; do
    for ra in 1 0; do
      run_quota q "$mode" "$ra" 4 "$WORKLOADS_DIR/q/images.yaml" "$QUOTA_RPM" "$QUOTA_WPM" 1
    done
  done
  # The issue's case: 60 new single-layer images, one destination, 10 requests/s.
  head -60 "$WORKLOADS_DIR/q/refs.tsv" | awk -F'\t' 'BEGIN { print "images:" } $1 != last { print "- name: " $1 "\n  dmap:"; last = $1 }
    { print "    \"" $3 "\": [\"" $2 "\"]" }' >"$TMP/q60.yaml"
  for mode in $QUOTA_MODES; do
    for ra in 1 0; do
      run_quota q60 "$mode" "$ra" 1 "$TMP/q60.yaml" 600 0 0
    done
  done
fi

# run_k8s MODE REP: the no-op inventory of workload f in four destination
# registries, each behind a counting proxy that answers tags/list plainly
# (MODE plain: one HEAD per destination tag) or with Google's digest map
# (MODE google: one listing per repository). One line in k8s.tsv.
run_k8s() {
  local mode=$1 rep=$2 i id=k8s.$1.$2 opts=""
  for i in 1 2 3 4; do start_proxy "k8s$i" listing-proxy "$(host "k$i")" "$mode"; done
  { printf 'registries:\n- name: %s/bench-f\n  src: true\n' "$(host src)"
    for i in 1 2 3 4; do printf -- '- name: %s/bench-f\n' "${QUOTA_HOST[k8s$i]}"; done
    cat "$WORKLOADS_DIR/f/images.yaml"; } >"$TMP/$id.yaml"
  for i in 1 2 3 4; do
    opts="$opts${opts:+, }\"${QUOTA_HOST[k8s$i]}\": {\"google_listing\": $([ "$mode" = google ] && echo true || echo false)}"
  done
  echo "{\"registries\": {$opts}}" >"$TMP/$id.options.json"
  local t0 t1 rc=0
  t0=$(date +%s%N)
  /usr/bin/time -v -o "$RESULTS/runs/$id.time" "$PROMOTER" run --manifest "$TMP/$id.yaml" --confirm \
    --output json --registry-config "$TMP/$id.options.json" >"$RESULTS/runs/$id.json" 2>"$RESULTS/runs/$id.err" || rc=$?
  t1=$(date +%s%N)
  sleep 0.5 # the proxies' counts are written every 200 ms
  [ $rc = 0 ] || die "$id exited $rc: $(tail -3 "$RESULTS/runs/$id.err")"
  grep -q '"copy": 0,' "$RESULTS/runs/$id.json" && grep -q '"tag": 0,' "$RESULTS/runs/$id.json" || die "$id was not a no-op"
  local requests
  requests=$(cat "$TMP"/quota-k8s[1-4].stats | awk '{ s += $1 } END { print s }')
  awk -F': ' -v mode="$mode" -v rep="$rep" -v wall="$(( (t1 - t0) / 1000000 ))" -v n="$requests" -v tags="$(info_of f images)" '
    /User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident/ { r = $2 }
    END { printf "%s\t%s\t%.3f\t%d\t%d\t%.2f\t%.0f\n", mode, rep, wall / 1000, n, tags * 4, u + s, r / 1024 }' \
    "$RESULTS/runs/$id.time" >>"$RESULTS/k8s.tsv"
  log "$(tail -1 "$RESULTS/k8s.tsv" | awk -F'\t' '{ printf "k8s   %-6s rep %s: %6.2fs wall, %5d destination requests for %d destination tags, client CPU %.2fs, rss %d MiB", $1, $2, $3, $4, $5, $6, $7 }')"
  for i in 1 2 3 4; do stop_quota "k8s$i"; done
}

info_of() { sed -n "s/.*$2=\([0-9]*\).*/\1/p" "$WORKLOADS_DIR/$1/info"; }

if want k8s; then
  seed f
  for i in 1 2 3 4; do start_registry "k$i"; done
  { printf 'registries:\n- name: %s/bench-f\n  src: true\n' "$(host src)"
    for i in 1 2 3 4; do printf -- '- name: %s/bench-f\n' "$(host "k$i")"; done
    cat "$WORKLOADS_DIR/f/images.yaml"; } >"$TMP/k8s.cold.yaml"
  log "k8s: filling four destinations with workload f (not measured)"
  "$PROMOTER" run --manifest "$TMP/k8s.cold.yaml" --confirm -q >/dev/null 2>"$TMP/k8s.cold.err" ||
    die "k8s cold fill: $(tail -3 "$TMP/k8s.cold.err")"
  printf 'mode\trep\twall_s\trequests\tdestination_tags\tclient_cpu_s\tpeak_rss_mib\n' >"$RESULTS/k8s.tsv"
  for rep in $(seq 1 "$REPS"); do
    for mode in plain google; do run_k8s "$mode" "$rep"; done
  done
  for i in 1 2 3 4; do stop_registry "k$i"; done
fi

if want big; then
  seed big
  for rep in $(seq 1 "$REPS"); do
    run_tool big promoter "$rep"
    run_tool big skopeo-copy "$rep"
  done
fi

if want parse; then
  if [ $HAVE_THIN_GEN = 1 ]; then
    tree=$WORKLOADS_DIR/thin-tree
    if [ ! -f "$tree.stamp" ]; then
      rm -rf "$tree"
      "$THIN_GEN" "$tree" >&2
      touch "$tree.stamp"
    fi
    echo "thin tree: $(find "$tree" -name '*.yaml' | wc -l) files, $(du -sb "$tree" | cut -f1) bytes" >"$RESULTS/parse-tree.txt"
    "$PROMOTER" run --thin-manifest-dir "$tree" --parse-only >/dev/null 2>&1 || true # warm the page cache
    for rep in $(seq 1 $((REPS + 1))); do
      t0=$(date +%s%N)
      status=0
      /usr/bin/time -v -o "$RESULTS/runs/parse.$rep.time" "$PROMOTER" run --thin-manifest-dir "$tree" --parse-only \
        >"$RESULTS/runs/parse.$rep.out" 2>"$RESULTS/runs/parse.$rep.err" || status=$?
      t1=$(date +%s%N)
      [ $status = 0 ] || die "--parse-only on the thin tree exited $status: $(head -5 "$RESULTS/runs/parse.$rep.err")"
      awk -F': ' -v rep="$rep" -v wall="$(( (t1 - t0) / 1000000 ))" '
        /User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident/ { r = $2 }
        END { printf "parse\tpromoter\tparse-only\t%s\t%.3f\t%s\t%s\t%s\t0\t0\t0\t0\n", rep, wall / 1000, u, s, r }
      ' "$RESULTS/runs/parse.$rep.time" >>"$RESULTS_TSV"
      log "parse-only rep $rep: $(tail -1 "$RESULTS_TSV" | cut -f5)s"
    done
  else
    log "parse: examples/gen_thin_tree.rs is not in this checkout; skipped"
  fi
fi

# skopeo's inventory of one repository: list-tags, then inspect --raw per tag.
skopeo_inventory_repo() {
  local ref=$1 name=${1##*/} tag digest
  skopeo list-tags --tls-verify=false "docker://$ref" |
    awk '/"Tags"/ { in_tags = 1; next } in_tags && /\]/ { in_tags = 0 } in_tags { gsub(/[ ",]/, ""); if ($0 != "") print }' |
    while read -r tag; do
      digest=$(skopeo inspect --raw --tls-verify=false "docker://$ref:$tag" | sha256sum | cut -d' ' -f1)
      echo "$name@sha256:$digest,$name:$tag"
    done
}
export -f skopeo_inventory_repo

if want snap; then
  dir=$WORKLOADS_DIR/snap
  # Seeding 5,000 images takes a minute or two, so the seeded storage is kept
  # with the workload and served again by later runs (its own registry).
  if ! cmp -s "$dir/stamp" "$dir/registry.stamp"; then
    rm -rf "$dir/registry" "$dir/registry.stamp"
    mkdir -p "$dir/registry"
    start_registry snap "$dir/registry"
    src=$(host snap)
    t0=$SECONDS
    promoter_manifest "$TMP/seed-snap.yaml" "oci:$dir/oci" "$src/snap" "$dir/images.yaml"
    "$PROMOTER" run --manifest "$TMP/seed-snap.yaml" --confirm --no-attachments >/dev/null || die "seeding snap"
    log "seeded snap (1,000 repositories × 5 tags) with promoter from its OCI layouts in $((SECONDS - t0))s"
    stop_registry snap
    cp "$dir/stamp" "$dir/registry.stamp"
  fi
  start_registry snap "$dir/registry"
  src=$(host snap)
  cp "$dir/info" "$RESULTS/info.snap"
  for rep in $(seq 1 "$REPS"); do
    measure snap promoter snapshot "$rep" snap - -- "$PROMOTER" run --snapshot "$src/snap" --output csv
    LC_ALL=C sort "$RESULTS/runs/snap.promoter.snapshot.$rep.out" | cmp -s - "$dir/expected.csv" ||
      die "promoter's snapshot of snap differs from the expected digests"
  done
  echo "verified promoter snapshot of snap: $(wc -l <"$dir/expected.csv") rows equal the expected digests" >>"$RESULTS/verified.txt"
  awk -F'\t' -v n="$SNAP_SKOPEO_REPOS" -v p="$src/snap/" '!seen[$1]++ && ++k <= n { print p $1 }' "$dir/refs.tsv" >"$TMP/snap-repos.txt"
  # A minute and a half for all 1,000 repositories: one run (it is long
  # enough for noise to average out); a subset runs BENCH_REPS times.
  skopeo_reps=$REPS
  [ "$SNAP_SKOPEO_REPOS" -lt 1000 ] || skopeo_reps=1
  for rep in $(seq 1 "$skopeo_reps"); do
    measure snap "skopeo-$SNAP_SKOPEO_REPOS" snapshot "$rep" snap - -- \
      xargs -a "$TMP/snap-repos.txt" -P "$JOBS" -n 1 bash -c 'skopeo_inventory_repo "$1"' _
    LC_ALL=C sort "$RESULTS/runs/snap.skopeo-$SNAP_SKOPEO_REPOS.snapshot.$rep.out" >"$TMP/skopeo-snap.csv"
    sed "s|^$src/snap/||" "$TMP/snap-repos.txt" | awk -F'\t' 'NR == FNR { want[$1] = 1; next } { split($1, a, "@"); if (a[1] in want) print }' - "$dir/expected.csv" |
      cmp -s - "$TMP/skopeo-snap.csv" || die "skopeo's inventory of snap differs from the expected digests"
  done
  echo "verified skopeo inventory of snap: $SNAP_SKOPEO_REPOS repositories equal the expected digests" >>"$RESULTS/verified.txt"
fi

# ------------------------------------------------------------------ report

"$ROOT/bench/report.sh" "$RESULTS" | tee "$RESULTS/report.txt"
log "results in $RESULTS (report.txt, results.tsv, runs/)"
