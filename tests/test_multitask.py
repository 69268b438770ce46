"""Multi-task runs (a task list; docs/transfer.md): per-task replays and batches, the task-conditioned
learners, evaluation of every task, exact resume, and the refusals."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.replay import SequenceReplay
from iqrl.core.replay_multitask import MultiTaskReplay, task_shares
from iqrl.core.update import Updater
from iqrl.learners.multitask import PerTaskLearners, TaskEmbedding, with_task
from iqrl.learners.td3 import TD3Learner, TD3LearnerConfig
from iqrl.multiseed.refusals import unsupported
from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from iqrl.runfolder.layout import TIME_COLUMNS
from iqrl.train import main

from conftest import open_episode, stop_after_steps, tiny_argv

TASKS = "task=[cartpole-balance,cartpole-swingup]"


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def numbers(rows: list[dict]) -> list[dict]:
    """Rows without the clock's columns (wall time, throughput): what an interruption must not change."""
    return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]


def filled_replay(task: int, episodes: int, seed: int) -> SequenceReplay:
    """A replay of 5-wide observations that all equal the task index: where a window came from shows."""
    replay = SequenceReplay(5, 1, seq_len=3, seed=seed)
    for _ in range(episodes):
        replay.start_episode(np.full(5, task, np.float32))
        for t in range(10):
            replay.add(np.zeros(1), 0.0, np.full(5, task, np.float32), False, t == 9)
    return replay


def test_a_batch_holds_equal_shares_of_every_tasks_replay_in_task_order():
    # replays of very different sizes: the shares stay equal (not proportional to the data)
    replay = MultiTaskReplay([filled_replay(i, episodes, seed=i) for i, episodes in enumerate((1, 7, 3))])
    batch = replay.sample(16)
    assert task_shares(16, 3) == [6, 5, 5]
    assert batch.task.tolist() == [0] * 6 + [1] * 5 + [2] * 5
    assert torch.equal(batch.obs[:, :, 0], batch.task[:, None].float().expand(16, 4))  # each from its replay
    assert batch.action.shape == (16, 3, 1) and batch.index.shape == (16,)
    replay.task = 2
    replay.start_episode(np.full(5, 2, np.float32))
    assert replay.replays[2].n_obs == 34 and replay.size == 110


def test_the_task_embedding_is_concatenated_to_actor_and_critic_inputs_with_norm_at_most_1():
    torch.manual_seed(0)
    emb = TaskEmbedding(in_dim=4, num_tasks=3, task_dim=6)
    with torch.no_grad():
        emb.weight[1] = 10.0  # norm > 1: rescaled to norm 1 when read
    z = torch.randn(5, 4)
    task = torch.tensor([0, 1, 2, 1, 0])
    y = emb(with_task(z, task))
    e = emb.weight[task].detach()
    assert y.shape == (5, 10) and torch.equal(y[:, :4], z)
    assert torch.allclose(y[:, 4:], e / e.norm(dim=-1, keepdim=True).clamp(min=1.0))
    assert torch.allclose(y[1, 4:].norm(), torch.tensor(1.0)) and y[0, 4:].norm() < 1
    # the learner reads [z, e_task]: its critic and actor take D + task_dim inputs
    learner = TD3Learner(TD3LearnerConfig(mlp_dims=[8], num_critics=2), 4, 2, torch.Generator(), emb)
    assert learner.critic_input(with_task(z, task)).shape == (5, 10)
    assert learner.actor[0].in_features == 10
    # the critic's loss trains the embedding; the actor's does not (TD-MPC2's optimizers)
    assert any(p is emb.weight for p in learner.critic_opt.param_groups[0]["params"])
    assert all(p is not emb.weight for p in learner.actor_opt.param_groups[0]["params"])
    x_pi, x_q = emb.actor_inputs(with_task(z, task))
    assert not x_pi.requires_grad and not x_q.requires_grad
    # the same latent under two tasks: two actions
    a = learner.act(with_task(z[:1].expand(3, 4), torch.arange(3)))
    assert not torch.allclose(a[0], a[1])


