"""Pixel observations (obs=pixels): rendering, frame stacks, the frame replay, augmentation and the config.

The agents' pixel encoders are tested with each agent (test_sac_ae.py, test_taco.py, test_iqrl_pixels.py);
every pixel agent's end-to-end run and resume is at the end of this file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from iqrl.config.build import build_config, layered
from iqrl.config.run import ConfigError
from iqrl.config.validate import pixel_agents, pixel_sizes
from iqrl.core import registry
from iqrl.core.checks import require
from iqrl.core.interface import Agent, AgentConfig
from iqrl.core.registry import AgentEntry
from iqrl.core.replay import SequenceReplay
from iqrl.envs.dmc import pixel_camera
from iqrl.envs.make import Observation, make_env
from iqrl.envs.workers import EnvWorker
from iqrl.multiseed.refusals import unsupported
from iqrl.multiseed.runs import main as kseed_main
from iqrl.nn.maths import center_crop, crop_offsets, random_crop, random_shift, shift_offsets
from iqrl.runfolder.exits import EXIT_INTERRUPTED, EXIT_OK
from iqrl.train import main

from conftest import (
    TEST_SHADOW_SIZE,
    TINY_IMAGE_SIZE,
    acts_in_boxes,
    agent_observations,
    agent_run,
    open_episode,
    pixels_only,
    stop_after_steps,
    tiny_argv,
    tiny_image_size,
    tiny_pixels,
)
from test_train import eval_numbers, read_csv

render = pytest.importorskip("iqrl.envs.render")
SIZE, STACK = 24, 3


def pixel_env(task="cartpole-swingup", seed=1, episode_length=40, perturb=None):
    return make_env(task, seed, 2, episode_length, perturb, Observation("pixels", SIZE, STACK))


def frames(obs: np.ndarray) -> list[np.ndarray]:
    return [obs[3 * k : 3 * k + 3] for k in range(STACK)]


def test_frames_are_stacked_oldest_first_and_refilled_at_each_reset(renderer):
    env = pixel_env()
    obs = env.reset()
    assert obs.shape == (3 * STACK, SIZE, SIZE) and obs.dtype == np.uint8 and env.obs_shape == obs.shape
    assert obs.std() > render.BLANK_STD  # a real picture, not a blank buffer
    first = frames(obs)
    assert all(np.array_equal(f, first[0]) for f in first)  # the reset frame, repeated
    rng = np.random.default_rng(0)
    history = [first[0]]
    for _ in range(5):
        obs = env.step(rng.uniform(-1, 1, env.act_dim).astype(np.float32)).obs
        history.append(frames(obs)[-1])
        assert all(
            np.array_equal(a, b) for a, b in zip(frames(obs), ([history[0]] * STACK + history)[-STACK:])
        )
    assert not np.array_equal(history[-1], history[0])  # the cart moved
    obs = env.reset()  # a new episode: no frame of the old one
    assert all(np.array_equal(f, frames(obs)[0]) for f in frames(obs))
    assert not np.array_equal(frames(obs)[0], history[-1])


def test_the_tests_shadow_maps_leave_the_tiny_runs_frames_as_the_models_own(renderer):
    """conftest.small_shadow_maps: on the tiny pixel runs' task and size (cartpole-balance, 32 pixels),
    frames rendered with a TEST_SHADOW_SIZE shadow map are those of the model's own (2048), over 30 steps."""
    from dm_control import suite

    def frames(init) -> np.ndarray:
        env = suite.load("cartpole", "balance", task_kwargs={"random": 3})
        env.reset()
        r = object.__new__(render.Renderer)
        init(r, env.physics, TINY_IMAGE_SIZE)
        out = []
        for t in range(30):
            env.step(np.full(env.action_spec().shape, np.sin(t)))
            out.append(r.render())
        r.close()
        return np.stack(out)

    assert suite.load("cartpole", "balance").physics.model.vis.quality.shadowsize > TEST_SHADOW_SIZE
    assert np.array_equal(frames(render.Renderer.__init__), frames(render.Renderer.__init__.__wrapped__))


