"""The training loop of one run, and what it calls.

    trainer.py                  the loop: counters, acting, the update schedule, evaluation, logs
    resume.py                   its checkpoint: what it holds, saving it, resuming; the run folder opened
    parts.py                    a run's envs, agent and replay, built and seeded from its config
    evaluation.py               evaluation episodes (batched: one act call per step for all of them)
    preflight.py, memory.py     the checks before a run starts; its memory estimate against the device's
    device.py, transfer.py      device and update precision; starting from parts of another run
    latent_probe.py             train.csv's latent diagnostics

It may import everything below it (`iqrl.nn`, `iqrl.core`, `iqrl.envs`, `iqrl.runfolder`, `iqrl.config`) and
never a method (the registry names them), a mode (`iqrl.multiseed`, `iqrl.bench`), `analysis` or `slurm`.
"""