def test_separate_heads_step_each_tasks_learner_on_its_block_and_act_with_the_rows_task():
    cfg = TD3LearnerConfig(mlp_dims=[8], num_critics=2, actor_update_freq=1)

    def learners(seed: int) -> list[TD3Learner]:
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        return [TD3Learner(cfg, 4, 2, g) for _ in range(2)]

    heads, alone = PerTaskLearners(learners(0)), learners(0)
    z = torch.randn(3, 4)
    acts = heads.act(with_task(z, torch.tensor([1, 0, 1])), **heads.act_draws((3,), explore=False))
    assert torch.allclose(acts, torch.stack([alone[t].act(z[i]) for i, t in enumerate((1, 0, 1))]))
    # the Q-bias's probe: each row's own task's critics
    q = heads.probe_q(with_task(z, torch.tensor([1, 0, 1])), acts)
    expected = [alone[t].q(z[i : i + 1], acts[i : i + 1])[:, 0] for i, t in enumerate((1, 0, 1))]
    assert q.shape == (2, 3) and torch.allclose(q, torch.stack(expected, 1))
    # a batch of task 0's block, then task 1's (MultiTaskReplay's layout): each learner steps on its block
    z, a, ret = torch.randn(6, 4), torch.rand(6, 2), torch.randn(6)
    task = torch.tensor([0, 0, 0, 1, 1, 1])
    heads.update(Updater(), with_task(z, task), a, ret, torch.full((6,), 0.9), with_task(z.flip(0), task))
    for i, rows in enumerate((slice(0, 3), slice(3, 6))):
        alone[i].update(Updater(), z[rows], a[rows], ret[rows], torch.full((3,), 0.9), z.flip(0)[rows])
    for learner, reference in zip(heads.learners, alone):
        # (up to rounding: the blocks are views of the batch with its task column)
        assert all(
            torch.allclose(p, q, atol=1e-6) for p, q in zip(learner.parameters(), reference.parameters())
        )
        assert not all(torch.equal(p, q) for p, q in zip(learner.parameters(), learners(0)[0].parameters()))
    heads.episodes_trained = 7
    assert [h.episodes_trained for h in heads.learners] == [7, 7]
    assert len(heads.extra.state_dict()["tasks"]) == 2


@pytest.mark.parametrize("heads", ["embedding", "separate"])
def test_a_multi_task_run_evaluates_every_task_and_resumes_bit_identically(tmp_path, heads):
    """Stopped mid-way through the 4th episode (task 1's) and resumed: the same eval.csv and train.csv as a
    run never stopped; every evaluation has a row per task; every update drew from both replays."""
    extra = [TASKS, "agent.task_dim=4", f"agent.task_heads={heads}"]
    whole, parted = tmp_path / "whole", tmp_path / "parted"
    assert main(tiny_argv("iqrl", whole, steps=1000, extra=extra)) == EXIT_OK
    stop = stop_after_steps(337)  # env step 674: in the 4th episode of 200
    assert main(tiny_argv("iqrl", parted, steps=1000, extra=extra), should_stop=stop) == EXIT_INTERRUPTED
    assert open_episode(parted)["task"] == 1
    assert main(tiny_argv("iqrl", parted, steps=1000, extra=extra)) == EXIT_OK
    rows = read_csv(whole / "eval.csv")
    assert all(r["q_bias_steps"] != "" for r in rows)  # each task's Q-bias
    assert [(r["env_step"], r["task"]) for r in rows] == [
        (str(step), task) for step in (0, 400, 800, 1000) for task in ("cartpole-balance", "cartpole-swingup")
    ]
    assert numbers(rows) == numbers(read_csv(parted / "eval.csv"))
    assert numbers(read_csv(whole / "train.csv")) == numbers(read_csv(parted / "train.csv"))


def test_a_multi_task_run_collects_tasks_in_turn_into_their_replays(tmp_path):
    from iqrl.loop.trainer import Trainer

    cfg = build_config(tiny_argv("iqrl", tmp_path / "run", steps=1000, extra=[TASKS, "agent.task_dim=4"]))
    trainer = Trainer(cfg)
    drawn = []
    sample = trainer.replay.sample
    trainer.replay.sample = lambda n, *a: (drawn.append(b := sample(n, *a)), b)[1]
    for _ in range(3):
        trainer.collect_episode()
    assert [r.size for r in trainer.replay.replays] == [200, 100]  # episodes of 100 agent steps: 0, 1, 0
    trainer.learn(2)
    assert [b.task.tolist() for b in drawn] == [[0] * 8 + [1] * 8] * 2
    assert trainer.agent.learner.encoder.weight.shape == (2, 4)
    # every task evaluated, each its own series for TensorBoard / W&B
    logged = []
    trainer.trackers.log = lambda kind, row: logged.append((kind, row["task"], row["env_step"]))
    trainer.evaluate()
    assert logged == [
        ("eval/cartpole-balance", "cartpole-balance", 600),
        ("eval/cartpole-swingup", "cartpole-swingup", 600),
    ]


