"""A run's memory, estimated from its config and checked against its device before anything is allocated.

`estimate(cfg)` builds the run's agent on torch's meta device (shapes without storage: a 10^9-parameter
network costs nothing to build) and adds up what a run holds at its peak:

* weights: every parameter and buffer of the agent's networks, targets included;
* training state: a gradient and two Adam moments per trainable parameter;
* replay: every transition of the run (the replay keeps them all, `iqrl.core.replay.SequenceReplay`), with
  the agent's context per observation where it keeps one, each of its arrays grown by doubling from 4096
  slots, and the largest array's old and new storage at once while it grows;
* activations: one update's samples (batch size x window length, or what the agent's spec names for a
  network: `AgentSpec.network_samples`) through every weighted layer of the agent, each layer's output counted
  ACTIVATION_COPIES times;
* a fixed overhead: the Python process with torch and the simulator (CPU), or the CUDA context (GPU).

One estimate serves every agent: it reads only the built networks and the agent's spec. How far it is from
what runs measure is in docs/configuration.md ("Memory"). `check_memory` refuses a run whose estimate exceeds
the memory its device has free (or `memory_limit_gb`) in one line naming the estimate and the keys to lower.

It imports torch, the run config, the registry (to build the agent) and the envs (the task's spaces).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from iqrl.config.run import ConfigError, RunConfig
from iqrl.core import registry
from iqrl.core.spaces import ActionSpec, as_action_spec
from iqrl.envs.make import task_spaces
from iqrl.envs.tasks import suite_of, task_list

GIB = 2**30
# Copies of each layer's output per sample that an update holds at its peak. The backward pass keeps a
# layer's output with its normalisation's and activation's, but target networks keep nothing, and most agents
# pass only part of the window (or of the batch) through each network; against the peaks measured on CPU
# (docs/configuration.md, "Memory") one copy lands at 0.8-2x of the update's memory for every agent but MR.Q.
ACTIVATION_COPIES = 1
# What a process holds before its run's tensors: Python, torch, the simulator (CPU); the CUDA context (GPU).
OVERHEAD = {"cpu": int(0.45 * GIB), "cuda": int(0.5 * GIB)}
REPLAY_START = 4096  # slots of each replay array before its first doubling (SequenceReplay)
# What a seed holds beyond its tensors (scripts/seed_memory.py: 8 tiny td3 runs of cartpole-balance built side
# by side in one process, as a K-seed group builds its seeds): its trainer's objects and evaluation env in the
# process, each training env stepped in the process, or else in a worker process of its own (the worker's
# private memory: Python, numpy, the simulator). A run alone has its in-process share within OVERHEAD; each
# further seed of a K-seed group adds its own, and every env worker its process.
MIB = 2**20
SEED_PROCESS = 7 * MIB
ENV_IN_PROCESS = 17 * MIB
ENV_WORKER = 167 * MIB


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of each thing a run holds at its peak."""

    weights: int
    training: int  # gradients and optimizer moments
    replay: int
    activations: int
    overhead: int

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def parts(self) -> str:
        """'weights 6.1 GiB, gradients and Adam moments 2.4 GiB, ...'"""
        return ", ".join(f"{NAMES[f.name]} {gib(getattr(self, f.name))}" for f in fields(self))


NAMES = {
    "weights": "weights",
    "training": "gradients and Adam moments",
    "replay": "replay",
    "activations": "activations",
    "overhead": "process",
}


def gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


# Factories whose first arguments are the new tensor's size.
_FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.randint}
LARGE = 2**16  # elements from which a tensor the constructor makes goes to the meta device


