"""Behaviour behind documented switches that decide a benchmark's numbers (docs/testing.md maps each one).

Every expected value comes from the formula in the docs or a hand computation (numbers written out), not
from the code's own helpers; where a test has to read a network's output, it calls the network module
itself and applies the documented formula on top.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.registry import make_agent
from iqrl.core.replay import SequenceBatch
from iqrl.loop.device import UpdatePrecision
from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from iqrl.train import main, stop_on_signals

from conftest import tiny_argv

OBS, ACT = 6, 3
TINY = {
    "td3": ["agent.mlp_dims=[16,16]"],
    "iqrl": ["agent.mlp_dims=[16,16]", "agent.latent_dim=4", "agent.enc_mlp_dims=[16]"],
    "td7": ["agent.mlp_dims=[16,16]", "agent.zs_dim=8", "agent.enc_mlp_dims=[16,16]"],
    "mrq": [
        "agent.mlp_dims=[16,16]",
        "agent.zs_dim=8",
        "agent.za_dim=4",
        "agent.zsa_dim=8",
        "agent.enc_mlp_dims=[16,16]",
    ],
    "dcwm": [
        "agent.mlp_dims=[16,16]",
        "agent.latent_dim=4",
        "agent.enc_mlp_dims=[16]",
        "agent.num_samples=16",
        "agent.num_pi_trajs=4",
        "agent.num_elites=4",
        "agent.iterations=2",
    ],
}


def build(agent: str, *extra: str, seed: int = 0):
    name = "iqrl" if agent.startswith("iqrl") else agent
    cfg = build_config([f"agent={agent}", "task=cartpole-balance", *TINY[name], *extra]).agent
    return make_agent(cfg, OBS, ACT, torch.device("cpu"), seed)


def zero_last_layer(module: torch.nn.Module) -> None:
    """Make an MLP output exactly 0 (its last Linear's weight and bias set to 0)."""
    last = [m for m in module.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()


# --------------------------------------------------------------------------------------------------
#  Exploration noise (TD3, iQRL): a = clip(pi(x) + N(0, s_e^2), -1, 1), s_e = linspace(start, end, n)[e]
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("agent", ["td3", "iqrl"])
def test_exploration_noise_follows_the_per_episode_linear_schedule(agent):
    start, end, n = 0.3, 0.05, 6
    a = build(
        agent,
        f"agent.expl_sigma_start={start}",
        f"agent.expl_sigma_end={end}",
        f"agent.expl_sigma_episodes={n}",
    )
    zero_last_layer(a.learner.actor)  # pi(x) = tanh(0) = 0: the explored action is the noise itself
    obs = np.tile(np.random.default_rng(0).normal(size=OBS).astype(np.float32), (20000, 1))
    assert np.array_equal(a.act(obs, explore=False), np.zeros((20000, ACT), np.float32))
    # hand values of linspace(0.3, 0.05, 6) = 0.3, 0.25, 0.2, 0.15, 0.1, 0.05, then 0.05 for ever
    expected = {0: 0.3, 1: 0.25, 3: 0.15, 5: 0.05, 9: 0.05}
    episodes = 0
    for e, sigma in expected.items():
        while episodes < e:  # the agent's own clock: one tick per training episode
            a.on_episode_end()
            episodes += 1
        noise = a.act(obs, explore=True)
        # |noise| <= 1 clips at >= 3.3 sigma: the std of the clipped draw is sigma within 0.2%
        assert noise.std() == pytest.approx(sigma, rel=0.03), f"episode {e}"
        assert abs(noise.mean()) < 4 * sigma / np.sqrt(noise.size)
        assert a.exploration_sigma == pytest.approx(sigma)  # what train.csv logs as expl_sigma


def test_td3_and_iqrl_noise_defaults_are_the_iqrl_code_schedule():
    """1.0 -> 0.1 over 50 / 150 / 500 training episodes (easy / medium / hard)."""
    for agent in ("td3", "iqrl", "iqrl-official"):
        for task, n in (("walker-walk", 50), ("cheetah-run", 150), ("dog-run", 500)):
            c = build_config([f"agent={agent}", f"task={task}"]).agent
            assert (c.expl_sigma_start, c.expl_sigma_end, c.expl_sigma_episodes) == (1.0, 0.1, n)


@pytest.mark.parametrize("agent, actor", [("td7", "actor"), ("mrq", "policy")])
def test_td7_and_mrq_explore_with_constant_unclipped_gaussian_noise(agent, actor):
    """a = clip(pi(s) + N(0, expl_noise^2), -1, 1) at every episode (TD7 and MR.Q code: no schedule)."""
    sigma = 0.3
    # td7 evaluates its checkpointed actor (use_checkpoints); off here, so both calls read the same actor
    extra = ["agent.use_checkpoints=false"] if agent == "td7" else []
    a = build(agent, f"agent.expl_noise={sigma}", *extra)
    zero_last_layer(getattr(a, actor))  # pi(s) = tanh(0) = 0: the explored action is the noise
    obs = np.zeros((20000, OBS), np.float32)
    for _ in range(2):
        noise = a.act(obs, explore=True)
        # clipping at |a| = 1 = 3.3 sigma changes the std by < 0.2%
        assert noise.std() == pytest.approx(sigma, rel=0.03) and np.abs(noise).max() <= 1.0
        a.on_episode_end()
    assert np.array_equal(a.act(obs, explore=False), np.zeros((20000, ACT), np.float32))


@pytest.mark.parametrize("agent", ["td3", "iqrl"])
def test_target_policy_smoothing_clips_the_noise_then_the_action(agent):
    """TD3's target action a' = clip(pi'(x') + clip(N(0, policy_noise^2), -noise_clip, noise_clip), -1, 1).
    With pi' = 0, policy_noise 0.2 and noise_clip 0.3, a share P(|N(0, 1)| > 1.5) = 0.1336 of the entries
    sits exactly at +-0.3 (Phi(1.5) = 0.93319); with noise_clip 2 nothing is clipped and the std is 0.2."""
    n = 20000
    for noise_clip, share, std in ((0.3, 0.1336, None), (2.0, 0.0, 0.2)):
        a = build(agent, "agent.policy_noise=0.2", f"agent.noise_clip={noise_clip}")
        learner = a.learner
        zero_last_layer(learner.actor_target)
        seen = []
        critic_q = learner.q

        def q(x, act, members=None, target=False, masks=None, _q=critic_q, seen=seen):
            if target:
                seen.append(act.clone())
            return _q(x, act, members, target, masks)

        learner.q = q
        width = next(m for m in learner.actor.modules() if isinstance(m, torch.nn.Linear)).in_features
        x_next = torch.zeros(n // ACT, width)
        draws = learner.target_draws(len(x_next))
        learner.td_target(torch.zeros(len(x_next)), torch.ones(len(x_next)), x_next, **draws)
        (act,) = seen
        at_bound = (act.abs() - noise_clip).abs() < 1e-6
        assert act.abs().max() <= noise_clip + 1e-6
        assert at_bound.float().mean().item() == pytest.approx(
            share, abs=4 * np.sqrt(0.1336 * 0.8664 / act.numel())
        )
        if std is not None:
            assert act.std().item() == pytest.approx(std, rel=0.03)


# --------------------------------------------------------------------------------------------------
# Reductions over critics: critic_loss_reduce (sum for TD3, mean for iQRL), actor_q_reduce (min / mean)
# --------------------------------------------------------------------------------------------------
def _critic_outputs(learner, x, a):
    """Q [E, B] read from the critic ensemble module itself (not the learner's q helper)."""
    return learner.critic(torch.cat([x, a], -1)).squeeze(-1)


@pytest.mark.parametrize("agent, reduce", [("td3", "sum"), ("iqrl", "mean")])
def test_critic_loss_reduction_over_critics(agent, reduce):
    a = build(agent)
    assert a.cfg.critic_loss_reduce == reduce
    ac, g = a.learner, torch.Generator().manual_seed(1)
    x = torch.randn(8, _in_dim(a), generator=g)
    act = torch.rand(8, ACT, generator=g) * 2 - 1
    y = torch.randn(8, generator=g)
    loss, _ = ac.critic_loss(x, act, y)
    q = _critic_outputs(ac, x, act).detach()
    per_critic = [((q[k] - y) ** 2).mean().item() for k in range(q.shape[0])]
    want = sum(per_critic) if reduce == "sum" else sum(per_critic) / len(per_critic)
    assert q.shape[0] == (2 if agent == "td3" else 5)
    assert loss.item() == pytest.approx(want, rel=1e-5)


def _in_dim(agent) -> int:
    return agent.latent_width if agent.latent_width else OBS


@pytest.mark.parametrize("agent, reduce", [("td3", "min"), ("iqrl", "mean")])
def test_actor_objective_reduction_over_critics(agent, reduce):
    """TD3: -min(Q1, Q2) (both critics); iQRL: the mean over a random pair of its 5 critics."""
    a = build(agent)
    assert a.cfg.actor_q_reduce == reduce
    ac = a.learner
    x = torch.randn(8, _in_dim(a), generator=torch.Generator().manual_seed(2))
    pi = torch.tanh(ac.actor(x))
    q = _critic_outputs(ac, x, pi).detach()
    loss = ac.actor_loss(x, **ac.actor_draws(len(x))).item()
    if agent == "td3":
        assert loss == pytest.approx(-torch.minimum(q[0], q[1]).mean().item(), rel=1e-5)
    else:  # one of the 10 pairs, reduced by the mean (the min of every pair would differ)
        pairs = [(i, j) for i in range(5) for j in range(i + 1, 5)]
        means = [-((q[i] + q[j]) / 2).mean().item() for i, j in pairs]
        mins = [-torch.minimum(q[i], q[j]).mean().item() for i, j in pairs]
        assert min(abs(loss - m) for m in means) < 1e-5
        assert min(abs(loss - m) for m in mins) > 1e-4


# --------------------------------------------------------------------------------------------------
# n-step quirks as the agents pass them to the learner (official_ignore_terminal, official_nstep1_gamma_bug)
# --------------------------------------------------------------------------------------------------
class _OneBatch:
    def __init__(self, batch):
        self.batch = batch

    def sample(self, n, *args, **kwargs):
        return self.batch


def _window(L: int, terminal_at: int | None) -> SequenceBatch:
    """One window (B = 2, identical rows) with rewards 1, 2, 3, ... and a terminal at `terminal_at`."""
    B = 2
    terminal = torch.zeros(B, L)
    valid = torch.ones(B, L)
    if terminal_at is not None:
        terminal[:, terminal_at] = 1.0
        valid[:, terminal_at + 1 :] = 0.0
    return SequenceBatch(
        obs=torch.randn(B, L + 1, OBS),
        action=torch.zeros(B, L, ACT),
        reward=torch.arange(1.0, L + 1).repeat(B, 1),
        terminal=terminal,
        valid=valid,
        index=torch.zeros(B, dtype=torch.long),
    )


def _targets_passed(agent, batch):
    seen = {}

    def capture(u, x, action, ret, discount, x_next):
        seen.update(ret=ret, discount=discount)
        return {}

    agent.learner.update = capture
    agent.update(_OneBatch(batch), 0)
    return seen["ret"][0].item(), seen["discount"][0].item()


@pytest.mark.parametrize("agent", ["td3", "iqrl", "dcwm"])
def test_official_ignore_terminal_as_the_agents_pass_it(agent):
    """n = 3, gamma = 0.9, rewards 1, 2, 3, terminal at step 1 (the window's later steps are invalid: the
    episode ended). Honoured: R = 1 + 0.9 * 2 = 2.8, discount 0. Ignored (the official code): the same
    return, but the target bootstraps from the terminal step's next observation, discount 0.9^2 = 0.81."""
    batch = _window(5, terminal_at=1)
    honour = build(agent, "agent.nstep=3", "agent.gamma=0.9")
    ignore = build(agent, "agent.nstep=3", "agent.gamma=0.9", "agent.official_ignore_terminal=true")
    assert _targets_passed(honour, batch) == pytest.approx((2.8, 0.0))
    assert _targets_passed(ignore, batch) == pytest.approx((2.8, 0.81))


@pytest.mark.parametrize(
    "agent, key",
    [
        ("td3", "official_nstep1_gamma_bug"),
        ("iqrl", "official_nstep1_gamma_bug"),
        ("dcwm", "dcwm_legacy_unit_discount"),
    ],
)
def test_unit_discount_for_n1_as_the_agents_pass_it(agent, key):
    """n = 1: discount gamma = 0.9, or 1 with the quirk of the iQRL / DC-MPC code; R = r_0 = 1 either way."""
    batch = _window(5, terminal_at=None)
    assert _targets_passed(build(agent, "agent.nstep=1", "agent.gamma=0.9"), batch) == pytest.approx(
        (1.0, 0.9)
    )
    quirk = build(agent, "agent.nstep=1", "agent.gamma=0.9", f"agent.{key}=true")
    assert _targets_passed(quirk, batch) == pytest.approx((1.0, 1.0))


def test_iqrl_official_preset_turns_on_exactly_the_eight_documented_quirks():
    base, off = build_config(["agent=iqrl"]).agent, build_config(["agent=iqrl-official"]).agent
    quirks = {
        "tc_loss_sign": (-1, 1),
        "official_nstep1_gamma_bug": (False, True),
        "official_ignore_terminal": (False, True),
        "cumulative_mask": (True, False),
        "reward_head_shifted_latent": (False, True),
        "warmup_with_policy": (False, True),
        "official_nofsq_half_width": (False, True),
        "official_shared_eval_seed": (False, True),
    }
    for k, (v_iqrl, v_off) in quirks.items():
        assert (getattr(base, k), getattr(off, k)) == (v_iqrl, v_off), k
    differ = {k for k in vars(base) if getattr(base, k) != getattr(off, k)}
    assert differ == set(quirks) | {"name"}


# --------------------------------------------------------------------------------------------------
# The trainer: warmup_with_policy, precision, device, error paths
# --------------------------------------------------------------------------------------------------
def _spy_on_agent(monkeypatch, record):
    """Wrap the make_agent of iqrl.loop.parts (where the trainer builds its agent) so each built agent's
    act() and update() report to `record`."""
    import iqrl.loop.parts

    def spying_make_agent(*args, **kwargs):
        agent = make_agent(*args, **kwargs)
        act, update = agent.act, agent.update

        def spy_act(obs, explore):
            record.setdefault("act", []).append(explore)
            return act(obs, explore)

        def spy_update(replay, step):
            record.setdefault("autocast", []).append(
                (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"))
            )
            return update(replay, step)

        agent.act, agent.update = spy_act, spy_update
        record["agent"] = agent
        return agent

    monkeypatch.setattr(iqrl.loop.parts, "make_agent", spying_make_agent)


@pytest.mark.parametrize(
    "agent, policy_acts", [("iqrl", False), ("iqrl-official", True), ("td3", False), ("td3", True)]
)
def test_warmup_with_policy_decides_who_acts_in_the_seed_episodes(tmp_path, monkeypatch, agent, policy_acts):
    """Only seed episodes (steps = seed_steps = 400, 200-step episodes, action repeat 2): 2 x 100 agent
    steps. With warmup_with_policy the exploring policy picks all 200 actions; else the trainer's uniform
    draw does and the agent acts only in evaluation (explore=False)."""
    record = {}
    _spy_on_agent(monkeypatch, record)
    extra = ["eval_episodes=1"] + (
        ["agent.warmup_with_policy=true"] if agent == "td3" and policy_acts else []
    )
    assert main(tiny_argv(agent, tmp_path / "run", steps=400, extra=extra)) == EXIT_OK
    assert record["act"].count(True) == (200 if policy_acts else 0)
    assert record["act"].count(False) == 2 * 100  # evaluations at step 0 and at the end, 1 episode each


@pytest.mark.parametrize("precision, on", [("fp32", False), ("bf16", True)])
def test_precision_sets_autocast_around_the_updates(tmp_path, monkeypatch, precision, on):
    """bf16: every update runs under CPU autocast to bfloat16; fp32: autocast is off. device=auto resolves to
    the CPU on a machine without CUDA (meta.device in config.yaml)."""
    record = {}
    _spy_on_agent(monkeypatch, record)
    argv = tiny_argv("td3", tmp_path / "run", steps=600, extra=[f"precision={precision}", "device=auto"])
    assert main(argv) == EXIT_OK
    assert len(record["autocast"]) == 100  # 1 agent episode after the seed phase: 200 env steps x 0.5
    assert {enabled for enabled, _ in record["autocast"]} == {on}
    if on:
        assert {dtype for _, dtype in record["autocast"]} == {torch.bfloat16}
    import yaml

    meta = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["meta"]
    assert meta["device"] == ("cuda" if torch.cuda.is_available() else "cpu")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


def test_tf32_needs_cuda_and_is_refused_elsewhere_before_writing(tmp_path, capsys):
    assert main(tiny_argv("td3", tmp_path / "run", extra=["precision=tf32", "device=cpu"])) == EXIT_BAD_INPUT
    assert "precision=tf32 needs a CUDA device" in _one_error_line(capsys) and not (tmp_path / "run").exists()


def test_tf32_is_on_around_the_updates_only_and_restored_after():
    """UpdatePrecision("tf32") switches CUDA's float32 matrix products and convolutions to TensorFloat-32
    while an update runs and puts back what was set before (the flags are process-wide)."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = (matmul.fp32_precision, conv.fp32_precision)
    mode = UpdatePrecision("tf32", torch.device("cuda"))
    for _ in range(2):  # reusable, as the trainer enters it around every update
        with mode:
            assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
            assert not torch.is_autocast_enabled("cuda")
        assert (matmul.fp32_precision, conv.fp32_precision) == before
    with UpdatePrecision("fp32", torch.device("cuda")):
        assert (matmul.fp32_precision, conv.fp32_precision) == before


def test_fp16_is_refused(tmp_path, capsys):
    with pytest.raises(ConfigError, match="precision must be fp32, bf16 or tf32"):
        build_config(["precision=fp16"])
    assert main(tiny_argv("td3", tmp_path / "run", extra=["precision=fp16"])) == EXIT_BAD_INPUT
    assert "fp16" in _one_error_line(capsys) and not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_exits_2_before_writing(tmp_path, capsys, device):
    """Sweeps rely on it: a job on a node without CUDA is recorded as `trainer exit code 2`."""
    assert main(tiny_argv("td3", tmp_path / "run", extra=[f"device={device}"])) == EXIT_BAD_INPUT
    assert "CUDA is not available" in _one_error_line(capsys) and not (tmp_path / "run").exists()


def test_a_folder_with_results_but_no_config_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "eval.csv").write_text("env_step,episode_return\n0,1.0\n")
    assert main(tiny_argv("td3", run, steps=400)) == EXIT_BAD_INPUT
    assert "holds results but no config.yaml" in _one_error_line(capsys)
    assert sorted(p.name for p in run.iterdir()) == ["eval.csv"]
    assert (run / "eval.csv").read_text() == "env_step,episode_return\n0,1.0\n"


def test_a_checkpoint_of_another_format_is_refused_with_the_reason(tmp_path, capsys):
    """Its bytes as recorded (the record rewritten), but a format this version does not read: one line,
    exit 2, status.json untouched."""
    import json

    from iqrl.runfolder import checkpoints

    run = tmp_path / "run"
    assert (
        main(tiny_argv("td3", run, steps=800, extra=["eval_episodes=1"]), should_stop=lambda: True)
        == EXIT_INTERRUPTED
    )
    ckpt = run / "checkpoint" / "ckpt.pt"
    state = torch.load(ckpt, weights_only=False)
    state["format"] = 999
    torch.save(state, ckpt)
    size, sha = checkpoints._file_sums(ckpt)
    (run / "checkpoint" / "checksums.json").write_text(json.dumps({"ckpt.pt": {"size": size, "sha256": sha}}))
    status = (run / "status.json").read_bytes()
    capsys.readouterr()
    assert main(tiny_argv("td3", run, steps=800, extra=["eval_episodes=1"])) == EXIT_BAD_INPUT
    assert "ckpt.pt: it has format 999, this version reads format 1" in _one_error_line(capsys)
    assert (run / "status.json").read_bytes() == status


def test_first_signal_asks_to_stop_second_ctrl_c_aborts_at_once():
    """stop_on_signals: SIGTERM or Ctrl-C sets the stop flag (the trainer stops at the episode end);
    the second Ctrl-C raises KeyboardInterrupt where the process is, without waiting for the episode."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for first in (signal.SIGINT, signal.SIGTERM):
            should_stop = stop_on_signals("test")
            assert not should_stop()
            os.kill(os.getpid(), first)
            assert should_stop()
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):  # the handler runs between bytecodes, before this loop ends
                    pass
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------------------------------
# DC-MPC: plan_noise_in_eval, reward_max
# --------------------------------------------------------------------------------------------------
def _prior_actions_in_eval(agent):
    """The policy-prior actions MPPI receives in one evaluation act(), and pi(z) of the same latents."""
    seen = []
    prior = agent.policy_prior

    def spy(z, generator, noisy):
        out = prior(z, generator, noisy)
        seen.append((out, torch.tanh(agent.learner.actor(z))))
        return out

    agent.policy_prior = spy
    agent.act(np.zeros(OBS, np.float32), explore=False)
    return seen


def test_plan_noise_in_eval():
    """Default (the code, Q-D3): the prior's noise stays on in evaluation, one vector shared by all rows
    (sigma = 1 at episode 0); plan_noise_in_eval=false: the prior is pi(z) exactly."""
    noisy = _prior_actions_in_eval(build("dcwm"))
    # the prior rollout (horizon 3) and the terminal value's prior action (once per iteration, 2)
    assert len(noisy) == 3 + 2
    compared = 0
    for out, pi in noisy:
        assert (out - pi.clamp(-1, 1)).abs().amax() > 0.01
        rows = (out - pi)[0]  # [P, A]: away from the [-1, 1] clip every row moves by the same vector
        unclipped = (out[0].abs() < 1).all(0)
        assert torch.allclose(
            rows[:, unclipped], rows[:1, unclipped].expand_as(rows[:, unclipped]), atol=1e-6
        )
        compared += int(unclipped.sum())
    assert compared > 0
    clean = _prior_actions_in_eval(build("dcwm", "agent.plan_noise_in_eval=false"))
    assert clean and all(torch.equal(out, pi.clamp(-1, 1)) for out, pi in clean)


@pytest.mark.parametrize("repeat", [2, 4])
def test_reward_max_equal_to_the_action_repeat_covers_the_summed_reward(repeat):
    """DMC rewards lie in [0, 1] per env step, so an agent step of `repeat` env steps earns up to `repeat`
    (cartpole-balance starts upright: about 1 per env step). The reward head's range is [0, reward_max]
    (tanh(x) (max - min)/2 + (max + min)/2): with reward_max = repeat it reaches the summed reward; the
    default 2 does not reach it at repeat 4."""
    from iqrl.envs.dmc import DMCEnv

    env = DMCEnv("cartpole-balance", 0, repeat, 1000)
    env.reset()
    r = env.step(np.zeros(env.act_dim, np.float32)).reward
    assert repeat - 0.1 < r <= repeat
    a = build("dcwm", f"agent.reward_max={repeat}")
    last = [m for m in a.reward_head.modules() if isinstance(m, torch.nn.Linear)][-1]
    z, act = torch.zeros(1, a.latent_width), torch.zeros(1, ACT)
    with torch.no_grad():
        last.weight.zero_()
        for bias, want in ((50.0, repeat), (-50.0, 0.0), (0.0, repeat / 2)):
            last.bias.fill_(bias)
            assert a.reward(z, act).item() == pytest.approx(want, abs=1e-6)
    if repeat > 2:
        assert build_config(["agent=dcwm"]).agent.reward_max == 2 < r
