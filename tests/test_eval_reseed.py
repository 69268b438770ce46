"""An evaluation depends on the run's seed and its env step alone (run key eval_reseed, the default): its
episodes start from states drawn from (seed, env step) and the agent's draws while it evaluates likewise
(iqrl.loop.parts.RunParts.seed_evaluation), so the return at a step is the same for every `eval_every`, beside
training or in line, in a K-seed group, and for a re-evaluation of the step's checkpoint
(docs/run-folder.md, "Evaluation")."""

from __future__ import annotations

import csv
import importlib.util

import numpy as np
import pytest
import yaml

from iqrl.config.build import build_config
from iqrl.envs.make import make_env
from iqrl.envs.perturb import Perturbations
from iqrl.loop.trainer import Trainer
from iqrl.multiseed.runs import main as multiseed_main
from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from iqrl.train import main

from conftest import stop_after_steps, tiny_argv


def eval_rows(run) -> dict[int, tuple[str, str]]:
    """eval.csv as env step -> (mean return, its std), the numbers as written."""
    with open(run / "eval.csv") as f:
        return {int(r["env_step"]): (r["episode_return"], r["episode_return_std"]) for r in csv.DictReader(f)}


# ---------------------------------------------------------------------- the envs
SUITE_TASKS = {
    "dmc": ("cartpole-balance", None),
    "dmc perturbed": (
        "cartpole-balance",
        Perturbations(obs_noise=0.1, distractor_dims=2, distractor="signal"),
    ),
    "minigrid": ("minigrid:MiniGrid-DoorKey-5x5-v0", None),
    "gym": ("gym:InvertedPendulum-v5", None),
}


@pytest.mark.parametrize("kind", SUITE_TASKS)
def test_a_reseeded_env_starts_its_episodes_as_an_env_built_with_that_seed(kind):
    """After episodes of its own, env.reseed(s): the next resets' observations are those of an env built with
    seed s (the task's initial states, and a perturbation's own draws)."""
    task, perturb = SUITE_TASKS[kind]
    if kind in ("gym", "minigrid") and importlib.util.find_spec("gymnasium") is None:
        pytest.skip("needs gymnasium")
    env, fresh = make_env(task, 3, 1, 20, perturb), make_env(task, 77, 1, 20, perturb)
    first = [env.reset() for _ in range(3)]
    env.reseed(77)
    again = [env.reset() for _ in range(3)]
    expected = [fresh.reset() for _ in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(again, expected))
    assert not np.array_equal(first[0], again[0])  # the seed reached the initial state


def test_a_reseeded_atari_env_starts_a_new_game_of_that_seed():
    """Atari: reseed(s) ends the game under way; the next reset starts one as an env built with s does (its
    emulator's seed, its no-op count)."""
    if importlib.util.find_spec("ale_py") is None:
        pytest.skip("needs ale-py")
    task = "atari:Pong"
    env, fresh = (
        make_env(task, 3, 4, 400, protocol="atari100k"),
        make_env(task, 77, 4, 400, protocol="atari100k"),
    )
    env.reset()
    for _ in range(5):
        env.step(0)
    env.reseed(77)
    obs, expected = env.reset(), fresh.reset()
    assert np.array_equal(obs, expected)
    for _ in range(40):
        a, b = env.step(1), fresh.step(1)
        assert np.array_equal(a.obs, b.obs) and a.reward == b.reward


# ---------------------------------------------------------------------- runs
SHORT = ["episode_length=100", "seed_steps=200", "diag_every=200", "checkpoint_every=400"]


def test_the_evaluations_of_a_k_seed_group_do_not_depend_on_its_cadence(tmp_path):
    """A K-seed group (every seed in one process, acting in rounds): each seed's evaluation at env step 400
    is the same with eval_every 200 and 400, and the seeds' differ (each from its own seed)."""
    rows = {}
    for every in (200, 400):
        root = tmp_path / f"every{every}"
        argv = tiny_argv("td3", root, steps=400, extra=[*SHORT, f"eval_every={every}"])
        argv = [a for a in argv if not a.startswith("seed=")] + ["seeds=1,2", "env_workers=false"]
        assert multiseed_main(argv) == EXIT_OK
        rows[every] = [eval_rows(root / f"seed{s}")[400] for s in (1, 2)]
    assert rows[200] == rows[400]
    assert rows[200][0] != rows[200][1]


def test_a_checkpoint_evaluated_again_gives_the_evaluation_of_its_step(tmp_path):
    """The run's checkpoint at its end, loaded into a new trainer and evaluated (batched and one by one): the
    return eval.csv holds for that step."""
    run = tmp_path / "run"
    assert main(tiny_argv("sac", run, steps=400, extra=[*SHORT, "eval_every=200"])) == EXIT_OK
    written = eval_rows(run)[400]
    t = Trainer(build_config([*tiny_argv("sac", run, steps=400, extra=[*SHORT, "eval_every=200"])]))
    try:
        assert t.try_resume() and t.env_step == 400
        for batched in (True, False):
            t.batched_eval = batched
            row = t.evaluate()[0]
            assert (row["episode_return"], row["episode_return_std"]) == pytest.approx(
                tuple(map(float, written)), rel=1e-6
            )
    finally:
        t.close()


def test_without_eval_reseed_the_stream_runs_on_as_in_older_versions(tmp_path):
    """eval_reseed=false (how older versions evaluated): the evaluation at 400 of a run evaluated every 200
    differs from one evaluated every 400, its episodes starting where the evaluation at 200 left the env."""
    rows = {}
    for every in (200, 400):
        run = tmp_path / f"every{every}"
        extra = [*SHORT, f"eval_every={every}", "eval_reseed=false"]
        assert main(tiny_argv("td3", run, steps=400, extra=extra)) == EXIT_OK
        rows[every] = eval_rows(run)
    assert rows[200][0] == rows[400][0] and rows[200][400] != rows[400][400]


def test_an_older_unfinished_run_resumes_only_with_its_evaluation_streams(tmp_path, capsys):
    """A folder of a version before the key (config.yaml without eval_reseed) keeps its evaluations: the
    default is refused with the value to pass before anything is written, and eval_reseed=false resumes it
    to the run never interrupted."""
    run, reference = tmp_path / "run", tmp_path / "ref"
    argv = tiny_argv("td3", run, extra=[*SHORT, "eval_every=200", "eval_reseed=false"])
    assert main(argv, should_stop=stop_after_steps(337)) == EXIT_INTERRUPTED
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["eval_reseed"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    assert main(tiny_argv("td3", run, extra=[*SHORT, "eval_every=200"])) == EXIT_BAD_INPUT
    assert "resume it with eval_reseed=false" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before
    assert main(argv) == EXIT_OK
    assert main(tiny_argv("td3", reference, extra=[*SHORT, "eval_every=200", "eval_reseed=false"])) == EXIT_OK
    assert eval_rows(run) == eval_rows(reference)
