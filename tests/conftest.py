import functools
import importlib.util
import json
import os
import runpy
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "disable")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# submitit's first import reconfigures logging (logging.config.dictConfig), which closes every handler there
# is. absl's handler (dm_control imports absl) then closes the stream it was made with unless that is still
# sys.stderr: made at collection, it is pytest's captured stderr, and a first import inside a test that
# captures its own output (capsys) closed pytest's stream, so pytest lost its stderr and crashed
# (tests/test_sweep_slurm.py run alone). Imported here, first, no handler it closes holds such a stream.
import submitit  # noqa: E402, F401
import torch  # noqa: E402

from iqrl.config.build import layered

torch.set_num_threads(1)

# Tiny but complete runs: 200-env-step episodes. Used by the end-to-end tests, with the agent's tiny sizes.
TINY_RUN = [
    "task=cartpole-balance",
    "episode_length=200",
    "seed_steps=400",
    "eval_every=400",
    "eval_episodes=2",
    "diag_every=400",
    "checkpoint_every=400",
]
# The tiny runs of agents that act in discrete action spaces only: a MiniGrid room (episodes of <= 100 steps)
TINY_DISCRETE_TASK = "minigrid:MiniGrid-Empty-5x5-v0"


def tiny_agent(agent: str) -> list[str]:
    """The overrides of `agent`'s tiny sizes, from its config class (AgentConfig.TINY): small networks,
    batches and planners for the tests' runs."""
    from iqrl.core import registry

    if agent not in registry.REGISTRY:
        return []
    return [
        f"agent.{k}={json.dumps(v, separators=(',', ':'))}"
        for k, v in registry.config_class(agent).TINY.items()
    ]


class _TinyAgent(Mapping):
    """agent name -> its tiny overrides (`tiny_agent`), for every agent of the registry as it is now."""

    def __getitem__(self, agent: str) -> list[str]:
        from iqrl.core import registry

        if agent not in registry.REGISTRY:
            raise KeyError(agent)
        return tiny_agent(agent)

    def __iter__(self):
        from iqrl.core import registry

        return iter(registry.agent_names())

    def __len__(self) -> int:
        from iqrl.core import registry

        return len(registry.REGISTRY)


TINY_AGENT = _TinyAgent()


def acts_in_boxes(agent: str) -> bool:
    from iqrl.core.registry import agent_class

    return "box" in agent_class(agent).ACTION_SPACES


def agent_run(agent: str) -> list[str]:
    """The run keys the agent's defaults need on the tests' DMC task: the MiniGrid room's `task=` for an agent
    without boxes; for one that learns from pixels only, frames of the smallest size its defaults take where
    that is above the run's default (CURL's crops of 84 pixels: 85)."""
    task = [] if acts_in_boxes(agent) else [f"task={TINY_DISCRETE_TASK}"]
    task += several_envs(agent)
    if not pixels_only(agent):
        return task
    from iqrl.config.run import pixel_defaults
    from iqrl.config.validate import smallest_image_size
    from iqrl.core import registry
    from iqrl.envs.tasks import SUITES

    cfg = registry.config_class(agent)(name=agent, **registry.get_entry(agent).preset)
    default = pixel_defaults(agent, SUITES["dmc"], "pixels")["image_size"]
    size = smallest_image_size(cfg) or default
    return task + [f"image_size={size}"] * (size > default)


def several_envs(agent: str) -> list[str]:
    """train_envs=2 for an agent whose code collects from several envs at once (AgentConfig.TRAIN_ENVS:
    DreamerV3's 16 on DMC): every registry-wide test takes two envs through its paths, at an eighth of the
    code's cost."""
    from iqrl.core import registry

    return ["train_envs=2"] * (agent in registry.REGISTRY and bool(registry.config_class(agent).TRAIN_ENVS))


def agent_actions(agent: str, dims: int):
    """The test actions of an agent: a box of `dims`, or 3 discrete actions for one without boxes."""
    from iqrl.core.spaces import ActionSpec

    return ActionSpec.box(dims) if acts_in_boxes(agent) else ActionSpec.discrete(3)


