"""What the K-seed mode cannot run, said in one line: a run config it refuses up front (`unsupported`,
`cohort_refusal`), and a network whose state the group's updater cannot account for (`in_place_state`, when
the group is built)."""

from __future__ import annotations

from torch import nn

from iqrl.core.interface import Agent
from iqrl.nn.layers import global_random_module
from iqrl.nn.stats import StatLayer


class KSeedRefused(ValueError):
    """A network the K-seed mode cannot run (one line naming the module), found when the group is built."""


def in_place_state(agent: Agent) -> str | None:
    """Why the K-seed mode cannot run `agent`'s networks (one line naming the module), or None: a module that
    draws from torch's global generator inside its forward (nn.Dropout: vmap refuses it; a seed's draws come
    from its own generator, passed in), a module whose statistics change in place (torch's batch and instance
    norms tracking running statistics), or any other persistent buffer outside the stat layers of
    iqrl/nn/stats.py, which return theirs to the updater."""
    if drawing := global_random_module(agent.networks()):
        return (
            f"K-seed mode: {agent.cfg.name}'s {drawing} draws from torch's global generator inside its "
            "forward; use iqrl.nn.layers.MaskedDropout, whose masks are draws"
        )
    for net, module in agent.networks().items():
        for path, m in module.named_modules():
            where, kind = ".".join(filter(None, (net, path))), type(m).__name__
            if isinstance(m, StatLayer):
                continue
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
                return (
                    f"K-seed mode: {agent.cfg.name}'s {where} ({kind}) updates running statistics in place; "
                    "use iqrl.nn.stats.BatchNorm (or BatchRenorm), which returns them"
                )
            held = [b for b, _ in m.named_buffers(recurse=False) if b not in m._non_persistent_buffers_set]
            if held:
                return (
                    f"K-seed mode: {agent.cfg.name}'s {where}.{held[0]} ({kind}) is a buffer the updater "
                    "cannot account for; derive the module from iqrl.nn.stats.StatLayer and write it with "
                    "iqrl.nn.stats.write (a constant: register it with persistent=False)"
                )
    return None


def unsupported(cfg) -> str | None:
    """Why a run's config cannot train in the K-seed mode (one line), or None when it can."""
    if cfg.init_from or cfg.freeze:  # loading parts and freezing act on one agent's modules, not stacked ones
        return "the K-seed mode starts every seed from scratch and trains every part; got init_from or freeze"
    if not isinstance(cfg.task, str):  # its group shares one env and replay layout per seed
        return (
            "the K-seed mode trains one task per run; train a task list's (multi-task run's) seeds one by one"
        )
    return cfg.agent.kseed_refusal()


def cohort_refusal(cfg, k: int) -> str | None:
    """Why K seeds of `cfg` cannot train in cfg.cohorts groups (one line), or None: the groups split the
    seeds evenly, and a graph-captured group runs its rounds in the main thread (SeedGroup.serve), which
    serves one group only."""
    c = cfg.cohorts
    if k % c:
        return f"cohorts={c} must divide the number of seeds ({k}): each cohort is a group of K / C seeds"
    if c > 1 and cfg.cudagraphs:
        return f"cohorts={c} with cudagraphs=true: a graph-captured group serves only in the main thread"
    return None
