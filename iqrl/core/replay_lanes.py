"""The replay of a run that collects from several training envs at once (train_envs; iqrl/loop/lanes.py).

Each env's episodes go into a `SequenceReplay` of its own, so that every episode stays contiguous while the
envs' episodes overlap in time; sampling treats them as one replay, as DreamerV3's code treats its envs'
streams (embodied/core/replay.py at danijar/dreamerv3@e3f0224: one set of items, drawn uniformly, one online
queue in the order the items complete):
* B windows are drawn uniformly from the union of every env's window starts, with one host generator (the
  single-env replay's seed), the online queue's windows first;
* the online queue holds every env's completed tiles in the order they completed, across envs;
* a stored index i of env l reads i E + l for an agent (`SequenceBatch.obs_index`, `index`, and
  `write_context`), so that an agent writing contexts needs no other knowledge of the envs.
Each env's replay keeps capacity / E transitions (rounded up), as the code's FIFO over all streams keeps about
that many of each env that steps in turn.
"""

from __future__ import annotations

import dataclasses
from array import array

import torch
from torch import Tensor

from iqrl.core.replay import SequenceBatch, SequenceReplay
from iqrl.core.replay_multitask import task_shares


class LaneReplay:
    """One `SequenceReplay` per training env; the env the following `start_episode` and `add` store is `lane`
    (the trainer sets it before each agent step)."""

    def __init__(self, replays: list[SequenceReplay], seed: int):
        self.replays = replays
        self.lane = 0
        self.device = replays[0].device
        self.generator = torch.Generator().manual_seed(seed)  # on the host: the envs' slots are counted there
        # the online queue over every env: encoded starts (start E + env), oldest first
        self.online = replays[0].queue is not None
        self.queued = array("q")
        self.queue_head = 0

    @property
    def size(self) -> int:
        return sum(r.size for r in self.replays)

    @property
    def contexts(self):
        return self.replays[0].contexts

    def start_episode(self, obs) -> None:
        self.replays[self.lane].start_episode(obs)

    def add(self, action, reward: float, next_obs, terminated: bool, truncated: bool) -> None:
        r, E = self.replays[self.lane], len(self.replays)
        before = len(r.queue.host) if self.online else 0
        r.add(action, reward, next_obs, terminated, truncated)
        if self.online:  # its newly completed tiles join the queue over every env
            self.queued.extend(start * E + self.lane for start in r.queue.host[before:])

    def holds_window(self) -> bool:
        return any(r.holds_window() for r in self.replays)

    def _take_queued(self, n: int) -> list[tuple[int, int]]:
        """Up to n queued (env, start), oldest first, skipping those that left their env's capacity."""
        E, out = len(self.replays), []
        while self.queue_head < len(self.queued) and len(out) < n:
            lane, start = self.queued[self.queue_head] % E, self.queued[self.queue_head] // E
            self.queue_head += 1
            if start >= self.replays[lane].first_kept:
                out.append((lane, start))
        return out

    def sample(self, batch_size: int, seq_len: int | None = None) -> SequenceBatch:
        """B windows: the queued ones first, the rest drawn uniformly from every env's starts together."""
        E = len(self.replays)
        counts = [r.usable_starts for r in self.replays]
        if not sum(counts):
            raise RuntimeError("replay holds no complete window yet")
        queued = self._take_queued(batch_size) if self.online else []
        pick = torch.randint(sum(counts), (batch_size - len(queued),), generator=self.generator)
        bounds = torch.tensor(counts).cumsum(0)
        lane = torch.searchsorted(bounds, pick, right=True)  # the env of each drawn slot
        slot = pick - (bounds - torch.tensor(counts))[lane]
        lane = torch.cat([torch.tensor([q[0] for q in queued], dtype=torch.int64), lane])
        parts, rows = [], []
        for i, r in enumerate(self.replays):
            mine = (lane[len(queued) :] == i).nonzero().squeeze(1)
            start = torch.cat(
                [
                    torch.tensor([s for q, s in queued if q == i], dtype=torch.int64, device=self.device),
                    r.start_at(slot[mine].to(self.device)),
                ]
            )
            if len(start):
                parts.append(_encoded(r.windows(start, seq_len), E, i))
                rows += [k for k, (q, _) in enumerate(queued) if q == i] + (mine + len(queued)).tolist()
        order = torch.argsort(torch.tensor(rows)).to(self.device)  # the queue's order, then the draws'
        fields = [f.name for f in dataclasses.fields(SequenceBatch)]
        return SequenceBatch(
            **{
                k: None if getattr(parts[0], k) is None else torch.cat([getattr(p, k) for p in parts])[order]
                for k in fields
            }
        )

    def write_context(self, obs_index: Tensor, values: Tensor, keep: Tensor | None = None) -> None:
        """`SequenceReplay.write_context` for encoded indices: each env's rows into its own replay."""
        E = len(self.replays)
        for i, r in enumerate(self.replays):
            mine = obs_index % E == i
            r.write_context(obs_index // E, values, mine if keep is None else mine & keep)

    def sample_obs(self, n: int, generator: torch.Generator | None = None, replace: bool = True) -> Tensor:
        """n observations, equal shares from each env's replay (diagnostics)."""
        shares = task_shares(n, len(self.replays))
        return torch.cat([r.sample_obs(k, generator, replace) for r, k in zip(self.replays, shares) if k])

    def state_dict(self) -> dict:
        return {
            "lanes": [r.state_dict() for r in self.replays],
            "lane": self.lane,
            "generator": self.generator.get_state(),
            "queued": torch.tensor(self.queued.tolist(), dtype=torch.int64),
            "queue_head": self.queue_head,
        }

    def load_state_dict(self, state: dict) -> None:
        for replay, s in zip(self.replays, state["lanes"], strict=True):
            replay.load_state_dict(s)
        self.lane = state["lane"]
        self.generator.set_state(state["generator"].cpu())
        self.queued = array("q", state["queued"].tolist())
        self.queue_head = state["queue_head"]


def _encoded(batch: SequenceBatch, E: int, lane: int) -> SequenceBatch:
    """Env `lane`'s windows with their stored indices read i E + lane."""
    enc = {k: getattr(batch, k) * E + lane for k in ("index", "obs_index") if getattr(batch, k) is not None}
    return dataclasses.replace(batch, **enc)
