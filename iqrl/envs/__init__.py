"""The environments: one interface over every suite a run can train in.

    make.py                     make_env: a task name and the run's settings -> its suite's env; check_task
    tasks.py                    task names, suites (action repeat, episode length, protocols), groups, seeds
    dmc.py, suites.py           the DeepMind Control Suite (states, pixels); Gym MuJoCo, Meta-World, MyoSuite
    atari.py, minigrid.py       the discrete-action suites (ALE screens and protocols; MiniGrid)
    perturb.py                  observation and action noise, sticky actions, distractor dimensions
    render.py                   headless rendering (EGL, else OSMesa) for pixel observations and videos
    workers.py, step.py         an env in a worker process; `Step`, what every env's step returns

It may import `iqrl.core` (the action and observation specs) and the suites' packages (imported only when a
task of theirs is made). It knows nothing of agents, the run folder, the run config or the loop. tasks.py
imports neither torch nor dm_control: slurm/ and analysis/ read it on machines without either.
"""
