"""The run folder (docs/run-folder.md): every file a run writes and how it is written and read back.

    layout.py                   the folder's names: its files, eval.csv's columns, a run's method label
    config_keys.py              config keys that do not change results or came later; config_diff
    errors.py                   RunFolderError and the one-line words of a failed write or run
    atomic.py                   atomic writes and the temporary files a killed writer left
    csvfile.py, status.py       eval.csv/train.csv rows written; status.json written and read
    yamlfile.py                 config.yaml written and read (UnreadableConfig)
    lock.py                     the run lock (flock) and the check that the folder is where it was
    checkpoints.py              checkpoint generations, their checksums, falling back to an older one
    loggers.py, progress.py     eval.csv/train.csv and the trackers (TensorBoard, W&B); the terminal lines
    provenance.py, exits.py     what a run records of its machine and code; the commands' exit codes

Inside it, lowest first: layout and config_keys import nothing of it; errors none of it either; atomic
imports layout and errors; csvfile, status and yamlfile import atomic (yamlfile errors too); lock imports
layout, errors and status; checkpoints and loggers any of those. It may import `iqrl.core.checks`,
`iqrl.envs.tasks` (task labels) and `iqrl.envs.workers` (EnvWorkerDied) and never the loop, the run config or
an agent. The seven modules from layout.py to yamlfile.py, lock.py, exits.py and provenance.py import
neither torch nor dm_control: slurm/ and analysis/ read run folders through them on machines without either.
"""
