"""Word count in DuckDB SQL: INPUT OUTPUT -> `token<TAB>count` lines in OUTPUT.

Tokens are Sluice's: maximal runs of bytes other than space, \\t, \\n, \\r, \\v, \\f (the input
must be valid UTF-8, which generated text is). Lines are read as one CSV column with a
delimiter byte (\\x01) that does not occur in the text and no quoting."""
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
            SELECT token, count(*) AS n
            FROM (
                SELECT unnest(regexp_split_to_array(line, '[ \\t\\n\\r\\v\\f]+')) AS token
                FROM read_csv({sql_string(inp)}, columns = {{'line': 'VARCHAR'}}, header = false,
                              delim = '\x01', quote = '', escape = '', auto_detect = false,
                              max_line_size = 100000000, strict_mode = false)
            )
            WHERE token <> ''
            GROUP BY token
        ) TO {sql_string(out)} (FORMAT csv, DELIMITER '\\t', HEADER false, QUOTE '')
    """)


if __name__ == "__main__":
    main()
