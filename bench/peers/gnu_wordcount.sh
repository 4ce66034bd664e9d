#!/usr/bin/env bash
# Word count as a GNU coreutils pipeline: INPUT OUTPUT -> `token<TAB>count` lines.
# tr turns the six ASCII whitespace bytes into newlines (squeezed), sort groups equal tokens
# (byte order, 2 threads, up to 25% of RAM as buffer), uniq -c counts them.
set -euo pipefail
export LC_ALL=C
tr -s ' \t\n\r\v\f' '\n' < "$1" | sed '/^$/d' | sort --parallel=2 -S 25% | uniq -c \
  | sed -E 's/^ *([0-9]+) (.*)$/\2\t\1/' > "$2"
