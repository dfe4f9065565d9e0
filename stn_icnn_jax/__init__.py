"""stn_icnn_jax: a JAX/Flax reimplementation of STN-iCNN face parsing.

Yin et al., "End-to-End Face Parsing via Interlinked Convolutional Neural Networks".
Modules, one idea each: ``sampler`` (differentiable affine crop/paste),
``theta_geometry`` (crop thetas from part centres, frames, inverses), ``icnn``
(interlinked CNN), ``localizer`` (STN localisation net), ``pipeline`` (the composed
forward pass), ``losses``, ``metrics`` (the paper's pooled F1), ``photo`` (parsing
anyone's photos: ``stn_icnn_jax.parse(image)`` and ``stn_icnn_jax.parse_many(images)``).
"""

__version__ = "0.1.0"

__all__ = ["parse", "parse_many"]


def __getattr__(name):
    # parse / parse_many import JAX and the model: loaded on first use, so that
    # `import stn_icnn_jax` (and the command line's start) stays light.
    if name in ("parse", "parse_many"):
        from stn_icnn_jax.photo import api

        return getattr(api, name)
    raise AttributeError(f"module 'stn_icnn_jax' has no attribute {name!r}")
