"""Building blocks: layers (the MLP builder, vectorised ensembles, convolutional encoder and decoder), layers
whose buffers carry running statistics and the way they return them to the updater (`stats.py`), the latent's
quantizers (FSQ among them), pure tensor maths, optimizer helpers, and the fast kernels that only compiled
code uses (`kernels.py`, apart). It imports torch and nothing else of this repository.
"""
