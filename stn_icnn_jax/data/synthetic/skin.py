"""Skin colour fields (lit head ellipsoid or neck cylinder) and soft marks on the face.

Picture only: nothing here changes labels.
"""

from __future__ import annotations

import numpy as np

from stn_icnn_jax.data.synthetic.channels import NOSE, SKIN
from stn_icnn_jax.data.synthetic.noise import value_noise
from stn_icnn_jax.data.synthetic.raster import box_slices


def _head_normals(scene, view_x, view_y):
    """Unnormalised normals of the head ellipsoid at view points (face and ears)."""
    g = scene.geometry
    width = scene.identity.outline.width
    q = 1.0 - (view_x / width) ** 2 - ((view_y - g.head_centre_y) / g.head_half_height) ** 2
    q = np.clip(q, 0.02, 1.0)
    nz = np.sqrt(q) / g.head_depth
    nx = view_x / width**2
    ny = (view_y - g.head_centre_y) / g.head_half_height**2
    return nx, ny, nz


def _neck_normals(scene, view_x):
    """Normals of the neck cylinder (body frame approximately)."""
    radius = scene.identity.neck_half_width * 1.05
    q = np.clip(1.0 - (view_x / radius) ** 2, 0.03, 1.0)
    return view_x / radius, np.zeros_like(view_x), np.sqrt(q)


def _skin_texture(scene, height, width):
    """Relative brightness variations: blotches, and pores (more with age)."""
    rng, scale = scene.streams.texture, scene.scale
    blotches = value_noise(rng, height, width, max(2.0, 0.3 * scale)) * 0.018 + value_noise(
        rng, height, width, max(1.5, 0.06 * scale)
    ) * 0.01
    pores = value_noise(rng, height, width, max(1.0, 0.006 * scale)) * (0.005 + 0.012 * scene.identity.age)
    return blotches, pores


def skin_colour_field(scene, box, base, surface="face"):
    """Colour (h, w, 3) of lit, textured skin of colour ``base`` on the box.

    ``surface`` "face" shades the head ellipsoid (with a specular highlight), "neck" a
    vertical cylinder. Draws texture noise.
    """
    view_x, view_y = scene.geometry.view_grid(box)
    if surface == "face":
        nx, ny, nz = _head_normals(scene, view_x, view_y)
    else:
        nx, ny, nz = _neck_normals(scene, view_x)
    inv = 1.0 / np.sqrt(nx * nx + ny * ny + nz * nz)
    light = scene.identity.light
    direction = light.direction
    diffuse = np.clip((nx * direction[0] + ny * direction[1] + nz * direction[2]) * inv * 0.8 + 0.2, 0, 1)
    ambient = light.ambient
    shading = (ambient + (1 - ambient) * diffuse) * (0.72 + 0.28 * np.sqrt(np.clip(nz * inv, 0, 1)))
    blotches, pores = _skin_texture(scene, *view_x.shape)
    colour = base[None, None, :] * (shading * (1 + blotches + pores))[..., None]
    # a reddish tinge in the mid face, subsurface-looking warm shadows
    warm = np.float32(0.04) * (1 - diffuse)[..., None] * np.array([0.3, -0.2, -0.4], np.float32)
    colour = colour + warm * base[None, None, :]
    if light.specular > 0 and surface == "face":
        halfway = np.array([direction[0], direction[1], direction[2] + 1.0], np.float32)
        halfway /= np.linalg.norm(halfway)
        highlight = np.clip((nx * halfway[0] + ny * halfway[1] + nz * halfway[2]) * inv, 0, 1) ** 24
        colour = colour + (light.specular * highlight)[..., None]
    return colour


def shade_on_face(scene, canvas, points, sigma, colour=None, factor=None, strength=1.0, extra_depth=0.0,
                  only_on_face=True):
    """A soft mark on the face (picture only): darken by ``factor`` or tint with ``colour``.

    ``points`` is a polygon in face units on the head surface (+ ``extra_depth``),
    ``sigma`` its blur in face units. With ``only_on_face`` the mark is limited to the
    face skin and nose labels painted so far.
    """
    coverage, box = canvas.soft_coverage(scene.geometry.project(points, extra_depth), sigma * scene.scale)
    if coverage is None:
        return
    opacity = coverage * strength
    if only_on_face:
        rows, cols = box_slices(box)
        opacity = opacity * np.clip(canvas.labels[SKIN, rows, cols] + canvas.labels[NOSE, rows, cols], 0, 1)
    if factor is not None:
        canvas.shade(box, 1 + (factor - 1) * opacity)
    else:
        canvas.paint(opacity, box, colour)
