"""K seeds of one config in one process, with the networks vectorised over seeds (torch.func).

    python -m iqrl.multiseed seeds=0,1,2,3 agent=iqrl task=walker-walk steps=1000000 out=ROOT [key=value ...]

writes ROOT/seed0 .. ROOT/seed3, each an ordinary run folder (the config.yaml of `python -m iqrl.train
... seed=k out=ROOT/seed<k>`), so sweeps, `make status` and `make figures` read them like any run.

How. Each seed has its own `Trainer` (envs, replay, generators, counters, run folder), run in its own
thread. The seeds' parameters are stacked into [K, ...] tensors, and after every update each seed's own
modules get a copy of its slice, so acting, evaluation, diagnostics and checkpoints work on a seed
exactly as in a single-seed run. A seed's `update` draws its batch from its own replay and its random
numbers from its own generator (`predraw`, in the order the update would draw them), then waits until
every seed of the group has done the same; the group then runs one vectorised update (`torch.func.vmap` over
`torch.func.grad` of the agent's own loss methods, via `functional_call`) and one fused optimizer step
over the stacked parameters (Adam is elementwise, so each slice steps as its own optimizer would).
Nothing is reduced across seeds and every seed keeps its own generators, so seed k's run is the run of
`python -m iqrl.train ... seed=k` up to floating-point rounding: vectorised matrix products and sums
group their additions differently from unbatched ones (and from batches of another size), so the last
bits differ. `tests/test_multiseed.py` checks each seed's losses and parameters against the plain
`agent.update` (to 1e-5 over several updates, for the switches that change the update) and the first
evaluations of a 3-seed run against plain single-seed runs (identical before the first update, within
1e-3 after 100 updates). Over a long run the trajectories drift apart the way two machines' runs of one
seed do, so K-seed results are statistically, not bitwise, those of single-seed runs; a resumed K-seed
run is bitwise the uninterrupted one.

Resume: every seed checkpoints at the same env steps and keeps its previous checkpoint; a group that
was killed between two seeds' checkpoints resumes every seed from the latest env step all of them hold.
Supported (`GROUP_AGENTS`): the `iqrl` family with the TD3 or the SAC learner (`iqrl`, `iqrl-official`,
`iqrl-ae`, `iqrl-sac` and every iQRL switch but `quantizer=vq`) and the raw-observation `td3` and `sac`,
from `obs=state` only (a pixel update's shift offsets are not among the predrawn numbers), in `precision=fp32`
(torch.func's batched LayerNorm backward fails under bf16 autocast in torch 2.13);
the update is the representation step (iQRL), the critic step, and every `actor_update_freq` critic steps
the actor step followed by TD3's target-actor EMA or SAC's temperature step. The other agents are refused
with a clear error (`unsupported` says why).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from baselines.raw_observations import RawObservationAgent
from iqrl.agent.iqrl import IQRL
from iqrl.core.config import ConfigError, build_config
from iqrl.core.device import resolve_device
from iqrl.core.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from iqrl.core.preflight import check_device_type, check_precision, check_run_folder, check_watching
from iqrl.core.replay import SequenceBatch
from iqrl.core.runfolder import CHECKPOINT, RunBusy, training_lock, write_status
from iqrl.core.trainer import Trainer
from iqrl.learners.sac import SACLearner
from iqrl.learners.td3 import TD3Learner
from iqrl.nn.maths import ema_update_

PREVIOUS_CHECKPOINT = CHECKPOINT.with_name("ckpt.prev.pt")


class _Call(nn.Module):
    """Holds an agent's modules under fixed names; forward(fn, *args) runs fn with them, so that
    `functional_call(holder, params, (fn, ...))` runs the agent's own loss code on swapped parameters."""

    def __init__(self, modules: dict[str, nn.Module]):
        super().__init__()
        self.parts = nn.ModuleDict(modules)

    def forward(self, fn, *args):
        return fn(*args)


def _holder(agent: IQRL) -> _Call:
    mods = agent.networks()
    return _Call(mods)


