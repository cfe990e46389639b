"""The capacity study's two embedded tasks: a re-weighting shift and a new-filter shift.

Both draw 64 px images like :mod:`.transfer_cls` (one large object on a colour gradient, clutter
lines, pixel noise) for the backbone pre-trained there on three shapes filled flat in random
colours (mostly differing from the background in brightness):

* ``'recolour'`` (re-weighting): the same three shapes, the class is the shape, but the colour
  statistics change: object, background, distractor and clutter share one luminance
  (Y = 0.299 R + 0.587 G + 0.114 B, before clipping) and differ only in hue, at low contrast
  (a colour distance of 35-60). The edges the backbone learnt are there; what it must change is
  how much each of them counts for each colour channel. (It failed its gate: norms-only came
  within 3 points of full fine-tuning; ``'recolour_opponent'`` is its one redesign.)
* ``'recolour_opponent'`` (re-weighting, redesigned): the same shapes at one luminance, now two
  of them: the object (the class) differs from the background along one hue axis
  (:data:`OPPONENT_SIGNAL`, red-green), a distractor of another shape along the other
  (:data:`OPPONENT_NUISANCE`, blue-yellow), over a background that varies along the nuisance
  axis only. Every edge the backbone needs is there; it must re-weight each kernel's colour
  taps to count one hue axis and ignore the other, which a per-channel scale cannot do.
* ``'gratings'`` (new filter): a two-colour sinusoidal grating at fixed colours fills the large
  shape (any of the three, a nuisance); the class is its orientation (45° or 135°, ± 8°) and
  period (fine 3.0-3.6 px or coarse 5.5-7.0 px). Flat fills never asked for frequency-tuned
  kernels at these periods: the pre-training never made them.
"""
import math

import cv2
import numpy as np

from mmliera.datasets.synthetic_coco import CLASSES as SHAPE_CLASSES
from .transfer_coco import _fill, _polygon

RECOLOUR_CLASSES = SHAPE_CLASSES
GRATING_CLASSES = ('fine 45', 'fine 135', 'coarse 45', 'coarse 135')
GRATING_PERIODS = dict(fine=(3.0, 3.6), coarse=(5.5, 7.0))
GRATING_FINE_CLASSES = ('2.8-3.1 px', '3.4-3.8 px', '4.2-4.7 px', '5.2-5.8 px')
GRATING_FINE_PERIODS = ((2.8, 3.1), (3.4, 3.8), (4.2, 4.7), (5.2, 5.8))  # adjacent: ~1.2x apart
GRATING_COLOURS = ((60, 150, 200), (170, 90, 40))  # BGR, fixed (jittered by ± 8 per channel)
LUMA = np.array([0.114, 0.587, 0.299])  # BGR weights of Y


def _hue_axis(bgr):
    """The unit BGR direction nearest ``bgr`` with no luminance."""
    d = np.asarray(bgr, np.float64)
    d = d - LUMA * (d @ LUMA) / (LUMA @ LUMA)
    return d / np.linalg.norm(d)


OPPONENT_SIGNAL = _hue_axis((0, 1, -1))  # green - red, no luminance
OPPONENT_NUISANCE = np.cross(LUMA, OPPONENT_SIGNAL) / np.linalg.norm(
    np.cross(LUMA, OPPONENT_SIGNAL))  # blue - yellow: no luminance, orthogonal to the signal


def luminance(bgr):
    """Y of BGR colours (..., 3)."""
    return np.asarray(bgr, np.float64) @ LUMA


def iso_colour(rng, luma, ref=None, distance=(35, 60)):
    """A BGR colour of luminance ``luma``; with ``ref``, at a colour distance in ``distance``
    from it (a hue change only: the offset has no luminance)."""
    if ref is None:
        c = rng.uniform(-60, 60, 3)
        return c - luminance(c) + luma
    d = rng.normal(size=3)
    d -= LUMA * (d @ LUMA) / (LUMA @ LUMA)  # remove the luminance component
    return np.asarray(ref) + d / np.linalg.norm(d) * rng.uniform(*distance)


