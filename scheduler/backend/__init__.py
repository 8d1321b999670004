"""The driver's I/O: its scheduler endpoint, the local and standalone backends that
obtain executors, and how a driver names itself to the cluster.
"""
