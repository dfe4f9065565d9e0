"""stn_icnn_jax.parse / parse_many on arrays, paths, PIL images, modes, EXIF, faces.

One tiny random-weights model (smoke config) and one Parser (batch 2, one 256 canvas
bucket) serve every test (and the command-line tests), so the model compiles once."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

import stn_icnn_jax
from stn_icnn_jax import weights as weights_lib
from stn_icnn_jax.photo import api, framing, images
from stn_icnn_jax.photo.parser import Parser
from stn_icnn_jax.photo.real_photos import PHOTO_FILES
from parse_helpers import shared_weights_file


@pytest.fixture(scope="module")
def parser():
    return api.get_parser(shared_weights_file(), batch_size=2, max_side=256)


@pytest.fixture(scope="module")
def astronaut():
    return np.asarray(Image.open(PHOTO_FILES["astronaut"]()).convert("RGB"))


def quiet_parse_many(photos, parser, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", api.NoFaceWarning)
        return stn_icnn_jax.parse_many(photos, parser, **kw)


def test_array_path_and_pil_give_the_same_map(parser, astronaut, tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(astronaut).save(path)
    by_array, by_path, by_pil = quiet_parse_many(
        [astronaut, path, Image.open(path)], parser)
    assert by_array.shape == (512, 512) and np.issubdtype(by_array.dtype, np.integer)
    assert by_array.min() >= 0 and by_array.max() <= 8
    assert (by_array > 0).any(), "the face frame produced no facial class"
    np.testing.assert_array_equal(by_path, by_array)
    np.testing.assert_array_equal(by_pil, by_array)
    # the single-photo form is the batched one
    np.testing.assert_array_equal(stn_icnn_jax.parse(astronaut, parser), by_array)


def test_one_compilation_for_many_sizes(parser):
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
              for h, w in [(100, 120), (150, 90), (200, 230), (64, 64), (255, 17)]]
    before = parser.compilations()
    maps = quiet_parse_many(photos, parser, batch_size=2)
    assert [m.shape for m in maps] == [p.shape[:2] for p in photos]
    assert parser.compilations() == max(before, 1) == 1
    assert [parser.bucket(s) for s in [(1, 1), (256, 3), (3, 256)]] == [256] * 3
    with pytest.raises(ValueError, match="larger than the largest canvas"):
        parser.bucket((257, 10))


def test_buckets_of_the_default_sizes():
    class Fake:
        def model(self):
            from stn_icnn_jax.model.stn_icnn import STNiCNN

            return STNiCNN()
        variables = {}
    p = Parser(Fake())
    assert [p.bucket((h, 10)) for h in (200, 256, 257, 600, 1024)] == [256, 256, 512, 768, 1024]
    assert Parser(Fake(), max_side=600).canvas_sizes == (256, 512, 600)


# ------------------------------------------------------------------ modes (to_rgb)


def test_modes_converted_by_hand(tmp_path):
    gray = np.array([[0, 10], [200, 255]], np.uint8)
    np.testing.assert_array_equal(images.to_rgb(Image.fromarray(gray)), np.stack([gray] * 3, -1))
    np.testing.assert_array_equal(images.to_rgb(gray), np.stack([gray] * 3, -1))
    rgba = np.array([[[100, 50, 200, 255], [100, 50, 200, 128]]], np.uint8)
    # opaque: as is; half transparent: onto black, 100 * 128 / 255 = 50.2 -> 50
    np.testing.assert_array_equal(images.to_rgb(rgba), [[[100, 50, 200], [50, 25, 100]]])
    sixteen = np.array([[0, 257, 65535, 1000]], np.uint16)
    path = tmp_path / "16.png"
    Image.fromarray(sixteen).save(path)  # I;16 PNG
    np.testing.assert_array_equal(images.to_rgb(path)[..., 0], [[0, 1, 255, 4]])  # 1000/257=3.9
    pal = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    pal.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    np.testing.assert_array_equal(images.to_rgb(pal), [[[10, 20, 30], [40, 50, 60]]])


def test_modes_refused_with_the_name(tmp_path):
    path = tmp_path / "thirty_two.tif"
    Image.fromarray(np.array([[1, 70000]], np.int32), mode="I").save(path)
    with pytest.raises(images.PhotoError, match=r"thirty_two\.tif.*mode 'I'"):
        images.to_rgb(path)
    with pytest.raises(images.PhotoError, match="float32"):
        images.to_rgb(np.zeros((4, 4, 3), np.float32))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(images.PhotoError, match=r"broken\.jpg"):
        images.to_rgb(bad)


def test_grayscale_photo_parses_as_its_rgb(parser, astronaut):
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    a, b = quiet_parse_many([Image.fromarray(gray), np.stack([gray] * 3, -1)], parser)
    np.testing.assert_array_equal(a, b)


def test_exif_orientation_is_applied(parser, astronaut, tmp_path):
    stored = astronaut[:, 100:400]  # not square: a turn changes the shape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "turned.png"
    Image.fromarray(stored).save(path, exif=exif)
    shown = np.rot90(stored, k=-1)  # clockwise
    np.testing.assert_array_equal(images.to_rgb(path), shown)
    by_path, by_array = quiet_parse_many([path, np.ascontiguousarray(shown)], parser)
    assert by_path.shape == (300, 512)
    np.testing.assert_array_equal(by_path, by_array)


# ------------------------------------------------------------------ faces


def test_no_face_fallback_and_skip(parser):
    blank = np.full((200, 240, 3), 128, np.uint8)
    with pytest.warns(api.NoFaceWarning, match="no face found; parsed the whole image"):
        labels, info = stn_icnn_jax.parse(blank, parser, return_info=True)
    assert info.faces == 0 and info.whole_image
    assert info.frames == (framing.Frame(box=(0, 0, 240, 200), size=(200, 240)),)
    np.testing.assert_array_equal(labels, parser.parse_arrays([blank])[0])
    with pytest.warns(api.NoFaceWarning, match="skipped"):
        skipped, info = stn_icnn_jax.parse(blank, parser, face_fallback=False, return_info=True)
    assert info.frames == () and not skipped.any() and skipped.shape == (200, 240)


def test_two_faces_side_by_side_are_each_parsed(parser, astronaut):
    face = astronaut[20:260, 110:350]
    pair = np.concatenate([face, face], axis=1)  # 240 x 480
    (labels,), (info,) = quiet_parse_many([pair], parser, return_info=True)
    assert info.faces == 2
    centres = sorted(f.face[0] + f.face[2] / 2 for f in info.frames)
    assert centres[0] < 240 < centres[1]
    left, right = labels[:, :240], labels[:, 240:]
    assert (left > 0).sum() > 100 and (right > 0).sum() > 100


def _by_hand_crop(image, frame):
    """Crop with np.pad (edge) and cv2 resize, independent of framing.crop's padding."""
    import cv2

    x0, y0, x1, y1 = frame.box
    pad = 1000
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    window = padded[y0 + pad : y1 + pad, x0 + pad : x1 + pad]
    h, w = frame.size
    return cv2.resize(window, (w, h), interpolation=cv2.INTER_AREA)


