"""PySpark peers, local[N] (PEER_THREADS, default 2): spark_jobs.py JOB INPUT OUTPUT_DIR.

  wordcount-df   DataFrame API: split on [ \\t\\n\\r\\x0B\\f]+ (Java regex; \\v would mean all
                 vertical whitespace in Java), explode, drop empty, groupBy().count()
  wordcount-rdd  RDD API: line.encode().split() (Python bytes.split() splits on exactly the six
                 ASCII whitespace bytes), reduceByKey
  eventsum-df    DataFrame API: CSV with header and schema, groupBy(key).sum(value)

Output: a folder of part-* files with `key<TAB>value` lines. Shuffle partitions = 2 × threads
(as Sluice's default), driver memory SPARK_DRIVER_MEMORY (default 4g), UI off."""
import operator
import os
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType


def session(threads):
    return (SparkSession.builder
            .master(f"local[{threads}]")
            .appName("sluice-peer")
            .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "4g"))
            .config("spark.sql.shuffle.partitions", str(2 * threads))
            .config("spark.default.parallelism", str(2 * threads))
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate())


def main():
    job, inp, out = sys.argv[1], sys.argv[2], sys.argv[3]
    threads = int(os.environ.get("PEER_THREADS", "2"))
    spark = session(threads)
    spark.sparkContext.setLogLevel("ERROR")
    if job == "wordcount-df":
        tokens = (spark.read.text(inp)
                  .select(F.explode(F.split("value", r"[ \t\n\r\x0B\f]+")).alias("token"))
                  .where(F.col("token") != ""))
        counts = tokens.groupBy("token").count()
        counts.select(F.concat_ws("\t", "token", F.col("count").cast("string"))).write.text(out)
    elif job == "wordcount-rdd":
        (spark.sparkContext.textFile(inp)
         .flatMap(lambda line: line.encode("utf-8").split())
         .map(lambda t: (t, 1))
         .reduceByKey(operator.add, 2 * threads)
         .map(lambda kv: kv[0].decode("utf-8") + "\t" + str(kv[1]))
         .saveAsTextFile(out))
    elif job == "eventsum-df":
        schema = StructType([StructField("ts", LongType()), StructField("user", StringType()),
                             StructField("key", StringType()), StructField("value", LongType())])
        sums = spark.read.csv(inp, header=True, schema=schema).groupBy("key").agg(F.sum("value").alias("total"))
        sums.select(F.concat_ws("\t", "key", F.col("total").cast("string"))).write.text(out)
    else:
        sys.exit(f"unknown job {job}")
    spark.stop()


if __name__ == "__main__":
    main()
