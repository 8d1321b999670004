"""The PySpark objects a driver program touches: SparkContext and its mixins, SparkConf,
SparkSession, the status tracker. The top layer: it may import every other subpackage.
"""