def _clip(grads: dict[str, Tensor], max_norm: float) -> tuple[dict[str, Tensor], Tensor]:
    """clip_grad_norm_ of one seed: total 2-norm over all gradients, scaled down to max_norm."""
    norms = torch.stack([torch.linalg.vector_norm(g) for g in grads.values()])
    total = torch.linalg.vector_norm(norms)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    return {k: g * coef for k, g in grads.items()}, total


def own_optimizers(agent) -> dict[str, torch.optim.Optimizer]:
    """An agent's optimizers under their checkpoint keys: its representation's (iQRL) and its learner's."""
    opts = {"repr_opt": agent.repr_opt} if isinstance(agent, IQRL) else {}
    return {**opts, **agent.ac.optimizers()}


def _like(opt: torch.optim.Optimizer, params: list[Tensor]) -> torch.optim.Optimizer:
    """An optimizer of the class and settings of `opt` over the stacked `params` (Adam is elementwise: each
    slice steps as the seed's own optimizer would)."""
    g = opt.param_groups[0]
    hyper = {k: g[k] for k in ("lr", "betas", "eps", "weight_decay", "amsgrad")}
    return type(opt)(params, **hyper, fused=True)


class SeedGroup:
    """K agents (same config, different seeds) updated together; see the module docstring."""

    def __init__(self, agents: list):
        a0 = agents[0]
        if not all(isinstance(a, (IQRL, RawObservationAgent)) for a in agents) or not isinstance(
            a0.ac, (TD3Learner, SACLearner)
        ):
            raise ConfigError(
                "the K-seed mode supports the iqrl agents and td3 / sac (a TD3 or SAC learner); "
                f"got {type(a0).__name__} with {type(getattr(a0, 'ac', None)).__name__}"
            )
        if getattr(a0.ac, "encoder", None) is not None:
            raise ConfigError(
                "the K-seed mode does not support pixel observations (obs=pixels); run one seed"
            )
        self.agents, self.K, self.cfg = agents, len(agents), a0.cfg
        self.sac = isinstance(a0.ac, SACLearner)
        # Slots of the vectorised dimension: at least 2. Matrix products with a batch of one take other
        # kernels (matrix-vector paths when a dimension is 1) than batches of two or more, which round
        # differently; a lone seed gets a spare slot so that its numbers are those of any larger group.
        self.slots = max(self.K, 2)
        self.template = _holder(a0)
        holders = [_holder(a) for a in agents]
        # Every parameter and buffer stacked over seeds. The seeds' own module tensors stay separate and
        # get their slice copied back after every update (`_sync_out`): acting through a view at an odd
        # offset in the stack would take differently aligned kernel paths than a lone seed's tensors.
        self.stacked: dict[str, Tensor] = {}
        self.own: dict[str, list[Tensor]] = {}
        for name, _ in [*self.template.named_parameters(), *self.template.named_buffers()]:
            self.own[name] = [dict([*h.named_parameters(), *h.named_buffers()])[name].data for h in holders]
            self.stacked[name] = torch.stack(self._pad(self.own[name])).contiguous()
        # One group optimizer per optimizer of the agent (representation, critic, actor, temperature), over
        # the stacked parameters in that optimizer's own order.
        names = {id(p): n for n, p in self.template.named_parameters()}
        leaf = {n: self.stacked[n].requires_grad_(False) for n in self.stacked}
        own = own_optimizers(a0)
        self.names = {key: [names[id(p)] for p in opt.param_groups[0]["params"]] for key, opt in own.items()}
        self.opts = {key: _like(opt, [leaf[n] for n in self.names[key]]) for key, opt in own.items()}
        self._pairs = {
            "encoder": self._ema_pairs("encoder"),
            "projection": self._ema_pairs("projection"),
            "critic": self._ema_pairs("ac.critic"),
            "actor": self._ema_pairs("ac.actor"),  # TD3's target actor; SAC has none
        }
        self._synced_in = False
        for k, a in enumerate(agents):  # checkpoints carry the group's optimizer state of their seed
            a.state_dict = self._state_dict_fn(k, a.state_dict)
        # Rendezvous of the seeds' update calls.
        self.cv = threading.Condition()
        self.active = set(range(self.K))
        self.pending: dict[int, tuple] = {}
        self.results: dict[int, dict] = {}
        self.round = 0
        self.error: BaseException | None = None
        self.serving = (
            False  # True while a thread runs `serve`: rounds then run there, not in a seed's thread
        )

    def _pad(self, per_seed: list) -> list:
        return per_seed + [per_seed[0]] * (self.slots - self.K)

    def _ema_pairs(self, prefix: str) -> tuple[list[Tensor], list[Tensor]]:
        """(targets, online) stacked tensors of the module at `prefix` and its `_target` copy; empty when
        the module has no target."""
        head = f"parts.{prefix}."
        pairs = {n.replace(head, f"parts.{prefix}_target.", 1): n for n in self.stacked if n.startswith(head)}
        pairs = {t: n for t, n in pairs.items() if t in self.stacked}
        return [self.stacked[t] for t in pairs], [self.stacked[n] for n in pairs.values()]

    # ------------------------------------------------------------------ optimizer state <-> seeds
    def _seed_opt_state(self, key: str, k: int, own: dict) -> dict:
        """Seed k's slice of a group optimizer, in the format of the agent's own optimizer."""
        opt = self.opts[key]
        params = opt.param_groups[0]["params"]
        state = {}
        for i, p in enumerate(params):
            if p in opt.state:
                state[i] = {s: (v if v.dim() == 0 else v[k].clone()) for s, v in opt.state[p].items()}
        return {"state": state, "param_groups": own["param_groups"]}

    def _state_dict_fn(self, k: int, own_state_dict):
        def state_dict() -> dict:
            s = own_state_dict()
            for key in self.opts:  # the representation's at the top level, the learner's in ac_extra
                where = s if key == "repr_opt" else s["ac_extra"]
                where[key] = self._seed_opt_state(key, k, where[key])
            return s

        return state_dict

    def _sync_in(self) -> None:
        """Before the first update: the seeds' own tensors and optimizer states (checkpointed ones after a
        resume) into the stacks."""
        with torch.no_grad():
            for name, tensors in self.own.items():
                for k, t in enumerate(tensors):
                    self.stacked[name][k].copy_(t)
        own = {key: [own_optimizers(a)[key] for a in self.agents] for key in self.opts}
        for key, opt in self.opts.items():
            per_seed = [o.state_dict()["state"] for o in own[key]]
            if not any(per_seed):
                continue
            for i, p in enumerate(opt.param_groups[0]["params"]):
                entries = self._pad([st[i] for st in per_seed])
                steps = {float(e["step"]) for e in entries}
                if len(steps) != 1:
                    raise RuntimeError(f"seeds resumed at different optimizer steps {sorted(steps)}")
                opt.state[p] = {
                    s: (
                        entries[0][s].clone()
                        if entries[0][s].dim() == 0
                        else torch.stack([e[s] for e in entries]).to(p.device)
                    )
                    for s in entries[0]
                }

    # ------------------------------------------------------------------ the vectorised update
    def _functional(self, fn, params: dict[str, Tensor], *args):
        return functional_call(self.template, params, (fn, *args), strict=False)

    def _step(self, key: str, grads: dict[str, Tensor]) -> None:
        opt = self.opts[key]
        for n, p in zip(self.names[key], opt.param_groups[0]["params"]):
            p.grad = grads[n]
        opt.step()
        for p in opt.param_groups[0]["params"]:
            p.grad = None

    def _sync_out(self) -> None:
        names = list(self.own)
        dst = [t for n in names for t in self.own[n]]
        src = [self.stacked[n][k] for n in names for k in range(self.K)]
        with torch.no_grad():
            torch._foreach_copy_(dst, src)

    def _run_round(self) -> None:
        if not self._synced_in:
            self._sync_in()
            self._synced_in = True
        live = sorted(self.pending)
        steps = {self.agents[k].ac.critic_steps for k in live}
        if len(steps) != 1:
            raise RuntimeError(f"seeds out of lockstep (critic steps {sorted(steps)})")
        # A seed that has left (finished or failed) gets a live seed's inputs: its slice is computed and
        # thrown away, which keeps the shapes fixed; nothing is reduced across seeds.
        inputs = [self.pending.get(k, self.pending[live[0]]) for k in range(self.slots)]
        fields = list(SequenceBatch.__dataclass_fields__)
        batch = tuple(torch.stack([getattr(b, f) for b, _ in inputs]) for f in fields)
        draws = [torch.stack([d[i] for _, d in inputs]) for i in range(len(inputs[0][1]))]
        a0, c = self.agents[0], self.cfg
        S = self.stacked

        # 1. (iQRL) representation step, then the EMA target encoder (and projection)
        metrics: dict[str, Tensor] = {}
        if "repr_opt" in self.opts:
            repr_p = {n: S[n] for n in self.names["repr_opt"]}
            rest = {n: t for n, t in S.items() if n not in repr_p}

            def repr_grads(rp, other, b):
                def loss(p):
                    return self._functional(a0.representation_loss, {**other, **p}, SequenceBatch(*b))

                g, metrics = grad(loss, has_aux=True)(rp)
                g, metrics["enc_grad_norm"] = _clip(g, c.enc_grad_clip)
                return g, metrics

            g, metrics = vmap(repr_grads)(repr_p, rest, batch)
            self._step("repr_opt", g)
            ema_update_(*self._pairs["encoder"], c.enc_tau)
            if a0.projection is not None:
                ema_update_(*self._pairs["projection"], c.enc_tau)

        # 2. critic step on the (re-encoded, detached) inputs, then the EMA target critics
        ac = a0.ac
        critic_p = {n: S[n] for n in self.names["critic_opt"]}
        rest = {n: t for n, t in S.items() if n not in critic_p}

        def critic_grads(cp, other, b, d):
            ac.predrawn = list(d)
            try:
                x, action, ret, discount, x_next = self._functional(
                    a0.rl_inputs, {**other, **cp}, SequenceBatch(*b)
                )
                y = self._functional(ac.td_target, {**other, **cp}, ret, discount, x_next)

                def loss(p):
                    q_loss, q = self._functional(ac.critic_loss, {**other, **p}, x, action, y)
                    return q_loss, {
                        "q_loss": q_loss.detach(),
                        "q_mean": q.detach().mean(),
                        "target_mean": y.mean(),
                    }

                g, m = grad(loss, has_aux=True)(cp)
                if c.grad_clip > 0:
                    g, m["q_grad_norm"] = _clip(g, c.grad_clip)
                return g, m, x
            finally:
                ac.predrawn = None

        g, m, x = vmap(critic_grads)(critic_p, rest, batch, draws[:2])
        metrics.update(m)
        self._step("critic_opt", g)
        ema_update_(*self._pairs["critic"], c.tau)
        for a in self.agents:
            a.ac.critic_steps += 1

        # 3. every actor_update_freq critic steps: actor step, then TD3's EMA target actor or SAC's
        #    temperature step
        if self.agents[live[0]].ac.critic_steps % c.actor_update_freq == 0:
            actor_p = {n: S[n] for n in self.names["actor_opt"]}
            rest = {n: t for n, t in S.items() if n not in actor_p}

            def actor_grads(ap, other, xs, d):
                ac.predrawn = list(d)
                try:

                    def loss(p):
                        out = self._functional(ac.actor_loss, {**other, **p}, xs)
                        v, log_prob = out if self.sac else (out, out)  # TD3: no log-probability
                        return v, (v.detach(), log_prob.detach())

                    g, aux = grad(loss, has_aux=True)(ap)
                    if c.grad_clip > 0:
                        g, _ = _clip(g, c.grad_clip)
                    return g, aux
                finally:
                    ac.predrawn = None

            g, (loss, log_prob) = vmap(actor_grads)(actor_p, rest, x, draws[2:])
            metrics["actor_loss"] = loss
            self._step("actor_opt", g)
            if self.sac:
                metrics.update(self._temperature_step(log_prob))
            else:
                ema_update_(*self._pairs["actor"], c.tau)
        self._sync_out()
        for k in live:
            self.results[k] = {name: v[k] for name, v in metrics.items()}

    def _temperature_step(self, log_prob: Tensor) -> dict[str, Tensor]:
        """SAC's step on log(alpha), per seed, from the actor step's log pi(a|x) [slots, B]."""
        ac, S = self.agents[0].ac, self.stacked
        alpha_p = {n: S[n] for n in self.names["alpha_opt"]}
        rest = {n: t for n, t in S.items() if n not in alpha_p}

        def alpha_grads(lp, other, log_pi):
            def loss(p):
                value = self._functional(ac.alpha_loss, {**other, **p}, log_pi)
                return value, value.detach()

            return grad(loss, has_aux=True)(lp)

        g, alpha_loss = vmap(alpha_grads)(alpha_p, rest, log_prob)
        self._step("alpha_opt", g)
        (log_alpha,) = alpha_p.values()
        return {"alpha_loss": alpha_loss, "alpha": log_alpha.exp(), "entropy": -log_prob.mean(1)}

    # ------------------------------------------------------------------ rendezvous
    def update(self, k: int, replay, step: int) -> dict:
        """Seed k's `agent.update`: its batch and draws, then the group's round once all seeds are in."""
        agent = self.agents[k]
        batch = replay.sample(agent.spec.batch_size)
        draws = agent.ac.predraw(agent.spec.batch_size)
        with self.cv:
            self.pending[k] = (batch, draws)
            my_round = self.round
            self._maybe_run()
            while self.round == my_round and self.error is None:
                self.cv.wait()
            if self.error is not None:
                raise RuntimeError(f"the group update failed: {self.error}") from self.error
            return self.results.pop(k)

    def _ready(self) -> bool:
        return bool(self.pending) and set(self.pending) >= self.active

    def serve(self) -> None:
        """Run every round in the calling thread until all seeds have left. All large allocations then
        come from one thread: with rounds in whichever seed thread arrived last, glibc's per-thread malloc
        arenas held about twice the memory and the update ran about 30% slower (K = 4, walker-walk, CPU)."""
        with self.cv:
            self.serving = True
            try:
                while self.active:
                    if self._ready():
                        self._run_pending()
                    else:
                        self.cv.wait()
            finally:
                self.serving = False

    def _maybe_run(self) -> None:
        if self.serving:
            self.cv.notify_all()
        elif self._ready():
            self._run_pending()

    def _run_pending(self) -> None:
        try:
            self._run_round()
        except BaseException as e:  # every waiting seed fails with it
            self.error = e
        self.pending.clear()
        self.round += 1
        self.cv.notify_all()

    def leave(self, k: int) -> None:
        """Seed k is finished (or failed): later rounds no longer wait for it."""
        with self.cv:
            self.active.discard(k)
            self._maybe_run()


