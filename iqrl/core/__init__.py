"""The harness core: what every agent runs inside, and nothing of any one method.

    interface.py, registry.py   the agent interface and the agent names
    config.py                   the run config: dataclasses, merge order, validation
    tasks.py, envs.py, render.py  task names and groups; dm_control envs; headless rendering (pixels, videos)
    replay.py                   the sequence replay
    parts.py                    a run's envs, agent and replay, built and seeded from its config
    trainer.py                  the loop: counters, checkpoint and resume, the run folder's logs
    evaluation.py, latent_probe.py, diagnostics.py  evaluation episodes; train.csv's latent diagnostics
    device.py, preflight.py, exits.py  device and precision; the checks before a run; exit codes
    runfolder.py, loggers.py, progress.py, provenance.py  run folder files; trackers; the terminal; meta
    checks.py                   the one validation helper

It may import `iqrl.nn` (building blocks) and third-party packages; it never imports a method
(`iqrl.agent`, `baselines`: the registry names them by string), a mode (`iqrl.multiseed`, `iqrl.bench`),
a command (`iqrl.train`, `iqrl.video`), `analysis` or `slurm`. tasks.py, exits.py and runfolder.py import
neither torch nor dm_control: slurm/ and analysis/ read them on machines without either.
"""