def missing_suite(agent: str, extra=()) -> str | None:
    """Why `agent`'s tiny run (its task as `tiny_keys` sets it) cannot be built here: the package of its
    task's suite is not installed (a GPU machine's wheels may lack ale-py or minigrid); None when it can."""
    from iqrl.config.run import RunConfig
    from iqrl.envs.tasks import SUITES, split_task

    tasks = [k.partition("=")[2] for k in tiny_keys(agent, extra) if k.startswith("task=")] or [
        RunConfig.task
    ]
    suite = SUITES[split_task(tasks[-1])[0]]
    if suite.package and importlib.util.find_spec(suite.package) is None:
        return f"{agent}'s tiny task {tasks[-1]} needs {suite.package}: pip install -e '.[{suite.extra}]'"
    return None


def tiny_argv(agent: str, out, steps: int = 1200, seed: int = 1, extra=()) -> list[str]:
    """A tiny run's command line; `extra` keys replace the tiny ones (a command line gives each key once)."""
    return [*tiny_run(agent, steps, seed, extra), f"out={out}"]


def tiny_run(agent: str, steps: int = 1200, seed: int = 1, extra=()) -> list[str]:
    """`tiny_argv` without its out= (what `finished_runs` takes)."""
    return layered([f"agent={agent}", f"seed={seed}", f"steps={steps}", *tiny_keys(agent)], extra)


# The agent's end-to-end run of the registry-wide tests, trained once (finished_runs), read by each: 400 env
# steps, two seed episodes of 100, then updates; evaluated in line at 0, 200 and 400 (two episodes each).
# The complete run folder and kill-and-resume (tests/test_conformance.py) and evaluation beside training, at
# another cadence and from (seed, step) (tests/test_eval_streams.py) all compare with it.
E2E_KEYS = [
    "episode_length=100",
    "seed_steps=200",
    "eval_every=200",
    "eval_episodes=2",
    "diag_every=200",
    "checkpoint_every=400",
    "eval_beside=false",
]


def e2e_run(agent: str, extra=()) -> list[str]:
    """The agent's end-to-end run (E2E_KEYS, seed 4), `extra` keys replacing its own."""
    return tiny_run(agent, steps=400, seed=4, extra=layered(E2E_KEYS, extra))


def tiny_keys(agent: str, extra=()) -> list[str]:
    """agent=NAME and the tiny run's keys for it (a discrete-only agent's in the MiniGrid room, a pixel-only
    agent's from tiny frames), `extra` keys replacing them."""
    return layered(
        [f"agent={agent}", *TINY_RUN], agent_run(agent), agent_obs(agent), tiny_agent(agent), extra
    )


# ---------------------------------------------------------------------------------- tiny pixel observations
# An agent that learns from pixels only (Agent.PIXELS_ONLY: CURL's crops) is built from frame stacks in every
# registry-wide test, and its test ids say so (`[curl-from-pixels]`): TINY_FRAME_STACK frames of
# TINY_IMAGE_SIZE pixels, or of the smallest size its tiny config takes where that is larger. The pixel K-seed
# test builds every pixel agent so.
TINY_IMAGE_SIZE, TINY_FRAME_STACK = 32, 2


def pixels_only(agent: str) -> bool:
    from iqrl.core import registry

    return agent in registry.REGISTRY and registry.agent_class(agent).PIXELS_ONLY


def tiny_image_size(agent: str) -> int:
    """The frame size of the agent's tiny pixel runs: TINY_IMAGE_SIZE (MR.Q's encoder needs 31), or the
    smallest its tiny config takes (AgentConfig.validate_pixels: a crop needs larger frames than itself)."""
    from iqrl.config.validate import smallest_image_size
    from iqrl.core import registry

    cls = registry.config_class(agent)
    cfg = cls(name=agent, **{**registry.get_entry(agent).preset, **cls.TINY})
    return max(TINY_IMAGE_SIZE, smallest_image_size(cfg) or TINY_IMAGE_SIZE)


def tiny_pixels(agent: str) -> list[str]:
    """The run keys of the agent's tiny frame stacks."""
    return ["obs=pixels", f"image_size={tiny_image_size(agent)}", f"frame_stack={TINY_FRAME_STACK}"]