# ---------------------------------------------------------------------- what the mode supports
GROUP_AGENTS = ("iqrl", "iqrl-official", "iqrl-ae", "iqrl-sac", "td3", "sac")


def unsupported(cfg) -> str | None:
    """Why a run's config cannot train in the K-seed mode, or None when it can. The other agents train their
    seeds one by one (docs/sweeps.md, "Packed jobs": td7 and mrq sample by LAP priorities that the update
    writes back, td7 also keeps policy checkpoints on an episode schedule, tcrl and dcwm update world models
    with their own schedules and dcwm plans at every action, taco trains its encoder with three optimizers
    inside each update: their packed seeds run side by side)."""
    agent = cfg.agent
    if agent.name not in GROUP_AGENTS:
        return f"the K-seed mode supports {', '.join(GROUP_AGENTS)}; got agent={agent.name}"
    if getattr(cfg, "obs", "state") != "state":  # the pixel update's shift draws are not predrawn per seed
        return "the K-seed mode trains from obs=state only; train obs=pixels seeds one by one"
    if getattr(agent, "quantizer_kind", None) == "vq":  # its codebook moves by in-place EMA in the update
        return "the K-seed mode does not support agent.quantizer=vq; train its seeds one by one"
    if cfg.precision != "fp32":  # torch.func's batched LayerNorm backward fails under autocast (torch 2.13)
        return f"the K-seed mode trains in precision=fp32 only; got precision={cfg.precision}"
    if cfg.compile:  # it vmaps the loss functions itself (torch.func), not their compiled versions
        return "the K-seed mode runs eagerly; got compile=true (its seeds train one by one when packed)"
    return None


