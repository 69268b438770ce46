"""`make bench`: throughput and memory of every agent, matrix-product ceilings, and the comparison with a
plain implementation of iQRL's update.

cli.py is `python -m iqrl.bench`; measure.py measures one row on a trainer built as a run builds it;
matmul.py the matrix-product ceilings; compare.py compares two bench files; plain.py is the plain update;
hostshare.py counts a K-seed group's host work; overlap.py times collection beside the update (cohorts).
gpu_rows.py reads the rows a GPU report commits (docs/gpu-results/): which rates stand, which tests passed.
It imports `iqrl.core` and `iqrl.multiseed` (the K-seed rows); agents are built by name (the registry).
"""
