"""The run config: typed keys merged in one fixed order and checked before anything is written.

    run.py                      RunConfig (the run keys), ConfigError, what a run reads off its config
    build.py                    build_config: dataclass defaults <- preset <- task file <- command line
    validate.py                 the checks: ranges, finiteness, keys that must agree with the task and agent
    switch_docs.py              docs/switches.md written from the config dataclasses (make switches)
    demo_sizes.py               the network sizes of make demo, which the overlap bench rows share

It may import `iqrl.core` (the registry), `iqrl.envs` (task names and spaces) and `iqrl.runfolder.loggers`
(the logger names). It never trains, writes a run folder or imports the loop.
"""
