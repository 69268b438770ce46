"""The network as an ablation axis (`agent.network`): iQRL's encoder, actor and critics, td3's and sac's
actors and critics, MR.Q's MLPs become the residual networks of iqrl/nn/trunks.py, SimbaV2's projected back
onto the sphere after each of their steps; `mlp` (the default) builds exactly what it always did."""

from __future__ import annotations

import pytest
import torch

from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.registry import make_agent
from iqrl.core.replay import SequenceReplay
from iqrl.nn.layers import EnsembleMLP, ensemble_mlp, mlp
from iqrl.nn.trunks import HyperLinear, ResidualNet

from conftest import TINY_AGENT, TINY_RUN

#: agent -> the networks the key changes (dotted paths)
NETWORKS = {
    "td3": ["learner.actor", "learner.critic"],
    "sac": ["learner.actor", "learner.critic"],
    "iqrl": ["encoder", "learner.actor", "learner.critic"],
    "mrq": ["encoder.zs_net", "encoder.zsa_net", "policy", "value"],
}


def build(name: str, *extra: str):
    cfg = build_config([f"agent={name}", *TINY_RUN, *TINY_AGENT[name], *extra])
    torch.manual_seed(0)
    return make_agent(cfg.agent, 5, 2, torch.device("cpu"), 0)


def get(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def test_the_default_builds_exactly_the_mlp_it_always_did():
    torch.manual_seed(3)
    a = mlp(4, [8, 8], 2)
    torch.manual_seed(3)
    b = mlp(4, [8, 8], 2, network="mlp")
    assert isinstance(b, torch.nn.Sequential)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert isinstance(ensemble_mlp(2, 4, [8], 1), EnsembleMLP)
    for name, paths in NETWORKS.items():
        agent = build(name)
        assert not any(isinstance(get(agent, p), ResidualNet) for p in paths), name


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("network", ["simba", "bronet", "simbav2"])
def test_each_agents_networks_become_the_chosen_residual_network(name, network):
    agent = build(name, f"agent.network={network}")
    for path in NETWORKS[name]:
        net = get(agent, path)
        assert isinstance(net, ResidualNet) and net.kind == network, path


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_simbav2_weights_return_to_the_sphere_after_each_of_their_steps(name):
    agent = build(name, "agent.network=simbav2")
    with torch.no_grad():  # every hyperspherical weight off the sphere: each network's step must project it
        for path in NETWORKS[name]:
            for m in get(agent, path).modules():
                if isinstance(m, HyperLinear):
                    m.weight.mul_(2.0)
    replay = SequenceReplay(5, 2, agent.spec.seq_len, torch.device("cpu"), 1)
    g = torch.Generator().manual_seed(0)
    replay.start_episode(torch.randn(5, generator=g).numpy())
    for t in range(100):
        replay.add(
            torch.rand(2, generator=g).numpy() * 2 - 1,
            0.1 * t,
            torch.randn(5, generator=g).numpy(),
            False,
            t == 99,
        )
    for _ in range(2):  # two updates: the actors of td3 and iqrl step every second one
        agent.update(replay, 0)
    for path in NETWORKS[name]:
        for m in get(agent, path).modules():
            if isinstance(m, HyperLinear):
                torch.testing.assert_close(
                    m.weight.norm(dim=-2), torch.ones_like(m.weight[..., 0, :]), msg=path
                )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["agent=td3", "agent.network=resnet"], "network must be one of mlp, simba, simbav2, bronet"),
        (
            ["agent=td3", "agent.network=bronet", "agent.mlp_dims=[512,256]"],
            "mlp_dims must be a non-empty list",
        ),
        (["agent=iqrl", "agent.network=simba", "agent.enc_mlp_dims=[256,128]"], "enc_mlp_dims must be"),
        (["agent=mrq", "agent.network=simbav2", "agent.mlp_dims=[512,256]"], "mlp_dims must be"),
    ],
)
def test_a_network_the_widths_cannot_make_is_refused_naming_the_key(argv, message):
    with pytest.raises(ConfigError, match=message):
        build_config(argv)


def test_the_network_sweep_asks_its_question_on_dmc_hard_and_projects_its_gpu_hours(tmp_path, monkeypatch):
    """ablations/network.yaml: iqrl x {mlp, simbav2} x {fsq, none} on the seven DMC-hard tasks, 5 seeds, 1M
    env steps; `make sweep DRY=1` projects 140 runs x 500k updates, each arm at iqrl's measured row (a fake
    one at 40.6 updates/s here) over the ratio of its counted update's launches to the row's (the eager fit
    to one row: seconds per launch; the hard tasks' wider latent launches as many: measured), named as
    such. A run's
    updates per env step: its `updates_per_step`, else its agent's default at its action repeat (an
    update-to-data ratio per stored transition: BRO's 10 is 5 per env step at repeat 2)."""
    from pathlib import Path

    from iqrl.envs.tasks import DMC_HARD
    from slurm import projection
    from slurm.cost import bench_config, counts_of
    from slurm.submit import load

    from conftest import write_gpu_results

    tiny = ["agent.mlp_dims=[8]", "agent.actor_mlp_dims=[8]"]
    assert projection.default_rate(build_config(["agent=bro-utd10", "task=dog-run", *tiny])) == 5.0
    sweep, runs = load(Path(__file__).parents[1] / "ablations" / "network.yaml", tmp_path, validator=None)
    assert set(sweep.agents) == {"iqrl"} and {r.task for r in runs} == set(DMC_HARD) and len(runs) == 140
    assert {r.variant for r in runs} == {
        "default",
        "quantizer=none",
        "network=simbav2",
        "network=simbav2,quantizer=none",
    }
    monkeypatch.setattr(projection, "default_rate", lambda cfg: 0.5)  # iqrl's AgentSpec
    rates = write_gpu_results(tmp_path / "gpu", {"iqrl walker-walk state fp32 compile=false K=1": 40.6})
    lines = projection.projection_lines(runs, tmp_path, rates=rates)
    seed_steps = build_config(runs[0].argv(tmp_path)).seed_steps
    updates = (1_000_000 - seed_steps) * 0.5
    launches = counts_of("iqrl", bench_config("iqrl")).launches
    ratios = {}  # per config: its launches over the row's
    for r in (r for r in runs if r.seed == 0):
        ratios[r.variant, r.task] = counts_of("iqrl", build_config(r.argv(tmp_path))).launches / launches
    assert (
        ratios["network=simbav2", "dog-run"] > ratios["default", "dog-run"] == 1.0
    )  # a wider latent: as many
    hours = sum(5 * updates / round(40.6 / ratio, 3) / 3600 for ratio in ratios.values())
    assert lines[0].endswith(f"{hours:,.0f} for 140 runs, {140 * updates / 1e6:,.1f}M updates")
    row = "NVIDIA H100 2026-12-01 `iqrl walker-walk state fp32 compile=false K=1`"
    assert f"(measured: {row}, updates only (the row measured no collection))" in lines[2]
    simbav2 = ratios["network=simbav2", runs[0].task]
    modeled = f"(modeled from {row}: its updates/s / {simbav2:.2f}, this config's counted update against the"
    assert any(line.startswith("  iqrl network=simbav2: ") and modeled in line for line in lines)
