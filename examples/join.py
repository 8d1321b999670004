"""Join two small tables: users and their orders.

Usage: join.py. Prints, per user, the number of orders and their total
(inner join), the users without orders (left outer join) and the orders of
unknown users (right outer join), all sorted.

This is a plain PySpark program: change the import line to
``from pyspark import SparkConf, SparkContext`` and it runs on PySpark
unchanged, with the same output. The master comes from ``sparkctl submit``
(or spark-submit) and defaults to local[2] when the file is run directly.
"""

from __future__ import annotations

import sys

from scheduler import SparkConf, SparkContext

USERS = [(1, "ada"), (2, "grace"), (3, "linus"), (4, "barbara"), (5, "ken")]
ORDERS = [
    (1, 12.50),
    (2, 3.99),
    (1, 7.25),
    (3, 100.00),
    (2, 15.00),
    (1, 1.25),
    (6, 42.00),
    (3, 0.01),
]


def main(argv: list[str]) -> int:
    conf = SparkConf().setAppName("PythonJoin").setIfMissing("spark.master", "local[2]")
    with SparkContext(conf=conf) as sc:
        users = sc.parallelize(USERS, 2)
        orders = sc.parallelize(ORDERS, 3)
        per_user = (
            users.join(orders)
            .map(lambda kv: (kv[1][0], (1, kv[1][1])))
            .reduceByKey(lambda a, b: (a[0] + b[0], a[1] + b[1]))
            .sortByKey()
            .collect()
        )
        without_orders = (
            users.leftOuterJoin(orders).filter(lambda kv: kv[1][1] is None).values().keys()
        )
        every_user = orders.rightOuterJoin(users)
        orphans = orders.subtractByKey(users).sortByKey().collect()
        print("orders per user:")
        for name, (count, total) in per_user:
            print(f"  {name}: {count} orders, total {total:.2f}")
        print(f"users without orders: {sorted(without_orders.collect())}")
        print(f"rows of orders right-outer-joined with users: {every_user.count()}")
        print(f"orders of unknown users: {orphans}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
