"""The representation diagnostics in train.csv (iqrl/loop/latent_probe.py): written by every agent with a
latent, the same after kill-and-resume, and training bit-identical with them on or off (run key
`diagnostics`)."""

import numpy as np
import pytest
import torch
from test_conformance import build, filled_replay
from test_eval_beside import agent_state, assert_equal_states
from test_multiseed import train_numbers

from iqrl.core.diagnostics import probe_fit_rows
from iqrl.core.interface import Agent
from iqrl.envs.tasks import split_task
from iqrl.loop.latent_probe import ACTIVATIONS, dormant_columns, probe_latent, probe_windows, units
from iqrl.runfolder.yamlfile import read_config

from agent_helpers import assert_resume_matches
from conftest import e2e_run, layered
from test_train import read_csv

#: The columns the switch adds (besides the iQRL paper's latent rank and active codebook).
NEW = ("latent_srank", "latent_erank", "codebook_perplexity", "_dormant_", "latent_pred_", "_state_r2")


#: The config key of the latent model's horizon H where it is not `horizon` (TD7's SALE predicts one step).
PREDICTION_HORIZON = {"mrq": "enc_horizon", "dr-q": "enc_horizon", "td7": None}


def overrides(agent: Agent, name: str) -> bool:
    return getattr(type(agent), name) is not getattr(Agent, name)


def prediction_horizon(agent: Agent, name: str) -> int:
    key = PREDICTION_HORIZON.get(name, "horizon")
    return 1 if key is None else getattr(agent.cfg, key)


@pytest.mark.parametrize("agent", ["iqrl", "mrq", "td7", "tdmpc2"])
def test_diagnostics_on_or_off_leave_training_bit_identical(agent, tmp_path, finished_runs):
    """The end-to-end run with the diagnostics (the default) and without: the same train.csv training
    columns, eval.csv and final checkpointed agent (networks, optimizers, generators); only the run with
    them has the diagnostics' columns. iQRL, and the agents whose probes run a dropout critic without its
    masks (TD-MPC2), roll a model out (MR.Q) or read an encoder copy the update does not train (TD7)."""
    from iqrl.train import main

    on, off = finished_runs.get(e2e_run(agent)), tmp_path / "off"
    assert main([*e2e_run(agent, ["diagnostics=false"]), f"out={off}"]) == 0
    rows_on, rows_off = train_numbers(on), train_numbers(off)
    assert not any("latent_" in k or "dormant" in k or "codebook" in k for k in rows_off[0])
    assert any(k.startswith("latent_pred_cos_k") for k in rows_on[0]) and "latent_srank" in rows_on[0]
    if agent == "iqrl":  # the state ring was filled (a latent narrower than its fit rows)
        assert rows_on[-1]["latent_state_r2"] and rows_on[-1]["obs_state_r2"]
    assert [{k: r[k] for k in rows_off[0]} for r in rows_on] == rows_off
    assert [r["episode_return"] for r in read_csv(on / "eval.csv")] == [
        r["episode_return"] for r in read_csv(off / "eval.csv")
    ]
    assert (
        "q_bias_steps" in read_csv(on / "eval.csv")[0] and "q_bias_steps" not in read_csv(off / "eval.csv")[0]
    )
    assert_equal_states(agent_state(on), agent_state(off))


#: td3's end-to-end run at discount 0.5 (H = 7 of its 50-step evaluation episodes are left unscored), its
#: evaluations beside training
TD3_Q_BIAS = e2e_run("td3", ["agent.gamma=0.5", "eval_beside=true"])


def test_q_bias_changes_no_result_and_resumes_identically(tmp_path, finished_runs):
    """td3 with evaluations beside training, diagnostics on and off: the same eval.csv returns, train.csv
    and final agent, the Q-bias only with them (88 scored steps of two 50-step episodes); stopped at env step
    250 and resumed: the same eval.csv, Q-bias included."""
    from iqrl.train import main

    on, off = finished_runs.get(TD3_Q_BIAS), tmp_path / "off"
    assert main([*layered(TD3_Q_BIAS, ["diagnostics=false"]), f"out={off}"]) == 0
    rows_on, rows_off = read_csv(on / "eval.csv"), read_csv(off / "eval.csv")
    assert [r["episode_return"] for r in rows_on] == [r["episode_return"] for r in rows_off]
    assert not any(k.startswith("q_") for k in rows_off[0])
    assert [r["q_bias_steps"] for r in rows_on] == ["88"] * 3
    assert all(
        float(r["q_bias_mean"]) == pytest.approx(float(r["q_mean"]) - float(r["q_return_mean"]))
        for r in rows_on
    )
    assert train_numbers(on) == train_numbers(off)
    assert_equal_states(agent_state(on), agent_state(off))
    assert_resume_matches("td3", tmp_path, finished_runs, reference=TD3_Q_BIAS, stop=250)