# ---------------------------------------------------------------------- resume
def held_steps(run_dir: Path) -> frozenset[int]:
    """The env steps of the checkpoints a run folder holds (latest and previous; none for a fresh run)."""
    paths = (Path(run_dir) / CHECKPOINT, Path(run_dir) / PREVIOUS_CHECKPOINT)
    return frozenset(s for p in paths if (s := checkpoint_step(p)) is not None)


def checkpoint_step(path: Path) -> int | None:
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    return int(state["counters"]["env_step"])


def resume_points(run_dirs: list[Path]) -> list[Path | None]:
    """The checkpoint each seed resumes from: the latest env step that every seed holds (latest or
    previous checkpoint); None everywhere for a fresh start, also when a seed holds no checkpoint yet
    (the group was stopped before that seed's first one: every seed starts again from step 0)."""
    held = []
    for d in run_dirs:
        held.append(
            {s: p for p in (d / CHECKPOINT, d / PREVIOUS_CHECKPOINT) if (s := checkpoint_step(p)) is not None}
        )
    if not all(held):
        return [None] * len(run_dirs)
    common = set.intersection(*(set(h) for h in held))
    if not common:
        raise ConfigError(
            "the seeds' checkpoints share no env step ("
            + "; ".join(f"{d}: {sorted(h)}" for d, h in zip(run_dirs, held))
            + "): resume them one by one with python -m iqrl.train"
        )
    step = max(common)
    return [h[step] for h in held]


