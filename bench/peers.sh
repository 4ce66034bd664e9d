#!/usr/bin/env bash
# Sluice against peers on the same generated data (`make bench-peers`). See bench/README.md.
#
#   bash bench/peers.sh                          all peers, 1 GiB text and 10 M events
#   PEERS=duckdb,polars,c bash bench/peers.sh     a selection (Sluice always runs: it is the reference)
#   BENCH_QUICK=1 bash bench/peers.sh            16 MiB text and 200 k events
#   PEERS=duckdb,flink PEERS_TASKS=eventcounts bash bench/peers.sh   the stream job only
#
# Peers: c (bench/baseline/wc.c, 1 and 2 threads), gnu (tr | sort | uniq -c), duckdb, polars,
# spark-df, spark-rdd (spark = both), flink (PyFlink SQL, eventcounts only). Tasks (PEERS_TASKS):
# wordcount, eventsum, eventcounts (the stream job: Sluice's kappa view against DuckDB and Flink),
# sort (GNU sort and DuckDB ORDER BY, outputs byte-identical), join (two large tables, and events
# with 100 k key names shuffled on both sides; DuckDB), groupby (keyusers against DuckDB's list()).
# Environment: PEERS_TEXT_SIZE (default 1g), PEERS_EVENT_ROWS (default 10000000), PEER_THREADS
# (threads/workers for everyone, default 2), PEERS_SORT_SIZES (default "500m 1g"), PEERS_JOIN_ROWS
# (default 5000000), BENCH_RUNS (default 3), PEERS_SPARK_RUNS (default 1:
# Spark takes minutes), BENCH_DIR, SLUICE, PEERS_VENV (default .venv-bench), PEERS_PIP (packages; default:
# the packages of the peers asked for: duckdb polars pyspark), PEERS_STREAM_ROWS (events of
# eventcounts, default 5000000, quick 200000), PEERS_STREAM_RUNS (runs of Sluice's kappa, the
# instrumented one included; default BENCH_RUNS), PEERS_FLINK_RUNS (default 1),
# PEERS_FLINK_VENV (default .venv-bench-flink: apache-flink pins its own numpy, pandas, pyarrow,
# py4j and apache-beam, so it has a venv of its own), PEERS_FLINK_PIP (default apache-flink).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib/common.sh

PEERS=${PEERS:-c,gnu,duckdb,polars,spark,flink}
TASKS=${PEERS_TASKS:-wordcount,eventsum,eventcounts,sort,join,groupby}
THREADS=${PEER_THREADS:-2}
SPARK_RUNS=${PEERS_SPARK_RUNS:-1}
FLINK_RUNS=${PEERS_FLINK_RUNS:-1}
STREAM_RUNS=${PEERS_STREAM_RUNS:-$BENCH_RUNS}
VENV=${PEERS_VENV:-.venv-bench}
FLINK_VENV=${PEERS_FLINK_VENV:-.venv-bench-flink}
export PEER_THREADS=$THREADS POLARS_MAX_THREADS=$THREADS
if [ "$BENCH_QUICK" = 1 ]; then
  TEXT_SIZE=${PEERS_TEXT_SIZE:-16m}; EVENT_ROWS=${PEERS_EVENT_ROWS:-200000}
  STREAM_ROWS=${PEERS_STREAM_ROWS:-200000}
  read -ra SORT_SIZES <<< "${PEERS_SORT_SIZES:-8m 16m}"; JOIN_ROWS=${PEERS_JOIN_ROWS:-200000}
else
  TEXT_SIZE=${PEERS_TEXT_SIZE:-1g}; EVENT_ROWS=${PEERS_EVENT_ROWS:-10000000}
  STREAM_ROWS=${PEERS_STREAM_ROWS:-5000000}
  read -ra SORT_SIZES <<< "${PEERS_SORT_SIZES:-500m 1g}"; JOIN_ROWS=${PEERS_JOIN_ROWS:-5000000}
