"""eventcounts in DuckDB SQL over the events CSV (ts,user,key,value): INPUT OUTPUT -> OUTPUT in
the format of `sluice kappa eventcounts`'s view.tsv: header `key<TAB>window<TAB>count<TAB>sum`,
one line per (key, event-time minute), window as ISO text (UTC), sorted by key then window.

A plain GROUP BY key, ts // 60000: no watermark, so no event is dropped as late (the generated
events are at most 60 s late, within the job's allowed lateness of 1 minute, so none is).
Threads: PEER_THREADS (default 2). With --unsorted (a third argument) the ORDER BY is left out:
the same rows in no order (a header still first), to show what sorting costs."""
import os
import sys

import duckdb


def sql_string(s):
    return "'" + s.replace("'", "''") + "'"


def main():
    inp, out = sys.argv[1], sys.argv[2]
    order = "" if sys.argv[3:] == ["--unsorted"] else "ORDER BY key, minute"
    con = duckdb.connect()
    con.execute(f"SET threads = {int(os.environ.get('PEER_THREADS', '2'))}")
    con.execute("SET TimeZone = 'UTC'")
    if not order:
        con.execute("SET preserve_insertion_order = false")
    # ORDER BY is what orders the file: keep insertion order preserved (the default). VARCHAR
    # sorts by bytes unless a collation is set, as Sluice sorts keys.
    con.execute(f"""
        COPY (
            SELECT key, strftime(epoch_ms(minute * 60000), '%Y-%m-%dT%H:%M:%SZ') AS "window",
                   count(*) AS "count", sum(value)::BIGINT AS "sum"
            FROM (
                SELECT key, ts // 60000 AS minute, value
                FROM read_csv({sql_string(inp)}, header = true, auto_detect = false,
                              columns = {{'ts': 'BIGINT', 'user': 'VARCHAR', 'key': 'VARCHAR', 'value': 'BIGINT'}})
            )
            GROUP BY key, minute
            {order}
        ) TO {sql_string(out)} (FORMAT csv, DELIMITER '\\t', HEADER true, QUOTE '')
    """)


if __name__ == "__main__":
    main()
