"""No host-device synchronisation in any agent's `update` or `act`, checked without a GPU.

On a GPU, an operation whose result the host must read (`.item()`, `nonzero`, boolean-mask indexing,
`multinomial`'s argument checks) or a copy between devices makes the host wait for every queued kernel: the
update then runs at the speed of its slowest round trip, and it cannot be captured as a CUDA graph. These
operations are the same on the CPU, so a dispatch-level guard catches them here: it records every such
operator that runs under it, with the line of this project that called it.
"""

from __future__ import annotations

import traceback

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from iqrl.bench.hostshare import synchronises
from iqrl.nn.optim import detached_weights

from agent_helpers import agent_and_replay
from conftest import agent_observations

aten = torch.ops.aten


class SyncGuard(TorchDispatchMode):
    """Records the operators under it that synchronise host and device: those the host-share bench counts
    (`synchronises`), and copies between devices (`_to_copy` / `copy_` whose source and result live on
    different devices)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if synchronises(func, args) or self._crosses_devices(func, args, out):
            here = [f for f in traceback.extract_stack() if "site-packages" not in f.filename][-2:-1]
            self.found.append(f"{func} at {here[0].filename}:{here[0].lineno}" if here else str(func))
        return out

    @staticmethod
    def _crosses_devices(func, args, out) -> bool:
        if func.overloadpacket not in (aten._to_copy, aten.copy_):
            return False
        src = args[1] if func.overloadpacket is aten.copy_ else args[0]
        return isinstance(src, torch.Tensor) and isinstance(out, torch.Tensor) and src.device != out.device


def test_the_guard_sees_each_kind_of_synchronisation():
    x = torch.arange(6.0)
    cases = {
        "item": lambda: x.sum().item(),
        "float()": lambda: float(x.max()),
        "bool": lambda: bool(x.sum() > 0),
        "nonzero": lambda: torch.nonzero(x),
        "mask index": lambda: x[x > 2],
        "mask assignment": lambda: x.clone().__setitem__(x > 2, 0.0),
        "multinomial": lambda: torch.multinomial(x + 1, 2),
        "to meta": lambda: x.to("meta"),
    }
    for name, op in cases.items():
        with SyncGuard() as guard:
            op()
        assert guard.found, name
    with SyncGuard() as guard:
        (x * 2).softmax(0).argmax()  # stays on the device
        torch.where(x > 2, x, 0.0)
    assert not guard.found


@pytest.mark.registry
@pytest.mark.computes
def test_update_and_act_never_synchronise(agent):
    """Six updates under the guard (after three outside it: lazy state such as optimizer moments is made on
    the first steps), covering actor steps and target updates, then acting with and without exploration
    (on a GPU `act` ends by copying the action to the host for the environment: its one wait per step)."""
    model, replay, rng = agent_and_replay(agent)
    for step in range(3):
        model.update(replay, step)
    with SyncGuard() as guard:
        for step in range(3, 9):
            model.update(replay, step)
        obs = agent_observations(agent).sample(rng)
        model.act(obs, explore=True)
        model.act(obs, explore=False)
    assert not guard.found, "\n".join(sorted(set(guard.found)))


@pytest.mark.registry
@pytest.mark.computes
def test_updates_never_flip_requires_grad(agent, monkeypatch):
    """An actor step through a critic it does not train sees the critic's weights detached
    (iqrl.nn.optim.detached_weights) instead of switching their `requires_grad` off and on: a flag flipped
    inside the step would be part of a compiled or captured graph's guards."""
    model, replay, _ = agent_and_replay(agent)
    flips = []
    original = torch.Tensor.requires_grad_

    def recording(tensor, requires_grad=True):
        flips.append((tuple(tensor.shape), requires_grad))
        return original(tensor, requires_grad)

    monkeypatch.setattr(torch.Tensor, "requires_grad_", recording)
    for step in range(6):
        model.update(replay, step)
    assert flips == []


def test_detached_weights_gives_the_input_its_gradient_and_the_weights_none():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    x = torch.randn(4, 3, requires_grad=True)
    detached_weights(net.forward, net)(x).sum().backward()
    assert net.weight.grad is None and net.bias.grad is None
    assert net.weight.requires_grad and net.bias.requires_grad
    torch.testing.assert_close(x.grad, net.weight.detach().expand(4, 3))