fi

# Which peers and tasks.
declare -A WANT=()
IFS=, read -ra _list <<< "$PEERS"
for p in "${_list[@]}"; do
  case "$p" in
    c|gnu|duckdb|polars|spark-df|spark-rdd|flink) WANT[$p]=1 ;;
    spark) WANT[spark-df]=1; WANT[spark-rdd]=1 ;;
    sluice|"") ;;
    *) fail "unknown peer '$p' in PEERS (known: c, gnu, duckdb, polars, spark, spark-df, spark-rdd, flink)" ;;
  esac
done
declare -A TASK=()
IFS=, read -ra _list <<< "$TASKS"
for t in "${_list[@]}"; do
  case "$t" in
    wordcount|eventsum|eventcounts|sort|join|groupby) TASK[$t]=1 ;;
    *) fail "unknown task '$t' in PEERS_TASKS (known: wordcount, eventsum, eventcounts, sort, join, groupby)" ;;
  esac
done
want() { [ -n "${WANT[$1]:-}" ]; }

need_tools
need_sluice
build_wc

# Python peers live in a venv of their own (PyPI packages; Java for Spark).
PY=""
if want duckdb || want polars || want spark-df || want spark-rdd; then
  if { want spark-df || want spark-rdd; } && ! command -v java >/dev/null 2>&1; then
    fail "Spark needs Java (17 or later): install openjdk-17-jre-headless, or leave spark out of PEERS"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    python3 -m venv "$VENV" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  fi
  PY="$VENV/bin/python"
  # Only the wanted peers' packages: PEERS=duckdb,polars needs no pyspark.
  MODULES=()
  want duckdb && MODULES+=(duckdb)
  want polars && MODULES+=(polars)
  { want spark-df || want spark-rdd; } && MODULES+=(pyspark)
  PIP_PACKAGES=${PEERS_PIP:-${MODULES[*]}}
  IMPORTS=$(IFS=,; echo "${MODULES[*]}")
  if ! "$PY" -c "import $IMPORTS" >/dev/null 2>&1; then
    say "pip install $PIP_PACKAGES (into $VENV)"
    "$PY" -m pip install -q --upgrade pip >/dev/null
    # shellcheck disable=SC2086
    "$PY" -m pip install -q $PIP_PACKAGES || fail "pip install $PIP_PACKAGES failed"
  fi
  VERSIONS=$("$PY" -c "import sys, $IMPORTS; print('python=' + sys.version.split()[0], *[m + '=' + sys.modules[m].__version__ for m in '$IMPORTS'.split(',')])")
  say "$VERSIONS"
fi

# Flink (eventcounts only): PyFlink from PyPI in a venv of its own; it runs on the system Java
# (17 is supported by Flink 2.x) and starts a local mini-cluster in that JVM.
FPY=""
if want flink && [ -n "${TASK[eventcounts]:-}" ]; then
  command -v java >/dev/null 2>&1 || fail "Flink needs Java 17 (openjdk-17-jre-headless), or leave flink out of PEERS"
  if [ ! -x "$FLINK_VENV/bin/python" ]; then
    say "creating $FLINK_VENV"
    python3 -m venv "$FLINK_VENV" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  fi
  FPY="$FLINK_VENV/bin/python"
  FLINK_PIP=${PEERS_FLINK_PIP:-apache-flink}
  if ! "$FPY" -c "import pyflink.table" >/dev/null 2>&1; then
    say "pip install $FLINK_PIP (into $FLINK_VENV; ~700 MB with its dependencies)"
    "$FPY" -m pip install -q --upgrade pip >/dev/null
    # shellcheck disable=SC2086
    "$FPY" -m pip install -q $FLINK_PIP || fail "pip install $FLINK_PIP failed"
  fi
  FLINK_VERSION=$("$FPY" -c "from pyflink.version import __version__; print(__version__)")
  JAVA_VERSION=$(java -version 2>&1 | head -1)
  say "apache-flink=$FLINK_VERSION, $JAVA_VERSION"
  VERSIONS="${VERSIONS:-} apache-flink=$FLINK_VERSION java=$(echo "$JAVA_VERSION" | sed 's/[^"]*"\([^"]*\)".*/\1/')"
