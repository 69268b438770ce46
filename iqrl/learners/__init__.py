"""Actor-critic learners shared by several agents (they train no representation, except the pixel
encoder the critic trains).

* `critics.py`: the critic ensemble, its target, the critic step and the config keys every learner has;
* `td3.py`: TD3's deterministic actor (iqrl, iqrl-official, iqrl-ae, td3, dcwm);
* `sac.py`: SAC's squashed-Gaussian actor and temperature (sac, iqrl-sac);
* `encoders.py`: the encoder the critic trains (obs=pixels: pixel `sac` / `td3`, `sac-ae`);
* `raw.py`: a learner on raw observations, the whole of the `td3` and `sac` agents.
"""