def test_rendering_changes_neither_dynamics_nor_rewards(renderer):
    """The same seed and actions give the state env's rewards and episode ends, and the frames follow the
    physics: two envs at the same state render the same picture."""
    pix, state = pixel_env(), make_env("cartpole-swingup", 1, 2, 40)
    pix.reset(), state.reset()
    rng = np.random.default_rng(1)
    for _ in range(20):
        a = rng.uniform(-1, 1, 1).astype(np.float32)
        p, s = pix.step(a), state.step(a)
        assert (p.reward, p.terminated, p.truncated) == (s.reward, s.terminated, s.truncated)
    assert p.truncated  # 40 env steps at action repeat 2
    twin = pixel_env()
    twin.reset()
    twin.physics.set_state(pix.physics.get_state())
    twin.physics.forward()
    assert np.array_equal(twin.frame(), frames(p.obs)[-1])


def rendered_episode(env, steps: int = 4) -> list[np.ndarray]:
    """The observations of an episode's reset and `steps` random agent steps (actions seeded 0)."""
    rng = np.random.default_rng(0)
    seen = [env.reset()]
    for _ in range(steps):
        seen.append(env.step(rng.uniform(-1, 1, env.act_dim).astype(np.float32)).obs)
    return seen


def test_seeds_render_real_frames_in_their_own_threads_and_in_workers(renderer):
    """A K-seed group builds its seeds' envs in the main thread and renders each seed's frames in that seed's
    thread, two at once (its training envs in worker processes with env_workers=true): every seed sees the
    frames its env renders alone in the main thread, real pictures, another for each seed."""
    alone = {seed: rendered_episode(pixel_env(seed=seed)) for seed in (1, 2)}
    args = ("cartpole-swingup", 0, 2, 40, None, Observation("pixels", SIZE, STACK))
    envs = {(seed, "thread"): pixel_env(seed=seed) for seed in (1, 2)}  # built here, as the group builds them
    envs |= {(seed, "worker"): EnvWorker(make_env, (args[0], seed, *args[2:])) for seed in (1, 2)}
    together, seen = threading.Barrier(len(envs)), {}

    def run(key) -> None:
        together.wait()
        try:
            seen[key] = rendered_episode(envs[key])
        except Exception as e:  # noqa: BLE001 - the assertion below names it
            seen[key] = e

    threads = [threading.Thread(target=run, args=(key,)) for key in envs]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for key in envs:
            envs[key].close()
    for (seed, where), obs in seen.items():
        assert isinstance(obs, list), f"seed {seed} in its {where}: {obs!r}"
        assert all(np.array_equal(a, b) for a, b in zip(obs, alone[seed], strict=True)), (seed, where)
    assert all(o.std() > render.BLANK_STD for obs in alone.values() for o in obs)
    assert not np.array_equal(alone[1][0], alone[2][0])  # each seed its own initial state


def test_the_pixel_benchmarks_cameras():
    assert pixel_camera("quadruped-run") == 2 and pixel_camera("walker-walk") == 0


def test_the_replay_stores_each_frame_once_and_rebuilds_every_stack_the_agent_saw(renderer):
    env = pixel_env(episode_length=20)
    replay = SequenceReplay(env.obs_shape, env.act_dim, 3, "cpu", 0, initial_capacity=8, frame_stack=STACK)
    seen = []  # every observation in the order the replay stores them
    rng = np.random.default_rng(2)
    for _ in range(3):  # episode boundaries inside the stored data
        obs = env.reset()
        replay.start_episode(obs)
        seen.append(obs)
        while True:
            step = env.step(rng.uniform(-1, 1, env.act_dim).astype(np.float32))
            replay.add(rng.uniform(-1, 1, env.act_dim), step.reward, step.obs, False, step.truncated)
            seen.append(step.obs)
            if step.truncated:
                break
    assert replay.n_obs == len(seen) == 33
    assert tuple(replay._obs.shape[1:]) == (3, SIZE, SIZE) and replay._obs.dtype == torch.uint8
    rebuilt = replay.observations(torch.arange(len(seen)))
    assert torch.equal(rebuilt, torch.from_numpy(np.stack(seen)))
    batch = replay.sample(16)
    assert batch.obs.shape == (16, 4, 3 * STACK, SIZE, SIZE) and batch.obs.dtype == torch.uint8
    first_obs = replay._obs_ptr[batch.index]
    for b in range(16):  # o_t .. o_{t+L} of each window are the stacks the agent acted on
        for t in range(4):
            assert torch.equal(batch.obs[b, t], torch.from_numpy(seen[int(first_obs[b]) + t]))
    # a checkpoint holds frames once and resumes to the same samples
    state = replay.state_dict()
    assert state["obs"].shape == (33, 3, SIZE, SIZE)
    again = SequenceReplay(env.obs_shape, env.act_dim, 3, "cpu", 0, frame_stack=STACK)
    again.load_state_dict(state)
    assert torch.equal(again.sample(16).obs, replay.sample(16).obs)


