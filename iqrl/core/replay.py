"""Sequence replay on the training device, and n-step targets.

Transitions are stored once: an episode of T steps keeps T+1 observations, T actions, rewards and
termination flags. `sample` draws windows of L consecutive transitions that lie inside one episode
(windows whose episode *terminated* may run past the terminal step; those steps are padded and marked
invalid). Truncated (time-limit) episodes never produce a window that crosses the reset. Discrete actions
(iqrl/core/spaces.py) are stored as one int64 index per transition and sampled as indices [B, L].

Pixel observations (uint8 frame stacks [k C, H, W], newest frame last) are stored one frame per
observation, each frame once, with the index of its episode's first observation; the stack of o_t is
assembled when sampled: frames t-k+1 .. t, each clamped to the episode's first frame (the stack the
environment showed after its reset, `iqrl.envs.dmc.PixelEnv`), or with `zero_history` those before the
episode's first frame zeros (Atari 100k's stacks, iqrl.envs.atari).

LAP (loss-adjusted prioritised replay, Fujimoto et al. 2020, arXiv 2007.06049) is built in: every
transition carries a priority (new ones get the current max priority, which starts at 1);
`sample(..., prioritized=True)` draws window starts with probability proportional to the priority of
their first transition (no importance weights); `update_priorities` writes priorities back. DR.Q's faded
prioritised replay (`fade_decay` < 1) multiplies each priority by the fade of its transition's age,
`fade_weight`, when sampling; the stored priorities stay as written.

Two options serve an agent with a recurrent state (iqrl/core/replay_options.py): a context per observation
that the agent writes and each window hands back for its first observation (`context_dim`), and a queue of
every episode's newest windows that samples take first (`online`).
"""

from __future__ import annotations

import dataclasses
from array import array
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils._pytree import register_dataclass

from iqrl.core.replay_options import ContextStore, OnlineQueue
from iqrl.core.spaces import ActionSpec, as_action_spec
from iqrl.nn.maths import random_shift, shift_offsets

_NO_TERMINAL = torch.iinfo(torch.int64).max


