"""keyusers in DuckDB SQL with list() aggregation (what `groupByKey` is): events CSV
(ts,user,key,value) INPUT OUTPUT -> `key<TAB>events<TAB>distinct users` lines in OUTPUT."""
import os
import sys

import duckdb


def sql_string(s):
    return "'" + s.replace("'", "''") + "'"


def main():
    inp, out = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    con.execute(f"SET threads = {int(os.environ.get('PEER_THREADS', '2'))}")
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"""
        COPY (
            SELECT key, len(users) AS events, len(list_distinct(users)) AS distinct_users
            FROM (SELECT key, list("user") AS users
                  FROM read_csv({sql_string(inp)}, header = true, auto_detect = false,
                                columns = {{'ts': 'BIGINT', 'user': 'VARCHAR', 'key': 'VARCHAR', 'value': 'BIGINT'}})
                  GROUP BY key)
        ) TO {sql_string(out)} (FORMAT csv, DELIMITER '\\t', HEADER false, QUOTE '')
    """)


if __name__ == "__main__":
    main()
