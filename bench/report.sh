#!/usr/bin/env bash
# Prints the benchmark report from a results directory written by bench/run.sh:
#   bench/report.sh target/bench/results/<stamp>
# Every figure is the best (lowest wall time) of the repetitions; request
# counts and CPU are those of that same repetition.
set -euo pipefail
R=${1:?usage: bench/report.sh RESULTS_DIR}
TSV=$R/results.tsv

cat "$R/header.txt"
echo

# info.W: images=N bytes=B
info() { sed -n "s/.*$2=\([0-9]*\).*/\1/p" "$R/info.$1" 2>/dev/null || echo 0; }

# best PART TOOL PHASE: the row with the lowest wall time.
best() {
  awk -F'\t' -v p="$1" -v t="$2" -v ph="$3" '
    $1 == p && $2 == t && $3 == ph && (!found || $5 < w) { w = $5; row = $0; found = 1 }
    END { if (found) print row }' "$TSV"
}
# reps PART TOOL PHASE: every wall time, for the spread.
walls() {
  awk -F'\t' -v p="$1" -v t="$2" -v ph="$3" '$1 == p && $2 == t && $3 == ph { printf "%s%.2f", sep, $5; sep = " " }' "$TSV"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
check() { awk -v x="$1" -v t="$2" 'BEGIN { print (x + 0 >= t ? "holds" : "MISSED") }'; }

if [ -f "$R/floor.tsv" ]; then
  echo "## The floor: what one request costs the registry (docker-registry, 4 in flight, kept-alive connections)"
  echo
  echo "| request | requests/s | registry CPU ms per request |"
  echo "|---|---|---|"
  awk -F'\t' 'NR > 1 { printf "| %s | %.0f | %.2f |\n", $1, $2 / $3, $4 * 1000 / $2 }' "$R/floor.tsv"
  echo
  echo "(upload = POST + PUT of a 4 KiB blob, counted as 2 requests; mount = POST ?mount= into a new repository.)"
  echo
fi

PROMOTION=0
for part in a b c d e f big; do [ -f "$R/info.$part" ] && PROMOTION=1; done
if [ $PROMOTION = 1 ]; then
printf '%s\n' "## Promotion: promoter run --confirm vs skopeo (best of the runs listed)"
echo
printf '| part | tool | phase | wall s (all runs) | dst req/img | src req/img | MB/s | client CPU s | src-reg CPU s | dst-reg CPU s | peak RSS MiB |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
for part in a b c d e f big; do
  [ -f "$R/info.$part" ] || continue
  images=$(info "$part" images); bytes=$(info "$part" bytes)
  for tool in promoter promoter-noatt skopeo-sync skopeo-copy; do
    for phase in cold noop; do
      row=$(best "$part" "$tool" "$phase")
      [ -n "$row" ] || continue
      echo "$row" | awk -F'\t' -v n="$images" -v b="$bytes" -v all="$(walls "$part" "$tool" "$phase")" '{
        mbs = ($3 == "cold" && $5 > 0) ? sprintf("%.1f", b / 1e6 / $5) : "-"
        printf "| %s | %s | %s | **%.2f** (%s) | %.1f | %.1f | %s | %.2f | %.2f | %.2f | %.0f |\n",
          $1, $2, $3, $5, all, $10 / n, $9 / n, mbs, $6 + $7, $11, $12, $8 / 1024 }'
    done
  done
done
echo

