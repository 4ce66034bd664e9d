"""Group-by-sum with Polars (lazy, streaming sink) over the events CSV: INPUT OUTPUT ->
`key<TAB>sum of value` lines."""
import sys

import polars as pl


def main():
    inp, out = sys.argv[1], sys.argv[2]
    events = pl.scan_csv(inp, has_header=True,
                         schema={"ts": pl.Int64, "user": pl.String, "key": pl.String, "value": pl.Int64})
    (events.group_by("key")
        .agg(pl.col("value").sum())
        .sink_csv(out, separator="\t", include_header=False, quote_style="never"))


if __name__ == "__main__":
    main()
