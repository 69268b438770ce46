"""The K-seed mode: the seeds of one config trained in one process, their networks stacked over seeds. It
runs the agents' own update definitions, vectorised; it imports `iqrl.core` and `iqrl.nn`, never an agent
module.
"""
