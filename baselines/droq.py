"""DroQ: SAC with dropout Q-functions (Hiraoka et al., "Dropout Q-Functions for Doubly Efficient Reinforcement
Learning", ICLR 2022, arXiv 2110.02034), as its code runs it: github.com/TakuyaHiraoka/Dropout-Q-Functions-
for-Doubly-Efficient-Reinforcement-Learning at f89a79a (below, `KU/` is its `KUCodebase/code/`, `REDQ/` its
`OriginalREDQCodebase/`), on states.

SAC (iqrl/learners/sac.py) with two critics whose hidden layers are Linear -> Dropout -> LayerNorm -> ReLU,
dropout active wherever a critic is evaluated in the update, at a high update-to-data ratio (the paper's
Algorithm 2). Per update, on a batch of transitions (`CriticEnsembleLearner.update`, the shared order):
1. target  y = r + gamma (min_{k=1,2} Q̄_k(s', a'; m) - alpha log pi(a'|s')),  a' ~ pi(.|s'), the target
   critics' units dropped by masks m of their own (the target critics are never put in evaluation mode);
2. critic step on MSE(Q_1(s, a; m'), y) + MSE(Q_2(s, a; m'), y), new masks m'; EMA of the target critics;
3. every `actor_update_freq` = 20 critic steps (once per agent step at UTD 20): actor step on
   mean(alpha log pi(a|s) - (Q_1(s, a; m'') + Q_2(s, a; m'')) / 2), a ~ pi(.|s) reparameterised: the MEAN of
   the two critics, not their minimum, as the code does when the dropout rate is above 0; then the
   temperature step on -log alpha (log pi(a|s) + H̄).
Every mask is a draw from the agent's generator, made beside the piece that takes it (`critic_masks`,
docs/extending.md "Random layers"): eager, compiled and K-seed updates and a resumed run drop the same units.
Acting: a ~ pi(.|s) when exploring, tanh(mu(s)) when evaluating; the policy has no dropout.

Settings, all from the code at f89a79a (`KU/main.py` is the script of the README's DroQ command):

| key | value | source |
|---|---|---|
| critic_dropout | 0.01 | README.md 59-65 (KU: 0.01 on every task), 46 (`-target_drop_rate`) |
| critics | 2 x [256, 256], Linear -> Dropout -> LayerNorm -> ReLU (1) | KU/model.py 14-34, 40-49 |
| dropout in the target critics | on: no `.eval()` when the rate is above 0 | KU/agent.py 59-60, 169-174 |
| target | min of the two target critics, minus alpha log pi | KU/agent.py 172-174, 183 |
| critic loss | MSE per critic, summed (2) | KU/agent.py 264-267, 321-322 |
| actor objective | mean of the two critics (min without dropout) | KU/agent.py 334-340 (3) |
| actor | [256, 256] ReLU, no LayerNorm; log std clamped to [-20, 2] | KU/model.py 98-132 |
| init | Xavier-uniform weights (gain 1), zero biases (4) | KU/model.py 16; REDQ/redq/algos/core.py 14-18 |
| lr (actor, critics, temperature) | 3e-4 (Adam) | KU/main.py 80; KU/agent.py 67-85 |
| batch_size | 256 | KU/main.py 61-62, 79 |
| gamma, tau | 0.99, 0.005 after every critic step | KU/main.py 83-84, 96; KU/agent.py 269-270 |
| nstep | 1 | KU/main.py 46, 87 |
| init_temperature | 1.0 (log alpha = 0) | KU/agent.py 83-84 |
| target_entropy | -\\|A\\| (null) (5) | KU/agent.py 79-81 |
| utd | 20 critic updates per stored transition | README.md 46; KU/agent.py 247-270; REDQ/main.py 26 |
| actor_update_freq | 20: one actor and temperature step per 20 critic steps (6) | KU/agent.py 276-289 |
| seed steps | 5000 transitions of uniform actions (7) | KU/main.py 94; KU/agent.py 141-149 |
| grad_clip | none | KU/main.py 92 |

(1) rltorch's `create_linear_network` (ku2482/rltorch@7819af4: rltorch/network/builder.py lines 53-68) makes
Linear -> ReLU layers, into which KU/model.py lines 24-33 insert Dropout and LayerNorm after each hidden
Linear; REDQ/redq/algos/core.py lines 89-99 the same. (2) One Adam per critic in the code; one Adam on both
is the same step (Adam is per parameter, the two losses share no parameter). (3) Also REDQ's `ave_q`,
REDQ/redq/algos/redq_sac.py lines 226-232. (4) `initializer='xavier'`: rltorch builder.py lines 5-17, 44-50.
(5) The README's tuned target entropies (lines 57-65) are per MuJoCo task; the code's default: -|A|.
(6) KU calls `learn` once per env step: G critic updates, then one policy and temperature update;
REDQ/main.py line 27, `policy_update_delay=20`, redq_sac.py line 222. (7) REDQ/main.py line 25 too; the
default of `seed_steps` (DroQConfig.SEED_PHASE): 5000 transitions, 10k env steps at action repeat 2.

The protocol here: the code acts at every MuJoCo step; on DMC the harness acts every `action_repeat` = 2 env
steps, so, as `bro-utd10` and `simbav2-utd8` do, `utd` counts updates per stored transition (per agent step:
`AgentSpec.updates_per_agent_step`, 10 per env step at action repeat 2; `action_repeat=1` runs the code's
protocol), run after every agent step once seeding is over (`PerStep`, iqrl/core/schedule.py): 20 critic
steps, then the actor's step.

Differences from the code: the actor steps on the batch of its 20th critic step, after that step (KU samples
a fresh batch after the G critic updates; REDQ's code uses that batch with the critics before the step);
log pi uses the exact log(1 - tanh^2(u)) (the code adds 1e-6 inside the log, KU/model.py line 129).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from torch import Tensor, nn

from baselines.raw_observations import RawObservationAgent
from iqrl.core.checks import require
from iqrl.core.interface import AgentConfig, compose
from iqrl.core.schedule import PerStep, SeedPhase
from iqrl.learners.sac import SACLearner, SACLearnerConfig
from iqrl.nn.layers import ensemble_mlp


@dataclass
class DroQLearnerConfig(SACLearnerConfig):
    """SACLearnerConfig plus the critics' dropout rate."""

    critic_dropout: float = 0.01  # dropout rate after each hidden Linear of the critics (0: none)

    def validate(self) -> None:
        super().validate()
        require(
            [
                (
                    0.0 <= self.critic_dropout < 1.0,
                    f"critic_dropout must be in [0, 1), got {self.critic_dropout}",
                ),
                (
                    self.critic_dropout == 0.0 or self.network == "mlp",
                    f"critic_dropout > 0 needs network=mlp, got network={self.network!r}",
                ),
            ]
        )