echo "## Ratios (skopeo's faster approach / promoter; > 1 means promoter is faster)"
echo
echo "Wall time decides. CPU is the total of client and both registries in the same"
echo "runs: on a shared 2-core machine it is the less noisy cost, and wall time can"
echo "never drop below CPU / 2."
echo
printf '| part | phase | promoter s | skopeo sync s | skopeo copy loop s | speedup vs skopeo'"'"'s faster | target | | CPU s promoter / that skopeo | CPU ratio |\n|---|---|---|---|---|---|---|---|---|---|\n'
target() {
  case $1.$2 in
    a.cold) echo 4 ;; a.noop) echo 10 ;; b.cold) echo 2 ;; c.cold) echo 1.5 ;; e.cold) echo 3 ;; f.noop) echo 10 ;; *) echo "" ;;
  esac
}
cpu() { echo "$1" | awk -F'\t' '{ printf "%.2f", $6 + $7 + $11 + $12 }'; }
for part in a b c d e f; do
  [ -f "$R/info.$part" ] || continue
  for phase in cold noop; do
    prow=$(best "$part" promoter "$phase")
    [ -n "$prow" ] || continue
    p=$(echo "$prow" | cut -f5)
    sync_row=$(best "$part" skopeo-sync "$phase"); copy_row=$(best "$part" skopeo-copy "$phase")
    sync_w=$(echo "$sync_row" | cut -f5); copy_w=$(echo "$copy_row" | cut -f5)
    if [ -z "$copy_w" ] || { [ -n "$sync_w" ] && awk -v a="$sync_w" -v b="$copy_w" 'BEGIN { exit !(a < b) }'; }; then
      s=$sync_w; srow=$sync_row
    else
      s=$copy_w; srow=$copy_row
    fi
    r=$(ratio "$s" "$p")
    pc=$(cpu "$prow"); sc=$(cpu "$srow")
    t=$(target "$part" "$phase")
    if [ -n "$t" ]; then verdict=$(check "$r" "$t"); t="≥ $t×"; else verdict=""; fi
    fmt() { [ -n "$1" ] && printf '%.2f (%s×)' "$1" "$(ratio "$1" "$p")" || printf -- '-'; }
    printf '| %s | %s | %.2f | %s | %s | **%s×** | %s | %s | %s / %s | %s× |\n' "$part" "$phase" "$p" \
      "$(fmt "$sync_w")" "$(fmt "$copy_w")" "$r" "$t" "$verdict" "$pc" "$sc" "$(ratio "$sc" "$pc")"
  done
done
echo

if [ -f "$R/info.a" ]; then
  echo "## Request targets for (a)"
  echo
  images=$(info a images)
  cold=$(best a promoter cold); noop=$(best a promoter noop)
  # Requests made once per run and registry (the /v2/ ping, catalog pages)
  # are shown apart from those per image.
  per_run() { awk '$3 == "/v2/" || $3 == "_catalog" { s += $1 } END { print s + 0 }' "$R/runs/a.promoter.$1.$2.dst"; }
  c_rep=$(echo "$cold" | cut -f4); n_rep=$(echo "$noop" | cut -f4)
  c_run=$(per_run cold "$c_rep"); n_run=$(per_run noop "$n_rep")
  echo "$cold" | awk -F'\t' -v n="$images" -v r="$c_run" '{ x = ($10 - r) / n; printf "- cold: %d destination requests = %.2f per image + %d per run (ping, catalog); target ≤ 6 per single-layer image: %s (%.3f per image counting the per-run ones)\n", $10, x, r, (x <= 6 ? "holds" : "MISSED"), $10 / n }'
  echo "$noop" | awk -F'\t' -v n="$images" -v r="$n_run" '{ x = ($10 - r) / n; printf "- no-op: %d source requests (target 0): %s; %d destination requests = %.2f per wanted tag + %d per run (ping); target ≤ 1 per tag: %s (%.3f counting the ping)\n", $9, ($9 == 0 ? "holds" : "MISSED"), $10, x, r, (x <= 1 ? "holds" : "MISSED"), $10 / n }'
  echo
fi

if [ -f "$R/info.e" ]; then
  echo "## Fan-out (e): one source, four destination registries"
  echo
  images=$(info e images)
  blobs=$((images * 3)) # two layers and a config per image
  for tool in promoter skopeo-copy; do
    row=$(best e "$tool" cold)
    [ -n "$row" ] || continue
    rep=$(echo "$row" | cut -f4)
    gets=$(awk '$2 == "GET" && $3 == "blobs/<digest>" && $4 == 200 { s += $1 } END { print s + 0 }' "$R/runs/e.$tool.cold.$rep.src")
    echo "$row" | awk -F'\t' -v t="$tool" -v g="$gets" -v b="$blobs" '{
      printf "- %s: %.2f s, %d source blob GETs for %d distinct blobs = %.2f per blob (target ≤ 1.05: %s), peak RSS %.0f MiB (target < 128: %s)\n",
        t, $5, g, b, g / b, (t != "promoter" ? "-" : (g / b <= 1.05 ? "holds" : "MISSED")), $8 / 1024, (t != "promoter" ? "-" : ($8 / 1024 < 128 ? "holds" : "MISSED")) }'
  done
  # Client CPU per GiB written across the four destinations (issue 26: at
  # most ocync's, or without ocync here, 0.9 CPU-s/GiB), every cold run.
  written=$(( $(info e bytes) * 4 ))
  awk -F'\t' -v w="$written" '$1 == "e" && $3 == "cold" {
      cpu = $6 + $7; per = cpu / (w / 1073741824)
      printf "- %s rep %s: client CPU %.2f s for %.2f GiB written = %.2f CPU-s/GiB%s\n", $2, $4, cpu, w / 1073741824, per,
        ($2 == "promoter" ? (per <= 0.9 ? " (target ≤ 0.9: holds)" : " (target ≤ 0.9: MISSED)") : "") }' "$R/results.tsv"
  echo
