"""The representation diagnostics of a train.csv row: probe an agent's latent, encoder, critic and latent
model on replay data, and the run log's warning when the latent has collapsed.

The maths are iqrl/core/diagnostics.py (pure functions of arrays); this module draws the data and reads
the rows. It imports torch and that module; the agent and the replay come in as arguments. Every draw is
from the diagnostics' own generator, and nothing here changes the agent: training is the same with the
diagnostics on or off (run key `diagnostics`).

Dormant units are read by forward hooks on the activation modules of the agent's networks: the encoder's
are those that run in `agent.latent`, the critic's those that run in `agent.probe_q` and the actor's those
that run in `agent.probe_actor`, either not in `latent`.
A unit is one output feature of an activation (a channel of a convolution's; each ensemble member's
features apart), so any agent whose networks use activation modules gets the columns without code of its
own.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from iqrl.core.diagnostics import (
    DORMANT_TAUS,
    active_codebook,
    codebook_perplexity,
    dormant_fraction,
    latent_collapsed,
    prediction_error,
    rank_metrics,
)

#: Windows of the critic's and the latent model's probe: enough for a mean, few enough to cost little.
WINDOWS = 256
#: The activation modules whose outputs count as units (Sokar et al. 2023 count post-activation outputs).
ACTIVATIONS = (nn.ReLU, nn.ELU, nn.Mish, nn.SiLU, nn.GELU, nn.Tanh, nn.LeakyReLU)


def probe_latent(agent, replay, generator: torch.Generator) -> dict:
    """The diagnostics on n = latent width observations drawn uniformly from the replay without replacement
    (repeated rows would cap the rank), then min(n, WINDOWS) windows, with the diagnostics' own `generator`:
    latent rank, srank and entropy rank; active codebook and perplexity; the encoder's, the actor's and the
    critic's dormant units; the latent model's k-step prediction error. {} for an agent without a latent or
    an empty replay."""
    if replay.size == 0:
        return {}
    probe = agent.latent(replay.sample_obs(1, generator))
    if probe is None:
        return {}
    n = probe.shape[1]
    obs = replay.sample_obs(n, generator, replace=False)
    networks = list(agent.networks().values())
    with recording(networks) as encoder:
        z = agent.latent(obs)
    out = rank_metrics(z.float())
    codes = agent.codes(obs)
    if codes is not None:
        out.update(active_codebook(codes, agent.codebook_size))
        out.update(codebook_perplexity(codes, agent.codebook_size))
    out["latent_collapsed"] = int(latent_collapsed(out, agent.codebook_size if codes is not None else None))
    out.update(dormant_columns("encoder", [h for outputs in encoder.values() for h in outputs]))
    out.update(actor_dormant(agent, networks, obs, set(encoder)))
    windows = probe_windows(replay, min(n, WINDOWS), generator)
    if windows is not None:
        out.update(probe_windows_of(agent, networks, windows, set(encoder)))
    return out


def probe_windows(replay, n: int, generator: torch.Generator):
    """n windows drawn uniformly from the replay's starts with `generator`; None where it holds none (or
    is a multi-task replay, which draws per task)."""
    if not hasattr(replay, "start_at") or replay.usable_starts <= 0:
        return None
    slot = torch.randint(replay.usable_starts, (n,), generator=generator, device=generator.device)
    return replay.windows(replay.start_at(slot.to(replay.device)))


@torch.no_grad()
def probe_windows_of(agent, networks: list[nn.Module], windows, encoder_units: set) -> dict:
    """The critic's dormant units on the windows' (o_t, a_t), and the latent model's k-step prediction
    error over the windows that stay in their episode for its horizon."""
    out = {}
    with recording(networks) as seen:
        q = agent.probe_q(windows.obs[:, 0], windows.action[:, 0])
    if q is not None:
        out.update(dormant_columns("critic", outputs_outside(seen, encoder_units)))
    predicted = agent.predict_latents(windows.obs, windows.action)
    if predicted is not None:
        pred, target = predicted
        whole = windows.valid[:, : pred.shape[0]].bool().all(1)
        if bool(whole.any()):
            out.update(prediction_error(pred[:, whole], target[:, whole]))
    return out


@torch.no_grad()
def actor_dormant(agent, networks: list[nn.Module], obs, encoder_units: set) -> dict:
    """The actor's dormant units on the probe's observations: the activation modules that run in
    `agent.probe_actor` and not in `latent`; {} for an agent without the hook."""
    with recording(networks) as seen:
        action = agent.probe_actor(obs)
    if action is None:
        return {}
    return dormant_columns("actor", outputs_outside(seen, encoder_units))


@contextlib.contextmanager
def recording(networks: list[nn.Module]):
    """{activation module: its outputs, one per call} of the activation modules of `networks` while in the
    block (modules shared between networks hooked once). Every call is a layer of its own: an MLP that
    applies one activation module after each hidden layer (EnsembleMLP) runs it once per layer."""
    seen: dict[nn.Module, list[torch.Tensor]] = {}
    modules = {id(m): m for net in networks for m in net.modules() if isinstance(m, ACTIVATIONS)}

    def hook(module, _inputs, output):
        seen.setdefault(module, []).append(output.detach())

    handles = [m.register_forward_hook(hook) for m in modules.values()]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def outputs_outside(seen: dict, encoder_units) -> list[torch.Tensor]:
    """The recorded outputs of the activation modules that are not the encoder's."""
    return [h for m, outputs in seen.items() if m not in encoder_units for h in outputs]


def units(h: torch.Tensor) -> torch.Tensor:
    """Activations as [samples, units]: a convolution's [n, C, H, W] by channel, an ensemble's [E, n, u]
    with each member's features apart."""
    if h.dim() == 4:
        return h.movedim(1, -1).flatten(0, -2)
    if h.dim() == 3:
        return h.movedim(0, 1).flatten(1)
    return h.flatten(0, -2)


def dormant_columns(part: str, outputs) -> dict:
    """{part}_dormant_tau0 / _tau0.1: the share of the part's units (all its activation layers together)
    that are tau-dormant; {} when no activation module ran."""
    layers = [units(h) for h in outputs]
    total = sum(h.shape[-1] for h in layers)
    if total == 0:
        return {}
    return {
        f"{part}_dormant_tau{tau:g}": sum(round(dormant_fraction(h, tau) * h.shape[-1]) for h in layers)
        / total
        for tau in DORMANT_TAUS
    }


def collapse_warning(train_rows: list[dict]) -> str | None:
    """The run log's warning for a collapsed latent, at the first train.csv row that records one (so once
    per run: rows restored from a checkpoint count as seen)."""
    flagged = [r for r in train_rows if r.get("latent_collapsed")]
    if len(flagged) != 1 or flagged[0] is not train_rows[-1]:
        return None
    r = flagged[0]
    codes = (
        ""
        if r.get("active_codebook_pct_max") is None
        else f", at most {r['active_codebook_pct_max']:.3g}% of the codebook active in any group"
    )
    return (
        f"warning: collapsed latent at env_step {r['env_step']} (latent rank "
        f"{r['latent_rank']:.0f}{codes}): "
        "actor and critic see an almost constant input (train.csv column latent_collapsed; docs/fsq.md)"
    )
