"""The TFDS builders (``helen``, ``helen_star``, ``celebamask_hq``, ``synthetic_faces``) and
what they share (:mod:`.common`: features, record assembly, strict input checks).
Importing :mod:`stn_icnn_jax.data` registers them with TFDS."""
