# Shared by bench/run.sh and bench/peers.sh (sourced; they set -euo pipefail).
# Run from the repository root.

SLUICE=${SLUICE:-.build/release/sluice}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_QUICK=${BENCH_QUICK:-0}
HARNESS="python3 bench/lib/harness.py"
export BENCH_RUNS BENCH_QUICK

say() { printf '%s\n' "bench: $*" >&2; }
fail() { printf '%s\n' "bench: error: $*" >&2; exit 1; }

# Tools: hyperfine (timing) and GNU time (peak RSS); installed with apt-get when missing.
need_tools() {
  local missing=""
  command -v hyperfine >/dev/null 2>&1 || missing="$missing hyperfine"
  [ -x /usr/bin/time ] || missing="$missing time"
  command -v python3 >/dev/null 2>&1 || fail "python3 is required"
  command -v cc >/dev/null 2>&1 || missing="$missing gcc"
  if [ -n "$missing" ]; then
    say "installing$missing (apt-get)"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing \
      || fail "could not install$missing; install them and retry"
  fi
}

need_sluice() {
  [ -x "$SLUICE" ] || fail "$SLUICE not found: run 'swift build -c release' (or 'make release') first, or set SLUICE"
}

# The C yardstick, compiled into bench/bin/ when missing or older than its source.
WC_BIN=bench/bin/wc
build_wc() {
  mkdir -p bench/bin
  if [ ! -x "$WC_BIN" ] || [ bench/baseline/wc.c -nt "$WC_BIN" ]; then
    say "compiling bench/baseline/wc.c"
    cc -O2 -pthread -o "$WC_BIN" bench/baseline/wc.c || fail "cannot compile bench/baseline/wc.c"
  fi
}

# Data folder: BENCH_DIR (kept, files reused) or a fresh temporary folder (removed at exit
# unless BENCH_KEEP=1).
setup_bench_dir() {
  if [ -n "${BENCH_DIR:-}" ]; then
    mkdir -p "$BENCH_DIR"
  else
    BENCH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
      say "data in $BENCH_DIR (kept: BENCH_KEEP=1)"
    else
      say "data in $BENCH_DIR (removed at exit; set BENCH_DIR=/some/dir to keep and reuse the data)"
      trap 'rm -rf "$BENCH_DIR"' EXIT
    fi
  fi
  BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
  export BENCH_DIR
}

# Writes $1 with the command "$2 ... $1.partial" unless it exists (the name encodes the parameters).
# A partial file never remains under the final name.
make_once() {
  local file=$1; shift
  if [ -s "$file" ]; then
    say "reusing $file"
    return
  fi
  say "generating $file"
  "$@" "$file.partial" || { rm -f "$file.partial"; fail "could not generate $file"; }
  mv "$file.partial" "$file"
}

_gen_text() { # size seed vocabulary zipf out
  "$SLUICE" gen text --size "$1" --seed "$2" --vocabulary "$3" --zipf "$4" -o "$5"
}
# text SIZE [SEED VOCABULARY ZIPF] -> prints the path
text_file() {
  local size=$1 seed=${2:-1} vocab=${3:-1000000} zipf=${4:-1.1}
  local f="$BENCH_DIR/text-$size-s$seed-v$vocab-z$zipf.txt"
  make_once "$f" _gen_text "$size" "$seed" "$vocab" "$zipf" >&2
  printf '%s\n' "$f"
}

_gzip() { gzip -6 -n -c "$1" > "$2"; }
gzip_file() { # FILE -> FILE.gz
  make_once "$1.gz" _gzip "$1" >&2
  printf '%s\n' "$1.gz"
}

_gen_events() { "$SLUICE" gen events --rows "$1" --seed "$2" --keys "$3" -o "$4"; }
events_file() { # ROWS [SEED KEYS]
  local rows=$1 seed=${2:-1} keys=${3:-100000}
  local f="$BENCH_DIR/events-r$rows-s$seed-k$keys.csv"
  make_once "$f" _gen_events "$rows" "$seed" "$keys" >&2
  printf '%s\n' "$f"
}

