"""Word count with Polars (lazy, streaming sink): INPUT OUTPUT -> `token<TAB>count` lines.

Lines are read as one CSV column (delimiter \\x01, no quoting); tokens are the matches of
[^ \\t\\n\\r\\x0B\\x0C]+, i.e. Sluice's definition on valid UTF-8 text. Threads: POLARS_MAX_THREADS."""
import sys

import polars as pl


def main():
    inp, out = sys.argv[1], sys.argv[2]
    lines = pl.scan_csv(inp, has_header=False, separator="\x01", quote_char=None,
                        schema={"line": pl.String})
    (lines.select(pl.col("line").str.extract_all(r"[^ \t\n\r\x0B\x0C]+").alias("token"))
        .explode("token")
        .drop_nulls()
        .group_by("token")
        .len()
        .sink_csv(out, separator="\t", include_header=False, quote_style="never"))


if __name__ == "__main__":
    main()