fi

setup_bench_dir
RESULTS=bench/results
mkdir -p "$RESULTS/logs"
JSONL="$RESULTS/.peers-$$.jsonl"
rm -f "$JSONL"
OUT="$BENCH_DIR/peers-out"
rm -rf "$OUT"
mkdir -p "$OUT"

# peer TASK NAME TOOL DESCRIPTION INPUT OUT REFERENCE [harness options] -- COMMAND...
# The output OUT is compared with REFERENCE (Sluice's output) unless REFERENCE is empty;
# REFERENCE "check:COMMAND" runs COMMAND as the check instead.
peer() {
  local task=$1 name=$2 tool=$3 desc=$4 input=$5 out=$6 ref=$7; shift 7
  local opts=() how=same-counts
  while [ "$1" != -- ]; do
    if [ "$1" = --check-with ]; then how=$2; shift 2; continue; fi
    opts+=("$1"); shift
  done
  shift
  local check=()
  if [[ "$ref" == check:* ]]; then
    check=(--check "${ref#check:}")
  elif [ -n "$ref" ]; then
    check=(--check "$HARNESS $how $(printf %q "$out") $(printf %q "$ref")")
  fi
  $HARNESS measure --results "$JSONL" --log-dir "$RESULTS/logs" --name "$task/$name" --group "$task" \
    --tool "$tool" --desc "$desc" --workers "$THREADS" --input-bytes "$(file_bytes "$input")" \
    --prepare "rm -rf $out" "${check[@]}" "${opts[@]}" -- "$@"
}

spark_opts() { echo --runs "$SPARK_RUNS" --count-instrumented; }

if [ -n "${TASK[wordcount]:-}" ]; then
  TEXT=$(text_file "$TEXT_SIZE")
  SL="$OUT/wordcount-sluice"
  peer wordcount sluice sluice "sluice run wordcount --workers $THREADS" "$TEXT" "$SL" "" --timed-extra=-q \
    -- "$SLUICE" run wordcount --input "$TEXT" --output "$SL" --workers "$THREADS"
  if want c; then
    peer wordcount c-t1 c "bench/baseline/wc.c -t 1 (writes the output)" "$TEXT" "$OUT/wc-c1.tsv" "$SL" \
      -- "$WC_BIN" -t 1 -o "$OUT/wc-c1.tsv" "$TEXT"
    peer wordcount c-t2 c "bench/baseline/wc.c -t 2" "$TEXT" "$OUT/wc-c2.tsv" "$SL" \
      -- "$WC_BIN" -t 2 -o "$OUT/wc-c2.tsv" "$TEXT"
  fi
  if want gnu; then
    peer wordcount gnu gnu "tr -s | sort --parallel=2 | uniq -c (LC_ALL=C)" "$TEXT" "$OUT/wc-gnu.tsv" "$SL" \
      -- bash bench/peers/gnu_wordcount.sh "$TEXT" "$OUT/wc-gnu.tsv"
  fi
  if want duckdb; then
    peer wordcount duckdb duckdb "DuckDB SQL regexp_split_to_array + unnest + GROUP BY" "$TEXT" "$OUT/wc-duckdb.tsv" "$SL" \
      -- "$PY" bench/peers/duckdb_wordcount.py "$TEXT" "$OUT/wc-duckdb.tsv"
  fi
  if want polars; then
    peer wordcount polars polars "Polars lazy extract_all + explode + group_by, streaming sink" "$TEXT" "$OUT/wc-polars.tsv" "$SL" \
      -- "$PY" bench/peers/polars_wordcount.py "$TEXT" "$OUT/wc-polars.tsv"
  fi
  if want spark-df; then
    # shellcheck disable=SC2046
    peer wordcount spark-df spark "PySpark DataFrame split + explode + groupBy, local[$THREADS]" "$TEXT" "$OUT/wc-spark-df" "$SL" \
      $(spark_opts) -- "$PY" bench/peers/spark_jobs.py wordcount-df "$TEXT" "$OUT/wc-spark-df"
  fi
  if want spark-rdd; then
    # shellcheck disable=SC2046
    peer wordcount spark-rdd spark "PySpark RDD flatMap + reduceByKey (Python workers), local[$THREADS]" "$TEXT" "$OUT/wc-spark-rdd" "$SL" \
      $(spark_opts) -- "$PY" bench/peers/spark_jobs.py wordcount-rdd "$TEXT" "$OUT/wc-spark-rdd"
  fi