class GroupStop:
    """One stop decision for the whole group (Ctrl-C / SIGTERM). Seeds check `should_stop` at their own
    episode ends, and a signal can fall between two seeds' checks; so the first True fixes a target, the
    most episodes any seed has started, and every seed stops at the end of that episode: all seeds then
    hold a checkpoint at the same env step and the group resumes from it."""

    def __init__(self, should_stop, trainers: list[GroupTrainer]):
        self.should_stop, self.trainers = should_stop, trainers
        self.lock = threading.Lock()
        self.target: int | None = None
        for t in trainers:
            t.stop_lock = self.lock

    def for_seed(self, t: GroupTrainer):
        def stop() -> bool:
            with self.lock:
                if self.target is None and self.should_stop is not None and self.should_stop():
                    self.target = max(u.episode + u.in_episode for u in self.trainers)
                return self.target is not None and t.episode >= self.target

        return stop


class GroupTrainer(Trainer):
    """A seed's Trainer in a group: keeps its previous checkpoint and resumes from the one it is given."""

    resume_from: Path | None = None
    in_episode = False  # between the start and the end of collect_episode (read by GroupStop)
    stop_lock = contextlib.nullcontext()

    def collect_episode(self) -> tuple[float, bool]:
        with self.stop_lock:
            self.in_episode = True
        try:
            return super().collect_episode()  # counts the episode in self.episode at its end
        finally:
            with self.stop_lock:
                self.in_episode = False

    def save_checkpoint(self) -> None:
        path = self.run_dir / CHECKPOINT
        if path.exists():
            path.replace(self.run_dir / PREVIOUS_CHECKPOINT)
        super().save_checkpoint()

    def try_resume(self) -> bool:
        if self.resume_from is None:
            return False
        state = torch.load(self.resume_from, map_location=self.device, weights_only=False)
        self.load_state_dict(state)
        return True