@compose(
    learner=DroQLearnerConfig(
        mlp_dims=[256, 256],
        num_critics=2,
        q_subsample=2,  # both critics: min(Q1, Q2) in the target
        actor_q_reduce="mean",  # (Q1 + Q2) / 2 in the actor's objective (dropout > 0)
        critic_loss_reduce="sum",  # MSE(Q1, y) + MSE(Q2, y)
        actor_update_freq=20,  # one actor step per 20 critic steps
        init="xavier",
        init_temperature=1.0,
        log_std_min=-20.0,  # hard clamp (DroQLearner.gaussian)
        log_std_max=2.0,
    )
)
class DroQConfig(AgentConfig):
    # start_steps: 5000 transitions of uniform actions
    SEED_PHASE: ClassVar[SeedPhase] = SeedPhase(
        agent_steps=5000,
        source="TakuyaHiraoka/Dropout-Q-Functions-for-Doubly-Efficient-Reinforcement-Learning@f89a79a "
        "KUCodebase/code/main.py:94",
    )
    # the tests' tiny sizes: UTD 2 with an actor step every 2 critic steps, so the tests' short runs train
    # the actor once per agent step as the default does
    TINY: ClassVar[dict] = {"utd": 2.0, "actor_update_freq": 2}
    UTD_KEY = "utd"  # updates_per_step may only agree with it (AgentConfig.UTD_KEY)

    name: str = "droq"
    utd: float = 20.0  # critic updates per stored transition (per agent step)

    def validate(self) -> None:
        super().validate()
        require([(self.utd > 0, f"agent.utd must be > 0, got {self.utd}")])


class DroQLearner(SACLearner):
    """SACLearner with DroQ's networks: ReLU everywhere, LayerNorm and dropout in the critics only (the
    actor's hidden layers are Linear -> ReLU), the policy's log std clamped."""

    mlp_act = nn.ReLU
    mlp_norm = False  # the actor (`mlp`): no LayerNorm; the critics get theirs in build_critic

    def build_critic(self) -> nn.Module:
        """Two critics, per hidden layer Linear -> MaskedDropout(critic_dropout) -> LayerNorm -> ReLU."""
        c = self.cfg
        dims = self.in_dim + self.act_dim
        return ensemble_mlp(
            c.num_critics, dims, c.mlp_dims, 1, c.init, nn.ReLU, True, dropout=c.critic_dropout
        )

    def gaussian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, log_std) [B, A], log_std clamped to [log_std_min, log_std_max] as the code's policy does."""
        c = self.cfg
        mu, log_std = self.actor(x).chunk(2, dim=-1)
        return mu, log_std.clamp(c.log_std_min, c.log_std_max)


class DroQ(RawObservationAgent):
    """DroQ on states: the SAC learner with dropout critics, `utd` updates after every agent step."""

    learner_cls = DroQLearner
    PIXELS = False  # a state-based method (its code and the paper: MuJoCo states)

    def __init__(self, cfg: DroQConfig, obs_dim, act_dim: int, device, seed: int):
        super().__init__(cfg, obs_dim, act_dim, device, seed)
        self.spec = replace(self.spec, updates_per_agent_step=cfg.utd)
        self.schedule = PerStep()  # the code updates after every env step
