"""The executor process (`python -m scheduler.executor`), its endpoint, and the
Python workers that run tasks.
"""
