"""The Spark version sparkctl's driver reports: one value for every place that names it.

`sc.version`, `scheduler.__version__` (PySpark's `pyspark.__version__`), the event
log's `SparkListenerLogStart` and the monitoring API all say the same, the Spark
whose event-log and REST formats sparkctl writes. A leaf module, so that importing
`scheduler` for its version costs nothing.
"""

from __future__ import annotations

SPARK_VERSION = "3.5.0"
