"""Building blocks with no training state: layers (the MLP builder, vectorised ensembles, convolutional
encoder and decoder), the latent's quantizers (FSQ among them), pure tensor maths, optimizer helpers, and the
fast kernels that only compiled code uses (`kernels.py`, apart). It imports torch and nothing else of this
repository.
"""
