"""Evaluation videos: `make video` (python -m iqrl.video) on a finished run and `video_every` in training
write non-blank mp4s of whole evaluation episodes, change nothing else, and fail with one error line and
nothing written where no renderer works."""

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from iqrl.envs import render
from iqrl.runfolder.exits import EXIT_OK
from iqrl.train import main

video = pytest.importorskip("iqrl.video")


def frames_of(path):
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return meta, [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]


def file_hashes(folder):
    return {
        p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def eval_returns(out):
    with open(out / "eval.csv") as f:
        return [(int(r["env_step"]), float(r["episode_return"])) for r in csv.DictReader(f)]


def run_video_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "iqrl.video", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, renderer):
    """A finished tiny td3 run (200-env-step episodes, one evaluation episode) without videos."""
    from conftest import tiny_argv

    out = tmp_path_factory.mktemp("video") / "run"
    assert main(tiny_argv("td3", out, steps=800, extra=["eval_episodes=1"])) == EXIT_OK
    return out


def test_make_video_writes_a_whole_nonblank_episode_and_changes_nothing_else(finished_run):
    from iqrl.config.build import from_yaml_dict
    from iqrl.core.registry import make_agent
    from iqrl.envs.dmc import DMCEnv
    from iqrl.envs.tasks import eval_seed
    from iqrl.loop.evaluation import eval_episode, step_seed
    from iqrl.runfolder.layout import CHECKPOINT
    from iqrl.runfolder.yamlfile import read_yaml

    out = finished_run
    before = file_hashes(out)
    r = run_video_cli(out, "--size", 48)
    assert r.returncode == 0, r.stderr
    after = file_hashes(out)
    new = sorted(set(after) - set(before))
    assert {k: after[k] for k in before} == before  # every other file byte-identical
    assert len(new) == 1 and new[0].parent.name == "videos" and new[0].name.startswith("800-ep1-return")
    meta, frames = frames_of(out / new[0])
    assert meta["size"] == (48, 48) and meta["fps"] == pytest.approx(50)  # cartpole: 0.01 s x action repeat 2
    assert len(frames) == 200 // 2 + 1  # the reset and every agent step of a 200-env-step episode
    assert min(f.std() for f in frames) > render.BLANK_STD
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1  # the pole moved

    # the return in the name is the deterministic evaluation episode of the checkpoint, started as the run's
    # evaluation at its step (eval_reseed): the eval seed's env reseeded from (eval seed, step), the one
    # episode of eval.csv's row
    cfg = from_yaml_dict(read_yaml(out / "config.yaml"))
    env = DMCEnv(cfg.task, eval_seed(cfg.seed), cfg.action_repeat, cfg.episode_length)
    env.reseed(step_seed(eval_seed(cfg.seed), 800))
    agent = make_agent(cfg.agent, env.obs_dim, env.act_dim, torch.device("cpu"), cfg.seed)
    agent.load_state_dict(torch.load(out / CHECKPOINT, weights_only=False)["agent"])
    ret = eval_episode(env, agent).ret
    assert new[0].name == render.video_name(800, ret, 1)
    with open(out / "eval.csv") as f:
        assert float(list(csv.DictReader(f))[-1]["episode_return"]) == pytest.approx(ret, rel=1e-9)


def test_video_every_records_the_evaluation_episode_and_leaves_the_results_alone(
    finished_run, tiny, tmp_path, monkeypatch
):
    monkeypatch.setattr(render, "TRAIN_VIDEO_SIZE", 32)
    out = tmp_path / "run"
    assert main(tiny("td3", out, steps=800, extra=["eval_episodes=1", "video_every=800"])) == EXIT_OK
    returns = eval_returns(out)
    assert returns == eval_returns(finished_run)  # same run without videos: rendering changes no result
    # at step 0 and at the first evaluation of each later 800-step block; the return is that eval's episode
    names = sorted(p.name for p in (out / "videos").iterdir())
    assert names == sorted(render.video_name(s, ret) for s, ret in returns if s in (0, 800))
    _, frames = frames_of(out / "videos" / names[0])
    assert len(frames) == 101 and frames[0].shape == (32, 32, 3)