@dataclass
class SequenceBatch:
    """A batch of B windows of L transitions (all tensors on the replay's device).

    obs [B, L+1, obs_dim] (pixels: uint8 [B, L+1, k C, H, W]): o_t .. o_{t+L};
    action [B, L, A] (discrete actions: int64 indices [B, L]);  reward [B, L];
    terminal [B, L]: true terminations (0 on DMC);  valid [B, L]: 1 up to and including the first
    terminal step, 0 after it;  index [B]: buffer index of each window's first transition (in its task's
    replay);  task [B] (int64, multi-task runs only, `MultiTaskReplay`): the task index of each window;
    obs_index, context, has_context: see the fields.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    terminal: Tensor
    valid: Tensor
    index: Tensor
    task: Tensor | None = None
    # [B, L+1] (int64): the stored index of each observation o_t .. o_{t+L} (`SequenceReplay.write_context`)
    obs_index: Tensor | None = None
    # with `context_dim` > 0: [B, context_dim] float32, the context written for each window's first
    # observation o_t (zeros where none was), and has_context [B] (bool), whether one was
    context: Tensor | None = None
    has_context: Tensor | None = None

    def __len__(self) -> int:
        return self.obs.shape[0]


# A pytree of its tensors: the K-seed mode stacks the seeds' batches field by field (iqrl/multiseed/).
register_dataclass(SequenceBatch)


def shift_window(batch: SequenceBatch, pad: int, generator: torch.Generator) -> SequenceBatch:
    """DrQ's random shift (`iqrl.nn.maths.random_shift`) of every frame stack o_t .. o_{t+L} of a pixel
    window, each by its own offsets, drawn from `generator` (B (L+1) draws); pad 0 leaves the batch as it
    is."""
    if pad == 0:
        return batch
    frames = batch.obs.flatten(0, 1)
    shifted = random_shift(frames, pad, shift_offsets(frames.shape[0], pad, generator))
    return dataclasses.replace(batch, obs=shifted.view_as(batch.obs))


def nstep_targets(
    reward: Tensor,
    terminal: Tensor,
    valid: Tensor,
    gamma: float,
    n: int,
    unit_discount_n1: bool = False,
    ignore_terminal: bool = False,
    drop_terminal_reward: bool = False,
):
    """n-step return, bootstrap discount and bootstrap observation index of each window.

    reward, terminal, valid: [B, L] with L >= n.  Returns (ret [B], discount [B], boot [B]):
      ret = sum_{k<m} gamma^k r_k, with m = number of steps up to and including the first terminal
      (at most n); discount = gamma^m * (1 - terminated); boot = m, the index into obs [B, L+1] of
      the bootstrap observation. Time-limit truncation is not termination: it bootstraps.
    Official-code quirks, off by default: `unit_discount_n1` uses discount 1 (not gamma) when n = 1
    (docs/faithfulness.md); `ignore_terminal` never zeroes the bootstrap (terminal flags always 0 when n > 1);
    `drop_terminal_reward` leaves the terminal step's reward out of the return (MR.Q's code, MRQ-1).
    """
    r, d, v = reward[:, :n].float(), terminal[:, :n].float(), valid[:, :n].float()
    if ignore_terminal and n > 1:
        d = torch.zeros_like(d)
    # alive_k = valid_k * prod_{j<k} (1 - d_j): step k is accumulated if no earlier step terminated.
    not_done_before = torch.cumprod(torch.cat([torch.ones_like(d[:, :1]), 1.0 - d[:, :-1]], 1), 1)
    alive = v * not_done_before
    powers = gamma ** torch.arange(n, device=reward.device, dtype=torch.float32)
    ret = (r * (alive * (1.0 - d) if drop_terminal_reward else alive) * powers).sum(1)
    m = alive.sum(1)
    terminated = (d * alive).amax(1)
    if n == 1 and unit_discount_n1:
        discount = 1.0 - terminated
    else:
        discount = gamma**m * (1.0 - terminated)
    return ret, discount, m.long()


def nstep_transition(
    batch: SequenceBatch,
    gamma: float,
    n: int,
    encode=None,
    unit_discount_n1: bool = False,
    ignore_terminal: bool = False,
    drop_terminal_reward: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The actor-critic's inputs of a sampled window: (x_t, a_t, R, discount, x_boot).

    R and discount are `nstep_targets`; x_boot is the observation the target bootstraps from (o_{t+m}).
    With `encode` (a representation, e.g. iQRL's quantized encoder), x = encode(o) for both observations
    in one forward pass under no_grad: the RL losses never send gradients into the representation.
    """
    ret, discount, boot = nstep_targets(
        batch.reward,
        batch.terminal,
        batch.valid,
        gamma,
        n,
        unit_discount_n1=unit_discount_n1,
        ignore_terminal=ignore_terminal,
        drop_terminal_reward=drop_terminal_reward,
    )
    B = len(batch)
    o_boot = batch.obs[torch.arange(B, device=boot.device), boot]
    if encode is None:
        return batch.obs[:, 0], batch.action[:, 0], ret, discount, o_boot
    with torch.no_grad():
        x = encode(torch.cat([batch.obs[:, 0], o_boot], 0))
    return x[:B], batch.action[:, 0], ret, discount, x[B:]


def fade_weight(age: Tensor, decay: float, floor: float) -> Tensor:
    """DR.Q's fade of a transition `age` transitions old (0: the newest): clamp(decay^age, floor, 1), in
    float64. DR.Q's buffer multiplies every weight by `decay` at each stored transition and sets the new one's
    to 1 (DR.Q/buffer.py lines 91-92 at cc307a5), which is decay^age."""
    return torch.pow(decay, age.double()).clamp(floor, 1.0)


