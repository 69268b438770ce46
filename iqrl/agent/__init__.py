"""The iQRL method (Scannell et al., arXiv 2406.02696): its config (`config.py`) and the agent (`iqrl.py`:
encoder, quantized latent, latent rollout, consistency loss, the update in the paper's order, acting). It
imports `iqrl.core` (the interface), `iqrl.learners` (the TD3 and SAC learners on its latent) and `iqrl.nn`.
"""
