"""iQRL agent: latent bookkeeping, consistency loss weighting and sign, masks, gradient isolation, EMA."""

import copy

import pytest
import torch

from iqrl.agent.config import IQRLConfig, IQRLSACConfig
from iqrl.agent.iqrl import IQRL
from iqrl.core.replay import SequenceBatch

from agent_helpers import FixedReplay

OBS, ACT = 7, 3


def make(**kw):
    torch.manual_seed(0)
    cls = IQRLSACConfig if kw.get("rl_algo") == "sac" else IQRLConfig  # the SAC learner's keys: iqrl-sac
    cfg = cls(**{"latent_dim": 4, "mlp_dims": [16, 16], "enc_mlp_dims": [16], "batch_size": 8, **kw})
    return IQRL(cfg, OBS, ACT, torch.device("cpu"), seed=0)


def batch(B=8, L=5, seed=0, terminal_at=None):
    g = torch.Generator().manual_seed(seed)
    term = torch.zeros(B, L)
    valid = torch.ones(B, L)
    if terminal_at is not None:
        term[:, terminal_at] = 1.0
        valid[:, terminal_at + 1 :] = 0.0
    return SequenceBatch(
        obs=torch.randn(B, L + 1, OBS, generator=g),
        action=torch.rand(B, L, ACT, generator=g) * 2 - 1,
        reward=torch.rand(B, L, generator=g),
        terminal=term.bool(),
        valid=valid,
        index=torch.arange(B),
    )


def test_latent_width_and_grouping():
    cfg = IQRLConfig(latent_dim=512, fsq_levels=[8, 8], use_projection=True)
    agent = IQRL(cfg, OBS, ACT, torch.device("cpu"), seed=0)
    assert agent.latent_width == 1024
    assert agent.encoder[-1].out_features == 1024
    assert agent.learner.actor[0].in_features == 1024
    assert agent.learner.critic.linears[0].weight.shape[1] == 1024 + ACT
    assert agent.dynamics[0].in_features == 1024 + ACT
    assert agent.projection[-1].out_features == 64  # D / 16
    assert agent.codes(torch.randn(5, OBS)).shape == (5, 512)
    assert agent.codebook_size == 64
    # no-FSQ at equal width by default; the official switch halves it
    assert IQRLConfig(latent_dim=512, use_fsq=False).latent_width == 1024
    assert IQRLConfig(latent_dim=512, use_fsq=False, official_nofsq_half_width=True).latent_width == 512
    assert IQRLConfig(latent_dim=100, fsq_levels=[8, 6, 5]).latent_width == 300


def test_spec_window_covers_horizon_and_nstep():
    assert make(horizon=5, nstep=3).spec.seq_len == 5
    assert make(horizon=2, nstep=4).spec.seq_len == 4


def constant_terms(agent, value=1.0):
    agent.consistency_terms = lambda pred, target: torch.full(pred.shape[:1], value) + 0 * pred.sum(-1)


def test_consistency_loss_rho_weighting_mean_over_horizon():
    agent = make(horizon=5, rho=0.9)
    constant_terms(agent)
    loss, _ = agent.representation_loss(batch())
    assert loss.item() == pytest.approx((1 + 0.9 + 0.81 + 0.729 + 0.6561) / 5)


def test_cumulative_mask_stops_after_terminal():
    agent = make(horizon=5, rho=0.5)
    constant_terms(agent)
    loss, _ = agent.representation_loss(batch(terminal_at=1))
    # steps 0 and 1 count (the terminal transition has a real next observation), 2.. do not
    assert loss.item() == pytest.approx((1 + 0.5) / 5)
    official = make(horizon=5, rho=0.5, cumulative_mask=False)
    constant_terms(official)
    loss_o, _ = official.representation_loss(batch(terminal_at=1))
    # official per-step mask drops the terminal step itself; the padded steps after it never count
    assert loss_o.item() == pytest.approx(1 / 5)


def test_consistency_sign():
    pred, target = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    cos = 2**-0.5
    assert make().consistency_terms(pred, target).item() == pytest.approx(-cos)  # paper: maximise cos
    assert make(tc_loss_sign=1).consistency_terms(pred, target).item() == pytest.approx(cos)  # official
    assert make(consistency_loss="mse").consistency_terms(pred, target).item() == pytest.approx(0.5)


def mean_cosine(agent, b):
    with torch.no_grad():
        z = agent.encode(b.obs[:, 0])
        sims = []
        for h in range(agent.cfg.horizon):
            z = agent.next_latent(z, b.action[:, h])
            t = agent.encode(b.obs[:, h + 1], target=True)
            sims.append(torch.nn.functional.cosine_similarity(z, t, dim=-1).mean())
    return torch.stack(sims).mean().item()


