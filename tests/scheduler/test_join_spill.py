"""A join whose reduce-side grouping spills gives the answers of one that does not."""

from __future__ import annotations

import _compat_support as support
from test_compat_join_grouping import _check_joins


def test_join_that_spills_gives_the_same_answer() -> None:
    """spark.python.worker.memory of 1m: every grouping spills, then merges its buckets."""
    ctx = support.new_context("local[2]", "join-spill", **{"spark.python.worker.memory": "1m"})
    try:
        _check_joins(ctx, 2)
        n = 20_000
        left = ctx.parallelize(range(n), 2).map(lambda i: (i % 1000, i))
        right = ctx.parallelize(range(1000), 2).map(lambda k: (k, -k))
        total = left.join(right).map(lambda kv: kv[1][0] + kv[1][1]).sum()
        assert total == sum(i - (i % 1000) for i in range(n))
    finally:
        ctx.stop()
