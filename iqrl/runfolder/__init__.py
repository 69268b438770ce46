"""The run folder (docs/run-folder.md): every file a run writes and how it is written and read back.

    files.py                    atomic writes, config.yaml and status.json, failure lines
    lock.py                     the run lock (flock) and the check that the folder is where it was
    checkpoints.py              checkpoint generations, their checksums, falling back to an older one
    loggers.py, progress.py     eval.csv/train.csv and the trackers (TensorBoard, W&B); the terminal lines
    provenance.py, exits.py     what a run records of its machine and code; the commands' exit codes

It may import `iqrl.core.checks` and `iqrl.envs.tasks` (task labels) and never the loop, the run config or an
agent. files.py, lock.py, exits.py and provenance.py import neither torch nor dm_control: slurm/ and analysis/
read run folders through them on machines without either.
"""