# ---------------------------------------------------------------------- command line
USAGE = """usage: python -m iqrl.multiseed seeds=0,1,2,3 agent=iqrl task=DOMAIN-TASK steps=N out=ROOT
[key=value ...]

Trains the seeds in one process with the networks vectorised over seeds; writes ROOT/seed<k> run folders
(the same as python -m iqrl.train ... seed=k out=ROOT/seed<k>). Re-running resumes; done seeds are skipped."""


def parse_seeds(argv: list[str]) -> tuple[list[int], Path, list[str]]:
    seeds, out, rest = None, None, []
    for a in argv:
        if a.startswith("seeds="):
            try:
                seeds = [int(s) for s in a[6:].strip("[]").split(",") if s.strip()]
            except ValueError:
                raise ConfigError(f"seeds must be a comma-separated list of ints, got {a[6:]!r}") from None
        elif a.startswith("out="):
            out = Path(a[4:])
        elif a.startswith("seed="):
            raise ConfigError("use seeds=0,1,... (the K-seed mode trains several seeds)")
        else:
            rest.append(a)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError("seeds= must list at least one seed, each once (e.g. seeds=0,1,2,3)")
    if out is None:
        raise ConfigError("out=ROOT is required (runs go to ROOT/seed<k>)")
    return seeds, out, rest