@pytest.mark.parametrize(
    "agent, extra, message",
    [
        ("td3", [], "agent td3 trains one task per run; a task list works with iqrl"),
        (
            "iqrl",
            ["task=[cartpole-balance,walker-walk]"],
            "cartpole-balance has observation width 5 and continuous actions (a box of 1 dims)",
        ),
        ("iqrl", ["task=[cartpole-balance,cartpole-balance]"], "task lists each task once"),
        ("iqrl", ["video_every=400"], "records no videos"),
        ("iqrl", ["task=[cartpole-balance,nope]"], "unknown task 'nope'"),
        ("iqrl", ["agent.task_heads=shared"], "agent.task_heads must be one of embedding, separate"),
    ],
)
def test_what_multi_task_runs_cannot_do_is_refused_in_one_line_before_anything_is_written(
    tmp_path, capsys, agent, extra, message
):
    out = tmp_path / "run"
    assert main(tiny_argv(agent, out, extra=[TASKS, *extra])) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")
    assert not out.exists()


def test_the_k_seed_mode_refuses_a_task_list_and_a_one_task_list_is_a_single_task_run(tmp_path):
    cfg = build_config(tiny_argv("iqrl", tmp_path / "run", extra=[TASKS]))
    assert "the K-seed mode trains one task per run" in unsupported(cfg)
    single = build_config(tiny_argv("iqrl", tmp_path / "run", extra=["task=[cartpole-balance]"]))
    assert single.task == "cartpole-balance" and unsupported(single) is None
    argv = [a for a in tiny_argv("iqrl", "", extra=[TASKS]) if not a.startswith("out=")]
    assert build_config(argv).out == "runs/iqrl/cartpole-balance+cartpole-swingup/seed1"
    with pytest.raises(ConfigError, match="task must be a task name or a list of task names"):
        build_config(["task=[]"])


def test_analysis_reads_a_multi_task_run_as_one_curve_per_task_beside_older_single_task_folders(tmp_path):
    from analysis.runs.load import load_results
    from analysis.stats import metrics

    from analysis_helpers import write_run

    results = tmp_path / "results"
    write_run(  # a folder of an older version: no task column
        results / "iqrl" / "cartpole-balance" / "seed1",
        [(0, 10.0), (400, 30.0)],
        config={"agent": {"name": "iqrl"}, "task": "cartpole-balance", "seed": 1, "steps": 400},
    )
    multi = write_run(
        results / "iqrl" / "cartpole-balance+cartpole-swingup" / "seed1",
        [(0, 1.0), (0, 2.0), (400, 50.0), (400, 5.0)],
        config={"agent": {"name": "iqrl"}, "task": ["cartpole-balance", "cartpole-swingup"], "seed": 1},
        train={"env_step": [400], "q_mean": [3.0]},
    )
    ev = (multi / "eval.csv").read_text().splitlines()
    tasks = ["cartpole-balance", "cartpole-swingup"] * 2
    (multi / "eval.csv").write_text(
        "\n".join([ev[0] + ",task"] + [f"{r},{t}" for r, t in zip(ev[1:], tasks)])
    )
    table, info = load_results(results)
    assert info.n_runs == 3
    runs = table.drop_duplicates("run").set_index("run")
    folder = "iqrl/cartpole-balance+cartpole-swingup/seed1"
    assert runs.loc[f"{folder}#cartpole-swingup", ["method", "task", "group"]].tolist() == [
        "iqrl multi-task",
        "cartpole-swingup",
        "easy",
    ]
    assert runs.loc["iqrl/cartpole-balance/seed1", "method"] == "iqrl"
    curves = metrics.per_task_curves(table, "episode_return", reps=10)
    last = curves[curves["env_step"] == 400].set_index(["method", "task"])["mean"]
    assert last.to_dict() == {
        ("iqrl", "cartpole-balance"): 30.0,
        ("iqrl multi-task", "cartpole-balance"): 50.0,
        ("iqrl multi-task", "cartpole-swingup"): 5.0,
    }
    assert table.loc[table["run"] == f"{folder}#cartpole-swingup", "q_mean"].dropna().tolist() == [3.0]


def test_a_sweeps_list_entry_is_one_multi_task_run_with_the_default_budget():
    from slurm.spec import parse_sweep

    data = {
        "agents": ["iqrl"],
        "tasks": [["walker-stand", "walker-walk"], "walker-walk"],
        "seeds": 1,
        "steps": {"easy": 100, "default": 200},
    }
    multi, single = parse_sweep(data, "t.yaml", "t", {"easy": ["walker-stand", "walker-walk"]}).runs()
    assert (multi.key, multi.steps) == ("iqrl/walker-stand+walker-walk/default/seed0", 200)
    assert (
        multi.argv("/r")[1] == "task=[walker-stand,walker-walk]"
        and single.argv("/r")[1] == "task=walker-walk"
    )
    assert build_config(multi.argv("/r")).task == ["walker-stand", "walker-walk"]
