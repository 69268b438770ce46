"""iqrl-bench: the harness core and the iQRL agent."""

import os

# OpenMP threads sleep at a barrier instead of spinning (read once, when torch's OpenMP runtime loads, so it
# is set before any import of torch). Spinning threads steal the cores from everything that runs between two
# torch calls: with pixel observations rendered by Mesa's software EGL on a 2-core CPU, one convolution of
# the agent's `act` took 39 ms instead of 1 ms. State runs lose nothing (docs/pixels.md has both
# measurements); an explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# MUJOCO_GL is read once, when mujoco and dm_control's rendering module are imported: set it before any
# submodule imports them. `disable`: runs never need a GL library; the renderer of pixel observations and
# videos (iqrl/envs/render.py) opens its own EGL or OSMesa contexts.
os.environ.setdefault("MUJOCO_GL", "disable")