_flights_x() { # copies out: the bundled flights, header once, body `copies` times
  local copies=$1 out=$2
  { gzip -dc datasets/nycflights13/flights.csv.gz | sed -n 1p
    for _ in $(seq "$copies"); do gzip -dc datasets/nycflights13/flights.csv.gz | sed 1d; done
  } > "$out"
}
flights_file() { # COPIES
  local f="$BENCH_DIR/flights-x$1.csv"
  make_once "$f" _flights_x "$1" >&2
  printf '%s\n' "$f"
}

# Reference word count of a text file by the C baseline (cached next to it).
_wc_ref() { "$WC_BIN" -t 2 -o "$2" "$1"; }
wc_reference() { # FILE -> FILE.wc
  make_once "$1.wc" _wc_ref "$1" >&2
  printf '%s\n' "$1.wc"
}

# Total tokens of a text file (cached).
_token_total() { "$WC_BIN" -t 2 -v -q "$1" 2>&1 >/dev/null | sed -n 's/^tokens \([0-9]*\).*/\1/p' > "$2"; }
token_total() {
  make_once "$1.tokens" _token_total "$1" >&2
  cat "$1.tokens"
}

file_bytes() { stat -c %s "$1"; }

# The `LC_ALL=C sort` of a text file: the reference of the sort benchmarks (cached next to it).
_sorted_ref() { LC_ALL=C sort --parallel=2 -S 2G -o "$2" "$1"; }
sorted_reference() { # FILE -> FILE.sorted
  make_once "$1.sorted" _sorted_ref "$1" >&2
  printf '%s\n' "$1.sorted"
}

_line_count() { wc -l < "$1" | tr -d ' ' > "$2"; }
line_count() { # FILE -> its number of lines (cached)
  make_once "$1.lines" _line_count "$1" >&2
  cat "$1.lines"
}

# A TSV table `id<TAB>n<TAB>payload` of ROWS rows with ids drawn from ROWS values (about one row
# per id), so a join of two of them is large on both sides.
_gen_table() {
  awk -v n="$1" -v seed="$2" 'BEGIN { srand(seed); print "id\tn\tpayload"
    for (i = 0; i < n; i++) printf "u%08d\t%d\tp%d-%d\n", int(rand() * n), i, seed, int(rand() * 1000000000) }' > "$3"
}
table_file() { # ROWS SEED -> prints the path
  local f="$BENCH_DIR/table-r$1-s$2.tsv"
  make_once "$f" _gen_table "$1" "$2" >&2
  printf '%s\n' "$f"
}

# `key,name` for the keys of `sluice gen events --keys N` (k + zero-padded index).
_gen_key_names() {
  awk -v n="$1" 'BEGIN { print "key,name"; w = length(n - 1); for (i = 0; i < n; i++) printf "k%0" w "d,name%d\n", i, i }' > "$2"
}
key_names_file() { # KEYS -> prints the path
  local f="$BENCH_DIR/keys-$1.csv"
  make_once "$f" _gen_key_names "$1" >&2
  printf '%s\n' "$f"
}

# An event log holding an events CSV (`sluice log append`, default segment size), beside it:
# events-r5000000-s1-k100000.csv -> events-r5000000-s1-k100000.log (a folder; appended once,
# reused). A crash leaves only FILE.partial, which is removed before the next try.
_log_append() { rm -rf "$2"; "$SLUICE" log append --log "$2" "$1" >&2; }
events_log() { # EVENTS_CSV -> prints the log folder
  local log="${1%.csv}.log"
  make_once "$log" _log_append "$1" >&2
  printf '%s\n' "$log"
}

# `pairs rows` of an events CSV: distinct (key, event-time minute) pairs and rows, by awk
# (the reference of the eventcounts views; cached next to the file).
_pairs_ref() {
  awk -F, 'NR > 1 { rows++; p = $3 SUBSEP int($1 / 60000); if (!(p in seen)) { seen[p] = 1; n++ } }
           END { printf "%d %d\n", n, rows }' "$1" > "$2"
}
pairs_reference() { # EVENTS_CSV -> prints the reference file
  make_once "$1.pairs" _pairs_ref "$1" >&2
  printf '%s\n' "$1.pairs"
}

# A copy of a CSV without its header line (for readers that cannot skip one: Flink's csv format).
_no_header() { tail -n +2 "$1" > "$2"; }
headerless_file() { # CSV -> prints CSV.noheader
  make_once "$1.noheader" _no_header "$1" >&2
  printf '%s\n' "$1.noheader"
}
