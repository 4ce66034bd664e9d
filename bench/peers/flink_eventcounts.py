"""eventcounts in Apache Flink (PyFlink Table API / SQL, streaming mode, local mini-cluster).

  flink_eventcounts.py INPUT OUTDIR [--lateness-s S]   the job: OUTDIR receives part files
  flink_eventcounts.py --startup                        only start the JVM and the mini-cluster
                                                        and run an empty job (fixed cost)

INPUT is the events CSV *without* its header line (Flink's csv format cannot skip one):
ts,user,key,value with ts in epoch milliseconds. The source declares an event-time attribute
`rowtime` = TO_TIMESTAMP_LTZ(ts, 3) with WATERMARK FOR rowtime AS rowtime - INTERVAL '1' MINUTE
(S seconds with --lateness-s); TUMBLE windows of 1 minute, COUNT(*) and SUM(value) per key and
window, written by the filesystem sink as `key<TAB>window<TAB>count<TAB>sum` lines (window as
ISO text in UTC, as Sluice writes it), in no particular order: the benchmark sorts them before
comparing with Sluice's view. Parallelism: PEER_THREADS (default 2).

Timings go to standard error: JVM + TableEnvironment start, job submission to end."""
import os
import sys
import time

T0 = time.monotonic()


def log(msg):
    print(f"flink-peer: {time.monotonic() - T0:7.2f} s  {msg}", file=sys.stderr, flush=True)


def table_env():
    from pyflink.table import EnvironmentSettings, TableEnvironment
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    conf.set("parallelism.default", os.environ.get("PEER_THREADS", "2"))
    conf.set("table.local-time-zone", "UTC")
    log("JVM and TableEnvironment up")
    return t_env


def sql_string(s):
    return "'" + s.replace("'", "''") + "'"


def main():
    args = sys.argv[1:]
    if args == ["--startup"]:
        t_env = table_env()
        t_env.execute_sql("CREATE TABLE sink (x INT) WITH ('connector' = 'blackhole')")
        t_env.execute_sql("INSERT INTO sink VALUES (1)").wait()
        log("empty job done")
        return
    lateness_s = 60
    if "--lateness-s" in args:
        i = args.index("--lateness-s")
        lateness_s = int(args[i + 1])
        del args[i:i + 2]
    inp, out = args
    t_env = table_env()
    t_env.execute_sql(f"""
        CREATE TABLE events (
            ts BIGINT,
            `user` STRING,
            `key` STRING,
            `value` BIGINT,
            rowtime AS TO_TIMESTAMP_LTZ(ts, 3),
            WATERMARK FOR rowtime AS rowtime - INTERVAL '{lateness_s}' SECOND
        ) WITH (
            'connector' = 'filesystem',
            'path' = {sql_string(os.path.abspath(inp))},
            'format' = 'csv'
        )""")
    t_env.execute_sql(f"""
        CREATE TABLE view_sink (
            `key` STRING,
            `window` STRING,
            `count` BIGINT,
            `sum` BIGINT
        ) WITH (
            'connector' = 'filesystem',
            'path' = {sql_string(os.path.abspath(out))},
            'format' = 'csv',
            'csv.field-delimiter' = '\\t',
            'csv.disable-quote-character' = 'true'
        )""")
    log("tables declared")
    result = t_env.execute_sql("""
        INSERT INTO view_sink
        SELECT `key`, DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss''Z'''), COUNT(*), SUM(`value`)
        FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(rowtime), INTERVAL '1' MINUTE))
        GROUP BY `key`, window_start, window_end""")
    log("job submitted")
    result.wait()
    log("job finished")


if __name__ == "__main__":
    main()