def agent_obs(agent: str) -> list[str]:
    """A pixel-only agent's tiny pixel keys; nothing for the others (the tiny runs' state vectors)."""
    return tiny_pixels(agent) if pixels_only(agent) else []


@dataclass(frozen=True)
class Observations:
    """What a test feeds an agent it builds by hand: state vectors of width `dim`, or uint8 frame stacks of
    shape `dim` = (3 frame_stack, H, W)."""

    dim: int | tuple[int, int, int]
    frame_stack: int = 1

    def sample(self, rng: np.random.Generator, *batch: int, scale: float = 1.0) -> np.ndarray:
        """Random observations [*batch, *shape]: N(0, scale^2) state vectors (float32), or uniform frames."""
        if isinstance(self.dim, tuple):
            return rng.integers(0, 256, (*batch, *self.dim), dtype=np.uint8)
        x = rng.normal(size=(*batch, self.dim)).astype(np.float32)
        return x if scale == 1.0 else x * scale

    def replay(self, actions, seq_len: int, device="cpu", seed: int = 0):
        """An empty SequenceReplay for these observations."""
        from iqrl.core.replay import SequenceReplay

        return SequenceReplay(self.dim, actions, seq_len, device, seed, frame_stack=self.frame_stack)


def pixel_observations(agent: str) -> Observations:
    """The agent's tiny frame stacks (`tiny_pixels`)."""
    size = tiny_image_size(agent)
    return Observations((3 * TINY_FRAME_STACK, size, size), TINY_FRAME_STACK)


def agent_observations(agent: str, state_dim: int = 5) -> Observations:
    """What the registry-wide tests build the agent for: state vectors of `state_dim`, or a pixel-only
    agent's tiny frame stacks."""
    return pixel_observations(agent) if pixels_only(agent) else Observations(state_dim)


def render_for(agent: str, request) -> None:
    """A test that runs a pixel-only agent's tiny run renders its frames: it skips without a headless GL
    renderer (the `renderer` fixture; IQRL_REQUIRE_RENDERER=1 fails instead)."""
    if pixels_only(agent):
        request.getfixturevalue("renderer")


# ---------------------------------------------------------------------------------- registry-wide tests
# A test marked `registry` that takes the argument `agent` runs for every registered agent, so a new agent is
# tested the moment it is registered. `make test-agent NAME=td3` runs them for one agent: pytest -m registry
# --agent td3 (a test marked `registry` without that argument, the switch page's check, runs once).
# --scratch-registry FILE first runs a Python file that adds entries to the registry (tests/test_extending.py
# runs the examples of docs/extending.md so), --switch-page FILE checks that file as docs/switches.md (what
# `make switches` would write with the scratch agents registered), --docs-root DIR the agent lists of DIR's
# README.md and docs/ (iqrl/agent_docs.py: what `make switches` writes into them).


