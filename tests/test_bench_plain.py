"""`python -m iqrl.bench --plain`: the plain implementation (iqrl/bench/plain.py) computes iqrl's update.

The speed ratio it reports means something only if both sides do the same work: the same losses, the same
parameter steps, the same random draws and the same matrix products. Timing is `make bench`'s job."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from iqrl.bench.cli import main
from iqrl.bench.plain import PlainIQRL, critic_from_ensemble

from agent_helpers import agent_and_replay


def project_update(agent, batch) -> dict:
    """IQRL.update on a given batch (IQRL.update samples its own)."""
    metrics = agent.update_representation(batch)
    metrics.update(agent.update_rl(batch))
    return metrics


@torch.no_grad()
def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module, tol: float) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert p.shape == q.shape, name
        assert float((p - q).abs().max()) <= tol * max(float(p.abs().max()), 1.0), name


def test_the_plain_update_computes_iqrl_s_update_from_the_same_weights_and_draws():
    """Six updates (three actor steps) on the same batches: every metric within 1e-5, then every parameter
    of every network and target, and both generators at the same state (same draws, same order)."""
    agent, replay, _ = agent_and_replay("iqrl")
    plain = PlainIQRL(agent, torch.Generator().manual_seed(0))
    plain.generator.set_state(agent.generator.get_state())
    moved = False
    for _ in range(6):
        batch = replay.sample(agent.spec.batch_size)
        m_agent, m_plain = project_update(agent, batch), plain.update(batch)
        assert m_plain.keys() == m_agent.keys()
        for k, v in m_agent.items():
            torch.testing.assert_close(m_plain[k], v, rtol=1e-5, atol=1e-6)
        moved |= "actor_loss" in m_agent
    assert moved and plain.critic_steps == agent.learner.critic_steps == 6
    for net in ("encoder", "encoder_target", "dynamics"):
        assert_same_parameters(getattr(agent, net), getattr(plain, net), 1e-5)
    assert_same_parameters(agent.learner.actor, plain.actor, 1e-5)
    assert_same_parameters(agent.learner.actor_target, plain.actor_target, 1e-5)
    for k in range(agent.cfg.num_critics):
        assert_same_parameters(critic_from_ensemble(agent.learner.critic, k), plain.critics[k], 1e-5)
        assert_same_parameters(
            critic_from_ensemble(agent.learner.critic_target, k), plain.critic_targets[k], 1e-5
        )
    assert torch.equal(plain.generator.get_state(), agent.generator.get_state())
    # the parameters did move (the comparison above is not of untouched copies)
    fresh, _, _ = agent_and_replay("iqrl")
    assert float((fresh.encoder[0].weight - plain.encoder[0].weight).detach().abs().max()) > 1e-4


def test_the_plain_update_runs_the_same_matrix_products():
    """Equal FLOP counts over a critic-only and an actor update: no extra or missing network pass."""
    agent, replay, _ = agent_and_replay("iqrl")
    plain = PlainIQRL(agent, torch.Generator().manual_seed(0))
    batch = replay.sample(agent.spec.batch_size)
    counts = []
    for update in (lambda: project_update(agent, batch), lambda: plain.update(batch)):
        with FlopCounterMode(display=False) as flops:
            update()
            update()
        counts.append(flops.get_total_flops())
    assert counts[0] == counts[1] > 0


def test_the_plain_update_refuses_what_it_does_not_implement():
    agent, _, _ = agent_and_replay("iqrl-official")
    with pytest.raises(ValueError, match="agent.tc_loss_sign=1"):
        PlainIQRL(agent, torch.Generator())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--agents", "td3"], "--plain compares iqrl's update only"),
        (["--dtypes", "bf16"], "--plain measures CPU fp32 updates"),
        (["--tasks", "fish-swim"], "does not implement agent.use_projection=True (task fish-swim)"),
    ],
)
def test_plain_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert main(["--plain", *args, "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not (tmp_path / "b.json").exists()


def test_plain_rows_hold_both_rates_and_their_ratio(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["--plain", "--tasks", "cartpole-swingup", "--updates", "1", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert (row["agent"], row["task"], row["dtype"], row["compile"], row["updates"]) == (
        "iqrl",
        "cartpole-swingup",
        "fp32",
        False,
        3,
    )
    assert row["updates_per_s"] > 0 and row["plain_updates_per_s"] > 0
    assert row["vs_plain"] == pytest.approx(row["updates_per_s"] / row["plain_updates_per_s"], rel=2e-3)
    assert json.loads(capsys.readouterr().out.splitlines()[0]) == row