fi

if [ -n "${TASK[sort]:-}" ]; then
  # Sorting lines bytewise: every output is compared byte for byte with Sluice's.
  for size in "${SORT_SIZES[@]}"; do
    TEXT=$(text_file "$size")
    LINES=$(line_count "$TEXT")
    SL="$OUT/sort-$size-sluice"
    peer sort "sluice-$size" sluice "sluice run sort --workers $THREADS, $size" "$TEXT" "$SL" "" --timed-extra=-q \
      --records "$LINES" --records-label lines \
      -- "$SLUICE" run sort --input "$TEXT" --output "$SL" --workers "$THREADS"
    if want gnu; then
      peer sort "gnu-$size" gnu "LC_ALL=C sort --parallel=$THREADS -S 4G, $size" "$TEXT" "$OUT/sort-$size-gnu.txt" "$SL" \
        --check-with same-bytes --records "$LINES" --records-label lines \
        -- env LC_ALL=C sort --parallel="$THREADS" -S 4G -o "$OUT/sort-$size-gnu.txt" "$TEXT"
    fi
    if want duckdb; then
      peer sort "duckdb-$size" duckdb "DuckDB SQL ORDER BY line, $size" "$TEXT" "$OUT/sort-$size-duckdb.txt" "$SL" \
        --check-with same-bytes --records "$LINES" --records-label lines \
        -- "$PY" bench/peers/duckdb_sort.py "$TEXT" "$OUT/sort-$size-duckdb.txt"
    fi
  done
fi

if [ -n "${TASK[join]:-}" ]; then
  # Both sides shuffled: two large tables, and events with a small table (broadcast off).
  LEFT=$(table_file "$JOIN_ROWS" 1)
  RIGHT=$(table_file "$JOIN_ROWS" 2)
  EVENTS=$(events_file "$EVENT_ROWS")
  KEY_NAMES=$(key_names_file 100000)
  for pair in "large-large|$LEFT|$RIGHT|id|" "large-small|$EVENTS|$KEY_NAMES|key|--broadcast-threshold 0"; do
    IFS='|' read -r kind l r on extra <<< "$pair"
    SL="$OUT/join-$kind-sluice"
    # shellcheck disable=SC2086
    peer join "sluice-$kind" sluice "sluice run join --workers $THREADS $extra ($kind)" "$l" "$SL" "" --timed-extra=-q \
      -- "$SLUICE" run join --left "$l" --right "$r" --on "$on" --output "$SL" --workers "$THREADS" $extra
    if want duckdb; then
      peer join "duckdb-$kind" duckdb "DuckDB SQL hash join ($kind)" "$l" "$OUT/join-$kind-duckdb.tsv" "$SL" \
        --check-with same-lines -- "$PY" bench/peers/duckdb_join.py "$l" "$r" "$on" "$OUT/join-$kind-duckdb.tsv"
    fi
  done
fi

