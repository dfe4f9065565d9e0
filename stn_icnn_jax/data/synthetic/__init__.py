"""Procedural synthetic face photos with exact HELEN-style soft labels.

No real face data set can be downloaded everywhere this package runs, so the default
data is generated: ``generate_face(seed)`` draws one portrait photo and its 11 soft
label maps in the order of Smith et al. (CVPR 2013), the storage order of every record
in :mod:`stn_icnn_jax.data`::

    0 background  1 face skin  2 left eyebrow  3 right eyebrow  4 left eye  5 right eye
    6 nose        7 upper lip  8 inner mouth   9 lower lip     10 hair

**"Left" means the IMAGE's left**: the left eyebrow / left eye (channels 2 and 4) are the
ones with the smaller x coordinate in the image (the person's own right). The in-plane
rotation is bounded (``max_rotation_deg`` < 90), so this never flips.

How it works
------------
Everything is drawn in a face frame whose unit is the half width of the face at the
cheekbones (``a``), origin at the midpoint between the eyes, x to the image's right, y
down. A point of the face (x, y) has a depth z on a head ellipsoid (plus bumps for nose
and lips); mild yaw rotates that 3-D point about the vertical axis and projects it
orthographically, so features shift towards the turn and foreshorten on the far side;
a similarity transform (scale, in-plane rotation, translation) then puts it into the
image. Regions are polygons rasterised with 4x4 supersampling into exact coverage
(0..1) inside their bounding box only. A region is *painted* over the picture and the
label stack with its coverage (``label = label * (1 - cov) + onehot * cov``), so every
later, nearer thing (hair over brows, glasses frames, hands, blocks, a hat) removes the
label of what it covers: the labels describe what is visible, as in HELEN. Borders are
soft (anti-aliased coverage, like HELEN's probability maps). Shading, textures,
make-up, lashes etc. change only the picture. Blur, noise and JPEG are applied to the
picture only at the end; the labels stay exact.

Label conventions (document of what is drawn where):

* face skin: the face outline (forehead to chin, cheek to cheek), not ears, not neck;
  beards and stubble on the face stay face skin, glasses frames on the face become face
  skin (they hide brows/eyes under them);
* a closed eye is a thin sliver along the lash line (so it still has a centroid); a
  closed mouth has NO inner-mouth pixels (``meta["mouth_open"]`` is False);
* hair: head hair, including a fringe over the forehead that may hide the brows;
* background: everything else: ears, neck, body, clothes, background, hats, hands and
  other occluders.

Modules (in drawing order, see :data:`.render.LAYERS`): :mod:`.config` (the knobs),
:mod:`.scene` (random streams, pose, expression; :mod:`.identity` and
:mod:`.hair_style` draw the face and its hair), :mod:`.geometry` (face frame, depth,
yaw projection, outline), :mod:`.raster` (the canvas), :mod:`.background`,
:mod:`.hair`, :mod:`.body` (neck, clothes, ears), :mod:`.face_parts` (face skin,
modelling, brows, nose), :mod:`.eyes`, :mod:`.mouth` (lips, facial hair),
:mod:`.accessories` (glasses, hat, occluders), :mod:`.camera`, and :mod:`.render` (the
layer list and ``generate_face``); :mod:`.skin`, :mod:`.shapes`, :mod:`.noise` and
:mod:`.palette` are shared helpers.

Determinism: all randomness comes from ``numpy.random.SeedSequence(seed)`` children (no
global state); OpenCV is used only for deterministic operations. The same seed and
config give bit-identical outputs. The picture components (pose, identity, hair,
background, accessories, occluder, camera) use separate random streams, so e.g. turning
occluders off leaves the rest of the face of a seed unchanged.
"""

from __future__ import annotations

from stn_icnn_jax.data.synthetic.config import SyntheticFaceConfig
from stn_icnn_jax.data.synthetic.render import generate_face, generate_faces

__all__ = [
    "SyntheticFaceConfig",
    "generate_face",
    "generate_faces",
]
