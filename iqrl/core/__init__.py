"""The harness core: what every agent runs inside, and nothing of any one method.

The agent interface and the registry of agent names, the run config (dataclasses, merge order, validation),
the environments, the replay, the trainer's loop, evaluation, the run folder's files, trackers and latent
diagnostics. It may import `iqrl.nn` (building blocks) and third-party packages; it never imports a method
(`iqrl.agent`, `baselines`: the registry names them by string), a mode (`iqrl.multiseed`, `iqrl.bench`),
`analysis` or `slurm`.
"""
