"""Bad input: one clear line, a non-zero exit, before any work, and existing run folders untouched."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from iqrl.config.build import build_config, layered
from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from iqrl.train import main

from conftest import TINY_AGENT, agent_run, stop_after_steps, tiny_argv

BAD = [
    (["agent=nope"], "unknown agent 'nope'; valid agents: "),
    (["agent=td4"], "unknown agent 'td4' (did you mean td7, td3?); valid agents: bro, "),
    (["task=walker-wlak"], "unknown task 'walker-wlak' (did you mean walker-walk"),
    (["agent.horizn=3"], "unknown config key 'agent.horizn' (did you mean agent.horizon?)"),
    (["sede=3"], "unknown config key 'sede' (did you mean seed?)"),
    (["agent.fsq_levels=[8,1]"], "agent.fsq_levels must be a non-empty list of ints >= 2"),
    (["agent.fsq_levels=[]"], "agent.fsq_levels must be a non-empty list of ints >= 2"),
    (
        ["agent=iqrl", "agent.fsq_levels=[2,2]"],
        "has a level of 2, which the standard FSQ bound maps to one code",
    ),
    (["agent=dcwm", "agent.fsq_levels=[5,2]"], "use agent.fsq_symmetric=true"),
    (["agent.horizon=0"], "agent.horizon must be >= 1"),
    (["steps=many"], "invalid value for steps"),
    # a value YAML cannot read names its key (it was the YAML parser's 30-line traceback)
    (
        ["agent.mlp_dims=[32,32"],
        "agent.mlp_dims: '[32,32' is not valid YAML (did not find expected ',' or ']')",
    ),
    (["agent.mlp_dims={32"], "agent.mlp_dims: '{32' is not valid YAML (did not find expected ',' or '}')"),
    (["task='walker-walk"], 'for task: "\'walker-walk" is not valid YAML (found unexpected end of stream)'),
    (["agent.nstep=0"], "agent.nstep must be >= 1"),
    (["agent=td3", "agent.horizon=3"], "unknown config key 'agent.horizon'"),
    (["episode_length=999"], "episode_length must be in 1..1000 and a multiple of action_repeat"),
    (["device=tpu"], "device must be cpu, cuda, cuda:N or auto"),
    (["seed"], "bad argument 'seed': expected key=value"),
    (["replay_capacity=10"], "replay_capacity must be 0 (unbounded) or >= 1000 transitions"),
    (["action_repeat=0"], "action_repeat must be >= 1, got 0"),  # was a ZeroDivisionError traceback
    (["seed=-1"], "seed must be in 0..4294957295"),  # numpy / dm_control seeds lie in [0, 2**32)
    (["seed=4294967295"], "seed must be in 0..4294957295"),  # the eval env's seed + 10000 would not
    (["agent.lr=-1"], "agent.lr must be > 0, got -1"),
    (["agent.enc_lr=0"], "agent.enc_lr must be > 0, got 0"),
    (["agent.enc_mlp_dims=[0]"], "agent.enc_mlp_dims must be a non-empty list of positive widths"),
    (["agent.mlp_dims=[64,0]"], "agent.mlp_dims must be a non-empty list of positive widths"),
    (["agent.policy_noise=-1"], "agent.policy_noise must be >= 0, got -1"),
    (["agent.expl_sigma_end=-0.1"], "agent.expl_sigma_start and expl_sigma_end must be >= 0"),
    (["action_noise=inf"], "action_noise must be a finite number, got inf"),
    (["agent.lr=1e400"], "agent.lr must be a finite number, got inf"),
    (["seed=1", "seed=2"], "seed is given twice (seed=1 and seed=2); give each key once"),
    (["agent=td3", "agent=sac"], "agent is given twice (agent=td3 and agent=sac)"),
    (["init_parts=[actor]"], "init_parts=['actor'] names what init_from loads: set init_from too"),
    (["task=gym:"], "task 'gym:' names no gym task: write gym:Hopper-v4"),
    # sizes beyond the machine: refused from the estimate before anything is allocated
    (["agent.mlp_dims=[100000000,10]"], "GiB free on cpu; lower agent.batch_size (256) or the network sizes"),
    (["agent.batch_size=1000000000000"], "lower agent.batch_size (1000000000000)"),
    (["steps=100000000000"], "the replay keeps every transition: lower steps"),
    (
        ["updates_per_step=1e7"],
        "gradient updates, more than the 1,000,000,000 a run may take: lower updates_per_step",
    ),
]


@pytest.mark.parametrize("argv, message", BAD)
def test_bad_input_is_one_clear_line(argv, message, tmp_path, capsys):
    out = tmp_path / "never"
    assert main([f"out={out}", *argv]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err
    assert not out.exists()


MACHINE = [
    (["precision=tf32"], "precision=tf32 needs a CUDA device (got device=cpu)"),
    (["compile=true", "cudagraphs=true"], "cudagraphs=true needs a CUDA device"),
    (["agent.mlp_dims=[100000000,10]"], "this run needs about"),
]
if not torch.cuda.is_available():
    MACHINE.append((["device=cuda"], "device 'cuda' requested but CUDA is not available"))


@pytest.mark.parametrize("argv, message", MACHINE)
def test_check_refuses_what_the_run_refuses_on_this_machine(argv, message, tmp_path, capsys):
    """--check makes the run's checks of its values against the machine (iqrl.loop.preflight.check_machine):
    the same one line and exit 2 as the run, and neither writes anything."""
    out = tmp_path / "never"
    lines = []
    for check in (["--check"], []):
        assert main([f"out={out}", "agent=td3", *argv, *check]) == EXIT_BAD_INPUT
        lines.append(capsys.readouterr().err.strip())
        assert not out.exists()
    assert lines[0] == lines[1] and len(lines[0].splitlines()) == 1 and message in lines[0]


def test_bad_input_leaves_existing_run_untouched(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_argv("td3", out, steps=400)) == EXIT_OK
    snapshot = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    for argv, _ in BAD:
        assert main(tiny_argv("td3", out, steps=400) + argv) == EXIT_BAD_INPUT
    # a valid config that differs from the one in the folder is refused too
    assert main(tiny_argv("td3", out, steps=400, seed=2)) == EXIT_BAD_INPUT
    assert "holds a run with a different config (differs in seed)" in capsys.readouterr().err
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()} == snapshot


def test_other_checkpoint_cadence_or_device_is_the_same_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_argv("td3", out, steps=400)) == EXIT_OK
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # how often a run is checkpointed, and where it runs, do not change its results: the done run is found
    assert main(tiny_argv("td3", out, steps=400, extra=["checkpoint_every=8", "device=cpu"])) == EXIT_OK
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot
    assert "different config" not in capsys.readouterr().err


def test_real_process_exit_code_and_check_mode(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "iqrl.train", "agent=bogus", f"out={tmp_path}/x"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == EXIT_BAD_INPUT and r.stderr.strip().startswith("error: unknown agent 'bogus'")
    r = subprocess.run(
        [sys.executable, "-m", "iqrl.train", "--check", "agent=iqrl", "task=dog-run"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "ok: iqrl on dog-run" in r.stdout


def test_task_overrides_and_presets():
    dog = build_config(["agent=iqrl", "task=dog-run"]).agent
    assert (dog.latent_dim, dog.latent_width, dog.nstep, dog.expl_sigma_episodes) == (1024, 2048, 3, 500)
    walker = build_config(["agent=iqrl", "task=walker-walk"]).agent
    assert (walker.latent_width, walker.nstep, walker.expl_sigma_episodes, walker.tc_loss_sign) == (
        1024,
        1,
        50,
        -1,
    )
    acro = build_config(["agent=iqrl", "task=acrobot-swingup"]).agent
    assert (acro.enc_tau, acro.nstep, acro.expl_sigma_episodes) == (0.0005, 3, 150)
    for agent in ("iqrl", "td3"):  # a task in no group: the official code's default decay, 50 episodes
        assert build_config([f"agent={agent}", "task=point_mass-easy"]).agent.expl_sigma_episodes == 50
    off = build_config(["agent=iqrl-official", "task=walker-walk"]).agent
    assert off.tc_loss_sign == 1 and off.official_nstep1_gamma_bug and not off.cumulative_mask
    # command line beats task overrides, lists are replaced
    cli = build_config(["agent=iqrl", "task=dog-run", "agent.nstep=1", "agent.fsq_levels=[8,5,5,5]"]).agent
    assert cli.nstep == 1 and cli.fsq_levels == [8, 5, 5, 5] and cli.latent_width == 4096
    td3 = build_config(["agent=td3", "task=cheetah-run"]).agent
    assert (td3.nstep, td3.num_critics, td3.actor_q_reduce, td3.init) == (3, 2, "min", "orthogonal")


def test_replay_capacity_default_per_agent_and_override():
    from iqrl.loop.trainer import Trainer
    from iqrl.runfolder.provenance import run_meta

    def capacity(*argv):
        t = Trainer(build_config(["task=cartpole-balance", "out=/nonexistent/x", *argv]))
        # config.yaml's meta records the effective capacity (0 = unbounded) when replay_capacity is null
        assert run_meta(t.cfg, t.parts, t.credit.rate)["replay_capacity"] == (t.replay.capacity or 0)
        return t.replay.capacity

    assert capacity("agent=td7") == capacity("agent=mrq") == 1_000_000  # their code's 1e6 FIFO
    assert capacity("agent=iqrl") is None  # never overwritten (the iQRL code's 10M buffer never fills)
    assert capacity("agent=mrq", "replay_capacity=0") is None
    assert capacity("agent=iqrl", "replay_capacity=5000") == 5000


@pytest.mark.parametrize("agent", ["iqrl", "iqrl-official", "td3", "sac", "td7", "mrq", "tcrl", "dcwm"])
def test_official_shared_eval_seed_switch_seeds_the_eval_env(agent):
    """Quirk 10 of the official iQRL code: with agent.official_shared_eval_seed the eval env gets the train
    seed; without it, seed + 10000. Every agent has the key (AgentConfig); the trainer reads AgentSpec."""
    from iqrl.envs.dmc import DMCEnv
    from iqrl.loop.trainer import Trainer
    from iqrl.runfolder.provenance import run_meta

    def trainer(*argv):
        return Trainer(
            build_config([f"agent={agent}", "task=cartpole-balance", "seed=5", "out=/nonexistent/x", *argv])
        )

    first_obs = {s: DMCEnv("cartpole-balance", s).reset() for s in (5, 10005)}
    for shared, expected in ((True, 5), (False, 10005)):
        t = trainer(f"agent.official_shared_eval_seed={str(shared).lower()}")
        meta = run_meta(t.cfg, t.parts, t.credit.rate)
        assert t.agent.spec.shared_eval_seed is shared and t.parts.eval_seed == meta["eval_seed"] == expected
        assert (t.eval_env.reset() == first_obs[expected]).all()
    assert (first_obs[5] != first_obs[10005]).any()
    default = trainer()
    assert default.parts.eval_seed == (5 if agent == "iqrl-official" else 10005)


@pytest.mark.registry
def test_official_shared_eval_seed_is_on_only_in_iqrl_official(agent):
    on = build_config([f"agent={agent}", *agent_run(agent)]).agent.official_shared_eval_seed
    assert on == (agent == "iqrl-official")


def test_the_shared_eval_seed_keeps_the_seed_range_where_it_is_used():
    # the seed range follows the eval env's seed: seed + 10000 must stay below 2**32 only when it is used
    assert build_config(["agent=iqrl-official", "seed=4294967295"]).seed == 4294967295
    with pytest.raises(Exception, match="seed must be in 0..4294957295"):
        build_config(["agent=iqrl", "seed=4294967295"])


def test_resume_on_another_device_type_is_refused(tmp_path, capsys):
    """A checkpoint written on one device type does not resume on another: its generator states have another
    format (5056 bytes on CPU, 16 on CUDA). Simulated without a GPU: the folder's config.yaml says it was
    trained on cuda:0, the resume asks for the CPU. One error line, exit 2, nothing in the folder changes."""
    out = tmp_path / "run"
    argv = tiny_argv("td3", out, seed=3)
    assert main(argv, should_stop=stop_after_steps(200)) == EXIT_INTERRUPTED
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg["meta"]["device"] = "cuda:0"
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "device=cuda" in err[0]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def write_published(path: Path, task: str = "cartpole-balance") -> Path:
    """A published-curves file (analysis.reference.table's layout): iQRL on `task` over 2 seeds at 0, 400, 800
    and 1600 env steps, with SAC beside it and iQRL on another task, neither of which the demo draws."""
    rows = ["source,algorithm,ablation,task,env_step,seed,episode_return"]
    for seed, offset in ((1, 0.0), (2, 20.0)):
        rows += [
            f"src,iQRL,,{task},{step},{seed},{ret + offset}"
            for step, ret in ((0, 10.0), (400, 50.0), (800, 90.0), (1600, 500.0))
        ]
        rows += [f"src,SAC,,{task},400,{seed},700", f"src,iQRL,,walker-walk,400,{seed},800"]
    path.write_text("\n".join(rows) + "\n")
    return path


def tiny_demo(monkeypatch, tmp_path):
    from apps import demo

    tiny = {"episode_length": 200, "steps": 800, "seed_steps": 400, "eval_every": 400, "eval_episodes": 1}
    monkeypatch.setattr(demo, "DEMO", {**demo.DEMO, **tiny, "diag_every": 400, "checkpoint_every": 400})
    sizes = ["agent.mlp_dims=[32,32]", "agent.batch_size=16"]
    monkeypatch.setattr(demo, "AGENT_OVERRIDES", {a: layered(sizes, TINY_AGENT[a]) for a in ("iqrl", "td3")})
    monkeypatch.setattr(demo, "REFERENCE", write_published(tmp_path / "published.csv"))
    return demo


def test_demo_ends_with_a_figure_and_says_what_one_seed_can_show(tmp_path, monkeypatch, capsys):
    """make demo's path at tiny sizes: both runs train, each in its own process (its output passed on),
    OUT/demo.png is drawn from them with the published iQRL curve of the task, and the summary
    names each run's return before and after training, that one seed cannot rank them, the published curve,
    and the figure last; a second call trains nothing and prints the same."""
    demo = tiny_demo(monkeypatch, tmp_path)
    assert demo.run_demo(tmp_path / "out") == EXIT_OK
    first = capsys.readouterr().out
    for agent in ("iqrl", "td3"):  # each run's own closing line, passed on whole
        assert f"[{agent} cartpole-balance seed1] done: {tmp_path / 'out' / agent} (final return" in first
    out = tmp_path / "out"
    assert (out / "demo.png").stat().st_size > 0 and (out / "demo.pdf").exists()
    assert first.rstrip().splitlines()[-1].startswith(f"Figure: {out / 'demo.png'}")
    assert "What it cannot show: which agent is better." in first and "one seed cannot rank them" in first
    assert "One seed at 800 env steps" in first
    assert (
        "Published: published iQRL [src]: mean ± std over 2 seeds (3 evaluations up to 800 env steps)."
        in first
    )
    for agent in ("iqrl", "td3"):
        returns = pd.read_csv(out / agent / "eval.csv")["episode_return"]
        assert f"{agent:<6} {returns.iloc[0]:>10.1f} {returns.iloc[-1]:>9.1f}  {out / agent}" in first
    assert demo.run_demo(out) == EXIT_OK
    again = capsys.readouterr().out
    assert "already done" in again and again.split("Demo results")[1] == first.split("Demo results")[1]


def test_demo_band_is_the_published_curve_of_the_task_within_its_steps(tmp_path, monkeypatch):
    """The band: the published iQRL rows of the demo's task up to its last env step (not SAC's, not another
    task's, not past the budget), drawn as mean +- std over the seeds in iqrl's colour; where the file has
    no iQRL or TD3 curve of the task, or is missing, the legend says so instead."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    demo = tiny_demo(monkeypatch, tmp_path)
    band, note = demo.published_band()
    assert note == ""
    assert band[["label", "env_step", "mean", "std", "n_seeds"]].values.tolist() == [
        ["iQRL [src]", 0, 20.0, 200**0.5, 2],
        ["iQRL [src]", 400, 60.0, 200**0.5, 2],
        ["iQRL [src]", 800, 100.0, 200**0.5, 2],
    ]
    table = pd.DataFrame({"run": ["iqrl"] * 2 + ["td3"] * 2, "env_step": [0, 800] * 2, "episode_return": 5.0})
    fig = demo.demo_figure(table, band, note)
    ax, *panels = fig.axes
    (poly,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    xs, ys = poly.get_paths()[0].vertices.T
    assert (xs.min(), xs.max()) == (0, 800) and round(ys.min(), 6) == round(20 - 200**0.5, 6)
    assert round(ys.max(), 6) == round(100 + 200**0.5, 6)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [
        "iqrl (this demo, seed 1)",
        "published iQRL [src]: mean ± std over 2 seeds (3 evaluations up to 800 env steps)",
        "td3 (this demo, seed 1)",
    ]
    assert (ax.get_xlabel(), ax.get_ylabel()) == (
        "Environment steps (one episode = 1000)",
        "Episode return (evaluation, mean of 1 episodes)",
    )
    for panel in panels:  # the table logs no diagnostics: the panels say so
        assert not panel.get_lines() and [t.get_text() for t in panel.texts] == ["no run logs it"]
    plt.close(fig)
    empty, note = demo.published_band(write_published(tmp_path / "other.csv", task="reacher-easy"))
    assert (
        empty.empty
        and note == "no published iQRL or TD3 curve of cartpole-balance up to 800 env steps in other.csv"
    )
    fig = demo.demo_figure(table, empty, note)
    assert note in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert not [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    plt.close(fig)
    missing, note = demo.published_band(tmp_path / "nowhere" / ("long-name-" * 8 + ".csv"))
    assert (
        missing is None
        and note == f"no published curve drawn: {tmp_path}/nowhere/{'long-name-' * 8}.csv does not exist"
    )
    fig = demo.demo_figure(table, missing, note)
    (shown,) = [t.get_text() for t in fig.axes[0].get_legend().get_texts() if "no published" in t.get_text()]
    # wrapped, so that a long path cannot squeeze the axes
    assert "".join(shown.split()) == "".join(note.split()) and max(map(len, shown.splitlines())) <= 100
    plt.close(fig)


def test_demo_draws_and_states_iqrls_rank_share_and_active_codebook_beside_the_returns():
    """The right-hand panels: iqrl's latent_rank_pct and active_codebook_pct_mean from its training rows
    against env steps on 0..105%, td3 (no latent) absent; the summary says where the rank went and where the
    codebook share ended."""
    import matplotlib.pyplot as plt

    from apps import demo

    rows = [
        {"run": "iqrl", "env_step": 0, "episode_return": 100.0},
        {"run": "iqrl", "env_step": 800, "episode_return": 300.0},
        {"run": "td3", "env_step": 0, "episode_return": 120.0},
        {"run": "td3", "env_step": 800, "episode_return": 250.0},
        {"run": "td3", "env_step": 400, "q_loss": 1.0},
        *(
            {"run": "iqrl", "env_step": step, "latent_rank_pct": rank, "active_codebook_pct_mean": mean}
            | {"active_codebook_pct_min": mean - 10, "active_codebook_pct_max": mean + 5}
            for step, rank, mean in ((800, 87.5, 40.0), (400, 25.0, 20.0))
        ),
    ]
    table = pd.DataFrame(rows)
    fig = demo.demo_figure(table, None, "no published curve")
    _, rank, codes, *_ = fig.axes  # then srank and dormant units (tests/test_demo_figure.py)
    ((line,),) = [rank.get_lines()]
    assert line.get_xdata().tolist() == [400, 800] and line.get_ydata().tolist() == [25.0, 87.5]
    assert [ln.get_ydata().tolist() for ln in codes.get_lines()] == [[20.0, 40.0]]
    assert rank.get_ylim() == (0, 105) and codes.get_ylabel() == "Active codebook\n(% of codes)"
    plt.close(fig)
    text = demo.summary(table, Path("runs/demo"), Path("runs/demo/demo.png"), None, "no published curve")
    assert "iqrl's latent rank went from 25% to 88% of its width" in text
    assert "its FSQ groups used 40% of their codes on that batch at the end (fewest 30%, most 45%)" in text
    assert "td3's latent" not in text and f"{'iqrl':<6} {100:>10.1f} {300:>9.1f}" in text


def demo_summary(iqrl: tuple[float, float], td3: tuple[float, float]) -> str:
    from apps import demo

    table = pd.DataFrame(
        {"run": ["iqrl", "iqrl", "td3", "td3"], "env_step": [0, 12000] * 2, "episode_return": [*iqrl, *td3]}
    )
    return demo.summary(table, Path("runs/demo"), Path("runs/demo/demo.png"), None, "no published curve")


def test_demo_summary_says_which_runs_learned_and_that_one_seed_cannot_rank_them():
    text = demo_summary((100.0, 400.0), (100.0, 150.0))
    assert (
        "What this shows: iqrl learned: its evaluation return ended at least 100 above the untrained "
        "policy's. td3 did not rise 100 above its untrained policy at this budget. What it cannot show: "
        "which agent is better. iqrl ended 250 above td3, within the 335 by which one agent's final return "
        "at this budget varies from seed to seed, so one seed cannot rank them." in text
    )
    assert "Published: no published curve." in text
    assert "td3 ended 20 above iqrl" in demo_summary((300.0, 600.0), (100.0, 620.0))
    assert "iqrl and td3 ended level, within" in demo_summary((300.0, 600.0), (100.0, 600.0))


def test_demo_summary_names_a_gap_beyond_the_seed_spread_as_an_order_to_confirm():
    text = demo_summary((280.0, 975.0), (140.0, 150.0))
    assert "cannot rank" not in text
    assert (
        "What it cannot settle: which agent is better. iqrl ended 825 above td3, more than the 335 by which "
        "one agent's final return at this budget varies from seed to seed: an order that several seeds must "
        "confirm." in text
    )