def pytest_addoption(parser):
    parser.addoption(
        "--agent", default="", help="comma-separated agents: the registry-wide tests run for these only"
    )
    parser.addoption(
        "--scratch-registry", default="", help="a Python file adding entries to the agent registry"
    )
    parser.addoption(
        "--switch-page",
        default=str(Path(__file__).resolve().parents[1] / "docs" / "switches.md"),
        help="the page the switch page's check reads (default docs/switches.md)",
    )
    parser.addoption(
        "--docs-root",
        default=str(Path(__file__).resolve().parents[1]),
        help="the folder of README.md and docs/ whose agent lists the docs check reads (default: this one)",
    )
    parser.addoption(
        "--compile-check",
        default="",
        choices=("", "inductor", "aot"),
        help="the registry-wide compile check's backend (default: inductor with --agent, else AOT only)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Before anything is collected: the scratch registry's entries are added, and an --agent the registry
    lacks is one `error:` line and exit 2 (collecting every test module first took a minute and ended in a
    collection error per module)."""
    from iqrl.core import registry

    if path := config.getoption("--scratch-registry"):
        sys.path.insert(0, str(Path(path).resolve().parent))
        runpy.run_path(path)

    unknown = [a for a in config.getoption("--agent").split(",") if a and a not in registry.REGISTRY]
    if unknown:
        print(f"error: {registry.unknown_agent(unknown[0])}", file=sys.stderr)
        return 2
    return None


def agents_under_test(config) -> list[str]:
    """The agents of --agent (each registered: pytest_cmdline_main), else every registered one."""
    from iqrl.core import registry

    return [a for a in config.getoption("--agent").split(",") if a] or registry.agent_names()


def inductor_check(config) -> bool:
    """Whether the registry-wide compile check compiles with inductor (what compile=true runs; minutes of C++
    compilation per agent on CPU): by default when it runs for chosen agents only (`make test-agent`)."""
    choice = config.getoption("--compile-check")
    return choice == "inductor" or (not choice and bool(config.getoption("--agent")))


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("registry") and "agent" in metafunc.fixturenames:
        agents = agents_under_test(metafunc.config)
        ids = [f"{a}-from-pixels" if pixels_only(a) else a for a in agents]  # built from tiny frame stacks
        computes = metafunc.definition.get_closest_marker("computes") is not None
        params = [
            pytest.param(a, marks=pytest.mark.skip(reason=f"{a}'s tiny run is {twin}'s: tested there"))
            if computes and (twin := tiny_twin(a, agents))
            else a
            for a in agents
        ]
        metafunc.parametrize("agent", params, ids=ids)


def tiny_twin(agent: str, agents: list[str]) -> str | None:
    """The first of `agents` before `agent` whose tiny run computes exactly what `agent`'s does: the same
    class, and the same tiny config (the name aside) and run keys. A preset that differs from its agent only
    in what the tiny sizes set (bro-utd10's and simbav2-utd8's update-to-data ratio: 0.5 in every tiny run)
    is its twin; the registry-wide tests marked `computes` (those that train, update or compile the agent)
    run it only where its twin is not under test."""
    mine = _tiny_computation(agent)
    return next((a for a in agents[: agents.index(agent)] if _tiny_computation(a) == mine), None)


@functools.cache
def _tiny_computation(agent: str) -> str:
    """What decides the numbers of `agent`'s tiny run: its class, tiny config (but the name) and run keys."""
    import dataclasses

    from iqrl.config.build import build_config
    from iqrl.core import registry

    cfg = build_config(tiny_keys(agent))
    values = dataclasses.asdict(cfg.agent) | {"name": None}
    run = dataclasses.asdict(cfg) | {"agent": None, "out": None}
    return repr((registry.get_entry(agent).cls, values, run))


def agent_modules(agent: str) -> list[Path]:
    """The files of the modules that define the agent's class and its config (a scratch registry's too)."""
    from iqrl.core import registry

    entry = registry.get_entry(agent)
    modules = dict.fromkeys(spec.split(":")[0] for spec in (entry.cls, entry.config))
    return [Path(importlib.util.find_spec(m).origin) for m in modules]


def own_test_files(agents: list[str]) -> set[str]:
    """The test files of the agents' own maths: tests/test_<name with - as _>.py and tests/test_<module>.py of
    the module that defines its class (bro-utd10: test_bro_utd10.py, test_bro.py)."""
    from iqrl.core import registry

    names = set()
    for a in agents:
        module = registry.get_entry(a).cls.split(":")[0].rsplit(".", 1)[-1]
        names |= {f"test_{a.replace('-', '_')}.py", f"test_{module}.py"}
    return names


# The files that take longest in `make test`, longest first (a two-worker run's wall seconds per file, from
# scripts/test_profile.py): they are collected first, so pytest-xdist, which hands each worker one file at a
# time in collection order (`--no-loadscope-reorder` in the Makefile), starts them first, and the run ends
# on short files with every worker busy. Only the order depends on this list, never a verdict (and
# tests/test_references.py fails on a path here that no longer exists).
LONGEST_FILES = (
    "tests/test_sweep_slurm.py",  # about 500 s, most of it waiting for Slurm's time limits
    "tests/test_multiseed.py",
    "tests/test_compile.py",
    "tests/test_extending.py",
    "tests/test_pixels.py",
    "tests/test_faults.py",
    "tests/test_eval_streams.py",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The longest files first (LONGEST_FILES), the others in their order. With --agent (`make test-agent`),
    the tests of those agents' own files run beside the registry-wide ones: they are marked `registry` here,
    before `-m registry` selects."""
    rank = {path: k for k, path in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(f"tests/{item.path.name}", len(rank)))
    agents = [a for a in config.getoption("--agent").split(",") if a]
    if not agents:
        return
    own = own_test_files(agents)
    for item in items:
        if item.path.name in own:
            item.add_marker(pytest.mark.registry)


@pytest.fixture
def tiny():
    return tiny_argv


@pytest.fixture(scope="session")
def renderer():
    """The headless GL backend (iqrl.envs.render.select_backend); skips without one, fails with
    IQRL_REQUIRE_RENDERER=1 (CI installs EGL and OSMesa)."""
    from iqrl.envs import render

    try:
        return render.select_backend()
    except render.RendererUnavailable as e:
        if os.environ.get("IQRL_REQUIRE_RENDERER") == "1":
            raise
        pytest.skip(str(e))


# The tests' frames are rendered with a shadow map of at most TEST_SHADOW_SIZE pixels a side where the model
# asks for more (cartpole's 2048, drawn again for every frame): the frames of the tiny pixel runs (cartpole,
# 32 pixels) are the same pixel for pixel (tests/test_pixels.py checks it), at 9 against 24 ms of CPU each
# with Mesa's software EGL. Runs outside the test process (a trainer started as a command) render as users do.
TEST_SHADOW_SIZE = 512


@pytest.fixture(scope="session", autouse=True)
def small_shadow_maps():
    import functools

    from iqrl.envs import render

    model_sized = render.Renderer.__init__

    @functools.wraps(model_sized)
    def test_sized(self, physics, *args, **kwargs):
        quality = physics.model.vis.quality
        quality.shadowsize = min(quality.shadowsize, TEST_SHADOW_SIZE)
        model_sized(self, physics, *args, **kwargs)

    render.Renderer.__init__ = test_sized
    yield
    render.Renderer.__init__ = model_sized


def sigint_as_terminal() -> None:
    """`preexec_fn` for a child that a test stops with SIGINT as a terminal's Ctrl-C: SIGINT back to its
    default action, so that Python in the child raises KeyboardInterrupt. A shell without job control starts
    its background commands (`bash .ci/run &` in a wrapper script) with SIGINT ignored, and a child inherits
    that: the SIGINT would then do nothing at all."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(cond, proc=None, what: str = "the condition", hang_s: float = 900.0) -> None:
    """Block until cond() holds: an event (a file written, a step reached), not a number of seconds.
    Fails at once if `proc` exits first (the event can no longer happen). `hang_s` only turns a hang into a
    failure; it is far beyond any machine's time for the tiny runs here, so it never decides a verdict."""
    import time

    t0 = time.monotonic()
    while not cond():
        if proc is not None and proc.poll() is not None:
            if cond():
                return
            out = proc.communicate()[1] if proc.stderr else ""
            raise AssertionError(f"process exited ({proc.returncode}) before {what}: {out}")
        if time.monotonic() - t0 > hang_s:
            raise AssertionError(f"no {what} after {hang_s:.0f} s: hung")
        time.sleep(0.02)


def stop_after_steps(n: int):
    """A trainer `should_stop` that asks to stop after the n-th agent step it is asked about (the trainer asks
    after every agent step: the run stops at env step n x action_repeat of its start, mid-episode where that
    falls)."""
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] == n

    return should_stop


def stop_at_env_step(argv: list[str], env_step: int):
    """A `should_stop` that stops the run of `argv` at `env_step` (in agent steps of its action repeat)."""
    from iqrl.config.build import build_config

    return stop_after_steps(env_step // build_config(argv).action_repeat)


def open_episode(run) -> dict | None:
    """The training episode open in a run folder's latest checkpoint (None when it was taken at an episode's
    end): what a test of a mid-episode resume checks it stopped in."""
    import torch

    state = torch.load(Path(run) / "checkpoint" / "ckpt.pt", map_location="cpu", weights_only=False)
    return state["open_episode"]


def write_gpu_results(
    folder: Path, rows: Mapping[str, float | str], gpu: str = "NVIDIA H100", date="2026-12-01"
):
    """A GPU report result file (docs/gpu-results/<gpu>-<date>.jsonl) in `folder`: a machine row, then one
    bench row per {key: updates/s per seed}, or {key: error} for a row that failed. Returns `folder`."""
    lines = [{"kind": "machine", "date": date, "gpu": gpu}]
    for key, value in rows.items():
        agent, task, obs, dtype, mode, k = key.split()[:6]
        row = {"part": 2, "kind": "bench", "key": key, "packed": 1, "copy": 0}
        if isinstance(value, str):
            row["error"] = value
        else:
            row |= {"agent": agent, "task": task, "obs": obs, "device": "cuda", "dtype": dtype}
            compiled = {"false": False, "true": True}.get(mode[8:], mode[8:])  # as the bench records it
            row |= {"compile": compiled, "seeds": int(k[2:]), "updates_per_s": value}
        lines.append(row)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{gpu.lower().replace(' ', '-')}-{date}.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in lines)
    )
    return folder


