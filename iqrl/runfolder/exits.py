"""Exit codes of the training commands (`python -m iqrl.train`, `python -m iqrl.multiseed`): the contract
that sweeps, the learning check and the demo read. Imports nothing (slurm/ reads it on login nodes)."""

EXIT_OK = 0
EXIT_FAILED = 1  # the run failed; its error is in status.json
EXIT_BAD_INPUT = 2  # a bad config or a busy run folder: one `error:` line, nothing written
EXIT_INTERRUPTED = 3  # stopped with a checkpoint (after an agent step): re-run to resume