if [ -n "${TASK[groupby]:-}" ]; then
  EVENTS=$(events_file "$EVENT_ROWS")
  SL="$OUT/keyusers-sluice"
  peer groupby sluice sluice "sluice run keyusers (groupByKey) --workers $THREADS" "$EVENTS" "$SL" "" --timed-extra=-q \
    --records "$EVENT_ROWS" --records-label rows \
    -- "$SLUICE" run keyusers --input "$EVENTS" --output "$SL" --workers "$THREADS"
  if want duckdb; then
    peer groupby duckdb duckdb "DuckDB SQL list(user) GROUP BY key" "$EVENTS" "$OUT/keyusers-duckdb.tsv" "$SL" \
      --check-with same-lines --records "$EVENT_ROWS" --records-label rows \
      -- "$PY" bench/peers/duckdb_keyusers.py "$EVENTS" "$OUT/keyusers-duckdb.tsv"
  fi
fi

if [ -n "${TASK[eventsum]:-}" ]; then
  EVENTS=$(events_file "$EVENT_ROWS")
  SL="$OUT/eventsum-sluice"
  peer eventsum sluice sluice "sluice run eventsum --workers $THREADS" "$EVENTS" "$SL" "" --timed-extra=-q \
    --records "$EVENT_ROWS" --records-label rows \
    -- "$SLUICE" run eventsum --input "$EVENTS" --output "$SL" --workers "$THREADS"
  if want duckdb; then
    peer eventsum duckdb duckdb "DuckDB SQL GROUP BY key, sum(value)" "$EVENTS" "$OUT/ev-duckdb.tsv" "$SL" \
      --records "$EVENT_ROWS" --records-label rows \
      -- "$PY" bench/peers/duckdb_eventsum.py "$EVENTS" "$OUT/ev-duckdb.tsv"
  fi
  if want polars; then
    peer eventsum polars polars "Polars lazy group_by(key).sum(), streaming sink" "$EVENTS" "$OUT/ev-polars.tsv" "$SL" \
      --records "$EVENT_ROWS" --records-label rows \
      -- "$PY" bench/peers/polars_eventsum.py "$EVENTS" "$OUT/ev-polars.tsv"
  fi
  if want spark-df; then
    # shellcheck disable=SC2046
    peer eventsum spark-df spark "PySpark DataFrame read.csv + groupBy(key).sum, local[$THREADS]" "$EVENTS" "$OUT/ev-spark-df" "$SL" \
      --records "$EVENT_ROWS" --records-label rows \
      $(spark_opts) -- "$PY" bench/peers/spark_jobs.py eventsum-df "$EVENTS" "$OUT/ev-spark-df"
  fi
fi