def test_framed_face_equals_crop_parsed_and_pasted_by_hand(parser, astronaut):
    labels, info = stn_icnn_jax.parse(astronaut, parser, return_info=True)
    (frame,) = info.frames
    assert frame.box[1] < 0  # the frame reaches above the photo: padding is exercised
    crop = _by_hand_crop(astronaut, frame)
    np.testing.assert_array_equal(framing.crop(astronaut, frame), crop)
    crop_labels = parser.parse_arrays([crop])[0]
    x0, y0, x1, y1 = frame.box
    # nearest upsampling, output pixel centre -> source pixel containing it
    rows = [int((i + 0.5) * frame.size[0] / (y1 - y0)) for i in range(y1 - y0)]
    cols = [int((j + 0.5) * frame.size[1] / (x1 - x0)) for j in range(x1 - x0)]
    big = crop_labels[np.ix_(rows, cols)]
    expected = np.zeros((512, 512), np.int64)
    expected[max(y0, 0) : y1, max(x0, 0) : x1] = big[max(-y0, 0) :, max(-x0, 0) :][: 512 - max(y0, 0), : 512 - max(x0, 0)]
    np.testing.assert_array_equal(labels, expected)


def test_overlapping_frames_by_hand():
    # Two 4x4 frames over a 4x6 image, overlapping in columns 2..3.
    a = framing.Frame(box=(0, 0, 4, 4), size=(4, 4), face=(0, 0, 4, 4))   # centre x=2
    b = framing.Frame(box=(2, 0, 6, 4), size=(4, 4), face=(2, 0, 4, 4))   # centre x=4
    la = np.array([[1] * 4, [0] * 4, [1, 1, 1, 0], [0, 0, 0, 0]])
    lb = np.array([[5] * 4, [5, 5, 0, 0], [0] * 4, [0, 5, 5, 5]])
    out = framing.paste_frames((4, 6), [a, b], [la, lb])
    np.testing.assert_array_equal(out, [
        [1, 1, 1, 5, 5, 5],   # both facial: x=2.5 nearer a (dist .5 vs 1.5), x=3.5 nearer b
        [0, 0, 5, 5, 0, 0],   # a background, b facial -> b
        [1, 1, 1, 0, 0, 0],   # a facial at x=2 -> a; nothing at x=3
        [0, 0, 0, 5, 5, 5],
    ])


def test_missing_default_weights_say_so(monkeypatch):
    monkeypatch.setattr(api, "DEFAULT_WEIGHTS_NAME", "no-such-file.stnw")
    with pytest.raises(weights_lib.WeightsFileError, match="bundled default weights are missing"):
        stn_icnn_jax.parse(np.zeros((8, 8, 3), np.uint8))


def test_parsers_are_cached_per_weights(tmp_path):
    path = shared_weights_file()
    assert api.get_parser(path, 2, 256) is api.get_parser(path, 2, 256)
    loaded = weights_lib.load(path)
    first = api.get_parser(loaded, 2)
    assert api.get_parser(loaded, 2) is first and first.canvas_sizes == (256, 512, 768, 1024)
    assert api.get_parser(first) is first


def test_the_canvas_bucket_does_not_change_the_labels(parser, astronaut):
    # The same face crop on the shared parser's 256 canvas and on a 160 canvas.
    face = np.ascontiguousarray(astronaut[40:160, 170:290])
    small = Parser(weights_lib.load(shared_weights_file()), batch_size=2, canvas_sizes=(160,))
    on_160, = small.parse_arrays([face])
    on_256, = parser.parse_arrays([face])
    assert (on_256 > 0).sum() > 100
    np.testing.assert_array_equal(on_160, on_256)