fi

echo "## promoter's own counters (cold runs, from --output json)"
echo
for part in a b c d e f big; do
  [ -f "$R/info.$part" ] || continue
  rep=$(best "$part" promoter cold | cut -f4)
  f=$R/runs/$part.promoter.cold.$rep.out
  [ -f "$f" ] || continue
  printf -- '- %s: %s\n' "$part" "$(awk -F'[":, ]+' '/"stats"/ { on = 1; next } on && /}/ { on = 0 } on { printf "%s%s %s", sep, $2, $3; sep = ", " }' "$f")"
done
echo

echo "## Requests per image by endpoint (the best run of each; METHOD endpoint status: count per image)"
for part in a b c d e f big; do
  [ -f "$R/info.$part" ] || continue
  images=$(info "$part" images)
  for tool in promoter promoter-noatt skopeo-sync skopeo-copy; do
    for phase in cold noop; do
      row=$(best "$part" "$tool" "$phase")
      [ -n "$row" ] || continue
      rep=$(echo "$row" | cut -f4)
      echo
      echo "### $part $tool $phase ($images images)"
      echo '```'
      for side in dst src; do
        f=$R/runs/$part.$tool.$phase.$rep.$side
        [ -s "$f" ] || { echo "$side: none"; continue; }
        awk -v n="$images" -v side="$side" '{ c = $1; $1 = ""; printf "%s %6d = %6.2f/img  %s\n", side, c, c / n, $0 }' "$f"
      done
      echo '```'
    done
  done
done
echo

fi # PROMOTION

if [ -f "$R/info.big" ]; then
  echo "## One 1 GiB layer"
  echo
  bytes=$(info big bytes)
  for tool in promoter skopeo-copy; do
    best big "$tool" cold | awk -F'\t' -v b="$bytes" '{ printf "- %s: %.2f s, %.0f MB/s, peak RSS %.1f MiB%s\n", $2, $5, b / 1e6 / $5, $8 / 1024, ($2 == "promoter" ? ($8 / 1024 < 64 ? " (target < 64 MiB: holds)" : " (target < 64 MiB: MISSED)") : "") }'
  done
  echo
fi

if [ -f "$R/parse-tree.txt" ]; then
  echo "## --parse-only on the generated thin tree"
  echo
  echo "- $(cat "$R/parse-tree.txt")"
  best parse promoter parse-only | awk -F'\t' -v all="$(walls parse promoter parse-only)" '{ printf "- best %.3f s (runs: %s), peak RSS %.1f MiB, CPU %.2f s (target < 0.3 s: %s)\n", $5, all, $8 / 1024, $6 + $7, ($5 < 0.3 ? "holds" : "MISSED") }'
  echo
fi