class _LargeOnMeta(TorchFunctionMode):
    """While an agent is built: a tensor of `large` elements or more (a weight) is made on the meta device
    (shape, no storage; a random draw there draws nothing, so it gets no generator), smaller ones (constants,
    small layers) as usual. An operation mixing both computes on the meta device, `.to` leaves a meta tensor
    where it is. Only the tensors' sizes matter here, and those never depend on values."""

    def __init__(self, large: int | None = None):
        super().__init__()
        self.large = LARGE if large is None else large

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _FACTORIES and _numel(func, args, kwargs) >= self.large:
            kwargs["device"] = "meta"
            kwargs.pop("generator", None)
        elif func in (torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu) and args[0].is_meta:
            return args[0]
        elif any(isinstance(a, torch.Tensor) and a.is_meta for a in (*args, *kwargs.values())):
            args = tuple(_on_meta(a) for a in args)
            kwargs = {k: _on_meta(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


def _numel(func, args, kwargs) -> int:
    size = kwargs.get("size", args[1:] if func in (torch.full, torch.randint) else args)
    if func is torch.full:
        size = args[0] if args else kwargs.get("size")
    if func is torch.randint:
        size = kwargs.get("size", args[-1] if args else ())
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        size = size[0]
    return math.prod(int(n) for n in size) if all(isinstance(n, int) for n in size) else 0


def _on_meta(x):
    return x.to("meta") if isinstance(x, torch.Tensor) and not x.is_meta else x


def meta_agent(cfg: RunConfig, obs_dim, act_dim: int | ActionSpec):
    """The run's agent with its large tensors on the meta device (shapes only; see _LargeOnMeta)."""
    return agent_on_meta(cfg.agent, obs_dim, act_dim, len(task_list(cfg.task)))


def agent_on_meta(
    agent_cfg, obs_dim, act_dim: int | ActionSpec, num_tasks: int = 1, large: int | None = None
):
    """The agent of config `agent_cfg` with its tensors of `large` (default LARGE) elements or more on the
    meta device: what it is built with (its spec, its modules' shapes) at no cost in memory (large=1: every
    tensor its constructor makes, no initialisation computed at all, where only its spec is read)."""
    with _LargeOnMeta(large):
        return registry.make_agent(agent_cfg, obs_dim, act_dim, torch.device("cpu"), 0, num_tasks)


def agent_tensors(agent) -> list[torch.Tensor]:
    """Every parameter and buffer of the agent's networks and every tensor attribute, each once."""
    seen: dict[int, torch.Tensor] = {}

    def add(obj) -> None:
        if isinstance(obj, nn.Module):
            for t in (*obj.parameters(), *obj.buffers()):
                seen[id(t)] = t
        elif isinstance(obj, torch.Tensor):
            seen[id(obj)] = obj
        elif isinstance(obj, (list, tuple)):
            for x in obj:
                add(x)
        elif isinstance(obj, dict):
            for x in obj.values():
                add(x)

    for value in vars(agent).values():
        add(value)
    return list(seen.values())


def agent_modules(agent) -> list[nn.Module]:
    """The agent's networks' modules, each once, in the order they were built."""
    seen: dict[int, nn.Module] = {}
    for value in vars(agent).values():
        if isinstance(value, nn.Module):
            for m in value.modules():
                seen.setdefault(id(m), m)
    return list(seen.values())


def sample_outputs(modules: list[nn.Module], obs_shape: tuple[int, ...]) -> int:
    """Output entries per sample of every weighted layer: a linear layer's width (an ensemble's members'
    widths together), a convolution's channels x its output's height x width. A convolution reads the previous
    layer's output as a square map of its input channels, or the observation's frames when those are its input
    channels."""
    total, previous = 0, 0
    for m in modules:
        if isinstance(m, nn.Linear):
            out = m.out_features
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            side = math.isqrt(previous // m.in_channels) if previous else 0
            if len(obs_shape) == 3 and (m.in_channels == obs_shape[0] or not side):
                side = obs_shape[-1]
            out = m.out_channels * _conv_side(m, side) ** 2
        elif isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() == 3:
            out = m.weight.shape[0] * m.weight.shape[-1]  # an ensemble of linear layers [E, in, out]
        else:
            continue
        total, previous = total + out, out
    return total


def _conv_side(m: nn.Module, side: int) -> int:
    k, s, p, d = m.kernel_size[0], m.stride[0], m.padding[0], m.dilation[0]
    if isinstance(m, nn.ConvTranspose2d):
        return (side - 1) * s - 2 * p + d * (k - 1) + m.output_padding[0] + 1
    return max(1, (side + 2 * p - d * (k - 1) - 1) // s + 1)


def replay_bytes(
    transitions: int,
    episode_transitions: int,
    frame_bytes: int,
    pixels: bool,
    act_dim: int | ActionSpec,
    context_bytes: int = 0,
) -> int:
    """The replay's arrays after `transitions` (SequenceReplay: an observation of `frame_bytes` per transition
    and one more per episode, with its episode's start index for pixels and its context of `context_bytes`
    and flag where the agent keeps one; per transition its action (a box's float32 components or one int64
    index), reward, termination flag, three int64 indices and a priority), each grown by doubling, plus the
    largest one's old storage while it doubles."""
    action = as_action_spec(act_dim)
    n_obs = transitions + math.ceil(transitions / max(1, episode_transitions))
    per_obs = [frame_bytes] + [8] * pixels + ([context_bytes, 1] if context_bytes else [])
    per_transition = [8 if action.is_discrete else 4 * action.n, 4, 1, 8, 8, 8, 4]
    sizes = [_grown(n_obs) * b for b in per_obs] + [_grown(transitions) * b for b in per_transition]
    return sum(sizes) + max(sizes) // 2


def _grown(n: int) -> int:
    cap = REPLAY_START
    while cap < n:
        cap *= 2
    return cap


def run_spaces(cfg: RunConfig) -> tuple:
    """(observation width or pixel stack shape, action spec) of the run's agent, without building an env."""
    obs_dim, act_dim = task_spaces(task_list(cfg.task)[0])
    if cfg.obs == "pixels":  # frame stacks (RGB; Atari's grayscale), stored one uint8 frame per observation
        channels = suite_of(task_list(cfg.task)[0]).frame_channels
        obs_dim = (channels * cfg.frame_stack, cfg.image_size, cfg.image_size)
    return obs_dim, act_dim


def estimate(cfg: RunConfig) -> MemoryEstimate:
    """The memory the run `cfg` holds at its peak on its device (see the module's docstring)."""
    obs_dim, act_dim = run_spaces(cfg)
    pixels = cfg.obs == "pixels"
    channels = suite_of(task_list(cfg.task)[0]).frame_channels
    agent = meta_agent(cfg, obs_dim, act_dim)
    tensors = agent_tensors(agent)
    weights = sum(t.numel() * t.element_size() for t in tensors)
    trainable = sum(t.numel() * t.element_size() for t in tensors if t.requires_grad)
    obs_shape = tuple(obs_dim) if isinstance(obs_dim, tuple) else (obs_dim,)
    spec = agent.spec
    samples = spec.batch_size * spec.seq_len
    outputs = samples * sample_outputs(agent_modules(agent), obs_shape)
    for name, n in spec.network_samples.items():  # networks an update passes more (or fewer) samples through
        outputs += (n - samples) * sample_outputs(list(getattr(agent, name).modules()), obs_shape)
    activations = outputs * 4 * ACTIVATION_COPIES
    transitions = math.ceil(cfg.steps / cfg.action_repeat)
    frame_bytes = channels * cfg.image_size**2 if pixels else 4 * obs_dim
    context = spec.context_dim * spec.context_dtype.itemsize
    episode = cfg.episode_length // cfg.action_repeat
    replay = replay_bytes(transitions, episode, frame_bytes, pixels, act_dim, context)
    overhead = OVERHEAD["cuda" if cfg.device.startswith("cuda") else "cpu"]
    return MemoryEstimate(weights, 3 * trainable, replay, activations, overhead)


def available(device: torch.device) -> int:
    """Bytes the device has free now: the CUDA device's free memory, or the RAM the OS can give (Linux's
    MemAvailable, else free pages)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def seed_bytes(cfg: RunConfig) -> tuple[int, int]:
    """(in the process, in env worker processes): what a seed of `cfg` holds beyond its tensors."""
    envs = cfg.train_envs or 1
    if cfg.env_workers:
        return SEED_PROCESS, envs * ENV_WORKER
    return SEED_PROCESS + envs * ENV_IN_PROCESS, 0


def check_memory(cfg: RunConfig, device: torch.device, copies: int = 1) -> MemoryEstimate:
    """ConfigError (one line: the estimate, the memory it exceeds and the keys to lower or raise) unless
    `copies` runs of `cfg` (the K-seed mode's seeds) fit in the device's free memory or memory_limit_gb: each
    seed's tensors, envs, env workers and trainer, and one process (host memory only: on a GPU, the seeds'
    envs and workers are in RAM, beside the device's memory)."""
    one = estimate(cfg)
    process, workers = seed_bytes(cfg) if device.type == "cpu" else (0, 0)
    each = one.total - one.overhead + process + workers
    need = copies * each + one.overhead - process  # the first seed's in-process share is within the overhead
    limit = available(device) if cfg.memory_limit_gb is None else int(cfg.memory_limit_gb * GIB)
    if need > limit:
        where = "memory_limit_gb" if cfg.memory_limit_gb is not None else f"free on {device}"
        seeds = f"{copies} seeds, each {gib(each)} and one " if copies > 1 else ""
        envs = f", envs and trainer {gib(process + workers)} a seed" if copies > 1 else ""
        envs = envs or (f", env workers {gib(workers)}" if workers else "")
        remedy = _remedy(cfg, one)
        if copies > 1 and process + workers > one.total - one.overhead:  # the seeds' envs, not their tensors
            remedy = f"train fewer seeds in one group (seeds=){' or env_workers=false' * bool(workers)}"
        raise ConfigError(
            f"this run needs about {gib(need)} of memory ({seeds}{one.parts()}{envs}), more than the "
            f"{gib(limit)} {where}; {remedy}, or set memory_limit_gb=<GiB> if you know it fits "
            "(docs/configuration.md)"
        )
    return one


def _remedy(cfg: RunConfig, e: MemoryEstimate) -> str:
    """The keys that drive the estimate's largest part."""
    largest = max(("weights", "training", "replay", "activations"), key=lambda k: getattr(e, k))
    if largest == "replay":
        keys = "steps" + (", image_size or frame_stack" if cfg.obs == "pixels" else "")
        return f"the replay keeps every transition: lower {keys}"
    widths = [f"agent.{f.name}" for f in fields(cfg.agent) if f.name.endswith(("_dims", "_dim"))]
    sizes = f"the network sizes ({', '.join(widths)})" if widths else "the network sizes"
    if largest == "activations":
        batch = (
            f"agent.batch_size ({cfg.agent.batch_size})" if hasattr(cfg.agent, "batch_size") else "the batch"
        )
        return f"lower {batch} or {sizes}"
    return f"lower {sizes}"