if [ -n "${TASK[eventcounts]:-}" ]; then
  # The stream job: Sluice's kappa view over a log of the events (appended once, not timed) is
  # the reference; the peers read the same events CSV and write the same rows (key, ISO window,
  # count, sum), compared line by line (`harness.py same-view`).
  SEVENTS=$(events_file "$STREAM_ROWS")
  SLOG=$(events_log "$SEVENTS")
  SPAIRS=$(pairs_reference "$SEVENTS")
  SL="$OUT/eventcounts-sluice"
  KAPPA_W=(); KAPPA_DESC="one process (this kappa has no --workers)"
  if "$SLUICE" kappa --help 2>&1 | grep -q -- --workers; then
    KAPPA_W=(--workers "$THREADS"); KAPPA_DESC="--workers $THREADS"
  fi
  peer eventcounts sluice sluice "sluice kappa eventcounts, $KAPPA_DESC (log of the CSV, appended beforehand)" \
    "$SEVENTS" "$SL" "check:$HARNESS stream-view $SL $SPAIRS" \
    --records "$STREAM_ROWS" --records-label ev --runs "$STREAM_RUNS" --count-instrumented \
    -- "$SLUICE" kappa eventcounts --log "$SLOG" --output "$SL" "${KAPPA_W[@]}"
  view_check() { printf 'check:%s same-view %s %q %q' "$HARNESS" "${2:-}" "$1" "$SL/view.tsv"; }
  if want duckdb; then
    for t in "$THREADS" 1; do
      peer eventcounts "duckdb-t$t" duckdb "DuckDB SQL GROUP BY key, ts // 60000, ORDER BY, COPY TO tsv; $t thread(s)" \
        "$SEVENTS" "$OUT/ec-duckdb-t$t.tsv" "$(view_check "$OUT/ec-duckdb-t$t.tsv")" \
        --records "$STREAM_ROWS" --records-label ev --workers "$t" \
        -- env PEER_THREADS="$t" "$PY" bench/peers/duckdb_eventcounts.py "$SEVENTS" "$OUT/ec-duckdb-t$t.tsv"
    done
    # The same rows unsorted (sorted by the check, outside the timing): sorting and writing
    # 3.7 M ordered rows is a large part of DuckDB's time at 5 M events.
    peer eventcounts "duckdb-t$THREADS-unsorted" duckdb "DuckDB as above without ORDER BY (rows in any order); $THREADS threads" \
      "$SEVENTS" "$OUT/ec-duckdb-unsorted.tsv" "$(view_check "$OUT/ec-duckdb-unsorted.tsv" --sort)" \
      --records "$STREAM_ROWS" --records-label ev \
      -- env PEER_THREADS="$THREADS" "$PY" bench/peers/duckdb_eventcounts.py "$SEVENTS" "$OUT/ec-duckdb-unsorted.tsv" --unsorted
  fi
  if want flink; then
    NOHEADER=$(headerless_file "$SEVENTS")
    # The script's own timeline (instrumented run): seconds until the JVM and the table
    # environment are up, until the job was submitted, until it finished.
    FLINK_METRICS=("--metric=jvm_up_s=([0-9.]+) s +JVM" "--metric=submitted_s=([0-9.]+) s +job submitted"
                   "--metric=finished_s=([0-9.]+) s +(?:job finished|empty job done)")
    peer eventcounts flink-startup flink "PyFlink: JVM + local mini-cluster start and an empty job (the fixed cost inside the flink time)" \
      "$SEVENTS" "$OUT/ec-flink-startup" "" --runs "$FLINK_RUNS" --count-instrumented "${FLINK_METRICS[@]}" \
      -- "$FPY" bench/peers/flink_eventcounts.py --startup
    peer eventcounts flink flink "PyFlink SQL streaming: event time, WATERMARK rowtime - 1 min, TUMBLE 1 min, COUNT/SUM, parallelism $THREADS, filesystem csv sink (sorted for the check)" \
      "$SEVENTS" "$OUT/ec-flink" "$(view_check "$OUT/ec-flink" --sort)" \
      --records "$STREAM_ROWS" --records-label ev --runs "$FLINK_RUNS" --count-instrumented "${FLINK_METRICS[@]}" \
      -- "$FPY" bench/peers/flink_eventcounts.py "$NOHEADER" "$OUT/ec-flink"
  fi
fi

[ -s "$JSONL" ] || fail "nothing ran (PEERS_TASKS=$TASKS?)"
status=0
$HARNESS report --peers --results "$JSONL" --json "$RESULTS/peers-latest.json" --stamped "$RESULTS/peers" \
  --meta "sluice=$SLUICE" --meta "bench_dir=$BENCH_DIR" --meta "peers=${VERSIONS:-}" \
  --meta "text_size=$TEXT_SIZE" --meta "event_rows=$EVENT_ROWS" --meta "stream_rows=$STREAM_ROWS" || status=$?
rm -f "$JSONL"
rm -rf "$OUT"
if [ "$status" != 0 ]; then
  say "some peers failed or their output differs from Sluice's (see FAILED above)"
fi
exit "$status"