def test_no_renderer_is_one_error_line_and_writes_nothing(finished_run, tiny, tmp_path):
    # PyOpenGL bound to a platform neither EGL nor OSMesa accepts: as on a machine with neither library
    env = {"PYOPENGL_PLATFORM": "none-for-this-test", "MUJOCO_GL": "disable"}
    before = file_hashes(finished_run)
    r = run_video_cli(finished_run, env=env)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: no headless OpenGL renderer (egl: ")
    assert file_hashes(finished_run) == before  # videos/ included: nothing written
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "iqrl.train", *tiny("td3", out, extra=["video_every=400"])],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert r.returncode == 2 and r.stderr.startswith("error: video_every needs a renderer: no headless")
    assert not out.exists()


def test_bad_arguments_and_blank_frames_are_refused(finished_run, tmp_path, capsys):
    for args, msg in [
        ((finished_run, "--size", 47), "size must be an even number"),
        ((finished_run, "--episodes", 0), "episodes must be >= 1"),
        ((tmp_path,), "is not a run folder"),
        ((finished_run, "--ckpt", tmp_path / "nope.pt"), "no checkpoint"),
    ]:
        assert video.main([str(a) for a in args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and msg in err, err
    frame = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(render.BlankFrames, match="frame 1 is blank"):
        render.check_not_blank([frame + np.arange(16, dtype=np.uint8)[:, None, None] * 8, frame + 200])


def test_a_checkpoint_that_fails_its_verification_is_named_and_never_shown(finished_run, tmp_path, capsys):
    """make video reads checkpoints as a resume does (iqrl/runfolder/checkpoints.py): a latest whose bytes are
    not
    the recorded ones is named in a warning and the previous generation is shown (nothing set aside: it only
    reads); a --ckpt file that fails is one error line."""
    import shutil

    from faults import flip

    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    latest = run / "checkpoint" / "ckpt.pt"
    flip(latest)
    before = file_hashes(run)
    path, state = video.checkpoint_to_show(run, None)
    assert path == run / "checkpoint" / "ckpt.prev.pt" and state["counters"]["env_step"] == 400
    assert capsys.readouterr().err == (
        f"warning: {latest} cannot be used (its bytes are not those checksums.json records (size or SHA-256 "
        "differ)); showing ckpt.prev.pt (env_step 400)\n"
    )
    assert video.main([str(run), "--ckpt", str(latest)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {latest} cannot be used (its bytes are not those checksums.json records " + (
        "(size or SHA-256 differ))\n"
    )
    assert file_hashes(run) == before  # nothing set aside, no video written


def test_figures_index_links_each_method_and_task_to_its_runs_and_videos(tmp_path):
    import pandas as pd

    from analysis.figures.index_page import watch_index

    results, out = tmp_path / "results", tmp_path / "figs"
    for run in ("iqrl/walker-walk/seed1", "iqrl/walker-walk/seed2", "td3/walker-walk/seed1"):
        (results / run).mkdir(parents=True)
    videos = results / "iqrl/walker-walk/seed1/videos"
    videos.mkdir()
    for name in ("100000-return512.0.mp4", "0-return3.5.mp4", "20000-ep1-return80.1.mp4"):
        (videos / name).write_bytes(b"")
    table = pd.DataFrame(
        {
            "run": [
                "iqrl/walker-walk/seed2",
                "td3/walker-walk/seed1",
                "iqrl/walker-walk/seed1",
                "iqrl/walker-walk/seed1",
            ],
            "method": ["iqrl", "td3", "iqrl", "iqrl"],
            "task": ["walker-walk"] * 4,
            "seed": [2, 1, 1, 1],
            "env_step": [0, 0, 0, 100],
        }
    )
    page = watch_index(table, results, out).read_text()
    rows = page.split("<tr>")[2:]
    assert [r.split("</td>")[0] for r in rows] == ["<td>iqrl", "<td>td3"]
    hrefs = [h.split('"')[0] for h in rows[0].split('href="')[1:]]
    assert hrefs == [
        "../results/iqrl/walker-walk/seed1",
        *(
            f"../results/iqrl/walker-walk/seed1/videos/{n}"
            for n in ("0-return3.5.mp4", "20000-ep1-return80.1.mp4", "100000-return512.0.mp4")
        ),
        "../results/iqrl/walker-walk/seed2",
    ]
    assert all((out / h).exists() for h in hrefs)