def test_random_shift_moves_every_frame_together_by_at_most_its_pad():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 6, 12, 12), generator=g, dtype=torch.uint8)
    offsets = shift_offsets(64, 2, g)
    assert offsets.min() >= 0 and offsets.max() <= 4 and len(offsets.unique(dim=0)) > 10
    shifted = random_shift(images, 2, offsets)
    assert shifted.dtype == torch.uint8 and shifted.shape == images.shape
    padded = torch.nn.functional.pad(images.float(), (2, 2, 2, 2), mode="replicate")
    for i, (dy, dx) in enumerate(offsets.tolist()):
        assert torch.equal(shifted[i].float(), padded[i, :, dy : dy + 12, dx : dx + 12])
        # the interior moved by (dy - 2, dx - 2): at most 2 pixels each way
        sy, sx = dy - 2, dx - 2
        inner = images[i, :, max(0, sy) : 12 + min(0, sy), max(0, sx) : 12 + min(0, sx)]
        assert torch.equal(shifted[i, :, max(0, -sy) : 12 - max(0, sy), max(0, -sx) : 12 - max(0, sx)], inner)
    centre = torch.full((64, 2), 2)
    assert torch.equal(random_shift(images, 2, centre), images)  # offset (pad, pad) is no shift


def test_random_crop_cuts_each_image_at_its_own_corner_every_channel_together():
    """CURL's crop (iqrl.nn.maths.random_crop): by hand on a 4 x 4 image, then every window of a batch is the
    slice at its drawn corner; the corners (crop_offsets) are one draw of the generator, uniform over every
    window, the last included."""
    image = torch.arange(2 * 16, dtype=torch.uint8).view(1, 2, 4, 4)  # channel 1 is channel 0 + 16
    cropped = random_crop(image, 2, torch.tensor([[1, 2]]))  # top 1, left 2
    assert cropped.dtype == torch.uint8 and cropped.tolist() == [[[[6, 7], [10, 11]], [[22, 23], [26, 27]]]]
    assert center_crop(image, 2).tolist() == [[[[5, 6], [9, 10]], [[21, 22], [25, 26]]]]  # corner (1, 1)
    assert center_crop(torch.zeros(9, 100, 100), 84).shape == (9, 84, 84)  # CURL's: corner (8, 8)
    assert torch.equal(center_crop(image[0], 3), image[0, :, :3, :3])  # corner (0, 0): (4 - 3) // 2

    g = torch.Generator().manual_seed(0)
    corners = crop_offsets(2000, 12, 9, g)
    assert torch.equal(corners, torch.randint(4, (2000, 2), generator=torch.Generator().manual_seed(0)))
    assert corners.shape == (2000, 2) and corners.min() == 0 and corners.max() == 12 - 9
    assert len(corners.unique(dim=0)) == 4 * 4  # every window of a 12 x 12 image drawn
    images = torch.randint(0, 256, (2000, 6, 12, 12), generator=g, dtype=torch.uint8)
    cropped = random_crop(images, 9, corners)
    assert cropped.shape == (2000, 6, 9, 9) and cropped.dtype == torch.uint8
    for i in (0, 1, 999, 1999):
        top, left = corners[i].tolist()
        assert torch.equal(cropped[i], images[i, :, top : top + 9, left : left + 9])


def test_pixel_config_keys_are_checked_in_one_line():
    cfg = build_config(["agent=td3", "task=walker-walk"])
    assert (cfg.obs, cfg.image_size, cfg.frame_stack) == ("state", 84, 3)
    bad = [
        (["obs=rgb"], "obs must be one of state, pixels"),
        (["obs=pixels", "image_size=8"], "image_size must be in 16..512"),
        (["frame_stack=0"], "frame_stack must be in 1..16"),
    ]
    bad.append((["agent=td7", "obs=pixels"], "agent td7 has no pixel encoder"))
    for argv, msg in bad:
        with pytest.raises(ConfigError, match=msg) as e:
            build_config(argv)
        assert "\n" not in str(e.value)
    takes_pixels = pixel_agents()
    assert {"sac-ae", "taco", "iqrl", "mrq", "sac", "td3"} <= set(
        takes_pixels
    ) and "iqrl-ae" not in takes_pixels
    with pytest.raises(ConfigError, match=", ".join(takes_pixels)):  # the refusal names the ones that work
        build_config(["agent=td7", "obs=pixels"])
    with pytest.raises(ConfigError, match="obs_noise and distractor_dims perturb state vectors"):
        build_config(["agent=td3", "obs=pixels", "obs_noise=0.1"])


