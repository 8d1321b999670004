"""Word count: the classic first Spark program.

Usage: wordcount.py [FILE]. Counts the words of FILE (any text file), or of a
small built-in text when no file is given, and prints the 20 most frequent
words with their counts, then the number of distinct and of all words.

This is a plain PySpark program: change the import line to
``from pyspark import SparkConf, SparkContext`` and it runs on PySpark
unchanged, with the same output. The master comes from ``sparkctl submit``
(or spark-submit) and defaults to local[2] when the file is run directly.
"""

from __future__ import annotations

import sys
from operator import add

from scheduler import SparkConf, SparkContext

BUILT_IN_TEXT = """\
It was the best of times, it was the worst of times,
it was the age of wisdom, it was the age of foolishness,
it was the epoch of belief, it was the epoch of incredulity,
it was the season of Light, it was the season of Darkness,
it was the spring of hope, it was the winter of despair,
we had everything before us, we had nothing before us,
we were all going direct to Heaven, we were all going direct the other way
"""


def words_of(line: str) -> list[str]:
    """Lower-cased words of a line, punctuation stripped."""
    cleaned = "".join(c.lower() if c.isalnum() else " " for c in line)
    return cleaned.split()


def main(argv: list[str]) -> int:
    conf = SparkConf().setAppName("PythonWordCount").setIfMissing("spark.master", "local[2]")
    with SparkContext(conf=conf) as sc:
        if len(argv) > 1:
            lines = sc.textFile(argv[1])
        else:
            lines = sc.parallelize(BUILT_IN_TEXT.splitlines(), 2)
        counts = lines.flatMap(words_of).map(lambda word: (word, 1)).reduceByKey(add)
        top = counts.takeOrdered(20, key=lambda wc: (-wc[1], wc[0]))
        for word, count in top:
            print(f"{word}: {count}")
        print(f"distinct words: {counts.count()}, all words: {counts.values().sum()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