@pytest.mark.parametrize("sign, direction", [(-1, 1), (1, -1)])
def test_representation_steps_move_cosine_in_the_sign_direction(sign, direction):
    agent = make(tc_loss_sign=sign, enc_lr=3e-3, use_fsq=False)  # no FSQ: a smooth objective
    b = batch()
    before = mean_cosine(agent, b)
    for _ in range(30):
        agent.update_representation(b)
    assert (mean_cosine(agent, b) - before) * direction > 0.05


def test_encoder_gets_no_actor_or_critic_gradient():
    agent = make()
    b = batch()
    enc_before = copy.deepcopy(agent.encoder.state_dict())
    for p in agent.encoder.parameters():
        p.grad = None
    for _ in range(4):  # includes actor steps (every 2nd critic step)
        agent.update_rl(b)
    assert all(p.grad is None for p in agent.encoder.parameters())
    assert all(torch.equal(v, agent.encoder.state_dict()[k]) for k, v in enc_before.items())
    assert agent.learner.actor[0].weight.grad is not None  # the RL step did run backward


def test_representation_step_updates_target_encoder_by_ema():
    agent = make(enc_tau=0.1)
    old_target = [p.clone() for p in agent.encoder_target.parameters()]
    agent.update_representation(batch())
    for t_old, t_new, online in zip(
        old_target, agent.encoder_target.parameters(), agent.encoder.parameters()
    ):
        assert torch.allclose(t_new, 0.9 * t_old + 0.1 * online, atol=1e-6)
        assert not t_new.requires_grad


def test_target_encoder_receives_no_gradient():
    agent = make()
    agent.update_representation(batch())
    assert all(p.grad is None for p in agent.encoder_target.parameters())


def test_td_target_is_min_over_a_random_pair_of_target_critics():
    """Compared with the code's own networks on purpose: the target critics' outputs can only be read
    through them. The formula (smoothing noise 0.2 clipped at 0.3, a random pair, the min) is written out
    here with the same generator draws; tests/test_documented_behaviour.py checks the smoothing statistics
    without them."""
    agent = make(num_critics=5, q_subsample=2)
    ac = agent.learner
    x = torch.randn(6, agent.latent_width)
    state = ac.generator.get_state()
    y = ac.td_target(torch.zeros(6), torch.ones(6), x, **ac.target_draws(6))
    # replay the same draws by hand
    ac.generator.set_state(state)
    with torch.no_grad():
        a = torch.tanh(ac.actor_target(x))
        noise = (torch.randn(a.shape, generator=ac.generator) * 0.2).clamp(-0.3, 0.3)
        a = (a + noise).clamp(-1, 1)
        pair = torch.randperm(5, generator=ac.generator)[:2]
        q_all = ac.critic_target(torch.cat([x, a], -1)).squeeze(-1)
    assert torch.allclose(y, q_all[pair].amin(0), atol=1e-6)
    assert pair[0] != pair[1]


def test_actor_updates_every_second_critic_step():
    agent = make()
    b = batch()
    logged = [("actor_loss" in agent.update_rl(b)) for _ in range(6)]
    assert logged == [False, True, False, True, False, True]


def test_state_dict_round_trip():
    a, b = make(), make()
    for _ in range(3):
        a.update(FixedReplay(batch()), 0)
    obs = torch.randn(3, OBS).numpy()
    assert not (a.act(obs, explore=False) == b.act(obs, explore=False)).all()
    b.load_state_dict(a.state_dict())
    assert (a.act(obs, explore=True) == b.act(obs, explore=True)).all()
    assert (a.act(obs, explore=False) == b.act(obs, explore=False)).all()


def test_codes_and_residual_sum_stay_float32_under_bf16_autocast():
    agent = make(fsq_levels=[6, 6])  # thirds: not bf16 values
    obs, a = torch.randn(64, OBS), torch.rand(64, ACT) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = agent.encoder(obs)
        z = agent.encode(obs)
        d = agent.dynamics(torch.cat([z, a], -1))
        nxt = agent.next_latent(z, a)
    assert y.dtype == d.dtype == torch.bfloat16 and z.dtype == nxt.dtype == torch.float32
    assert torch.equal(z, agent.quantizer(y.float()))
    assert not torch.equal(z.to(torch.bfloat16).float(), z)  # exact thirds, not their bf16 roundings
    assert torch.equal(
        nxt, agent.quantizer(z + d.float())
    )  # FSQ of the float32 sum, not of a bf16-rounded one
