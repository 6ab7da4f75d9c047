"""A built-in simulator of basketball possessions in the Zhan et al. (2019) layout.

The real data the paper renders (NBA tracking, Zhan et al. 2019) is licensed and cannot be
shipped, so this module writes the same layout from a small hand-made model of half-court
offence, for tests, demos and the default dataset:

* arrays float32 ``[N, T, 22]`` of positions in **feet** on a 94 x 50 ft court with
  ``(0, 0)`` at a corner (x along the length, y across);
* columns: ball (x, y), then the 5 offence players (x, y each), then the 5 defenders;
* ``T = 50`` frames at 6.25 Hz (8 s).

The model, per sequence (all sequences simulated together, vectorised over the batch):

* The offence attacks one basket (chosen at random per sequence) and stays in that half.
  Each player walks or jogs to one of the usual spacing spots (corners, wings, slots, top,
  elbows, posts), preferring spots far from the teammates' spots, picks a new one every few
  seconds, and now and then cuts to the basket at a sprint; teammates closer than ~8 ft push
  apart. Motion is acceleration-limited (about 16 ft/s^2) with a cruising speed of 4-11 ft/s
  and cuts at 12-19 ft/s (never above 20 ft/s).
* The ball is held beside its holder (dribbled toward the basket side), passed to a teammate
  in fast, nearly straight flight (32-48 ft/s, aimed at the receiver), and sometimes shot
  from inside ~24 ft; a shot flies to the rim and rebounds to the offence player nearest the
  basket.
* Defender ``j`` guards offence player ``j``: it heads for a point between its man and the
  basket (tight on the ball holder, sagging toward the ball otherwise), reacting to where
  its man was about 0.3 s ago, with its own speed and acceleration limits.

Determinism: sequences are simulated in fixed chunks of :data:`SIM_CHUNK`; chunk ``c`` of
seed ``s`` draws from ``np.random.SeedSequence([s, c])`` only. So the same seed always gives
the same data, ``simulate_basketball(n, s)`` is a prefix of ``simulate_basketball(m, s)`` for
``n < m``, and one sequence can be regenerated alone (:func:`simulate_chunk`).
"""

from __future__ import annotations

import numpy as np

COURT_LENGTH_FT = 94.0
COURT_WIDTH_FT = 50.0
HALF_COURT_FT = COURT_LENGTH_FT / 2
BASKET_FROM_BASELINE_FT = 5.25
FPS = 6.25
NUM_FRAMES = 50
NUM_COLUMNS = 22
NUM_PLAYERS = 5
SIM_CHUNK = 256
"""Sequences per independently seeded simulation chunk (part of the data's definition)."""

# Canonical frame of the simulation: the offence attacks the LEFT basket.
_BASKET = np.array([BASKET_FROM_BASELINE_FT, COURT_WIDTH_FT / 2])
_SPOTS = np.array(
    [
        (4.0, 3.5),  # corners
        (4.0, 46.5),
        (21.0, 8.0),  # wings
        (21.0, 42.0),
        (27.0, 16.0),  # slots
        (27.0, 34.0),
        (29.0, 25.0),  # top of the key
        (19.0, 17.0),  # elbows
        (19.0, 33.0),
        (8.0, 17.0),  # low posts
        (8.0, 33.0),
        (5.0, 11.0),  # short corners
        (5.0, 39.0),
        (20.0, 25.0),  # high post
    ]
)
_SUBSTEPS = 2
_BURN_IN_FRAMES = 12
_OFF_LO, _OFF_HI = np.array([1.0, 1.0]), np.array([45.5, 49.0])
_DEF_LO, _DEF_HI = np.array([0.5, 0.5]), np.array([46.5, 49.5])
_OFF_MAX_SPEED, _OFF_ACCEL = 20.0, 16.0  # ft/s, ft/s^2
_DEF_MAX_SPEED, _DEF_ACCEL = 18.0, 18.0
_LAG_SUBSTEPS = 4  # defenders react to where their man was 4 * 0.08 s = 0.32 s ago
_IN_FLIGHT = -1
_TO_BASKET = NUM_PLAYERS


def simulate_basketball(
    num_sequences: int, seed: int = 0, num_frames: int = NUM_FRAMES
) -> np.ndarray:
    """Simulate ``num_sequences`` possessions.

    Args:
        num_sequences: N >= 0.
        seed: non-negative integer; the same seed gives the same data.
        num_frames: T >= 1 frames at 6.25 Hz.

    Returns:
        float32 ``[N, T, 22]``: ball, 5 offence, 5 defence (x, y) in feet, ``(0, 0)`` at a
        corner of the 94 x 50 ft court. Each sequence attacks the left or the right basket.
    """
    if num_sequences < 0:
        raise ValueError(f"num_sequences must be >= 0, got {num_sequences}")
    out = np.empty((num_sequences, num_frames, NUM_COLUMNS), np.float32)
    for chunk, start in enumerate(range(0, num_sequences, SIM_CHUNK)):
        stop = min(start + SIM_CHUNK, num_sequences)
        out[start:stop] = simulate_chunk(seed, chunk, num_frames)[: stop - start]
    return out


