"""Basketball drawn as the paper draws it: the court-to-image mapping and a dot renderer.

Positions come in the Zhan et al. (2019) layout (:mod:`keypoint_wm.data.basketball`): float
``[..., T, 22]`` in feet on a 94 x 50 ft court, ``(0, 0)`` at a corner, columns ball (x, y),
5 offence, 5 defence.

Court to image (``view="half"``, the default): play happens in one half, so only the half
court (47 x 50 ft) is drawn, with a 2 ft margin on every side: a square of 54 ft, centred on
the half court, fills the image (1.17 px per ft at 64 x 64). Sequences whose offence attacks
the right basket are first turned by 180 degrees about the court centre,
``(x, y) -> (94 - x, 50 - y)`` (:func:`canonical_half_court`), so the basket is always on the
left of the image (baseline at the left edge, the half-court line near the right edge).
Court x runs to the right and court y up, with the same scale on both axes. ``view="full"``
letterboxes the whole court (98 x 98 ft square, 0.64 px per ft at 64 x 64).

Drawing (64 x 64, sizes scale with the image): light wood background with faint court
lines; offence players are anti-aliased discs of 4.5 px diameter in five distinct colours
(blue, red, green, purple, near-black); defenders, when drawn, are grey discs of the same
size underneath; the ball is an orange disc of 3 px diameter drawn last (on top). Each
pixel's disc coverage is computed from the exact sub-pixel centre, so the intensity centroid
of a lone dot lies at its :func:`court_to_keypoint` position.
"""

from __future__ import annotations

import functools

import numpy as np

from keypoint_wm.conventions import keypoint_to_pixel, pixel_to_keypoint
from keypoint_wm.data.basketball_sim import (
    COURT_LENGTH_FT,
    COURT_WIDTH_FT,
    HALF_COURT_FT,
    NUM_COLUMNS,
    NUM_PLAYERS,
)
from keypoint_wm.errors import UsageError

__all__ = [
    "attacks_right",
    "canonical_half_court",
    "court_to_keypoint",
    "keypoint_to_court",
    "render_basketball",
]

VIEWS = ("half", "full")
DEFAULT_MARGIN_FT = 2.0
BACKGROUND_COLOUR = (236, 226, 206)
LINE_COLOUR = (206, 193, 168)
OFFENCE_COLOURS = ((30, 90, 215), (215, 35, 45), (25, 150, 60), (145, 55, 185), (35, 35, 35))
DEFENCE_COLOUR = (150, 150, 150)
BALL_COLOUR = (245, 115, 0)
PLAYER_RADIUS_64 = 2.25
BALL_RADIUS_64 = 1.5
_RENDER_BATCH_FRAMES = 1024


# -- court <-> keypoint frame ---------------------------------------------------------------


def _view_square(view: str, margin_ft: float) -> tuple[float, float, float]:
    """Centre (x, y) and side, in feet, of the court square that fills the image."""
    if view == "half":
        return HALF_COURT_FT / 2, COURT_WIDTH_FT / 2, COURT_WIDTH_FT + 2 * margin_ft
    if view == "full":
        return COURT_LENGTH_FT / 2, COURT_WIDTH_FT / 2, COURT_LENGTH_FT + 2 * margin_ft
    raise ValueError(f"view must be one of {VIEWS}, got {view!r}")


def court_to_keypoint(
    positions: np.ndarray, view: str = "half", margin_ft: float = DEFAULT_MARGIN_FT
) -> np.ndarray:
    """Court feet ``[..., 2]`` to the keypoint frame ``[..., 2]`` (x right, y up, [-1, 1] on
    the image), as :func:`render_basketball` draws them.

    For ``view="half"`` pass positions of the left half (see :func:`canonical_half_court`);
    points outside the drawn square map outside [-1, 1].
    """
    cx, cy, side = _view_square(view, margin_ft)
    positions = np.asarray(positions, dtype=np.float64)
    return np.stack([positions[..., 0] - cx, positions[..., 1] - cy], axis=-1) * (2.0 / side)


def keypoint_to_court(
    xy: np.ndarray, view: str = "half", margin_ft: float = DEFAULT_MARGIN_FT
) -> np.ndarray:
    """Inverse of :func:`court_to_keypoint`: keypoint frame ``[..., 2]`` to feet ``[..., 2]``."""
    cx, cy, side = _view_square(view, margin_ft)
    xy = np.asarray(xy, dtype=np.float64) * (side / 2.0)
    return np.stack([xy[..., 0] + cx, xy[..., 1] + cy], axis=-1)