def test_diagnostics_are_the_same_after_kill_and_resume(tmp_path, finished_runs):
    """iQRL's end-to-end run stopped mid-episode at env step 250 and resumed: every train.csv column but
    the times is the uninterrupted run's, the diagnostics' included (their generator is checkpointed)."""
    ref, run = assert_resume_matches("iqrl", tmp_path, finished_runs, reference=e2e_run("iqrl"), stop=250)
    assert train_numbers(run) == train_numbers(ref)
    assert "latent_erank" in train_numbers(run)[-1] and "critic_dormant_tau0.1" in train_numbers(run)[-1]
    assert train_numbers(run)[-1]["latent_state_r2"]  # from the state ring the checkpoint held at 250


@pytest.mark.registry
@pytest.mark.computes
def test_every_agent_with_a_latent_writes_the_representation_columns(agent, finished_runs):
    """The end-to-end run's last train.csv row (conftest.e2e_run): srank and entropy rank within 1..D for
    an agent with a latent; codebook perplexity within 1..K for one with codes; the encoder's dormant share
    where activation modules run in `latent`, the critic's and the actor's exactly where the agent offers
    `probe_q` / `probe_actor`; the k-step prediction error for k = 1..H (its latent model's horizon) exactly
    where it offers `predict_latents`; on a DMC task the linear probe's R^2 of the true state, at most 1,
    where the probe's fit rows of the state ring (one pair per agent step) are more than the latent is wide.
    An agent without a latent writes none of them."""
    a = build(agent, 0)
    run = finished_runs.get(e2e_run(agent))
    row = read_csv(run / "train.csv")[-1]
    filled = {k for k, v in row.items() if v != ""}
    if not overrides(a, "latent"):
        assert not any(s in k for k in filled for s in NEW)
        return
    cfg = read_config(run)
    if split_task(cfg["task"])[0] == "dmc":
        fit = int(probe_fit_rows(cfg["steps"] // cfg["action_repeat"]).sum())
        assert ("latent_state_r2" in filled) == (a.latent_width < fit)
        assert "latent_state_r2" not in filled or float(row["latent_state_r2"]) <= 1
    width = a.latent_width
    assert 1 <= float(row["latent_srank"]) <= width and 1 <= float(row["latent_erank"]) <= width
    if getattr(a, "codebook_size", None) is not None and row.get("active_codebook_pct_mean"):
        lo, mean = float(row["codebook_perplexity_min"]), float(row["codebook_perplexity_mean"])
        assert 1 <= lo <= mean <= a.codebook_size
    if any(isinstance(m, ACTIVATIONS) for net in a.networks().values() for m in net.modules()):
        assert {"encoder_dormant_tau0", "encoder_dormant_tau0.1"} <= filled
    for tau in ("0", "0.1"):
        for part in ("encoder", "critic", "actor"):
            if f"{part}_dormant_tau{tau}" in filled:
                assert 0 <= float(row[f"{part}_dormant_tau{tau}"]) <= 1
    assert ("critic_dormant_tau0" in filled) == overrides(a, "probe_q")
    assert ("actor_dormant_tau0" in filled) == overrides(a, "probe_actor")
    pred = sorted(k for k in filled if k.startswith("latent_pred_cos_k"))
    if overrides(a, "predict_latents"):
        H = prediction_horizon(a, agent)
        assert pred == [f"latent_pred_cos_k{k}" for k in range(1, H + 1)]
        assert sorted(k for k in filled if k.startswith("latent_pred_mse_k")) == [
            f"latent_pred_mse_k{k}" for k in range(1, H + 1)
        ]
        assert all(0 <= float(row[k]) <= 2 for k in pred)
    else:
        assert pred == []


@pytest.mark.registry
def test_the_probe_leaves_the_agent_as_it_was(agent):
    """A probe of a tiny agent on a replay of random transitions: its state (networks, optimizers, counters,
    generators) and the global generator as before, every module in its mode; the columns of each hook it
    offers written, nothing without a latent."""
    import copy

    a = build(agent, 0)
    replay = filled_replay(a)
    state, rng = copy.deepcopy(a.state_dict()), torch.get_rng_state()
    modes = [m.training for net in a.networks().values() for m in net.modules()]
    out = probe_latent(a, replay, torch.Generator().manual_seed(0))
    assert_equal_states(a.state_dict(), state)
    assert torch.equal(torch.get_rng_state(), rng)
    assert [m.training for net in a.networks().values() for m in net.modules()] == modes
    if not overrides(a, "latent"):  # its critic's Q may serve other columns (Q-bias); the probe writes none
        assert out == {}
        return
    assert "latent_srank" in out
    assert ("critic_dormant_tau0" in out) == overrides(a, "probe_q")
    assert ("actor_dormant_tau0" in out) == overrides(a, "probe_actor")
    assert ("latent_pred_cos_k1" in out) == overrides(a, "predict_latents")


def moved_encoder(agent: str) -> Agent:
    """The tiny agent with its online encoder moved off its copies (fixed, target), as training leaves it."""
    a = build(agent, 0)
    with torch.no_grad():
        for p in a.encoder.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return a


def test_the_k_step_error_pairs_are_those_of_the_latent_models_own_loss():
    """On replayed windows: TD7's one-step MSE is its encoder loss mean (g(f(o_t), a_t) - f(o_{t+1}))^2
    (online f on both sides); MR.Q's k-step MSEs, masked by the windows' `valid`, sum to its encoder's
    dynamics term (online rollout, target encoder's targets)."""
    td7 = moved_encoder("td7")
    w = probe_windows(filled_replay(td7), 32, torch.Generator().manual_seed(1))
    pred, target = td7.predict_latents(w.obs, w.action)
    assert pred.shape == (1, 32, td7.latent_width) == target.shape
    loss = td7.encoder_loss(w.obs[:, 0], w.action[:, 0], w.obs[:, 1])
    assert (pred - target).square().mean().item() == pytest.approx(loss.item(), rel=1e-6)
    mrq = moved_encoder("mrq")
    w = probe_windows(filled_replay(mrq), 32, torch.Generator().manual_seed(1))
    pred, target = mrq.predict_latents(w.obs, w.action)
    H = mrq.cfg.enc_horizon
    assert pred.shape == (H, 32, mrq.latent_width) == target.shape
    per_k = ((pred - target).square().mean(-1) * w.valid[:, :H].T).mean(1)
    dynamics = mrq.encoder_terms(w, use_done=False)["consistency_loss"]
    assert per_k.sum().item() == pytest.approx(dynamics.item(), rel=1e-6)


def test_dormant_units_of_convolutions_and_ensembles_are_channels_and_members():
    """A convolution's [n, C, H, W] output has C units (mean over samples and positions); an ensemble's
    [E, n, u] has E x u units, each member's apart."""
    conv = torch.zeros(2, 3, 4, 4)
    conv[:, 0] = 1.0  # channel 0 active, channels 1 and 2 silent
    assert units(conv).shape == (32, 3)
    assert dormant_columns("encoder", [conv]) == {
        "encoder_dormant_tau0": 2 / 3,
        "encoder_dormant_tau0.1": 2 / 3,
    }
    ens = torch.ones(2, 5, 3)
    ens[1, :, 2] = 0.0  # member 1's unit 2 silent; member 0's unit 2 is not
    assert dormant_columns("critic", [ens])["critic_dormant_tau0"] == 1 / 6
    # two layers pooled by units: 1 of 3 and 1 of 6 dormant
    assert dormant_columns("critic", [conv[:, :, 0, 0] * 0 + torch.tensor([1.0, 1.0, 0.0]), ens])[
        "critic_dormant_tau0"
    ] == pytest.approx(2 / 9)
    assert dormant_columns("critic", []) == {}


def test_bench_end_to_end_row_gives_the_diagnostics_share_at_the_runs_cadence(tmp_path):
    """`make bench`'s end-to-end row of a tiny iQRL run: one probe's seconds, and its share of the wall that
    diag_every env steps take at the row's rate (k probes per diag_every env steps, one per seed); the same
    for the evaluation's Q-bias probe per eval_every, and the two together."""
    import json

    from iqrl.bench.cli import main

    out = tmp_path / "bench.json"
    keys = [*(k for k in e2e_run("iqrl") if k.startswith("agent.")), "seed_steps=200", "episode_length=100"]
    keys += ["eval_every=400", "eval_episodes=1", "diag_every=200"]
    argv = ["--end-to-end", "400", "--agents", "iqrl", "--tasks", "cartpole-balance", "--seeds", "1"]
    assert main([*argv, "--dtypes", "fp32", *(f"--set={k}" for k in keys), "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert row["diag_every"] == 200 and row["diagnostics_s"] > 0
    share = row["diagnostics_s"] * row["env_steps_per_s"] / 200
    assert row["diagnostics_share"] == pytest.approx(share, rel=1e-3, abs=1e-5)
    assert row["eval_every"] == 400 and row["q_bias_s"] >= 0  # the evaluation's Q-bias probe
    q_share = row["q_bias_s"] * row["env_steps_per_s"] / 400
    assert row["q_bias_share"] == pytest.approx(q_share, rel=1e-3, abs=1e-5)
    total = row["diagnostics_share"] + row["q_bias_share"]
    assert row["diagnostics_total_share"] == pytest.approx(total, abs=2e-5)


def test_demo_summary_gives_srank_and_dormant_share_beside_rank_and_codebook():
    """The demo's line on the representation: rank 50% -> 75% of the width, codes in use, and at the last
    row srank 12 and 25% dormant encoder units; a run without those columns says nothing of them."""
    import pandas as pd

    from apps.demo import representation

    rows = {"run": ["iqrl", "iqrl"], "env_step": [400, 800], "latent_rank_pct": [50.0, 75.0]}
    rows |= {f"active_codebook_pct_{s}": [10.0, v] for s, v in (("mean", 40.0), ("min", 20.0), ("max", 60.0))}
    table = pd.DataFrame(rows | {"latent_srank": [10.0, 12.0], "encoder_dormant_tau0.1": [0.0, 0.25]})
    (line,) = representation(table)
    assert line.startswith("\nRepresentation: iqrl's latent rank went from 50% to 75% of its width")
    assert line.endswith(
        "used 40% of their codes on that batch at the end (fewest 20%, most 60%); its srank was 12 (the "
        "fewest singular values holding 99% of their sum) and 25% of its encoder's units were dormant (tau = "
        "0.1)."
    )
    (older,) = representation(pd.DataFrame(rows))
    assert older.endswith("(fewest 20%, most 60%).")


def test_a_shared_activation_counts_each_of_its_calls_as_a_layer():
    """An MLP applying one nn.ReLU after each hidden layer: the recording keeps each call's output, so the
    critic's units are those of every hidden layer (layer 2: 3 dead units, layer 1: 4 alive)."""
    from iqrl.loop.latent_probe import outputs_outside, recording

    relu = torch.nn.ReLU()
    net = torch.nn.ModuleList([relu])
    with recording([net]) as seen:
        relu(torch.ones(5, 4))
        relu(-torch.ones(5, 3))
    outputs = outputs_outside(seen, set())
    assert [h.shape[-1] for h in outputs] == [4, 3]
    assert dormant_columns("critic", outputs)["critic_dormant_tau0"] == pytest.approx(3 / 7)
    assert outputs_outside(seen, {relu}) == []


@pytest.mark.registry
@pytest.mark.computes
def test_every_agent_with_a_critic_writes_the_q_bias(agent, finished_runs, tmp_path):
    """The end-to-end run's eval.csv has the Q-bias columns exactly for an agent that overrides probe_q (its
    50-step cartpole episodes, cut by time, are shorter than gamma 0.99's H = 459: no step scored, where
    the MiniGrid room's terminated episodes score every step). Its final agent evaluated again at discount
    0.5 (H = 7): the bias over the steps the rule scores is the mean Q less the mean return."""
    from iqrl.config.build import build_config
    from iqrl.core.diagnostics import tail_horizon
    from iqrl.loop.evaluation import eval_returns, outcome_row
    from iqrl.loop.trainer import Trainer

    argv = e2e_run(agent)
    run = finished_runs.copy(argv, tmp_path / "run")
    rows = read_csv(run / "eval.csv")
    if not overrides(build(agent, 0), "probe_q"):
        assert not any(k.startswith("q_") for k in rows[0])
        return
    assert all(r["q_bias_steps"] != "" for r in rows)
    t = Trainer(build_config([*argv, f"out={run}"]))
    try:
        assert t.try_resume()
        t.agent.value_discount = lambda: 0.5
        outcomes = eval_returns(t.eval_envs(0), t.agent, 2, False, probe=True)
    finally:
        t.close()
    lengths = [len(o.trace.q) if o.trace.terminated else max(0, len(o.trace.q) - 6) for o in outcomes]
    assert tail_horizon(0.5) == 7 and sum(lengths) > 0
    row = outcome_row(outcomes, 400, 0.0, False)
    assert row["q_bias_steps"] == sum(lengths)
    assert row["q_bias_mean"] == pytest.approx(row["q_mean"] - row["q_return_mean"])


def test_probe_q_reads_each_critic_in_its_return_units():
    """TD3: both critics [2, n] (the evaluation takes their minimum), discount 1 under the official one-step
    target; BRO: the mean over its two critics and
    their quantiles (pessimism 0); SimbaV2: the expected value times the reward divisor, so a divisor twice
    as large doubles Q; DQN: Q of the action taken, its rewards clipped as its update clips them."""
    import numpy as np

    from conftest import agent_observations

    rng = np.random.default_rng(0)
    td3 = build("td3", 0)
    obs, a = torch.randn(4, 5), torch.rand(4, 2) * 2 - 1
    q = td3.probe_q(obs, a)
    assert q.shape == (2, 4) and torch.equal(q, td3.learner.q(obs, a))
    assert td3.value_discount() == 0.99 and td3.cfg.nstep == 1
    td3.cfg.official_nstep1_gamma_bug = True  # the official one-step target: undiscounted
    assert td3.value_discount() == 1.0
    bro = build("bro", 0)
    assert torch.allclose(bro.probe_q(obs, a), bro.quantiles(obs, a).mean((0, -1)))
    simba = build("simbav2", 0)
    simba.max_abs_return = 10 * simba.cfg.g_max  # the divisor: max(std of G, max|G| / g_max) = 10
    q10 = simba.probe_q(obs, a)
    simba.max_abs_return = 20 * simba.cfg.g_max
    assert float(simba.reward_scale()) == 20 and torch.allclose(simba.probe_q(obs, a), 2 * q10)
    dqn = build("dqn", 0)
    x = torch.from_numpy(agent_observations("dqn").sample(rng, 4))
    taken = torch.tensor([0, 2, 1, 2])
    assert torch.equal(dqn.probe_q(x, taken), dqn.q(x)[torch.arange(4), taken])
    assert dqn.value_rewards(np.array([-3.0, 0.5, 2.0])).tolist() == [-1.0, 0.5, 1.0]  # reward_clip 1


class Counting:
    """An env whose true state after its k-th step is [k, 2k]."""

    def __init__(self):
        self.k = 0

    def true_state(self):
        self.k += 1
        return np.array([self.k, 2 * self.k], np.float32)


def test_state_ring_keeps_the_last_pairs_and_resumes_each_in_its_slot(monkeypatch):
    """A ring of 4 after 6 pairs holds pairs 3..6, oldest first; saved and loaded it goes on as the ring it
    was (the next pair replaces the oldest in both); None (a checkpoint of before the ring) loads empty; an
    env without a true state leaves it empty; frame stacks keep their uint8 in a ring of PIXEL_RING_SIZE."""
    from iqrl.loop import state_probe

    monkeypatch.setattr(state_probe, "RING_SIZE", 4)
    monkeypatch.setattr(state_probe, "PIXEL_RING_SIZE", 2)
    ring, env = state_probe.StateRing(), Counting()
    for i in range(6):
        ring.record(np.full(3, i, np.float32), env)
    obs, state = ring.pairs()
    assert obs[:, 0].tolist() == [2, 3, 4, 5] and state[:, 0].tolist() == [3, 4, 5, 6]
    again = state_probe.StateRing()
    again.load_state_dict(ring.state_dict())
    for r in (ring, again):
        r.record(np.full(3, 6, np.float32), Counting())
    assert np.array_equal(again.obs, ring.obs) and np.array_equal(again.state, ring.state)
    assert again.pairs()[0][:, 0].tolist() == [3, 4, 5, 6] and again.count == ring.count == 7
    again.load_state_dict(None)
    assert again.count == 0 and state_probe.probe_columns(None, again, "cpu") == {}
    stateless = state_probe.StateRing()
    stateless.record(np.zeros(3), object())
    assert stateless.count == 0 and stateless.stateless
    pixels = state_probe.StateRing()
    for i in range(3):
        pixels.record(np.full((6, 4, 4), i, np.uint8), env)
    assert pixels.obs.shape == (2, 6, 4, 4) and pixels.obs.dtype == np.uint8
    assert pixels.pairs()[0][:, 0, 0, 0].tolist() == [1, 2]


def test_state_probe_reads_the_ring_through_the_agents_latent(monkeypatch):
    """An agent whose latent is a linear map of the observation, and observations a linear map of the state:
    both probes score 1, the latent read in chunks; a latent as wide as the probe's fit rows (128 of 200) is
    left out (a map would fit anything there); frame stacks (uint8) give the latent's column alone."""
    from iqrl.loop import state_probe
    from iqrl.loop.state_probe import StateRing, probe_columns

    monkeypatch.setattr(state_probe, "CHUNK", 64)  # 200 observations: 4 calls

    g = torch.Generator().manual_seed(0)
    states = torch.randn(200, 3, generator=g)
    to_obs, to_latent = torch.randn(3, 5, generator=g), torch.randn(5, 8, generator=g)

    class Linear:
        latent_width = 8
        calls = 0

        def latent(self, obs):
            Linear.calls += 1
            return obs.float().flatten(1) @ to_latent

    class Replayed:
        def true_state(self):
            return states[ring.count].numpy()

    ring = StateRing()
    for s in states:
        ring.record((s @ to_obs).numpy(), Replayed())
    out = probe_columns(Linear(), ring, "cpu")
    assert out == {"latent_state_r2": pytest.approx(1, abs=1e-6), "obs_state_r2": pytest.approx(1, abs=1e-6)}
    assert Linear.calls == 4
    frames = StateRing()

    class Shown:  # the state: the first 3 of the frame's 5 bytes
        def true_state(self):
            return frame[:3, 0, 0].astype(np.float32)

    for frame in torch.randint(0, 200, (200, 5, 1, 1), generator=g, dtype=torch.uint8).numpy():
        frames.record(frame, Shown())
    assert frames.obs.dtype == np.uint8
    assert probe_columns(Linear(), frames, "cpu") == {"latent_state_r2": pytest.approx(1, abs=1e-6)}
    Linear.latent_width = int(probe_fit_rows(200).sum())
    assert Linear.latent_width == 128
    assert set(probe_columns(Linear(), ring, "cpu")) == {"obs_state_r2"}


def test_a_run_folder_whose_checkpoint_holds_no_state_ring_resumes_and_fills_it_again(
    tmp_path, finished_runs
):
    """iQRL's end-to-end run stopped at env step 250 and its checkpoint rewritten as a version before the
    ring wrote it (no `state_ring`): it resumes with an empty ring, trains as the uninterrupted run, and its
    last row's probe reads the 75 pairs of the steps since the resume alone (another R^2)."""
    from iqrl.runfolder import checkpoints
    from iqrl.runfolder.exits import EXIT_INTERRUPTED, EXIT_OK
    from iqrl.runfolder.layout import CHECKPOINT
    from iqrl.train import main

    from conftest import stop_at_env_step

    ref, run = finished_runs.get(e2e_run("iqrl")), tmp_path / "run"
    argv = [*e2e_run("iqrl"), f"out={run}"]
    assert main(argv, should_stop=stop_at_env_step(argv, 250)) == EXIT_INTERRUPTED
    state = checkpoints.verified(run / CHECKPOINT, "cpu")
    assert state.pop("state_ring")["count"] == 125  # one pair per agent step (action repeat 2)
    checkpoints.save(run, state)
    assert main(argv) == EXIT_OK

    def training(rows):
        return [{k: v for k, v in r.items() if not k.endswith("_state_r2")} for r in rows]

    rows, uninterrupted = train_numbers(run), train_numbers(ref)
    assert training(rows) == training(uninterrupted) and rows[0] == uninterrupted[0]  # (row 200: before)
    assert rows[-1]["latent_state_r2"] != uninterrupted[-1]["latent_state_r2"] != ""


def test_the_docs_give_the_state_ring_and_the_ridge_as_the_code_has_them():
    """docs/diagnostics.md's sizes of the state ring, its memory for pixels at the default frames, the
    ridge, and the default latent widths it says the probe reads (or not)."""
    from pathlib import Path

    from iqrl.config.build import build_config
    from iqrl.core.diagnostics import PROBE_BLOCK, PROBE_RIDGE
    from iqrl.loop.state_probe import PIXEL_RING_SIZE, RING_SIZE

    text = " ".join((Path(__file__).parents[1] / "docs" / "diagnostics.md").read_text().split())
    cfg = build_config(["agent=iqrl", "task=walker-walk", "obs=pixels", "out=unused"])  # the defaults
    frames = 3 * cfg.frame_stack * cfg.image_size**2
    assert f"`RING_SIZE` = {RING_SIZE} pairs of state observations ({2 * RING_SIZE} env steps" in text
    assert f"`PIXEL_RING_SIZE` = {PIXEL_RING_SIZE} of pixel observations" in text
    assert f"({PIXEL_RING_SIZE} x {3 * cfg.frame_stack} x {cfg.image_size} x {cfg.image_size} bytes, " in text
    assert f"{PIXEL_RING_SIZE * frames / 1e6:.1f} MB" in text and f"{PROBE_RIDGE:g}" == "0.0001"
    fit, pixel_fit = (int(probe_fit_rows(n).sum()) for n in (RING_SIZE, PIXEL_RING_SIZE))
    assert (
        "lambda = 1e-4" in text and f"the ring's {fit} fit rows" in text and f"({pixel_fit} fit rows)" in text
    )
    assert (
        f"`PROBE_BLOCK` = {PROBE_BLOCK}" in text
        and f"fit on the even blocks of {PROBE_BLOCK} consecutive" in text
    )

    def width(agent, task):
        return build_config([f"agent={agent}", f"task={task}", "out=unused"]).agent.latent_width

    assert width("iqrl", "walker-walk") == width("dcwm", "walker-walk") == 1024 < fit
    assert width("iqrl", "dog-run") == width("iqrl", "humanoid-walk") == 2048 >= fit
    assert "(iQRL's and DC-MPC's 1024)" in text and "humanoid's 2048-wide latents" in text


def test_the_docs_give_the_diagnostics_cost_of_the_committed_bench_row():
    """docs/diagnostics.md's cost figures are docs/diagnostics-cost.json's row: each share its seconds times
    the rate over the cadence, the total their sum, as the docs round them."""
    import json
    from pathlib import Path

    root = Path(__file__).parents[1]
    (row,) = json.loads((root / "docs" / "diagnostics-cost.json").read_text())  # as make bench writes it
    assert row["diag_every"] == row["eval_every"] == 10_000  # the defaults
    text = " ".join((root / "docs" / "diagnostics.md").read_text().split())
    rate = row["env_steps_per_s"]
    share = row["diagnostics_s"] * rate / row["diag_every"]
    q_share = row["q_bias_s"] * rate / row["eval_every"]
    assert row["diagnostics_share"] == pytest.approx(share, abs=1e-5)
    assert row["q_bias_share"] == pytest.approx(q_share, abs=1e-5)
    assert row["agent"] == "iqrl" and row["task"] == "walker-walk" and row["set"] == []
    assert f"take {100 * (share + q_share):.2f}% of a default iQRL walker-walk run" in text
    assert f"the train.csv probe {row['diagnostics_s']:.2f} s per row ({100 * share:.2f}%)" in text
    assert f"Q-bias probe {row['q_bias_s']:.2f} s per evaluation ({100 * q_share:.2f}%)" in text
    assert f"at the row's {rate} env steps/s" in text
