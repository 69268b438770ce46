"""The K-seed mode: the seeds of one config trained in one process, their networks stacked over seeds. It
runs the agents' own update definitions, vectorised; it imports the harness (`iqrl.core`, `iqrl.envs`,
`iqrl.runfolder`, `iqrl.config`, `iqrl.loop`) and `iqrl.nn`, never an agent module.

    runs.py                     python -m iqrl.multiseed: the seeds' trainers, each in its own thread
    group.py                    the group: pieces handed in by every seed, run once for all of them
    pieces.py                   a piece of an update, and how the group runs it for every seed at once
    vectorise.py                vmap over the stacked networks, the group optimizer, per-seed clipping
    refusals.py                 what the mode cannot run, said in one line
"""