def attacks_right(positions: np.ndarray) -> np.ndarray:
    """Whether each sequence ``[..., T, 22]`` is played in the right half: the offence's mean
    x over the sequence is beyond the half-court line. Returns bool ``[...]``."""
    positions = np.asarray(positions)
    return positions[..., 2:12:2].mean(axis=(-2, -1)) > HALF_COURT_FT


def canonical_half_court(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn sequences played in the right half by 180 degrees about the court centre.

    Args:
        positions: ``[..., T, 22]`` in feet.

    Returns:
        ``(positions, flipped)``: float32 ``[..., T, 22]`` with every offence attacking the
        left basket, and bool ``[...]`` telling which sequences were turned.
    """
    positions = np.asarray(positions, dtype=np.float32)
    flipped = attacks_right(positions)
    court = np.array([COURT_LENGTH_FT, COURT_WIDTH_FT], np.float32)
    turned = np.tile(court, NUM_COLUMNS // 2) - positions
    return np.where(flipped[..., None, None], turned, positions), flipped


# -- rendering ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _background(size: int, view: str, margin_ft: float, court_lines: bool) -> np.ndarray:
    """float32 ``[S, S, 3]`` court image (read-only, cached)."""
    image = np.empty((size, size, 3), np.float32)
    image[:] = BACKGROUND_COLOUR
    if court_lines:
        grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), axis=-1)  # (col, row)
        feet = keypoint_to_court(pixel_to_keypoint(grid, size), view, margin_ft)
        px_per_ft = (size - 1) / _view_square(view, margin_ft)[2]
        dist = _court_line_distance(feet) * px_per_ft
        alpha = np.clip(1.0 - dist, 0.0, 1.0)[..., None]  # lines about 1 px wide
        image += alpha * (np.array(LINE_COLOUR, np.float32) - image)
    image.setflags(write=False)
    return image


def _court_line_distance(p: np.ndarray) -> np.ndarray:
    """Distance in feet from points ``[..., 2]`` to the nearest court line (both halves)."""
    x, y = p[..., 0], p[..., 1]
    best = np.full(x.shape, np.inf)

    def segment(a: tuple[float, float], b: tuple[float, float]) -> None:
        nonlocal best
        ax, ay = a
        dx, dy = b[0] - ax, b[1] - ay
        t = np.clip(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        best = np.minimum(best, np.hypot(x - ax - t * dx, y - ay - t * dy))

    def circle(cx: float, cy: float, r: float, mask: np.ndarray | None = None) -> None:
        nonlocal best
        d = np.abs(np.hypot(x - cx, y - cy) - r)
        best = np.minimum(best, d if mask is None else np.where(mask, d, np.inf))

    length, width = COURT_LENGTH_FT, COURT_WIDTH_FT
    for a, b in [((0, 0), (length, 0)), ((0, width), (length, width))]:
        segment(a, b)
    segment((HALF_COURT_FT, 0), (HALF_COURT_FT, width))
    circle(HALF_COURT_FT, width / 2, 6.0)
    corner_x = 5.25 + np.sqrt(23.75**2 - 22.0**2)
    for sign, base in ((1.0, 0.0), (-1.0, length)):  # left half, then mirrored right half
        segment((base, 0), (base, width))
        for y0 in (17.0, 33.0):  # the lane, 16 ft wide, 19 ft deep
            segment((base, y0), (base + sign * 19.0, y0))
        segment((base + sign * 19.0, 17.0), (base + sign * 19.0, 33.0))
        circle(base + sign * 19.0, width / 2, 6.0)  # free-throw circle
        for y0 in (3.0, width - 3.0):  # corner threes
            segment((base, y0), (base + sign * corner_x, y0))
        circle(base + sign * 5.25, width / 2, 23.75, mask=sign * (x - base) >= corner_x)
    return best


def _draw_discs(
    canvas: np.ndarray, centres: np.ndarray, radius: float, colour: tuple[int, int, int]
) -> None:
    """Blend anti-aliased discs into ``canvas`` float32 ``[F, S, S, 3]`` in place.

    ``centres``: ``[F, 2]`` sub-pixel (col, row), one disc per frame. A pixel's opacity is
    its approximate coverage by the disc, ``clip(radius + 0.5 - distance, 0, 1)``; only a
    small patch around each centre is touched.
    """
    frames, size = canvas.shape[0], canvas.shape[1]
    half = int(np.ceil(radius + 0.5))
    offsets = np.arange(-half, half + 1)
    # Patches stay inside the image; an off-image part of a disc is simply not drawn.
    base = np.clip(np.rint(centres), half, size - 1 - half).astype(np.intp)
    cols = base[:, :1] + offsets  # [F, P]
    rows = base[:, 1:] + offsets
    dc = cols - centres[:, :1]
    dr = rows - centres[:, 1:]
    dist = np.sqrt(dr[:, :, None] ** 2 + dc[:, None, :] ** 2)  # [F, P, P]
    alpha = np.clip(radius + 0.5 - dist, 0.0, 1.0).astype(np.float32)[..., None]
    index = (np.arange(frames)[:, None, None], rows[:, :, None], cols[:, None, :])
    patch = canvas[index]
    canvas[index] = patch + alpha * (np.array(colour, np.float32) - patch)


def render_basketball(
    positions: np.ndarray,
    size: int = 64,
    draw_defence: bool = False,
    *,
    view: str = "half",
    canonicalize: bool = True,
    court_lines: bool = True,
    margin_ft: float = DEFAULT_MARGIN_FT,
    player_radius: float | None = None,
    ball_radius: float | None = None,
) -> np.ndarray:
    """Draw trajectories in the Zhan et al. layout as top-down coloured dots.

    Args:
        positions: ``[T, 22]`` or ``[N, T, 22]`` in feet (ball, 5 offence, 5 defence).
        size: image side S in pixels (at least 8).
        draw_defence: also draw the 5 defenders (one grey colour, under the offence).
        view: ``"half"`` (the half court in play fills the image) or ``"full"`` (letterboxed).
        canonicalize: with ``view="half"``, first turn right-half sequences to the left half
            (:func:`canonical_half_court`); turn it off only for data already in the left half.
        court_lines: draw faint court lines.
        margin_ft: margin around the drawn court, in feet.
        player_radius, ball_radius: disc radii in pixels; default 2.25 and 1.5 at 64 x 64,
            scaled with ``size``.

    Returns:
        uint8 ``[..., T, S, S, 3]``. Object ``k`` at court position ``p`` is centred on the
        pixel whose keypoint is ``court_to_keypoint(p, view, margin_ft)`` (for ``view="half"``
        after :func:`canonical_half_court`).
    """
    positions = np.asarray(positions, dtype=np.float32)
    if positions.ndim not in (2, 3) or positions.shape[-1] != NUM_COLUMNS:
        raise ValueError(f"positions must be [T, 22] or [N, T, 22], got {list(positions.shape)}")
    if size < 8:
        raise UsageError(f"--size must be >= 8 pixels, got {size}")
    if view == "half" and canonicalize:
        positions = canonical_half_court(positions)[0]
    player_radius = PLAYER_RADIUS_64 * size / 64 if player_radius is None else player_radius
    ball_radius = BALL_RADIUS_64 * size / 64 if ball_radius is None else ball_radius
    background = _background(size, view, float(margin_ft), court_lines)
    lead_shape = positions.shape[:-1]
    objects = positions.reshape(-1, NUM_COLUMNS // 2, 2)
    pixels = keypoint_to_pixel(court_to_keypoint(objects, view, margin_ft), size)  # [F, 11, 2]
    out = np.empty((objects.shape[0], size, size, 3), np.uint8)
    for start in range(0, objects.shape[0], _RENDER_BATCH_FRAMES):
        batch = pixels[start : start + _RENDER_BATCH_FRAMES]
        canvas = np.repeat(background[None], batch.shape[0], axis=0)
        if draw_defence:
            for k in range(1 + NUM_PLAYERS, 1 + 2 * NUM_PLAYERS):
                _draw_discs(canvas, batch[:, k], player_radius, DEFENCE_COLOUR)
        for k in range(NUM_PLAYERS):
            _draw_discs(canvas, batch[:, 1 + k], player_radius, OFFENCE_COLOURS[k])
        _draw_discs(canvas, batch[:, 0], ball_radius, BALL_COLOUR)
        # Blending keeps values within [0, 255]; rounding then casting is exact.
        out[start : start + batch.shape[0]] = np.rint(canvas, out=canvas)
    return out.reshape(*lead_shape, size, size, 3)