def _background(rng, size, colour, slope=15, direction=(1, 1, 1)):
    """``colour`` plus a linear ramp (up to ``slope``) along x or y in BGR ``direction``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    ramp = rng.uniform(-slope, slope) * (xx if rng.uniform() < 0.5 else yy)
    return np.asarray(colour, np.float32) + ramp[..., None] * np.asarray(direction, np.float32)


def _lines(rng, img, colour, count):
    size = img.shape[0]
    for _ in range(count):
        p0, p1 = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1),
                 np.asarray(colour, np.float64).tolist(), 1)


def _place(rng, size):
    r = rng.uniform(0.26, 0.36) * size
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    return cx, cy, r


def make_recolour(rng, size):
    """One ``'recolour'`` image (BGR uint8) and its class (the shape)."""
    luma = rng.uniform(90, 160)
    bg = iso_colour(rng, luma)
    img = _background(rng, size, bg)
    _lines(rng, img, iso_colour(rng, luma, bg), int(rng.integers(0, 3)))
    cat = int(rng.integers(len(RECOLOUR_CLASSES)))
    cx, cy, r = _place(rng, size)
    _fill(img, _polygon(rng, RECOLOUR_CLASSES[cat], cx, cy, r), iso_colour(rng, luma, bg))
    if rng.uniform() < 0.5:  # a small distractor of the same luminance
        rd = rng.uniform(0.08, 0.14) * size
        for _attempt in range(10):
            dx, dy = rng.uniform(rd + 1, size - rd - 1, 2)
            if math.hypot(dx - cx, dy - cy) > r + rd:
                kind = RECOLOUR_CLASSES[int(rng.integers(len(RECOLOUR_CLASSES)))]
                _fill(img, _polygon(rng, kind, dx, dy, rd), iso_colour(rng, luma, bg))
                break
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), cat


def _two_places(rng, size, tries=50):
    """Centres and radii of two shapes that do not touch (a fixed side-by-side pair if
    ``tries`` draws fail)."""
    for _ in range(tries):
        (r0, r1) = rng.uniform(0.16, 0.21, 2) * size
        c0 = rng.uniform(r0 + 1, size - r0 - 1, 2)
        c1 = rng.uniform(r1 + 1, size - r1 - 1, 2)
        if math.dist(c0, c1) > r0 + r1 + 2:
            return (*c0, r0), (*c1, r1)
    r = 0.16 * size
    return (0.25 * size, 0.5 * size, r), (0.75 * size, 0.5 * size, r)


def make_recolour_opponent(rng, size):
    """One ``'recolour_opponent'`` image (BGR uint8) and its class (the object's shape)."""
    luma = rng.uniform(100, 155)
    bg = np.full(3, luma) + rng.uniform(-15, 15) * OPPONENT_NUISANCE
    img = _background(rng, size, bg, direction=OPPONENT_NUISANCE)
    for _ in range(int(rng.integers(0, 3))):  # clutter lines along the nuisance axis
        _lines(rng, img, bg + rng.choice((-1, 1)) * rng.uniform(45, 70) * OPPONENT_NUISANCE, 1)
    cat = int(rng.integers(len(RECOLOUR_CLASSES)))
    other = (cat + int(rng.integers(1, len(RECOLOUR_CLASSES)))) % len(RECOLOUR_CLASSES)
    place, distractor_place = _two_places(rng, size)
    shapes = [(cat, place, OPPONENT_SIGNAL), (other, distractor_place, OPPONENT_NUISANCE)]
    for kind, (cx, cy, r), axis in shapes:
        colour = bg + rng.choice((-1, 1)) * rng.uniform(35, 60) * axis
        _fill(img, _polygon(rng, RECOLOUR_CLASSES[kind], cx, cy, r), colour)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), cat


def grating(rng, size, cat):
    """(size, size, 3) float BGR grating of class ``cat`` (:data:`GRATING_CLASSES`)."""
    period_kind, angle = GRATING_CLASSES[cat].split()
    return _grating(rng, size, GRATING_PERIODS[period_kind], float(angle))


def grating_fine(rng, size, cat):
    """(size, size, 3) float BGR grating of class ``cat`` (:data:`GRATING_FINE_CLASSES`): its
    period band; the orientation (45° or 135°, a nuisance) drawn at random."""
    return _grating(rng, size, GRATING_FINE_PERIODS[cat], 45.0 if rng.random() < 0.5 else 135.0)


def _grating(rng, size, periods, angle):
    """A sinusoidal grating at ``angle`` ± 8 degrees, its period drawn from the band
    ``periods`` (px), random phase, in the fixed colours (:data:`GRATING_COLOURS`, jittered by
    ± 8 per channel)."""
    a = math.radians(angle + rng.uniform(-8, 8))
    period = rng.uniform(*periods)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    wave = 0.5 + 0.5 * np.sin(2 * math.pi * (xx * math.cos(a) + yy * math.sin(a)) / period +
                              rng.uniform(0, 2 * math.pi))
    c0, c1 = (np.asarray(c, np.float32) + rng.uniform(-8, 8, 3) for c in GRATING_COLOURS)
    return c0 + wave[..., None] * (c1 - c0)


def make_gratings(rng, size):
    """One ``'gratings'`` image (BGR uint8) and its class (period and orientation)."""
    return _grating_image(rng, size, grating, len(GRATING_CLASSES))


def make_gratings_fine(rng, size):
    """One ``'gratings_fine'`` image (BGR uint8) and its class (the period band)."""
    return _grating_image(rng, size, grating_fine, len(GRATING_FINE_CLASSES))


def _grating_image(rng, size, fill, num_classes):
    """A gradient background with clutter, a shape of any kind filled with ``fill(rng, size,
    cat)`` of a random class, pixel noise: (BGR uint8 image, cat)."""
    img = _background(rng, size, rng.uniform(40, 200, 3), slope=40)
    _lines(rng, img, rng.uniform(0, 255, 3), int(rng.integers(0, 3)))
    cat = int(rng.integers(num_classes))
    cx, cy, r = _place(rng, size)
    shape = SHAPE_CLASSES[int(rng.integers(len(SHAPE_CLASSES)))]
    _fill(img, _polygon(rng, shape, cx, cy, r), fill(rng, size, cat))
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), cat
