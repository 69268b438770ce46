"""The latent diagnostics of a train.csv row: probe an agent's latent on replay observations, and the run
log's warning when the latent has collapsed.

The maths are iqrl/core/diagnostics.py (pure functions of arrays); this module draws the observations and
reads the rows. It imports torch and that module; the agent and the replay come in as arguments.
"""

from __future__ import annotations

import torch

from iqrl.core.diagnostics import active_codebook, latent_collapsed, rank_metrics


def probe_latent(agent, replay, generator: torch.Generator) -> dict:
    """Latent rank and active codebook on n = latent width observations drawn uniformly from the replay
    without replacement (repeated rows would cap the rank), with the diagnostics' own `generator`; {} for
    an agent without a latent or an empty replay."""
    if replay.size == 0:
        return {}
    probe = agent.latent(replay.sample_obs(1, generator))
    if probe is None:
        return {}
    obs = replay.sample_obs(probe.shape[1], generator, replace=False)
    out = rank_metrics(agent.latent(obs).float())
    codes = agent.codes(obs)
    if codes is not None:
        out.update(active_codebook(codes, agent.codebook_size))
    out["latent_collapsed"] = int(latent_collapsed(out, agent.codebook_size if codes is not None else None))
    return out


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
