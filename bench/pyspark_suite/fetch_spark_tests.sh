#!/usr/bin/env bash
# Get PySpark's test files (python/pyspark/tests, python/test_support) at a pinned
# apache/spark commit into DEST, once: they are in neither PySpark's wheel nor its sdist.
# A sparse, blob-less, depth-1 fetch of that one commit: a few MB, not Spark's history.
#
#   bench/pyspark_suite/fetch_spark_tests.sh DEST
#
# SPARK_GIT overrides where from (a local mirror of apache/spark, as a file:// URL or path);
# SPARK_COMMIT overrides the pin. With DEST already holding the files, nothing is fetched.
set -euo pipefail

dest=${1:?usage: fetch_spark_tests.sh DEST}
# apache/spark master of 2024-11-28 (4.0.0.dev0): [SPARK-48356][SQL] Support for FOR statement.
commit=${SPARK_COMMIT:-2c2c0e05512731e73fda98715551c021f12e24e6}
remote=${SPARK_GIT:-https://github.com/apache/spark.git}

if [ -f "$dest/python/pyspark/tests/test_rdd.py" ] && [ -d "$dest/python/test_support" ]; then
	echo "PySpark's test files: $dest (already there)"
	exit 0
fi
if [ -e "$dest" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
	echo "$dest exists but holds no python/pyspark/tests/test_rdd.py; remove it or name" \
		"another folder (this script never deletes what it did not make)" >&2
	exit 1
fi
# Built beside DEST and moved into place at the end: an interrupted fetch leaves no DEST.
tmp="$dest.partial.$$"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
git -C "$tmp" init -q
git -C "$tmp" remote add origin "$remote"
git -C "$tmp" sparse-checkout set --no-cone /python/pyspark/tests/ /python/test_support/
if ! git -C "$tmp" fetch -q --depth 1 --filter=blob:none origin "$commit"; then
	echo "could not fetch apache/spark $commit from $remote; pass SPARK_SRC=<a Spark" \
		"source tree> or SPARK_GIT=<a mirror of apache/spark>" >&2
	exit 1
fi
git -C "$tmp" -c advice.detachedHead=false checkout -q FETCH_HEAD
rmdir "$dest" 2>/dev/null || true
mv "$tmp" "$dest"
echo "PySpark's test files: $dest (apache/spark $commit)"
