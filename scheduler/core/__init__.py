"""Scheduling without I/O: DAGScheduler, TaskSetManager, TaskScheduler, dynamic
allocation policy, and the errors a job ends with.
"""