def simulate_chunk(seed: int, chunk: int, num_frames: int = NUM_FRAMES) -> np.ndarray:
    """Sequences ``chunk * SIM_CHUNK ... (chunk + 1) * SIM_CHUNK - 1`` of ``seed``: float32
    ``[SIM_CHUNK, T, 22]`` in feet (see :func:`simulate_basketball`)."""
    if seed < 0 or chunk < 0:
        raise ValueError(f"seed and chunk must be non-negative integers, got {seed}, {chunk}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, chunk]))
    sim = _Possessions(rng, SIM_CHUNK)
    out = np.empty((SIM_CHUNK, num_frames, NUM_COLUMNS), np.float64)
    for frame in range(_BURN_IN_FRAMES + num_frames):
        sim.decide()
        for _ in range(_SUBSTEPS):
            sim.step(1.0 / (FPS * _SUBSTEPS))
        if frame >= _BURN_IN_FRAMES:
            out[:, frame - _BURN_IN_FRAMES] = sim.columns()
    # Sequences that attack the right basket: rotate the court by 180 degrees.
    right = rng.random(SIM_CHUNK) < 0.5
    out[right] = np.tile([COURT_LENGTH_FT, COURT_WIDTH_FT], NUM_COLUMNS // 2) - out[right]
    return out.astype(np.float32)


def _norm(v: np.ndarray) -> np.ndarray:
    x, y = v[..., 0], v[..., 1]
    return np.sqrt(x * x + y * y)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(_norm(v), 1e-6)[..., None]


def _limit(v: np.ndarray, max_norm: float | np.ndarray) -> np.ndarray:
    """Scale the vectors ``[..., 2]`` down to at most ``max_norm``."""
    n = _norm(v)
    return v * (np.minimum(1.0, max_norm / np.maximum(n, 1e-9)))[..., None]


def _gumbel_argmax(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """One sample per row of the last axis from softmax(logits) (``-inf`` = excluded)."""
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=-1)


class _Possessions:
    """State of N simultaneous possessions in the canonical frame (attacking the left basket).

    Random numbers are drawn in full-batch arrays at fixed points, whatever happens, so that
    the stream (hence the data) depends only on the seed and the chunk.
    """

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self.rng, self.n = rng, n
        rows = np.arange(n)
        picks = np.argsort(rng.random((n, len(_SPOTS))), axis=1)[:, :NUM_PLAYERS]
        self.off_p = np.clip(
            _SPOTS[picks] + rng.normal(0, 1.5, (n, NUM_PLAYERS, 2)), _OFF_LO, _OFF_HI
        )
        self.off_v = np.zeros_like(self.off_p)
        self.target = self.off_p.copy()
        self.speed = rng.uniform(4.5, 11.0, (n, NUM_PLAYERS))
        self.cutting = np.zeros((n, NUM_PLAYERS), bool)
        self.wander = np.zeros_like(self.off_p)
        self.history = np.repeat(self.off_p[None], _LAG_SUBSTEPS, axis=0)  # ring buffer
        self.history_v = np.zeros_like(self.history)
        self.tick = 0
        self.holder = rng.integers(0, NUM_PLAYERS, n)
        self.flight_to = self.holder.copy()
        self.ball_speed = np.zeros(n)
        self.hold_time = rng.uniform(0.0, 1.0, n)
        self.side = rng.choice([-1.0, 1.0], n)  # dribbling hand
        self.phase = rng.uniform(0, 2 * np.pi, n)
        self.ball_p = self._hold_point(self.off_p[rows, self.holder])
        self.tightness = rng.uniform(0.8, 1.2, (n, NUM_PLAYERS))
        self.def_p = np.clip(
            self._guard_points(self.off_p) + rng.normal(0, 1.0, self.off_p.shape), _DEF_LO, _DEF_HI
        )
        self.def_v = np.zeros_like(self.def_p)

    # -- geometry ---------------------------------------------------------------------------

    def _hold_point(self, p: np.ndarray) -> np.ndarray:
        """Where a holder at ``p [n, 2]`` carries the ball: 1.3 ft toward the basket, turned
        50 degrees to the dribbling hand, plus a small dribble bounce."""
        d = _unit(_BASKET - p)
        angle = self.side * np.deg2rad(50.0)
        c, s = np.cos(angle), np.sin(angle)
        turned = np.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]], -1)
        return p + (1.3 + 0.3 * np.sin(self.phase))[:, None] * turned

    def _guard_points(self, off_p: np.ndarray) -> np.ndarray:
        """Where each defender wants to stand, given its man's position ``[n, 5, 2]``."""
        to_ball = self.ball_p[:, None] - off_p
        gap = np.minimum(3.5 + 0.1 * _norm(to_ball), 9.0) * self.tightness
        on_ball = np.arange(NUM_PLAYERS)[None] == self.holder[:, None]
        gap = np.where(on_ball, 3.0, gap)
        point = off_p + gap[..., None] * _unit(_BASKET - off_p)
        point = point + np.where(on_ball[..., None], 0.0, 0.15 * (self.ball_p[:, None] - point))
        return np.clip(point, _DEF_LO, _DEF_HI)

    # -- per-frame decisions ----------------------------------------------------------------

    def decide(self) -> None:
        """Decisions once per frame: new targets for the offence, passes and shots."""
        rng, n, dt = self.rng, self.n, 1.0 / FPS
        rows = np.arange(n)
        # New targets: rarely while on the way, often once arrived; leave the paint after a cut.
        arrived = _norm(self.target - self.off_p) < 2.0
        p_new = np.where(arrived, np.where(self.cutting, 0.5, 0.12), 0.03)
        choose = rng.random((n, NUM_PLAYERS)) < p_new
        cut = (rng.random((n, NUM_PLAYERS)) < 0.22) & ~self.cutting
        cut_target = np.clip(
            _BASKET + np.array([2.5, 0.0]) + rng.normal(0, 3.0, (n, NUM_PLAYERS, 2)),
            [2, 14],
            [15, 36],
        )
        # A spacing spot: far from the teammates' targets, not the current one.
        to_spot = _norm(_SPOTS[None, None] - self.target[:, :, None])  # [n, player, spot]
        d = np.repeat(to_spot[:, None], NUM_PLAYERS, axis=1)  # [n, i, teammate j, spot]
        d[:, np.arange(NUM_PLAYERS), np.arange(NUM_PLAYERS)] = np.inf
        room = np.minimum(d.min(axis=2), 15.0) / 3.0
        same = to_spot < 3.0
        spot = _gumbel_argmax(rng, room - 3.0 * same)
        spot_target = _SPOTS[spot] + rng.normal(0, 1.5, (n, NUM_PLAYERS, 2))
        cut_speed = rng.uniform(12.0, 19.0, (n, NUM_PLAYERS))
        walk_speed = rng.uniform(4.5, 11.0, (n, NUM_PLAYERS))
        new_target = np.where(cut[..., None], cut_target, spot_target)
        self.target = np.clip(
            np.where(choose[..., None], new_target, self.target), _OFF_LO, _OFF_HI
        )
        self.speed = np.where(choose, np.where(cut, cut_speed, walk_speed), self.speed)
        self.cutting = np.where(choose, cut, self.cutting)

        # Ball: pass or shoot after holding at least 0.6 s.
        held = self.holder >= 0
        holder = np.maximum(self.holder, 0)
        holder_p = self.off_p[rows, holder]
        ready = held & (self.hold_time > 0.6)
        r_pass, r_shot = rng.random(n), rng.random(n)
        dist = _norm(self.off_p - holder_p[:, None])  # [n, 5]
        ok = (dist > 6.0) & (np.arange(NUM_PLAYERS)[None] != holder[:, None])
        receiver = _gumbel_argmax(rng, np.where(ok, -dist / 25.0, -np.inf))
        passing = ready & (r_pass < 0.085) & ok.any(axis=1)
        shooting = ready & ~passing & (r_shot < 0.012) & (_norm(holder_p - _BASKET) < 24.0)
        pass_speed, shot_speed = rng.uniform(32.0, 48.0, n), rng.uniform(26.0, 34.0, n)
        side = rng.choice([-1.0, 1.0], n)
        self.flight_to = np.where(passing, receiver, np.where(shooting, _TO_BASKET, self.flight_to))
        self.ball_speed = np.where(
            passing, pass_speed, np.where(shooting, shot_speed, self.ball_speed)
        )
        self.side = np.where(passing, side, self.side)
        self.holder = np.where(passing | shooting, _IN_FLIGHT, self.holder)
        self.hold_time = np.where(self.holder >= 0, self.hold_time + dt, 0.0)

    # -- per-substep motion -----------------------------------------------------------------

    def step(self, dt: float) -> None:
        """Advance positions by ``dt`` seconds."""
        rng, n = self.rng, self.n
        rows = np.arange(n)
        # Offence: arrive at the target, wander a little, keep spacing, stay in the half.
        to_target = self.target - self.off_p
        slow = np.clip(_norm(to_target) / 4.0, 0.0, 1.0)
        v_des = _unit(to_target) * (self.speed * slow)[..., None]
        self.wander += -self.wander * dt + 1.2 * np.sqrt(2 * dt) * rng.normal(
            size=self.wander.shape
        )
        diff = self.off_p[:, :, None] - self.off_p[:, None, :]
        dist = _norm(diff)
        push = np.clip((8.0 - dist) / 8.0, 0.0, 1.0) * (dist > 1e-6)
        v_des = v_des + self.wander + 7.0 * (push[..., None] * _unit(diff)).sum(axis=2)
        v_des = v_des + 2.0 * (
            np.maximum(_OFF_LO + 2 - self.off_p, 0) - np.maximum(self.off_p - _OFF_HI + 2, 0)
        )
        self.off_p, self.off_v = _move(
            self.off_p, self.off_v, v_des, dt, _OFF_MAX_SPEED, _OFF_ACCEL, 0.25, _OFF_LO, _OFF_HI
        )

        # Defence: react to lagged positions of their men.
        self.history[self.tick % _LAG_SUBSTEPS] = self.off_p
        self.history_v[self.tick % _LAG_SUBSTEPS] = self.off_v
        self.tick += 1
        lagged, lagged_v = (
            self.history[self.tick % _LAG_SUBSTEPS],
            self.history_v[self.tick % _LAG_SUBSTEPS],
        )
        guard = self._guard_points(lagged)
        v_des = (guard - self.def_p) / 0.4 + lagged_v
        diff = self.def_p[:, :, None] - self.def_p[:, None, :]
        dist = _norm(diff)
        push = np.clip((4.0 - dist) / 4.0, 0.0, 1.0) * (dist > 1e-6)
        v_des = v_des + 5.0 * (push[..., None] * _unit(diff)).sum(axis=2)
        self.def_p, self.def_v = _move(
            self.def_p, self.def_v, v_des, dt, _DEF_MAX_SPEED, _DEF_ACCEL, 0.2, _DEF_LO, _DEF_HI
        )

        # Ball: carried by its holder, or flying toward the receiver / the rim.
        self.phase += 2 * np.pi * 1.6 * dt
        held = self.holder >= 0
        carried = self._hold_point(self.off_p[rows, np.maximum(self.holder, 0)])
        to_basket = self.flight_to == _TO_BASKET
        aim = np.where(
            to_basket[:, None],
            _BASKET,
            self._hold_point(self.off_p[rows, np.minimum(self.flight_to, NUM_PLAYERS - 1)]),
        )
        gap = aim - self.ball_p
        reach = self.ball_speed * dt
        arrives = ~held & (_norm(gap) <= reach)
        flying = self.ball_p + _unit(gap) * reach[:, None]
        self.ball_p = np.where(held[:, None], carried, np.where(arrives[:, None], aim, flying))
        # A shot that reaches the rim rebounds to the offence player nearest the basket.
        rebounder = _gumbel_argmax(rng, -_norm(self.off_p - _BASKET) / 3.0)
        rebound_speed = rng.uniform(18.0, 26.0, n)
        rebound = arrives & to_basket
        caught = arrives & ~to_basket
        self.holder = np.where(caught, self.flight_to, self.holder)
        self.hold_time = np.where(caught, 0.0, self.hold_time)
        self.flight_to = np.where(rebound, rebounder, self.flight_to)
        self.ball_speed = np.where(rebound, rebound_speed, self.ball_speed)

    def columns(self) -> np.ndarray:
        """The current state as ``[n, 22]`` (ball, offence, defence; canonical frame)."""
        ball = np.clip(self.ball_p, 0.25, [HALF_COURT_FT, COURT_WIDTH_FT - 0.25])
        return np.concatenate(
            [ball, self.off_p.reshape(self.n, -1), self.def_p.reshape(self.n, -1)], axis=1
        )


def _move(
    p: np.ndarray,
    v: np.ndarray,
    v_des: np.ndarray,
    dt: float,
    max_speed: float,
    max_accel: float,
    tau: float,
    lo: np.ndarray,
    hi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Steer velocity ``v`` toward ``v_des`` (time constant ``tau``, acceleration at most
    ``max_accel``), cap the speed, integrate, and stop at the walls ``lo``/``hi``."""
    v_des = _limit(v_des, max_speed)
    dv = _limit((v_des - v) * min(1.0, dt / tau), max_accel * dt)
    v = _limit(v + dv, max_speed)
    p = p + v * dt
    clipped = np.clip(p, lo, hi)
    v = np.where(clipped != p, 0.0, v)
    return clipped, v