def count_evaluations_beside(monkeypatch) -> list:
    """A list that gets every evaluation started beside training (its `env_step` says where)."""
    from iqrl.loop import beside, trainer

    started = []

    class Counted(beside.EvaluationBeside):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            started.append(self)

    monkeypatch.setattr(trainer, "EvaluationBeside", Counted)
    return started


# ------------------------------------------------------------------------------ finished runs, trained once
# A test that only reads a finished tiny run, or compares a resumed run with the uninterrupted one, takes the
# uninterrupted run from `finished_runs`: each distinct command line is trained once per `make test`, by the
# first test (in either pytest-xdist worker) that asks for it, under a file lock, and kept for the session.
# A test that changes a run folder copies it first (`FinishedRuns.copy`).


class FinishedRuns:
    """Finished runs by command line, in a folder shared by the session's workers."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def get(self, argv: list[str], group: bool = False) -> Path:
        """The folder of the finished run of `argv` (no out=): `python -m iqrl.train argv`, or with `group`
        the K-seed group `python -m iqrl.multiseed argv` (its seeds' folders inside). Read it, never change
        it. It trains in this process: ask for it before the test patches anything a run uses."""
        import fcntl
        import hashlib

        assert not any(a.startswith("out=") for a in argv), "finished_runs chooses the folder"
        key = hashlib.sha256(json.dumps([group, *argv]).encode()).hexdigest()[:16]
        out, done = self.root / key, self.root / f"{key}.done"
        with open(self.root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker waits for the first one's training
            if not done.exists():
                import shutil

                from iqrl.multiseed.runs import main as group_main
                from iqrl.runfolder.exits import EXIT_OK
                from iqrl.train import main as train_main

                shutil.rmtree(out, ignore_errors=True)  # a training that failed before
                rc = (group_main if group else train_main)([*argv, f"out={out}"])
                assert rc == EXIT_OK, f"the finished run of {argv} failed (exit {rc})"
                done.write_text(json.dumps(argv))
        return out

    def copy(self, argv: list[str], dest: Path, group: bool = False) -> Path:
        """A copy of the finished run of `argv` at `dest`, the test's own to change."""
        import shutil

        shutil.copytree(self.get(argv, group), dest)
        return dest


@pytest.fixture(scope="session")
def finished_runs(tmp_path_factory, worker_id) -> FinishedRuns:
    base = tmp_path_factory.getbasetemp()
    return FinishedRuns((base.parent if worker_id != "master" else base) / "finished-runs")


# ---------------------------------------------------------------------------------------- CPU-time profile
# IQRL_TEST_CPU=FILE: each test's CPU seconds (the test process and the children it waited for, setup and
# teardown included) appended to FILE as JSON lines, one per test: a profile that the machine's other load
# changes far less than the wall times of --durations (docs/testing.md, "Profile").


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    path = os.environ.get("IQRL_TEST_CPU")
    if not path:
        yield
        return
    import resource
    import time

    def cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    cpu0, wall0 = cpu(), time.monotonic()
    yield
    row = {"test": item.nodeid, "cpu_s": round(cpu() - cpu0, 2), "wall_s": round(time.monotonic() - wall0, 2)}
    with open(path, "a") as f:  # one short line per write: the workers' lines do not interleave
        f.write(json.dumps(row) + "\n")