@dataclass
class CroppingConfig(AgentConfig):
    name: str = "cropping"
    crop_size: int = 90  # crops of this many pixels, out of larger frames

    def validate_pixels(self, image_size: int) -> None:
        require([(image_size > self.crop_size, f"crops of {self.crop_size} need larger frames")])


class Cropping(Agent):
    """A pixel-only agent whose crops need frames larger than the run's default 84 pixels (CURL's)."""

    PIXELS = PIXELS_ONLY = True

    def act(self, obs, explore):
        raise NotImplementedError

    def update(self, replay, step):
        raise NotImplementedError


def test_a_pixel_only_agent_sees_pixels_is_refused_states_and_listed_with_its_smallest_frames(monkeypatch):
    """Agent.PIXELS_ONLY: a run without `obs` sees pixels where the task has them, obs=state and a task
    without pixels are refused in one line; the pixel agents a refusal lists include it with the smallest
    frames its validate_pixels takes (it refuses the default 84), and the tests build it from those frames."""
    entry = AgentEntry(f"{__name__}:Cropping", f"{__name__}:CroppingConfig")
    monkeypatch.setitem(registry.REGISTRY, "cropping", entry)
    run = build_config(["agent=cropping", "image_size=96"])
    assert (run.obs, run.image_size, run.frame_stack) == ("pixels", 96, 3)
    assert build_config(["agent=cropping", "obs=pixels", "image_size=91"]).obs == "pixels"
    states = (
        "agent cropping learns from pixels only: leave obs unset (or obs=pixels) on a task of dmc, atari, "
    )
    refusals = [
        (["agent=cropping", "obs=state"], f"{states}minigrid, not obs=state (walker-walk)"),
        (["agent=cropping", "task=gym:Hopper-v4"], f"{states}minigrid, not obs=state (gym:Hopper-v4)"),
        (["agent=cropping"], "obs=pixels: crops of 90 need larger frames"),
    ]
    for argv, why in refusals:
        with pytest.raises(ConfigError) as e:
            build_config(argv)
        assert str(e.value) == why
    assert pixel_sizes()["cropping"] == 91 and "cropping" in pixel_agents() and pixel_sizes()["mrq"] == 31
    with pytest.raises(ConfigError, match=r"obs=pixels works with .*cropping \(image_size >= 91\)"):
        build_config(["agent=td7", "obs=pixels"])
    assert tiny_pixels("cropping") == ["obs=pixels", "image_size=91", "frame_stack=2"]
    assert agent_run("cropping") == ["image_size=91"] and agent_observations("cropping").dim == (6, 91, 91)


def test_no_renderer_is_one_error_line_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "iqrl.train", "agent=sac", "obs=pixels", f"out={out}"],
        capture_output=True,
        text=True,
        # PyOpenGL bound to a platform neither EGL nor OSMesa accepts: as on a machine with neither library
        env={**os.environ, "PYOPENGL_PLATFORM": "none-for-this-test", "MUJOCO_GL": "disable"},
        timeout=300,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith("error: obs=pixels needs a renderer: no headless OpenGL renderer (egl: ")
    assert not out.exists()


# ---------------------------------------------------------------------------- every pixel agent, end to end
# iqrl-official is iqrl's network and update with switches that do not touch the encoder: iqrl covers it
COVERED_BY = {"iqrl-official": "iqrl"}
# 200 agent steps of 32 x 32 frames (MR.Q's encoder needs >= 31; an agent that needs larger frames: its
# smallest, conftest's tiny_image_size; episodes of 50 agent steps, the first two of seed actions; 3
# evaluations of one episode): a run renders about 350 frames, ~10 s here
PIXEL_RUN = [
    "obs=pixels",
    "steps=400",
    "episode_length=100",
    "seed_steps=200",
    "eval_every=200",
    "eval_episodes=1",
    "checkpoint_every=200",
    "diag_every=200",
]


