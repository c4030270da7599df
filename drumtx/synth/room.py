"""Rooms with real geometry: impulse responses of a shoebox by the image-source method.

Allen and Berkley's model: every wall reflection of a source is a mirror-image source
behind that wall; its sound arrives after ``distance / c`` seconds, weakened by 1/r
and by the wall's reflection coefficient once per bounce. Images up to ``max_order``
bounces are summed exactly (with fractional delays); a noise tail with the room's
Sabine RT60 carries the late reverberation past them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPEED_OF_SOUND = 343.0  # m/s


@dataclass(frozen=True)
class Room:
    size_m: tuple[float, float, float]  # length, width, height
    absorption: float  # fraction of energy a wall absorbs per bounce, 0..1

    @property
    def rt60_sec(self) -> float:
        """Sabine: 0.161 V / (S a)."""
        lx, ly, lz = self.size_m
        surface = 2 * (lx * ly + lx * lz + ly * lz)
        return 0.161 * lx * ly * lz / (surface * self.absorption)


def _axis_images(
    pos: float, length: float, max_order: int
) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates along one axis and the bounces each took."""
    q = np.arange(-max_order, max_order + 1)
    coords = np.concatenate([2 * q * length + pos, 2 * q * length - pos])
    bounces = np.concatenate([np.abs(2 * q), np.abs(2 * q - 1)])
    return coords, bounces


def image_source_ir(
    room: Room,
    source_m: np.ndarray,
    mic_m: np.ndarray,
    sample_rate: int,
    max_order: int = 6,
) -> tuple[np.ndarray, float]:
    """The early response from ``source`` to ``mic``, (n,) float32, and the direct
    path's delay in seconds (the response is not shifted: lag 0 is emission)."""
    beta = np.sqrt(1.0 - room.absorption)
    axes = [_axis_images(source_m[i], room.size_m[i], max_order) for i in range(3)]
    (x, bx), (y, by), (z, bz) = axes
    # Every combination of the three axes' images: (Nx, Ny, Nz) grids, flattened.
    order = bx[:, None, None] + by[None, :, None] + bz[None, None, :]
    dist = np.sqrt(
        (x[:, None, None] - mic_m[0]) ** 2
        + (y[None, :, None] - mic_m[1]) ** 2
        + (z[None, None, :] - mic_m[2]) ** 2
    )
    keep = order <= max_order
    dist, order = np.maximum(dist[keep], 0.01), order[keep]
    amp = beta**order / (4 * np.pi * dist)
    delay = dist / SPEED_OF_SOUND * sample_rate
    n = int(delay.max()) + 2
    ir = np.zeros(n, np.float64)
    whole = np.floor(delay).astype(np.int64)
    frac = delay - whole
    np.add.at(ir, whole, amp * (1 - frac))  # linear-interpolated fractional delay
    np.add.at(ir, whole + 1, amp * frac)
    return ir.astype(np.float32), float(dist.min() / SPEED_OF_SOUND)


def late_tail(
    room: Room,
    start: int,
    early: np.ndarray,
    sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Exponentially decaying noise from ``start`` on, at the early response's level
    there, so the reverberation does not stop where the images do."""
    rt60 = min(room.rt60_sec, 2.5)
    n = start + int(rt60 * sample_rate)
    tail = np.zeros(n, np.float32)
    window = early[max(0, start - sample_rate // 100) : start]
    level = float(np.sqrt(np.mean(window**2))) if window.size else 0.0
    t = np.arange(n - start) / sample_rate
    tail[start:] = level * rng.standard_normal(n - start) * np.exp(-6.9 * t / rt60)
    return tail


def room_ir(
    room: Room,
    source_m: np.ndarray,
    mics: list[tuple[np.ndarray, float]],
    sample_rate: int,
    rng: np.random.Generator,
    max_order: int = 6,
) -> np.ndarray:
    """The mono mix of several microphones (position, gain) hearing one source."""
    parts = []
    for mic_m, gain in mics:
        early, _ = image_source_ir(room, source_m, mic_m, sample_rate, max_order)
        parts.append(gain * early)
    n = max(len(p) for p in parts)
    early = np.zeros(n, np.float32)
    for p in parts:
        early[: len(p)] += p
    tail = late_tail(room, n, early, sample_rate, rng)
    tail[:n] += early
    return tail
