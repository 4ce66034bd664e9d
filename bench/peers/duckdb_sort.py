"""Sorts the lines of a text file bytewise in DuckDB SQL (ORDER BY on VARCHAR compares UTF-8
bytes): INPUT OUTPUT -> the sorted lines in OUTPUT, byte for byte what `LC_ALL=C sort` writes
for text without tabs, quotes or carriage returns (as `sluice gen text` makes)."""
import os
import sys

import duckdb


def sql_string(s):
    return "'" + s.replace("'", "''") + "'"


def main():
    inp, out = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    con.execute(f"SET threads = {int(os.environ.get('PEER_THREADS', '2'))}")
    # Lines are read as one column: a separator and quote that never occur in the text.
    con.execute(f"""
        COPY (
            SELECT line
            FROM read_csv({sql_string(inp)}, header = false, auto_detect = false, delim = '\\x01',
                          quote = '', escape = '', columns = {{'line': 'VARCHAR'}})
            ORDER BY line
        ) TO {sql_string(out)} (FORMAT csv, DELIMITER '\\x01', HEADER false, QUOTE '')
    """)


if __name__ == "__main__":
    main()
