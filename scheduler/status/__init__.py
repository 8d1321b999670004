"""Consumers of scheduler events: the driver UI and its store, the event log, the
progress bar. Nothing here schedules.
"""
