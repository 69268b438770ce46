"""The agent-facing core: what every agent is built on and nothing of any one method.

    interface.py, registry.py   the agent interface (Agent) and the agent names
    update.py, schedule.py      how an update's pieces run (eager, compiled, captured); when updates run
    replay.py, spaces.py        the sequence replay; observation and action specs
    replay_options.py           the replay's options for recurrent agents (contexts, the online queue)
    replay_multitask.py         one replay per task of a multi-task run
    diagnostics.py, checks.py   latent rank and codebook statistics; the one validation helper and Refused

It may import `iqrl.nn` and third-party packages only. It never imports the environments (`iqrl.envs`), the
run folder (`iqrl.runfolder`), the run config (`iqrl.config`), the loop (`iqrl.loop`), a method (`iqrl.agent`,
`baselines`: the registry names them by string), a mode (`iqrl.multiseed`, `iqrl.bench`), `analysis` or
`slurm`. checks.py imports nothing: slurm/ and analysis/ reach it through the run folder's light modules.
"""