if [ -f "$R/info.snap" ]; then
  echo "## Snapshot of 1,000 repositories × 5 tags (issue 5 §7)"
  echo
  p=$(best snap promoter snapshot)
  stool=$(awk -F'\t' '$1 == "snap" && $2 ~ /^skopeo-/ { print $2; exit }' "$TSV")
  s=$(best snap "$stool" snapshot)
  repos=${stool#skopeo-}
  echo "$p" | awk -F'\t' -v all="$(walls snap promoter snapshot)" '{ printf "- promoter run --snapshot: %.2f s (runs: %s), %d requests, client CPU %.2f s, registry CPU %.2f s, peak RSS %.1f MiB\n", $5, all, $9, $6 + $7, $11, $8 / 1024 }'
  echo "$s" | awk -F'\t' -v all="$(walls snap "$stool" snapshot)" -v r="$repos" '{ printf "- skopeo list-tags + inspect --raw per tag, %d of 1000 repositories: %.2f s (runs: %s), %d requests, client CPU %.2f s, registry CPU %.2f s\n", r, $5, all, $9, $6 + $7, $11 }'
  pw=$(echo "$p" | cut -f5); sw=$(echo "$s" | cut -f5)
  if [ "$repos" = 1000 ]; then
    r=$(ratio "$sw" "$pw")
    echo "- ratio skopeo / promoter: **${r}×** (target ≥ 10×: $(check "$r" 10))"
  else
    full=$(awk -v s="$sw" -v r="$repos" 'BEGIN { printf "%.1f", s * 1000 / r }')
    r=$(ratio "$full" "$pw")
    echo "- skopeo extrapolated to 1,000 repositories (×$((1000 / repos)), EXTRAPOLATED): ${full} s"
    echo "- ratio skopeo (extrapolated) / promoter: **${r}×** (target ≥ 10×: $(check "$r" 10))"
  fi
  echo
fi

if [ -f "$R/k8s.tsv" ]; then
  echo "## The registry.k8s.io-sized no-op inventory (issue 26 §5)"
  echo
  echo 'workload f (200 repositories × 10 tags) already in 4 destination registries, each behind a'
  echo 'counting proxy; `promoter run --confirm` with nothing to do, reading tags/list plainly or'
  echo "with Google's digest map (google_listing). Requests are the destinations' (source reads apart)."
  echo 'In google mode the proxy builds each map with a HEAD per tag against the registry behind it'
  echo '(a Google registry answers from its own index), so its wall time here is not a saving to read.'
  echo
  echo "| listing | rep | wall s | destination requests | per destination tag | client CPU s | peak RSS MiB |"
  echo "|---|---|---|---|---|---|---|"
  awk -F'\t' 'NR > 1 { printf "| %s | %s | %.2f | %d | %.3f | %.2f | %d |\n", $1, $2, $3, $4, $4 / $5, $6, $7 }' "$R/k8s.tsv"
  echo
  # The real tree (BENCHMARKS.md, "Manifest validation"): 428 images,
  # 32,938 tag entries, 22 destinations. Requests scale with destination
  # tags (plain) or destination repositories (google); the wall time is
  # projected at the request rate measured here (loopback: a floor).
  awk -F'\t' 'NR > 1 && (!($1 in w) || $3 < w[$1]) { w[$1] = $3; n[$1] = $4; t[$1] = $5 }
    END {
      # Both at the plain run'"'"'s request rate: the google run'"'"'s own rate
      # includes the proxy building its maps.
      rate = n["plain"] / w["plain"]
      for (m in w) {
        real = (m == "plain") ? n[m] / t[m] * 32938 * 22 : n[m] / (200 * 4) * 428 * 22
        printf "- projected for the real tree (32,938 tags, 428 images, 22 destinations), %s: %.0f requests, %.0f s at %.0f requests/s (the plain run'"'"'s rate here)\n", m, real, real / rate, rate
      }
    }' "$R/k8s.tsv" | sort
  echo
fi

if [ -f "$R/quota.tsv" ]; then
  echo "## Under quotas (issue 26)"
  echo
  cat "$R/quota.txt"
  echo
  echo "| workload | pacing | Retry-After | wall s | quota-limited optimum s | wall / optimum | requests | 429s | 429 share | failed edges | exit | client CPU s |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' 'NR > 1 { printf "| %s | %s | %s | %.2f | %.2f | **%.3f×** | %d | %d | **%.2f%%** | %d | %d | %.2f |\n", $1, $2, ($3 == 1 ? "yes" : "no"), $4, $5, $6, $7, $8, $9, $10, $11, $12 }' "$R/quota.tsv"
  echo
  echo "Target (adaptive): wall ≤ 1.15 × optimum, 429s ≤ 2% of requests, 0 failed edges."
  awk -F'\t' 'NR > 1 && $2 == "adaptive" { ok = ($6 <= 1.15 && $9 <= 2 && $10 == 0 && $11 == 0); printf "- %s, Retry-After %s: %s\n", $1, ($3 == 1 ? "yes" : "no"), (ok ? "holds" : "MISSED") }' "$R/quota.tsv"
  echo
fi

if [ -f "$R/verified.txt" ]; then
  echo "## Verification"
  echo
  sed 's/^/- /' "$R/verified.txt"
fi