def main(argv: list[str] | None = None, should_stop=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return EXIT_OK
    try:
        seeds, root, rest = parse_seeds(argv)
        cfgs = [build_config([*rest, f"seed={s}", f"out={root / f'seed{s}'}"]) for s in seeds]
        if why := unsupported(cfgs[0]):
            raise ConfigError(why)
        cfgs = [c for c in cfgs if check_run_folder(c) != "done"]
        if not cfgs:
            print(f"{root}: every seed is already done, nothing to do", flush=True)
            return EXIT_OK
        device = resolve_device(cfgs[0].device)
        for c in cfgs:
            check_device_type(c, device)
            check_precision(c, device)
            check_watching(c)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with contextlib.ExitStack() as locks:  # every seed's run lock, for the whole group
        try:
            for c in cfgs:
                locks.enter_context(training_lock(Path(c.out)))
            points = resume_points([Path(c.out) for c in cfgs])
        except (ConfigError, RunBusy) as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return train_group(cfgs, points, should_stop)


def train_group(cfgs: list, points: list, should_stop) -> int:
    """Train the seeds' runs as one vectorised group (their run locks held by the caller)."""
    trainers = []
    for c, point in zip(cfgs, points):  # one at a time: each seeds the global RNGs, then builds its nets
        t = GroupTrainer(c)
        t.resume_from = point
        trainers.append(t)
    group = SeedGroup([t.agent for t in trainers])
    stop = GroupStop(should_stop, trainers)
    for k, t in enumerate(trainers):
        t.agent.update = functools.partial(group.update, k)
    codes = [EXIT_FAILED] * len(trainers)

    def run(k: int) -> None:
        t = trainers[k]
        try:
            codes[k] = t.run(stop.for_seed(t))
        except Exception as e:  # recorded in the seed's status.json, as python -m iqrl.train does
            msg = f"{type(e).__name__}: {e}"
            write_status(t.run_dir, "failed", t.env_step, t.cfg.steps, msg)
            print(f"error: {t.run_dir} failed: {msg}", file=sys.stderr)
        finally:
            group.leave(k)

    # Daemon threads: from the command line, Ctrl-C stops every seed at the end of its episode with a
    # checkpoint; a second Ctrl-C ends the process (every seed resumes from the checkpoints all hold).
    threads = [
        threading.Thread(target=run, args=(k,), name=f"seed{c.seed}", daemon=True) for k, c in enumerate(cfgs)
    ]
    for th in threads:
        th.start()
    with trainers[0].autocast:  # what each Trainer wraps its updates in
        group.serve()
    for th in threads:
        th.join()
    return (
        EXIT_FAILED if EXIT_FAILED in codes else max(codes)
    )  # a failed seed is not hidden by interrupted ones
