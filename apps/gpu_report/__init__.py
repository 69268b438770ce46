"""`make gpu-report`: what to run first on a GPU machine, in three parts of about 8 minutes each, and the
preparation that gets the project onto a bare one (`make gpu-wheels`). docs/performance.md ("On a GPU") has
the commands and what was measured.

plan.py lists what each part measures; parts.py runs a part and writes its JSON rows; first.py is the GPU's
first command; pytest_rows.py is part 1's pytest plugin; results.py merges a run's rows into
docs/gpu-results/ and generates the GPU section of docs/performance.md; learning.py keeps the first command's
learning runs as run folders and summarises and draws them for that section; phases.py reads a committed
run's rates by phase, its projection to 1M env steps and whether it shows learning; wheels.py builds the wheel
set the GPU machine lacks. Parts 2 and 3 reuse `make bench`'s rows (iqrl/bench/) and the trainers' command
lines (`python -m iqrl.train`, `python -m iqrl.multiseed`).
"""
