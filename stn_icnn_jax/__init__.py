"""stn_icnn_jax: a JAX/Flax reimplementation of STN-iCNN face parsing.

Yin et al., "End-to-End Face Parsing via Interlinked Convolutional Neural Networks".
Modules, one idea each: ``sampler`` (differentiable affine crop/paste), ``icnn``
(interlinked CNN), ``localizer`` (STN localisation net), ``pipeline`` (the composed
forward pass), ``losses``, ``metrics`` (the paper's pooled F1).
"""

__version__ = "0.1.0"
