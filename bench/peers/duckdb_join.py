"""Inner hash join of two CSV/TSV tables with header rows in DuckDB SQL, as `sluice run join`
writes it: LEFT RIGHT KEY OUTPUT -> left fields, then right fields without the key, tab-separated
(every field read as text, so the bytes come out as they went in)."""
import os
import sys

import duckdb


def sql_string(s):
    return "'" + s.replace("'", "''") + "'"


def table(path):
    delim = "\\t" if path.endswith((".tsv", ".tab")) else ","
    return f"read_csv({sql_string(path)}, header = true, all_varchar = true, delim = '{delim}', quote = '', escape = '')"


def main():
    left, right, key, out = sys.argv[1:5]
    con = duckdb.connect()
    con.execute(f"SET threads = {int(os.environ.get('PEER_THREADS', '2'))}")
    con.execute("SET preserve_insertion_order = false")
    k = '"' + key.replace('"', '""') + '"'
    con.execute(f"""
        COPY (
            SELECT l.*, r.* EXCLUDE ({k})
            FROM {table(left)} AS l JOIN {table(right)} AS r ON l.{k} = r.{k}
        ) TO {sql_string(out)} (FORMAT csv, DELIMITER '\\t', HEADER false, QUOTE '')
    """)


if __name__ == "__main__":
    main()
