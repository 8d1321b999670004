"""PySpark's Hadoop input and output formats, refused with one clear error.

``sc.sequenceFile``, ``sc.hadoopFile``/``hadoopRDD``, ``sc.newAPIHadoopFile``/
``newAPIHadoopRDD`` and ``rdd.saveAsSequenceFile``/``saveAsHadoopFile``/
``saveAsHadoopDataset``/``saveAsNewAPIHadoop*`` run Hadoop's InputFormat and
OutputFormat classes (and their Writable converters) inside Spark's JVM.
sparkctl has no JVM, so each raises `HadoopFormatsNotSupportedError` naming
itself and what to use instead, where an AttributeError would leave a PySpark
user guessing. Mixins of SparkContext and RDD; nothing here runs a job.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["HadoopFormatsNotSupportedError", "HadoopOutputs", "HadoopSources"]


class HadoopFormatsNotSupportedError(NotImplementedError):
    """Raised by PySpark's Hadoop format methods: they need Spark's JVM."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}: Hadoop input and output formats run in Spark's JVM, which sparkctl "
            "does not have; use textFile/saveAsTextFile, pickleFile/saveAsPickleFile, "
            "binaryFiles or binaryRecords"
        )


class HadoopSources:
    """SparkContext's Hadoop readers."""

    def sequenceFile(self, path: str, *args: Any, **kwargs: Any) -> NoReturn:
        """Read a Hadoop SequenceFile: refused (no JVM)."""
        raise HadoopFormatsNotSupportedError("SparkContext.sequenceFile")

    def hadoopFile(self, path: str, *args: Any, **kwargs: Any) -> NoReturn:
        """Read with an old-API Hadoop InputFormat: refused (no JVM)."""
        raise HadoopFormatsNotSupportedError("SparkContext.hadoopFile")

    def hadoopRDD(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Read with an old-API Hadoop InputFormat and a Hadoop conf: refused (no JVM)."""
        raise HadoopFormatsNotSupportedError("SparkContext.hadoopRDD")

    def newAPIHadoopFile(self, path: str, *args: Any, **kwargs: Any) -> NoReturn:
        """Read with a new-API Hadoop InputFormat: refused (no JVM)."""
        raise HadoopFormatsNotSupportedError("SparkContext.newAPIHadoopFile")

    def newAPIHadoopRDD(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Read with a new-API Hadoop InputFormat and a Hadoop conf: refused (no JVM)."""
        raise HadoopFormatsNotSupportedError("SparkContext.newAPIHadoopRDD")


class HadoopOutputs:
    """RDD's Hadoop writers."""

    def saveAsSequenceFile(self, path: str, *args: Any, **kwargs: Any) -> NoReturn:
        """Write a Hadoop SequenceFile: refused (no JVM)."""
        raise HadoopFormatsNotSupportedError("RDD.saveAsSequenceFile")

    def saveAsHadoopFile(self, path: str, *args: Any, **kwargs: Any) -> NoReturn:
        """Write with an old-API Hadoop OutputFormat: refused (no JVM)."""
        raise HadoopFormatsNotSupportedError("RDD.saveAsHadoopFile")

    def saveAsHadoopDataset(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Write with an old-API Hadoop conf: refused (no JVM)."""
        raise HadoopFormatsNotSupportedError("RDD.saveAsHadoopDataset")

    def saveAsNewAPIHadoopFile(self, path: str, *args: Any, **kwargs: Any) -> NoReturn:
        """Write with a new-API Hadoop OutputFormat: refused (no JVM)."""
        raise HadoopFormatsNotSupportedError("RDD.saveAsNewAPIHadoopFile")

    def saveAsNewAPIHadoopDataset(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Write with a new-API Hadoop conf: refused (no JVM)."""
        raise HadoopFormatsNotSupportedError("RDD.saveAsNewAPIHadoopDataset")
