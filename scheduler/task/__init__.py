"""What the driver and the executors share about a task: its context, broadcasts,
accumulators, added files, stage code pickling and the profiler.
"""
