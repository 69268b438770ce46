"""DR.Q: MR.Q's model-based representation, debiased (Lyu, Lin, Fujimoto et al. 2026, arXiv 2605.11711).

Lyu, Lin, Fujimoto, Yang, Chen, Yang, Lu and Ye, "Debiased Model-based Representations for
Sample-efficient Continuous Control" (ICML 2026, arXiv 2605.11711), code github.com/dmksjfl/DR.Q at commit
cc307a5 (built on MR.Q's code; files below are under DRQ/). DR.Q is MR.Q (baselines/mrq.py: the same
encoder, linear model head, two-hot reward, TD3-like RL on z_sa, LAP, 250-step bursts) plus two additions:

1. An InfoNCE term in the encoder loss at every step t of the H = 5 rollout (DRQ.py lines 171-186, 204,
   209), between the model's prediction zhat_{t+1} (the z_s rows of the linear model head on z_sa, the same
   vector the dynamics MSE uses) and the target encoder's sg[zbar_s(o_{t+1})]; no projection heads:
       l_b = -log softmax_b'( <zhat_b / |zhat_b|, zbar_b' / |zbar_b'|> / T )[b],   T = 0.1
   (cosine similarity, the other B - 1 windows' targets of the batch as negatives, cross-entropy with the
   diagonal as labels), masked per window by m_t and averaged over the batch, weight 0.1:
       L = sum_t [ 1.0 MSE_t + 0.1 CE_twohot_t + 0.1 mean_b m_bt l_bt ]   (no terminal term: see below)
   Its gradient reaches the online encoder through zhat only; the targets come from the target encoder.
2. Faded prioritised replay (buffer.py lines 62, 91-92, 133): every window start is drawn with probability
   proportional to its LAP priority times clamp(0.9999^age, 0.1, 1), age = transitions stored since it
   (`iqrl.core.replay.fade_weight`): a transition's weight reaches the floor, a tenth of its priority, at
   age 23 025 (ln 0.1 / ln 0.9999 = 23 024.7) and stays there. The priorities themselves are MR.Q's LAP
   (max(max_j |Q_j - y|, 1)^0.4, new transitions at the running maximum, DRQ.py lines 165-168), and the fade
   applies to every batch, the encoder's and the RL's (both sample through sample_ind).

Settings as the code runs them (DRQ.py `Hyperparameters` unless named); "=" = MR.Q's value here:
| key | DR.Q | MR.Q here | where |
|---|---|---|---|
| infonce_weight | 0.1 | - | DRQ.py:33, 209 |
| infonce_temperature | 0.1 | - | DRQ.py:171, 177 |
| fade_decay, fade_floor | 0.9999, 0.1 | - (LAP alone) | buffer.py:91, 133 |
| enc_mlp_dims | [750, 750] | [512, 512] | DRQ.py:46 (enc_hdim of zs's and zsa's MLPs, models.py:51, 54) |
| enc_lr | 3e-4 | 1e-4 | DRQ.py:48 |
| enc/value/policy_weight_decay | 0.01 | 1e-4 | DRQ.py:49, 56, 62 (AdamW, lines 95, 100, 104) |
| done_weight | 0 | 0.1 | DRQ.py:189-217: the terminal head's output is never in the loss |
| value_grad_clip | 0 (none) | 20 | DRQ.py:244-246: no clip_grad_norm_ |
| pre_activ_weight | 0 | 1e-5 | DRQ.py:251: policy loss -mean Q only |
| reward_scaling | off | on | DRQ.py:229-230: y = R + gamma^3 (1 - term) min Qbar (scales set, 147, unused) |
| batch_size, gamma, target_update_every | 256, 0.99, 250 | = | DRQ.py:17, 19, 20 |
| expl_noise, policy_noise, noise_clip | 0.2, 0.2, 0.3 (halved for discrete) | = | DRQ.py:24, 27, 28, 82-85 |
| dyn_weight, reward_weight | 1.0, 0.1 | = | DRQ.py:31, 32 |
| lap_alpha, lap_min_priority | 0.4, 1 | = | DRQ.py:37, 38 |
| enc_horizon, q_horizon | 5, 3 | = | DRQ.py:39, 40 |
| zs_dim, zsa_dim, za_dim | 512, 512, 256 | = | DRQ.py:43-45 |
| mlp_dims, value_lr, policy_lr | [512, 512], 3e-4, 3e-4 | = | DRQ.py:53, 55, 59, 61 |
| gumbel_tau, num_bins, bins | 10, 65, [-10, 10] | = | DRQ.py:63, 66-68 |
| image_pad (pixels) | 4 | = | DRQ.py:50, 367 |
| seed phase, replay | 10 000 agent steps, 1M FIFO | = | DRQ.py:18, 23 (SEED_PHASE; AgentSpec) |

Quirk switches (the code's behaviour available, off by default):
  DRQ-1 `official_infonce_mask_broadcast`: the code multiplies the InfoNCE losses [B] by the termination mask
  [B, 1] (DRQ.py:204, 211), which broadcasts to [B, B]: its mean is mean(m) mean(l), so windows past a
  terminal still contribute and live ones are scaled down. The default masks each window's own term,
  mean_b m_b l_b, as the dynamics and reward terms are masked (lines 207-208). Identical without terminals
  (every DMC task).
Not switches: the code's forget weights start as torch.empty (buffer.py:62: unwritten slots hold whatever
memory held, masked by 0 when sampled, though a NaN there would survive 0 * NaN into the cumulative sum) and
are not saved in its checkpoints (buffer.py:186-199), so its resumed runs restart the fade; here the fade is a
function of the stored indices, with no unwritten slot, and exact across resume. The code decays the
weights by repeated float32 products; here decay^age in float64.
Read from the code, not checked against the paper's text (not available to this module's author): that the
InfoNCE acts on the model's zhat rather than on z_sa itself, that DR.Q drops MR.Q's terminal loss, gradient
clip, pre-activation penalty and reward scaling; each is a key here, at the code's value.
Adaptations are MR.Q's (baselines/mrq.py): seed_steps in env steps, the n-step return keeps the terminal
step's reward (DR.Q's multi_step_reward, DRQ.py:337-344, keeps it too: MRQ-1 is not DR.Q's), and the LAP
priorities come from the value step's TD error on the sampled action, as DR.Q's do (DRQ.py:166 with the Q of
line 235: MRQ-2 is not DR.Q's either).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.mrq import MRQ, MRQConfig
from iqrl.core.checks import require
from iqrl.core.replay import SequenceBatch
from iqrl.core.schedule import SeedPhase


@dataclass
class DRQConfig(MRQConfig):
    # buffer_size_before_training: 10 000 transitions of uniform actions
    SEED_PHASE: ClassVar[SeedPhase] = SeedPhase(
        agent_steps=10_000, source="dmksjfl/DR.Q@cc307a5 DRQ/DRQ.py:23, 126-127"
    )
    name: str = "dr-q"
    # --- DR.Q's additions ---
    infonce_weight: float = 0.1  # weight of the InfoNCE term (zhat_{t+1}, zbar_s(o_{t+1})); 0: MR.Q's loss
    infonce_temperature: float = 0.1  # T of the InfoNCE's cosine similarities
    fade_decay: float = (
        0.9999  # faded replay: priorities weighted by clamp(decay^age, floor, 1); 1: LAP alone
    )
    fade_floor: float = 0.1  # faded replay: the least weight of an old transition
    reward_scaling: bool = (
        False  # MR.Q's reward-scaled TD target (R + gamma^n s_bar Qbar) / s; DR.Q's code: off
    )
    official_infonce_mask_broadcast: bool = False  # DRQ-1: InfoNCE masked by the code's [B, B] broadcast
    # --- MR.Q's keys at DR.Q's values (module docstring's table) ---
    enc_mlp_dims: list[int] = field(default_factory=lambda: [750, 750])  # enc_hdim 750, DRQ.py:46
    enc_lr: float = 3e-4  # DRQ.py:48
    enc_weight_decay: float = 0.01  # DRQ.py:49
    value_weight_decay: float = 0.01  # DRQ.py:56
    policy_weight_decay: float = 0.01  # DRQ.py:62
    done_weight: float = 0.0  # no terminal loss in train_encoder, DRQ.py:189-217
    value_grad_clip: float = 0.0  # no clip in train_rl, DRQ.py:244-246
    pre_activ_weight: float = 0.0  # policy loss -mean Q, DRQ.py:251

    def validate(self) -> None:
        super().validate()
        require(
            [
                (self.infonce_weight >= 0, f"agent.infonce_weight must be >= 0, got {self.infonce_weight}"),
                (
                    self.infonce_temperature > 0,
                    f"agent.infonce_temperature must be > 0, got {self.infonce_temperature}",
                ),
                (0 < self.fade_decay <= 1, f"agent.fade_decay must be in (0, 1], got {self.fade_decay}"),
                (0 <= self.fade_floor <= 1, f"agent.fade_floor must be in [0, 1], got {self.fade_floor}"),
            ]
        )


def info_nce(pred: Tensor, target: Tensor, temperature: float) -> Tensor:
    """InfoNCE of each row: l_b = -log softmax_b'(cos(pred_b, target_b') / T)[b], the other rows' targets the
    negatives (DRQ.py lines 171-186). pred, target [B, D] -> [B]."""
    logits = F.normalize(pred, dim=-1) @ F.normalize(target, dim=-1).T / temperature  # [B, B]
    labels = torch.arange(pred.shape[0], device=pred.device)
    return F.cross_entropy(logits, labels, reduction="none")


class DRQAgent(MRQ):
    TERM_WEIGHTS: ClassVar[dict[str, str]] = {**MRQ.TERM_WEIGHTS, "infonce_loss": "infonce_weight"}

    def infonce_term(self, preds, target: Tensor, valid: Tensor) -> Tensor:
        """sum_t mean_b m_bt l_bt over the rollout (DRQ-1, the code's broadcast: sum_t mean m_t mean l_t)."""
        c, total = self.cfg, torch.zeros((), device=self.device)
        for t, (_, zs, _) in enumerate(preds):
            loss, m = info_nce(zs, target[:, t], c.infonce_temperature), valid[:, t]
            total = total + (
                m.mean() * loss.mean() if c.official_infonce_mask_broadcast else (loss * m).mean()
            )
        return total

    def encoder_terms(self, b: SequenceBatch, use_done: bool) -> dict[str, Tensor]:
        """MR.Q's terms of the rollout and, with a weight, DR.Q's InfoNCE term of the same rollout."""
        preds, target = self.model_rollout(b.obs, b.action)
        terms = self.model_terms(b, preds, target, use_done)
        if self.cfg.infonce_weight:
            terms["infonce_loss"] = self.infonce_term(preds, target, b.valid)
        return terms

    def draw_window(self, replay, horizon: int) -> SequenceBatch:
        """B windows drawn by LAP priority times the fade of their age (faded prioritised replay)."""
        c = self.cfg
        return replay.sample(
            c.batch_size, horizon, prioritized=True, fade_decay=c.fade_decay, fade_floor=c.fade_floor
        )

    def sync_targets(self, replay) -> None:
        """MR.Q's hard copies every 250 steps; without `reward_scaling` both reward scales stay 1, so the
        target is DR.Q's unscaled y = R + gamma^n (1 - term) min_j Qbar_j (DRQ.py lines 229-230)."""
        super().sync_targets(replay)
        if not self.cfg.reward_scaling:
            self.target_reward_scale = self.reward_scale = 1.0
