"""Every Python process of a suite run (driver, executors, workers) gets the run's imports.

SPARKCTL_PYSPARK_ALIAS=1: ``pyspark`` means sparkctl's ``scheduler`` (pyspark_alias).
SPARKCTL_PYSPARK_ORACLE=1: real PySpark, with the names later 4.x moved (pyspark_oracle).
"""

import os

if os.environ.get("SPARKCTL_PYSPARK_ALIAS") == "1":
    import pyspark_alias

    pyspark_alias.install()
elif os.environ.get("SPARKCTL_PYSPARK_ORACLE") == "1":
    import pyspark_oracle

    pyspark_oracle.install()