@pytest.mark.slow
@pytest.mark.registry
@pytest.mark.computes
def test_every_pixel_agent_trains_and_resumes_bit_identically(agent, tmp_path, request):
    """DMC's pixel agents (built for pixels and acting in boxes; dqn's pixel runs are tests/test_dqn.py's)."""
    if agent in COVERED_BY:
        pytest.skip(f"{agent}'s pixel run is {COVERED_BY[agent]}'s")
    if agent not in pixel_agents() or not acts_in_boxes(agent):
        pytest.skip(f"{agent} does not train from DMC's pixels")
    if pixels_only(agent):
        pytest.skip(f"{agent} learns from pixels only: its conformance tests run and resume it from pixels")
    request.getfixturevalue("renderer")  # skips without a headless GL renderer
    extra = [*PIXEL_RUN, f"image_size={tiny_image_size(agent)}"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main(tiny_argv(agent, ref, seed=3, extra=extra)) == EXIT_OK
    rows = read_csv(ref / "eval.csv")
    assert [int(r["env_step"]) for r in rows] == [0, 200, 400]
    train = read_csv(ref / "train.csv")
    assert train and all(np.isfinite(float(v)) for k, v in train[-1].items() if k.endswith("_loss") and v)
    stop = stop_after_steps(
        137
    )  # mid-episode past the seed episodes: networks, optimizers, frames to restore
    assert main(tiny_argv(agent, run, seed=3, extra=extra), should_stop=stop) == EXIT_INTERRUPTED
    assert open_episode(run)["actions"]
    assert main(tiny_argv(agent, run, seed=3, extra=extra)) == EXIT_OK
    assert eval_numbers(run) == eval_numbers(ref)
    assert read_csv(run / "train.csv")[-1] == {**train[-1], **_timings(read_csv(run / "train.csv")[-1])}


def _timings(row: dict) -> dict:
    """The columns of a train.csv row that measure wall time (they differ between any two runs)."""
    return {k: v for k, v in row.items() if "time" in k or k.endswith("_per_s") or k.startswith("wall")}


# Two seeds of 60 agent steps each (a seed episode of 30, then 30 with updates), both rendering in their own
# threads, to done: the group's first updates, its evaluations and its checkpoints seen from pixels.
KSEED_PIXEL_RUN = [
    "obs=pixels",
    "image_size=32",
    "steps=120",
    "episode_length=60",
    "seed_steps=60",
    "eval_every=120",
    "eval_episodes=1",
    "checkpoint_every=120",
    "diag_every=120",
]


@pytest.mark.slow
@pytest.mark.registry
@pytest.mark.computes
def test_every_pixel_agent_trains_from_rendered_frames_as_a_k_seed_group(agent, tmp_path, request):
    """A K = 2 group of every pixel agent from frames rendered in its seeds' threads (the envs built in the
    main thread) trains both seeds to done; each seed's numbers are its own (another initial state)."""
    if agent in COVERED_BY:
        pytest.skip(f"{agent}'s pixel group is {COVERED_BY[agent]}'s")
    if agent not in pixel_agents() or not acts_in_boxes(agent):
        pytest.skip(f"{agent} does not train from DMC's pixels")
    argv = layered(tiny_argv(agent, tmp_path, extra=KSEED_PIXEL_RUN), ["env_workers=false"])
    argv = [a for a in argv if not a.startswith(("seed=", "out="))]
    if why := unsupported(build_config(argv)):
        pytest.skip(f"the K-seed mode refuses {agent}: {why}")
    request.getfixturevalue("renderer")  # skips without a headless GL renderer
    assert kseed_main([*argv, "seeds=1,2", f"out={tmp_path}"]) == EXIT_OK
    runs = [tmp_path / f"seed{s}" for s in (1, 2)]
    for run in runs:
        assert json.loads((run / "status.json").read_text())["state"] == "done"
        assert [int(r["env_step"]) for r in read_csv(run / "eval.csv")] == [0, 120]
        row = read_csv(run / "train.csv")[-1]
        assert int(row["updates"]) > 0 and all(
            np.isfinite(float(v)) for k, v in row.items() if k.endswith("_loss") and v
        )
    assert eval_numbers(runs[0]) != eval_numbers(runs[1])
