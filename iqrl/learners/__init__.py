"""What several agents share above the building blocks: the actor-critic learners (they train no
representation, except the pixel encoder the critic trains) and the latent-model keys of iQRL and DC-MPC. Each
config here is a part of an agent's config (`compose`, iqrl/core/interface.py) and a piece is handed its part.

* `critics.py`: the critic ensemble, its target, the critic step and the config keys every learner has;
* `td3.py`: TD3's deterministic actor (iqrl, iqrl-official, iqrl-ae, td3, dcwm);
* `sac.py`: SAC's squashed-Gaussian actor and temperature (sac, iqrl-sac);
* `encoders.py`: the encoder the critic trains (obs=pixels: pixel `sac` / `td3`, `sac-ae`);
* `latent_model.py`: the keys of an FSQ latent model rolled out over a horizon (iqrl, dcwm).

It imports `iqrl.core` (the checks, the updater) and `iqrl.nn`, never an agent module.
"""
