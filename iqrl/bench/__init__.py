"""`make bench`: throughput and memory of every agent, matrix-product ceilings, and the comparison with a
plain implementation of iQRL's update. It imports `iqrl.core`, `iqrl.multiseed` and, for the plain
comparison, `iqrl.agent`.
"""
