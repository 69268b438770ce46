"""Two options of the sequence replay (iqrl/core/replay.py) for an agent with a recurrent state (DreamerV3,
baselines/dreamerv3.py), each kept by a small store the replay holds:

* `ContextStore` (`SequenceReplay(context_dim=...)`): a context vector per stored observation, which the agent
  writes (its state after that observation: when it acted on it, and after each update that replayed it) and
  each sampled window hands back for its first observation (`SequenceBatch.context`, `has_context`), so that
  an update starts the window from the state the agent last computed there (DreamerV3's `replay_context`).
* `OnlineQueue` (`SequenceReplay(online=True)`): every `seq_len`-th window of each episode is queued as it
  completes (tiles of its transitions; at a termination the padded window over the rest, at a truncation the
  last full one), and a sample takes the queued windows first, oldest first, before drawing the rest
  (DreamerV3's online queue, embodied/core/replay.py at danijar/dreamerv3@e3f0224: every new step is
  replayed soon after it is collected).

Both live on the replay's device and go into its checkpoint. Neither knows which agent writes or samples.
"""

from __future__ import annotations

from array import array

import torch
from torch import Tensor


class ContextStore:
    """Per observation: a context row [dim] of `dtype` and whether one was written. Rows beyond the stored
    observations read as none; one spare row past them takes the writes `write` discards."""

    def __init__(self, dim: int, dtype: torch.dtype, device: torch.device, capacity: int):
        self.dim = dim
        self.values = torch.zeros((capacity + 1, dim), dtype=dtype, device=device)
        self.written = torch.zeros(capacity + 1, dtype=torch.bool, device=device)

    def reserve(self, n_obs: int) -> None:
        """Room for n_obs observations and the spare row (grown by doubling, new rows unwritten)."""
        if n_obs + 1 <= self.values.shape[0]:
            return
        cap = self.values.shape[0]
        while cap < n_obs + 1:
            cap *= 2
        for name in ("values", "written"):
            old = getattr(self, name)
            new = torch.zeros((cap, *old.shape[1:]), dtype=old.dtype, device=old.device)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    def read(self, obs_index: Tensor) -> dict[str, Tensor]:
        """The fields of a batch for the observations obs_index [B]: `context` [B, dim] (float32, zeros where
        none was written) and `has_context` [B] (bool)."""
        return {"context": self.values[obs_index].float(), "has_context": self.written[obs_index]}

    def write(self, n_obs: int, obs_index: Tensor, values: Tensor, keep: Tensor | None = None) -> None:
        """Rows values [..., dim] for the observations obs_index [...] (int64), where `keep` [...] (bool;
        None: all) holds and the index is one of the n_obs stored. An index given twice keeps the value
        given last, as a loop of single writes would. No host-device sync: the discarded writes go to the
        spare row, which is cleared after."""
        self.reserve(n_obs)
        idx = obs_index.reshape(-1)
        write = idx < n_obs if keep is None else keep.reshape(-1) & (idx < n_obs)
        eff = torch.where(write, idx, -1)
        order = torch.argsort(eff, stable=True)
        s = eff[order]
        last = torch.cat([s[1:] != s[:-1], torch.ones_like(s[:1], dtype=torch.bool)])
        spare = self.values.shape[0] - 1  # past every stored observation (`reserve`)
        target = torch.where(last & (s >= 0), s, spare)
        self.values.index_copy_(0, target, values.reshape(idx.shape[0], -1)[order].to(self.values.dtype))
        self.written.index_fill_(0, target, True)
        self.values[spare] = 0
        self.written[spare] = False

    def state_dict(self, n_obs: int) -> dict:
        return {
            "context": self.values[:n_obs].cpu().clone(),
            "has_context": self.written[:n_obs].cpu().clone(),
        }

    def load_state_dict(self, state: dict, n_obs: int) -> None:
        self.values.zero_()
        self.written.zero_()
        self.reserve(n_obs)
        if "context" in state:
            self.values[:n_obs] = state["context"].to(self.values.device, self.values.dtype)
            self.written[:n_obs] = state["has_context"].to(self.written.device)


class OnlineQueue:
    """The queued window starts (transition indices), oldest first: on the device for sampling, with a host
    copy for the eviction check, so that taking them never reads the device."""

    def __init__(self, seq_len: int, device: torch.device):
        self.seq_len = seq_len
        self.starts = torch.empty(0, dtype=torch.int64, device=device)
        self.host = array("q")
        self.head = 0  # the first start not taken yet
        self.uploaded = 0  # starts already on the device

    def completed(self, t: int, ep_start: int, terminated: bool, truncated: bool) -> None:
        """After transition t of the episode that began at ep_start: queue the window that ends at t when t
        completes a tile of seq_len transitions of the episode; at the episode's end the rest (terminated: the
        padded window from the last tile's end; truncated: the last full window, when there are more than
        seq_len transitions)."""
        done, L = t - ep_start + 1, self.seq_len
        if done % L == 0:
            self.host.append(t - L + 1)
        elif terminated:
            self.host.append(ep_start + done // L * L)
        elif truncated and done > L:
            self.host.append(t - L + 1)

    def take(self, n: int, first_kept: int) -> Tensor:
        """Up to n queued starts [k], oldest first, taken off the queue; those whose window has left the
        replay's capacity (start < first_kept) are skipped."""
        if self.uploaded < len(self.host):  # new starts: one copy, as the replay uploads its arrays
            new = torch.tensor(self.host[self.uploaded :].tolist(), dtype=torch.int64)
            self.starts = torch.cat([self.starts, new.to(self.starts.device)])
            self.uploaded = len(self.host)
        head = self.head
        while head < len(self.host) and self.host[head] < first_kept:
            head += 1
        k = min(n, len(self.host) - head)
        self.head = head + k
        return self.starts[head : head + k]

    def state_dict(self) -> dict:
        return {"online": torch.tensor(self.host.tolist(), dtype=torch.int64), "online_head": self.head}

    def load_state_dict(self, state: dict) -> None:
        self.host = array("q", state.get("online", torch.zeros(0, dtype=torch.int64)).tolist())
        self.head = state.get("online_head", 0)
        self.starts = self.starts[:0]
        self.uploaded = 0
