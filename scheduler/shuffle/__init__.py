"""Partitioning, shuffle files, spilling aggregation and range sort, as run inside
Python workers. No network I/O.
"""