def lap_priority(td_abs: Tensor, alpha: float = 0.4, min_priority: float = 1.0) -> Tensor:
    """LAP priority of each sample, p = max(max_heads |delta|, min_priority)^alpha.

    td_abs [B, heads] (absolute TD errors of every critic head) -> [B]."""
    return td_abs.detach().amax(-1).clamp(min=min_priority).pow(alpha)


class SequenceReplay:
    """Replay storing whole episodes contiguously; samples windows of `seq_len` transitions.

    Storage grows by doubling and keeps every transition. `capacity` (transitions; None = unbounded, as
    the official iQRL code whose 10M buffer never fills) makes it a FIFO for learning: windows are drawn
    only from the newest `capacity` transitions, and the LAP maximum and the reward scale look at those
    only, as a ring buffer of that size would (TD7's and MR.Q's 1M). The older data stay in memory.
    """

    def __init__(
        self,
        obs_dim: int | tuple[int, int, int],
        act_dim: int | ActionSpec,
        seq_len: int,
        device: str | torch.device = "cpu",
        seed: int = 0,
        initial_capacity: int = 4096,
        capacity: int | None = None,
        frame_stack: int = 1,
        context_dim: int = 0,
        context_dtype: torch.dtype = torch.float32,
        online: bool = False,
        zero_history: bool = False,
    ):
        """obs_dim: the width of state vectors, or the shape (k C, H, W) of pixel frame stacks of
        `frame_stack` = k frames (stored one frame of C channels per observation). act_dim: the task's
        ActionSpec, or an int for a box of that many dims; discrete actions are stored as one int64 index
        each (not one-hot). context_dim (> 0: a context of that width and `context_dtype` per observation),
        online: the options of iqrl/core/replay_options.py. zero_history: see above."""
        if seq_len < 1:
            raise ValueError("seq_len must be >= 1")
        if capacity is not None and capacity < seq_len:
            raise ValueError(f"replay capacity must be >= seq_len ({seq_len}), got {capacity}")
        self.capacity, self.frame_stack = capacity, frame_stack
        self.action_spec = as_action_spec(act_dim)
        self.obs_dim, self.act_dim, self.seq_len = obs_dim, self.action_spec.width, seq_len
        # per transition: a box's [act_dim] float32 components, or one int64 index
        self._act_shape = () if self.action_spec.is_discrete else (self.act_dim,)
        self.pixels = isinstance(obs_dim, (tuple, list))
        self.zero_history = zero_history
        if self.pixels:
            channels, h, w = obs_dim
            if channels % frame_stack:
                raise ValueError(f"{channels} channels are not {frame_stack} stacked frames")
            self.frame_shape = (channels // frame_stack, h, w)  # what is stored per observation
        else:
            self.frame_shape = (obs_dim,)
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        cap = initial_capacity
        dtype = torch.uint8 if self.pixels else torch.float32
        self._obs = torch.empty((cap, *self.frame_shape), dtype=dtype, device=self.device)
        # pixels: the obs index of each observation's episode start (where its frame stack stops)
        self._ep_first = torch.empty(cap if self.pixels else 0, dtype=torch.int64, device=self.device)
        act_dtype = torch.int64 if self.action_spec.is_discrete else torch.float32
        self._act = torch.empty((cap, *self._act_shape), dtype=act_dtype, device=self.device)
        self._rew = torch.empty(cap, device=self.device)
        self._term = torch.zeros(cap, dtype=torch.bool, device=self.device)
        self._obs_ptr = torch.empty(cap, dtype=torch.int64, device=self.device)  # o_t of transition t
        self._term_at = torch.empty(cap, dtype=torch.int64, device=self.device)  # terminal step of episode
        self._starts = torch.empty(cap, dtype=torch.int64, device=self.device)  # valid window starts
        self._prio = torch.ones(cap, device=self.device)  # LAP priority of each transition
        self.contexts = ContextStore(context_dim, context_dtype, self.device, cap) if context_dim else None
        self.queue = OnlineQueue(seq_len, self.device) if online else None
        self._max_prio = torch.ones((), device=self.device)  # a tensor: no host sync per update
        self.has_terminal = False  # whether any stored transition is a true termination (MR.Q)
        self.n_obs = 0  # observations stored
        self.size = 0  # transitions stored
        self.n_starts = 0
        self._ep_start = -1  # first transition index of the open episode, -1 if none is open
        self._ep_first_obs = 0  # obs index of the open episode's first observation
        # Host copy of the window starts (ascending) and the first slot still inside the capacity:
        # eviction is decided in add() without reading the device.
        self._starts_host = array("q")
        self._first_start = 0
        self._clear_staged()

    # ------------------------------------------------------------------ storage
    # What add() and start_episode() receive is staged on the host and uploaded in one copy per array when
    # the replay is next read (`_upload`, at the top of every reader): an agent that updates after its
    # episodes uploads each episode once instead of making a few small host-to-device copies per env step.
    def _clear_staged(self) -> None:
        self._staged: dict[str, list] = {
            k: [] for k in ("obs", "ep_first", "act", "rew", "term", "obs_ptr", "starts")
        }
        self._uploaded = (self.n_obs, self.size, self.n_starts)  # counts already on the device

    def _upload(self) -> None:
        s = self._staged
        if not (s["obs"] or s["act"] or s["starts"]):
            return
        n_obs, size, n_starts = self._uploaded
        obs_dtype = np.uint8 if self.pixels else np.float32
        rows = [
            ("_obs", n_obs, np.asarray(s["obs"], obs_dtype).reshape(-1, *self.frame_shape)),
            ("_act", size, np.asarray(s["act"], self.action_spec.dtype).reshape(-1, *self._act_shape)),
            ("_rew", size, np.asarray(s["rew"], np.float32)),
            ("_term", size, np.asarray(s["term"], bool)),
            ("_obs_ptr", size, np.asarray(s["obs_ptr"], np.int64)),
            ("_term_at", size, np.full(len(s["act"]), _NO_TERMINAL, np.int64)),
            ("_starts", n_starts, np.asarray(s["starts"], np.int64)),
        ]
        if self.pixels:
            rows.append(("_ep_first", n_obs, np.asarray(s["ep_first"], np.int64)))
        for name, at, values in rows:
            self._grow(name, at + len(values))
            getattr(self, name)[at : at + len(values)] = torch.from_numpy(values).to(self.device)
        self._grow("_prio", self.size)
        self._prio[size : self.size] = self._max_prio  # new transitions get the current maximum (LAP)
        if self.contexts is not None:
            self.contexts.reserve(self.n_obs)
        self._clear_staged()

    def _grow(self, name: str, needed: int) -> None:
        t = getattr(self, name)
        if needed <= t.shape[0]:
            return
        cap = t.shape[0]
        while cap < needed:
            cap *= 2
        new = torch.empty((cap,) + tuple(t.shape[1:]), dtype=t.dtype, device=t.device)
        new[: t.shape[0]] = t
        setattr(self, name, new)

    def _stage_obs(self, obs) -> None:
        """Stage one observation: a state vector, or the newest frame of a pixel stack (the older frames
        of the stack are stored already, or are the episode's first frame repeated)."""
        if self.pixels:
            obs = np.asarray(obs, np.uint8)[-self.frame_shape[0] :]
        self._staged["obs"].append(np.asarray(obs, np.uint8 if self.pixels else np.float32))
        self._staged["ep_first"].append(self._ep_first_obs)
        self.n_obs += 1

    def start_episode(self, obs) -> None:
        """Store the first observation of a new episode."""
        self._ep_first_obs = self.n_obs
        self._stage_obs(obs)
        self._ep_start = self.size

    def add(self, action, reward: float, next_obs, terminated: bool, truncated: bool) -> None:
        """Store one transition (o_t was stored by the previous call or start_episode)."""
        if self._ep_start < 0:
            raise RuntimeError("start_episode() must be called before add()")
        t, s = self.size, self._staged
        s["act"].append(np.asarray(action, self.action_spec.dtype))
        s["rew"].append(float(reward))
        s["term"].append(bool(terminated))
        s["obs_ptr"].append(self.n_obs - 1)
        self._stage_obs(next_obs)
        self.has_terminal = self.has_terminal or bool(terminated)
        self.size += 1
        # The window that ends at t is now complete.
        new_starts = [t - self.seq_len + 1] if t - self.seq_len + 1 >= self._ep_start else []
        if terminated:
            # Windows that run past a true terminal are valid (padded, masked by `valid`).
            first = max(self._ep_start, t - self.seq_len + 2)
            new_starts += list(range(first, t + 1))
        if new_starts:
            self._staged["starts"] += new_starts
            self.n_starts += len(new_starts)
            if self.capacity is not None:  # the host copy serves eviction only
                self._starts_host.extend(new_starts)
        if self.queue is not None:
            self.queue.completed(t, self._ep_start, terminated, truncated)
        if terminated:  # (true terminations are rare: none in the DMC suite)
            self._upload()
            self._term_at[self._ep_start : t + 1] = t
        self._evict()
        if terminated or truncated:
            self._ep_start = -1

    @property
    def first_kept(self) -> int:
        """Index of the oldest transition inside the capacity (0 when unbounded)."""
        return 0 if self.capacity is None else max(0, self.size - self.capacity)

    def _evict(self) -> None:
        """Advance the first usable start past windows that begin before the oldest kept transition."""
        lo = self.first_kept
        while lo and self._first_start < self.n_starts and self._starts_host[self._first_start] < lo:
            self._first_start += 1

    # ------------------------------------------------------------------ sampling
    def holds_window(self) -> bool:
        """Whether `sample` can draw a window: L transitions inside one episode (host counters only)."""
        return self.n_starts > self._first_start

    def sample(
        self,
        batch_size: int,
        seq_len: int | None = None,
        prioritized: bool = False,
        fade_decay: float = 1.0,
        fade_floor: float = 0.0,
    ) -> SequenceBatch:
        """B windows drawn from the valid starts; seq_len <= the replay's seq_len.

        Uniformly, or with `prioritized` with probability proportional to the start's LAP priority, times
        `fade_weight(age, fade_decay, fade_floor)` of the start's age when `fade_decay` < 1 (DR.Q).
        The starts are the same either way (valid for the replay's own window length)."""
        self._upload()
        L = self.seq_len if seq_len is None else seq_len
        if L > self.seq_len:
            raise ValueError(f"seq_len {L} exceeds the replay's window length {self.seq_len}")
        first, n = self._first_start, self.n_starts - self._first_start
        if n <= 0:
            raise RuntimeError("replay holds no complete window yet")
        # online: the queued windows first, the rest drawn
        queued = None if self.queue is None else self.queue.take(batch_size, self.first_kept)
        draws = batch_size if queued is None else batch_size - queued.shape[0]
        if prioritized:
            pick = self._sample_by_priority(draws, fade_decay, fade_floor)
        else:
            pick = torch.randint(n, (draws,), generator=self.generator, device=self.device)
        if first:
            pick = pick + first
        start = self._starts[pick] if queued is None else torch.cat([queued, self._starts[pick]])
        return self.windows(start, L)

    def start_at(self, slot: Tensor) -> Tensor:
        """The window starts at slots [n] of the usable ones (0 .. `usable_starts` - 1, oldest first)."""
        self._upload()
        return self._starts[slot + self._first_start]

    @property
    def usable_starts(self) -> int:
        """How many window starts `sample` draws from (host counters only)."""
        return self.n_starts - self._first_start

    def windows(self, start: Tensor, L: int | None = None) -> SequenceBatch:
        """The windows of L transitions (the replay's seq_len by default) that begin at the transitions
        start [B]."""
        self._upload()
        L = self.seq_len if L is None else L
        steps = start[:, None] + torch.arange(L, device=self.device)  # [B, L]
        limit = self._term_at[start][:, None]
        valid = steps <= limit
        steps = torch.minimum(steps, limit)
        # o_t, then the next observation of each (clamped) step: past a terminal every padded slot holds
        # the terminal transition's real next observation (within an episode obs_ptr[s] + 1 = obs_ptr[s + 1])
        obs_idx = torch.cat([self._obs_ptr[start][:, None], self._obs_ptr[steps] + 1], 1)  # [B, L+1]
        return SequenceBatch(
            obs=self.observations(obs_idx),
            action=self._act[steps],
            reward=self._rew[steps],
            terminal=self._term[steps] & valid,
            valid=valid.float(),
            index=start,
            obs_index=obs_idx,
            **({} if self.contexts is None else self.contexts.read(obs_idx[:, 0])),
        )

    def write_context(self, obs_index: Tensor, values: Tensor, keep: Tensor | None = None) -> None:
        """Context rows values [..., context_dim] of the stored observations obs_index [...] where `keep`
        [...] holds (`ContextStore.write`: the last of repeated indices wins, no host-device sync)."""
        self._upload()
        self.contexts.write(self.n_obs, obs_index, values, keep)

    def observations(self, obs_idx: Tensor) -> Tensor:
        """The observations at stored indices obs_idx [...]: state vectors [..., obs_dim], or pixel stacks
        [..., k C, H, W] of frames obs_idx - k + 1 .. obs_idx, none before its episode's first frame."""
        self._upload()
        if not self.pixels:
            return self._obs[obs_idx]
        back = torch.arange(self.frame_stack - 1, -1, -1, device=self.device)  # oldest frame first
        wanted, first = obs_idx[..., None] - back, self._ep_first[obs_idx][..., None]
        stack = self._obs[torch.maximum(wanted, first)]  # [..., k, C, H, W]
        if self.zero_history:
            stack = stack * (wanted >= first)[..., None, None, None].to(stack.dtype)
        return stack.flatten(-4, -3)  # [..., k, C, H, W] -> [..., k C, H, W]

    def _sample_by_priority(
        self, batch_size: int, fade_decay: float = 1.0, fade_floor: float = 0.0
    ) -> Tensor:
        """Slots into _starts drawn with probability p_i / sum p (cumulative sum + binary search); p_i times
        its start's fade with `fade_decay` < 1.

        float64 sums: with ~1e6 priorities a float32 cumulative sum has a spacing near 1 at its end and
        would blur single priorities."""
        starts = self._starts[self._first_start : self.n_starts]
        p = self._prio[starts].double()
        if fade_decay < 1.0:
            p = p * fade_weight(self.size - 1 - starts, fade_decay, fade_floor)
        csum = torch.cumsum(p, 0)
        u = (
            torch.rand(batch_size, generator=self.generator, device=self.device, dtype=torch.float64)
            * csum[-1]
        )
        return torch.searchsorted(csum, u, right=True).clamp_(max=len(csum) - 1)

    # ------------------------------------------------------------------ LAP priorities
    @property
    def max_priority(self) -> float:
        return float(self._max_prio)

    def update_priorities(self, index: Tensor, priority: Tensor) -> None:
        """p[index] <- priority, and max_priority <- max(max_priority, max(priority)).

        An index drawn twice in one batch keeps the larger of its priorities (deterministic; the
        official code keeps an arbitrary one)."""
        self._upload()
        priority = priority.detach().reshape(-1).to(self._prio.dtype)
        self._prio.scatter_reduce_(0, index.reshape(-1), priority, reduce="amax", include_self=False)
        self._max_prio = torch.maximum(self._max_prio, priority.max())

    def reset_max_priority(self) -> None:
        """max_priority <- the largest priority currently stored (TD7, every 250 updates)."""
        self._upload()
        if self.size:
            self._max_prio = self._prio[self.first_kept : self.size].max()

    def reward_abs_mean(self, eps: float = 1e-8) -> float:
        """Mean |r| over the stored transitions (inside the capacity), at least eps; 1 when empty (MR.Q's
        reward scale)."""
        if self.size == 0:
            return 1.0
        self._upload()
        return float(self._rew[self.first_kept : self.size].abs().mean().clamp(min=eps))

    def sample_obs(self, n: int, generator: torch.Generator | None = None, replace: bool = True) -> Tensor:
        """n observations o_t drawn uniformly from the stored transitions (inside the capacity).

        With replacement by default. `replace=False`: n distinct transitions (a uniform random subset in
        random order), or all of them in random order when fewer than n are stored (fewer rows)."""
        self._upload()
        g = self.generator if generator is None else generator
        lo = self.first_kept
        if replace:
            idx = torch.randint(self.size - lo, (n,), generator=g, device=self.device)
        else:
            idx = torch.randperm(self.size - lo, generator=g, device=self.device)[:n]
        return self.observations(self._obs_ptr[idx + lo])

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        self._upload()
        pixels = {"ep_first": self._ep_first[: self.n_obs].cpu().clone()} if self.pixels else {}
        return {
            **pixels,
            "obs": self._obs[: self.n_obs].cpu().clone(),
            "act": self._act[: self.size].cpu().clone(),
            "rew": self._rew[: self.size].cpu().clone(),
            "term": self._term[: self.size].cpu().clone(),
            "obs_ptr": self._obs_ptr[: self.size].cpu().clone(),
            "term_at": self._term_at[: self.size].cpu().clone(),
            "starts": self._starts[: self.n_starts].cpu().clone(),
            "prio": self._prio[: self.size].cpu().clone(),
            "max_prio": self._max_prio.cpu().clone(),
            "ep_start": self._ep_start,
            "generator": self.generator.get_state(),
            "seq_len": self.seq_len,
            **({} if self.contexts is None else self.contexts.state_dict(self.n_obs)),
            **({} if self.queue is None else self.queue.state_dict()),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["seq_len"] != self.seq_len:
            raise ValueError("checkpoint replay window length differs from this agent's")
        self.n_obs, self.size, self.n_starts = len(state["obs"]), len(state["act"]), len(state["starts"])
        for name, key, n in (
            ("_obs", "obs", self.n_obs),
            ("_act", "act", self.size),
            ("_rew", "rew", self.size),
            ("_term", "term", self.size),
            ("_obs_ptr", "obs_ptr", self.size),
            ("_term_at", "term_at", self.size),
            ("_starts", "starts", self.n_starts),
            *([("_ep_first", "ep_first", self.n_obs)] if self.pixels else []),
        ):
            self._grow(name, max(n, 1))
            getattr(self, name)[:n] = state[key].to(self.device)
        self._ep_start = state["ep_start"]
        self._ep_first_obs = int(self._ep_first[self.n_obs - 1]) if self.pixels and self.n_obs else 0
        self._starts_host = array("q", state["starts"].tolist() if self.capacity is not None else [])
        self._first_start = 0
        self._evict()
        self.generator.set_state(state["generator"].cpu())
        self._grow("_prio", max(self.size, 1))
        self._prio[: self.size] = state["prio"].to(self.device) if "prio" in state else 1.0
        self._max_prio = state.get("max_prio", torch.ones(())).to(self.device)
        self.has_terminal = bool(state["term"].any())
        if self.contexts is not None:
            self.contexts.load_state_dict(state, self.n_obs)
        if self.queue is not None:
            self.queue.load_state_dict(state)
        self._clear_staged()
