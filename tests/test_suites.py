"""The suites beside DMC (iqrl/envs/suites.py, docs/suites.md): Gym MuJoCo, Meta-World, MyoSuite.

Per suite: seeding, action bounds, observation shapes, episode length and action repeat, the success signal;
termination vs truncation from the env into the n-step targets; a kill-and-resume run; the bad-name and
missing-package messages. A suite whose package is absent skips with the extra to install (CI installs all:
the dev extra includes them, and with CI set they run and fail instead).
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import os

import numpy as np
import pytest
import torch

from analysis.reference.table import SHIPPED
from iqrl.config.build import build_config, layered
from iqrl.config.run import ConfigError
from iqrl.core.replay import SequenceReplay, nstep_targets
from iqrl.envs.tasks import SUITES
from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from iqrl.runfolder.layout import EVAL_COLUMNS
from iqrl.train import main

from conftest import TINY_AGENT, open_episode, stop_after_steps, tiny_argv
from test_train import eval_numbers


def needs(suite: str):
    """Skip, naming the extra, where the suite's package is absent; under CI (which installs the extras
    through `.[dev]`) run anyway, so that a missing package fails instead of passing unseen."""
    package = SUITES[suite].package
    return pytest.mark.skipif(
        importlib.util.find_spec(package) is None and not os.environ.get("CI"),
        reason=f"{package} is not installed: pip install -e '.[{SUITES[suite].extra}]'",
    )


# (task, action repeat, episode length, obs dim, action dim) as each suite runs by default
TASKS = [
    pytest.param("gym:HalfCheetah-v4", 1, 1000, 17, 6, marks=needs("gym")),
    pytest.param("metaworld:reach", 2, 200, 39, 4, marks=needs("metaworld")),
    pytest.param("myosuite:myoHandReachFixed-v0", 1, 100, 115, 39, marks=needs("myosuite")),
]


def make(task: str, seed: int, **keys):
    from iqrl.envs.make import make_env

    cfg = build_config([f"task={task}", *(f"{k}={v}" for k, v in keys.items())])
    return make_env(task, seed, cfg.action_repeat, cfg.episode_length)


def rollout(env, actions) -> tuple[list, list]:
    obs, steps = [env.reset()], []
    for a in actions:
        steps.append(env.step(a))
        obs.append(steps[-1].obs)
        if steps[-1].terminated or steps[-1].truncated:
            break
    return obs, steps


@pytest.mark.parametrize("task, repeat, length, obs_dim, act_dim", TASKS)
def test_protocol_seeding_shapes_and_time_limit(task, repeat, length, obs_dim, act_dim):
    env = make(task, 3)
    assert (env.action_repeat, env.episode_length, env.obs_dim, env.act_dim) == (
        repeat,
        length,
        obs_dim,
        act_dim,
    )
    actions = np.random.default_rng(0).uniform(-1, 1, (length, act_dim))
    obs, steps = rollout(env, actions)
    assert all(o.shape == (obs_dim,) and o.dtype == np.float32 for o in obs)
    # none of these three terminates: the time limit truncates after length / repeat agent steps
    assert len(steps) == length // repeat and steps[-1].truncated and not steps[-1].terminated
    same, _ = rollout(make(task, 3), actions)
    other, _ = rollout(make(task, 4), actions)
    assert all(np.array_equal(a, b) for a, b in zip(obs, same))
    # another seed, another episode (MyoSuite's Fixed tasks reset to one state: no randomness to seed)
    assert np.array_equal(obs[-1], other[-1]) == task.startswith("myosuite:")
    # the next episode starts from the generator the first left (and a copy of that state repeats it)
    state = env.get_state()
    copy = make(task, 99)
    copy.set_state(state)
    assert np.array_equal(env.reset(), copy.reset())


@needs("gym")
def test_gym_actions_are_rescaled_to_the_bounds_and_falls_terminate():
    env = make("gym:Humanoid-v4", 0)  # bounds +-0.4
    env.reset()
    raw = env._env
    env.step(np.ones(env.act_dim))
    assert np.allclose(raw.data.ctrl, raw.action_space.high)
    hopper = make("gym:Hopper-v4", 0)
    _, steps = rollout(hopper, np.random.default_rng(0).uniform(-1, 1, (1000, hopper.act_dim)))
    assert steps[-1].terminated and not steps[-1].truncated and len(steps) < 1000


@needs("metaworld")
def test_metaworld_success_is_reported_and_reaches_eval_csv(tmp_path):
    """A scripted reach (hand to goal) succeeds; the success column is the fraction of episodes."""
    env = make("metaworld:reach", 0)
    obs, success = env.reset(), False
    for _ in range(100):
        step = env.step(np.append(np.clip((obs[-3:] - obs[:3]) * 10, -1, 1), 0.0))
        obs, success = step.obs, success or step.success
    assert success
    run = tmp_path / "mw"
    extra = ["task=metaworld:reach", "episode_length=100", "eval_every=200", "checkpoint_every=200"]
    assert main(tiny_argv("td3", run, steps=400, extra=extra)) == EXIT_OK
    rows = list(csv.DictReader(open(run / "eval.csv")))
    columns = list(rows[0])  # eval.csv's own columns, then success (then the Q-bias's: docs/run-folder.md)
    assert columns[len(EVAL_COLUMNS)] == "success" and all(0 <= float(r["success"]) <= 1 for r in rows)


@needs("myosuite")
def test_myosuite_success_is_the_envs_solved_flag_and_its_termination_is_dropped():
    """Step for step beside the raw env: the same rewards, success = info['solved'], and never a
    termination (DC-MPC's wrapper drops MyoSuite's), whatever the raw env says."""
    import gymnasium

    task = "myoHandReachFixed-v0"
    env, raw = make(f"myosuite:{task}", 0), gymnasium.make(task, disable_env_checker=True).unwrapped
    env.reset(), raw.reset(seed=0)
    for a in np.random.default_rng(0).uniform(-1, 1, (20, env.act_dim)):
        step = env.step(a)
        _, reward, _, _, info = raw.step(a)
        assert (step.reward, step.success, step.terminated) == (float(reward), bool(info["solved"]), False)


@needs("gym")
def test_termination_stops_the_nstep_target_and_truncation_bootstraps():
    """Short Hopper episodes (falls) and one truncated by an 8-step limit into one replay: every window
    whose first n steps hold the fall stops there (discount 0), every other bootstraps (gamma^n), and no
    window reaches into the next episode."""
    n, gamma = 3, 0.9
    replay = SequenceReplay(11, 3, n, seed=0)
    rng = np.random.default_rng(0)
    falls = 0
    for length in (1000, 1000, 8):
        env = make("gym:Hopper-v4", falls, episode_length=length)
        replay.start_episode(env.reset())
        while True:
            step = env.step(rng.uniform(-1, 1, 3))
            replay.add(rng.uniform(-1, 1, 3), step.reward, step.obs, step.terminated, step.truncated)
            if step.terminated or step.truncated:
                falls += step.terminated
                break
    assert falls == 2 and step.truncated  # two falls, then a truncation
    batch = replay.sample(512)
    _, discount, boot = nstep_targets(batch.reward, batch.terminal, batch.valid, gamma, n)
    ends = batch.terminal.any(1)
    assert ends.any() and (~ends).any()
    assert torch.all(discount[ends] == 0)
    assert torch.allclose(discount[~ends], torch.full_like(discount[~ends], gamma**n))
    assert torch.all(boot[ends] == batch.terminal.float().argmax(1)[ends] + 1)


@pytest.mark.parametrize(
    "task, repeat, success",
    [
        pytest.param("gym:Hopper-v4", 1, False, marks=needs("gym")),  # Gym defines no success
        pytest.param("metaworld:reach", 2, True, marks=needs("metaworld")),
        pytest.param("myosuite:myoHandReachFixed-v0", 1, True, marks=needs("myosuite")),
    ],
)
def test_a_run_killed_and_resumed_ends_with_the_same_numbers(tmp_path, task, repeat, success):
    """Stopped at env step 550, mid-episode (episodes of at most 100 env steps: the env's generator, the goals
    Meta-World draws at each reset, the replay, the agent and the open episode checkpointed mid-run) and
    resumed: eval.csv as the uninterrupted run's, success rates included."""
    extra = [f"task={task}", "episode_length=100"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(tiny_argv("td3", whole, steps=800, extra=extra)) == EXIT_OK
    stop = stop_after_steps(550 // repeat)
    assert main(tiny_argv("td3", parts, steps=800, extra=extra), should_stop=stop) == EXIT_INTERRUPTED
    assert open_episode(parts)["actions"]  # stopped mid-episode
    assert main(tiny_argv("td3", parts, steps=800, extra=extra)) == EXIT_OK
    assert eval_numbers(parts) == eval_numbers(whole)
    header = open(whole / "eval.csv").readline().strip().split(",")
    assert ("success" in header) == success
    if success:
        rates = [r["success"] for r in csv.DictReader(open(parts / "eval.csv"))]
        assert rates == [r["success"] for r in csv.DictReader(open(whole / "eval.csv"))] and len(rates) >= 2


def test_a_bad_task_name_lists_the_suites(capsys, tmp_path):
    assert main([f"out={tmp_path / 'r'}", "task=mw:reach"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: unknown task 'mw:reach'")
    assert all(f"{s}:<name>" in err for s in ("gym", "metaworld", "myosuite"))


@pytest.mark.parametrize("suite, task", [("gym", "gym:Hopper-v4"), ("metaworld", "metaworld:reach")])
def test_a_missing_suite_package_names_the_extra(monkeypatch, capsys, tmp_path, suite, task):
    real_import_module = importlib.import_module

    def without_package(name, package=None):
        if name.split(".")[0] == SUITES[suite].package:
            raise ImportError(f"No module named {name!r}")
        return real_import_module(name, package)

    monkeypatch.setattr(importlib, "import_module", without_package)
    with pytest.raises(ConfigError, match=rf"pip install -e '\.\[{SUITES[suite].extra}\]'"):
        build_config([f"task={task}"])
    assert main([f"out={tmp_path / 'r'}", f"task={task}"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error:")


def test_published_names_of_our_tasks():
    from analysis.reference.table import published_name

    assert published_name("walker-walk") == "walker-walk"
    assert published_name("metaworld:button-press-topdown") == "mw-button-press-topdown"
    assert published_name("myosuite:myoHandKeyTurnFixed-v0") == "myo-hand-key-turn"
    assert published_name("myosuite:myoHandPenTwirlRandom-v0") == "myo-hand-pen-twirl-hard"


def test_the_shipped_suite_curves_load_as_success_rates():
    from analysis.reference.table import load_reference, select_reference

    ref = select_reference(
        load_reference(SHIPPED / "published_suites.csv.gz"),
        ["metaworld:reach", "myosuite:myoHandReachFixed-v0"],
        value="success",
    )
    assert set(ref["task"]) == {"metaworld:reach", "myosuite:myoHandReachFixed-v0"}
    assert "DCWM [dcwm-iclr25]" in set(ref["label"])
    assert ref["mean"].between(0, 1).all()


def test_suite_results_next_to_an_older_dmc_run_folder(tmp_path):
    """A DMC run folder of before the suites (no success column) beside Meta-World runs with one: the
    pooled figures use the DMC run only, Meta-World gets its success-rate panels with the published success
    curve of its task (a hand-made reference file) in the suite's names."""
    import pandas as pd

    from analysis.figures import make as figures
    from analysis.reference.table import select_reference

    from analysis_helpers import write_run

    write_run(tmp_path / "r" / "td3" / "walker-walk" / "seed0", [(0, 10.0), (100, 500.0)])
    for seed, rates in enumerate([(0.0, 0.4), (0.2, 0.6)]):
        run = write_run(tmp_path / "r" / "td3" / "metaworld:reach" / f"seed{seed}", [(0, 5.0), (100, 900.0)])
        ev = pd.read_csv(run / "eval.csv").assign(success=list(rates))
        ev.to_csv(run / "eval.csv", index=False)
    ref = pd.DataFrame(
        {
            "source": "dcwm-iclr25",
            "algorithm": "DCWM",
            "ablation": "",
            "task": "mw-reach",
            "env_step": [0, 100, 0, 100],
            "seed": [1, 1, 2, 2],
            "episode_return": ["", "", "", ""],
            "success": [0.0, 1.0, 0.0, 0.5],
        }
    )
    picked = select_reference(ref, ["metaworld:reach"], value="success")
    assert picked["task"].unique().tolist() == ["metaworld:reach"]
    assert picked.set_index("env_step")["mean"].to_dict() == {0: 0.0, 100: 0.75}
    out = figures.make_figures(tmp_path / "r", tmp_path / "f", steps=[100], reps_curve=20, reps_final=20)
    names = {p.stem for p in out["figures"]}
    assert {"per_task_curves", "per_task_curves_metaworld", "final_intervals_100"} <= names
    # pooled over the one DMC task: its return / 1000 (the Meta-World returns, 900, are not pooled in)
    assert out["scores"]["iqm"].tolist() == [500.0]
    # Meta-World pooled on its own, on success rates: the two seeds' 0.4 and 0.6 at step 100
    assert {"sample_efficiency_metaworld", "final_intervals_metaworld_100"} <= names
    mw = out["suite_scores"]["metaworld"].iloc[0]
    assert mw[["iqm", "mean", "median"]].tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert mw["optimality_gap"] == pytest.approx(0.5)
    assert (tmp_path / "f" / "scores_metaworld.md").read_text().count("0.500") >= 3


def test_td3_normalized_gym_scores_are_mrqs():
    """MR.Q's Appendix B.3 score: (return - random) / (TD3 - random), its reference returns per task."""
    from analysis.stats.scores import GYM_REFERENCE, td3_normalized

    assert td3_normalized("gym:Hopper-v4", 3226.0) == pytest.approx(1.0)
    assert td3_normalized("gym:Hopper-v4", 18.791) == pytest.approx(0.0)
    assert td3_normalized("gym:HalfCheetah-v4", np.array([10574.0 * 2 + 289.415])) == pytest.approx([2.0])
    assert np.isnan(td3_normalized("gym:InvertedPendulum-v4", 1000.0))
    assert np.isnan(td3_normalized("walker-walk", 500.0))
    assert sorted(GYM_REFERENCE) == ["Ant-v4", "HalfCheetah-v4", "Hopper-v4", "Humanoid-v4", "Walker2d-v4"]


def test_gym_runs_pool_as_td3_normalized_scores(tmp_path):
    """Gym tasks pool on TD3-normalised scores, never raw returns; a Gym task without MR.Q's reference
    returns gets its per-task panel and a note, and stays out of the pooled figures."""
    from analysis.figures import make as figures

    from analysis_helpers import write_run

    for seed, final in enumerate([3226.0, 18.791]):  # TD3 at 1M, a random policy: scores 1 and 0
        write_run(tmp_path / "r" / "td3" / "gym:Hopper-v4" / f"seed{seed}", [(0, 18.791), (100, final)])
    for seed, final in enumerate([10574.0, 10574.0]):
        write_run(tmp_path / "r" / "td3" / "gym:HalfCheetah-v4" / f"seed{seed}", [(0, 0.0), (100, final)])
    write_run(tmp_path / "r" / "td3" / "gym:InvertedPendulum-v4" / "seed0", [(0, 0.0), (100, 1000.0)])
    with pytest.warns(figures.AnalysisWarning, match="gym: no TD3-normalised score for gym:InvertedPendulum"):
        out = figures.make_figures(tmp_path / "r", tmp_path / "f", steps=[100], reps_curve=20, reps_final=20)
    names = {p.stem for p in out["figures"]}
    assert {"per_task_curves_gym", "sample_efficiency_gym", "final_intervals_gym_100"} <= names
    assert out["scores"] is None  # no DMC run: no DMC table
    gym = out["suite_scores"]["gym"].iloc[0]
    # per-task means: Hopper 0.5, HalfCheetah 1.0 -> mean 0.75, median 0.75; IQM over the four run scores
    # (0, 1, 1, 1) trims one at each end -> 1.0
    assert gym[["mean", "median", "iqm"]].tolist() == pytest.approx([0.75, 0.75, 1.0])
    assert gym["n_tasks"] == 2 and gym["n_runs"] == 4


class _FixedReplay:
    """What TD7's and MR.Q's updates read of a replay, serving one window (cut to the asked length)."""

    has_terminal = True

    def __init__(self, batch):
        self.batch = batch

    def sample(self, n, seq_len=None, prioritized=False):
        from dataclasses import replace

        L = seq_len or self.batch.action.shape[1]
        b = self.batch
        return replace(
            b, obs=b.obs[:, : L + 1], action=b.action[:, :L], reward=b.reward[:, :L],
            terminal=b.terminal[:, :L], valid=b.valid[:, :L],
        )  # fmt: skip

    def update_priorities(self, index, priority):
        pass

    def reset_max_priority(self):
        pass

    def reward_abs_mean(self):
        return 1.0


def _window(terminal_at: int | None, obs_dim: int, act_dim: int, after: float = 0.0):
    """Two identical windows of 5 steps, rewards 1..5, a termination at `terminal_at` (later steps padded),
    the observations after step 0 shifted by `after`."""
    from iqrl.core.replay import SequenceBatch

    L, B = 5, 2
    terminal, valid = torch.zeros(B, L), torch.ones(B, L)
    if terminal_at is not None:
        terminal[:, terminal_at], valid[:, terminal_at + 1 :] = 1.0, 0.0
    obs = torch.linspace(-1, 1, B * (L + 1) * obs_dim).view(B, L + 1, obs_dim)
    obs[:, 1:] += after
    reward = torch.arange(1.0, L + 1).repeat(B, 1)
    action = torch.zeros(B, L, act_dim)
    return SequenceBatch(obs, action, reward, terminal, valid, torch.zeros(B, dtype=torch.long))


@pytest.mark.parametrize("agent", ["td7", "mrq"])
def test_td7_and_mrq_targets_stop_at_a_termination_and_bootstrap_through_a_truncation(agent):
    """The two agents that form their own targets: after a termination (at step 0, within TD7's one step
    and MR.Q's three) the target does not depend on the observations that follow; without one (a window of a
    truncated episode looks the same as one mid-episode) it does."""
    from iqrl.core.registry import make_agent

    # one encoder step before the RL step; a batch of the two windows
    tiny = ["agent.mlp_dims=[32,32]", "agent.batch_size=2", "agent.target_update_every=1"]
    cfg = build_config([f"agent={agent}", *layered(TINY_AGENT[agent], tiny)])

    def target(terminal_at, after):
        a = make_agent(cfg.agent, 6, 3, torch.device("cpu"), 0)
        if agent == "td7":  # its value clip starts at [0, 0] (the range of the targets seen): open it
            a.clip_lo, a.clip_hi = torch.tensor(-1e6), torch.tensor(1e6)
        seen = []
        original = a.td_target

        def capture(*args, **kwargs):
            seen.append(original(*args, **kwargs))
            return seen[-1]

        a.td_target = capture
        a.update(_FixedReplay(_window(terminal_at, 6, 3, after)), 0)
        return seen[-1]

    assert torch.equal(target(0, 0.0), target(0, 5.0))
    assert not torch.allclose(target(None, 0.0), target(None, 5.0))


@needs("metaworld")
def test_metaworld_steps_twice_per_agent_step_and_sums_the_rewards():
    """Beside a raw env of the same seed (reset, then DC-MPC's zero action): each agent step is two env steps
    of the same action, their rewards summed, the second's observation returned."""
    from iqrl.envs.suites import _make

    env, raw = make("metaworld:reach", 5), _make("metaworld", "reach", 5)
    assert np.array_equal(env.reset(), np.asarray(raw.reset()[0], np.float32))
    raw.step(np.zeros(4))
    for a in np.random.default_rng(0).uniform(-1, 1, (10, 4)):
        step = env.step(a)
        (_, r1, *_), (obs, r2, *_) = raw.step(a), raw.step(a)
        assert step.reward == float(r1) + float(r2) and np.array_equal(step.obs, np.asarray(obs, np.float32))


MRQ_RESULTS = (
    "--------------------\nEnv: Gym-Hopper-v4\nTimestep\tSeed 0\t\tSeed 1\t\t\n"
    "0\t\t10.0\t\t20.0\t\t\n100\t\t300.0\t\t500.0\t\t\n"
    "--------------------\nEnv: Gym-Walker2d-v4\nTimestep\tSeed 0\t\tSeed 1\t\t\n0\t\t1.5\t\t2.5\t\t\n"
)


def test_mrqs_released_gym_curves_load_and_overlay_the_gym_panels(tmp_path, capsys):
    """MR.Q's results/gym_results.txt layout (facebookresearch/MRQ at 8a44a7d) read as published curves in
    our task names; `--reference-gym` draws them on the Gym panels; a file of another layout is one error."""
    from analysis.figures import make as figures
    from analysis.reference.released import read_mrq_results
    from analysis.reference.table import select_reference

    from analysis_helpers import write_run

    (path := tmp_path / "gym_results.txt").write_text(MRQ_RESULTS)
    ref = read_mrq_results(path)
    assert set(ref["task"]) == {"gym:Hopper-v4", "gym:Walker2d-v4"} and set(ref["algorithm"]) == {"MR.Q"}
    hopper = ref[ref["task"] == "gym:Hopper-v4"]
    assert hopper[["env_step", "seed", "episode_return"]].values.tolist() == [
        [0, 0, 10.0], [0, 1, 20.0], [100, 0, 300.0], [100, 1, 500.0],
    ]  # fmt: skip
    mean = select_reference(ref, ["gym:Hopper-v4"]).set_index("env_step")["mean"].to_dict()
    assert mean == {0: 15.0, 100: 400.0}

    write_run(tmp_path / "r" / "td3" / "gym:Hopper-v4" / "seed0", [(0, 18.791), (100, 3226.0)])
    out = figures.make_figures(
        tmp_path / "r", tmp_path / "f", steps=[100], reps_curve=20, reps_final=20, reference_gym=path
    )
    assert "per_task_curves_gym" in {p.stem for p in out["figures"]}
    assert not [n for n in out["notes"] if "reference" in n]  # the overlay found its curves

    (bad := tmp_path / "other.txt").write_text("step,return\n0,1\n")
    argv = ["--results", str(tmp_path / "r"), "--out", str(tmp_path / "g"), "--reference-gym", str(bad)]
    assert figures.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not an MR.Q results file" in err and not (tmp_path / "g").exists()


def test_an_ablation_on_meta_world_compares_success_rates_not_returns(tmp_path, monkeypatch):
    """A grid of Meta-World runs: its points are IQM success rates (the arm with the lower return has the
    higher success rate here, so returns would rank the arms the other way round)."""
    import pandas as pd

    from analysis.figures import ablation_plot
    from analysis.figures import make as figures

    from analysis_helpers import write_run

    for rew, ret, rate in ((False, 900.0, 0.2), (True, 100.0, 0.8)):
        for seed in range(2):
            cfg = {
                "agent": {"name": "iqrl", "use_rew_loss": rew},
                "task": "metaworld:reach",
                "seed": seed,
                "steps": 100,
                "sweep": "mw",
                "variant": "use_rew_loss=true" if rew else "default",
                "overrides": ["agent.use_rew_loss=true"] if rew else [],
            }
            run = write_run(
                tmp_path / "r" / "iqrl" / cfg["variant"] / f"seed{seed}", [(0, 0.0), (100, ret)], config=cfg
            )
            pd.read_csv(run / "eval.csv").assign(success=[0.0, rate]).to_csv(run / "eval.csv", index=False)
    drawn = []
    real = ablation_plot.plot_ablation
    monkeypatch.setattr(
        ablation_plot,
        "plot_ablation",
        lambda points, *a, **k: drawn.append((points, k)) or real(points, *a, **k),
    )
    out = figures.make_figures(tmp_path / "r", tmp_path / "f", steps=[100], reps_curve=20, reps_final=20)
    assert "ablation_mw_iqrl_use_rew_loss" in {p.stem for p in out["figures"]}
    points, kwargs = drawn[0]
    assert points.set_index("value")["iqm"].to_dict() == pytest.approx({"false": 0.2, "true": 0.8})
    assert kwargs["measure"] == "success rate"
