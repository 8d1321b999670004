"""The lineage graph: RDD and its kinds, dependencies, file sources and sinks, and
the small statistics helpers RDD actions use.
"""
