"""How far a drum hit stands out of what sounds around it: can it be heard at all?

Recall by velocity says whether the misses are ghost notes; it cannot say whether a
ghost note was there to hear. A snare played 34 dB under its accents, in the tail of the
hit before it or under a guitar chord, adds almost nothing to the sound, and no model
finds it. This module gives each reference hit a number for that, its *standout*: in
bands from 40 Hz to 16 kHz (``N_BANDS`` log-spaced, the narrow low ones merged), the
energy the hit adds over the STANDOUT_SEC after its onset (that energy less the drums'
before it), against everything else sounding there (the drums before it, the music
after it); the largest ratio over the bands, in dB. A hit at 0 dB carries,
in some band, as much energy as the rest of the audio there; one under -5 dB is
quieter in every band than what surrounds it (masked, to a first approximation: a
crude model of hearing, with no spreading across bands and no forward masking beyond
the window). An estimate from 30 ms swings: at instants with no hit in a steady wash
of noise it reads -6 to +4 dB, and a hit 36 dB under that wash -7 to +5 dB (median
-3).

``evaluate`` reports recall by standout and micro F1 over the hits that stand out at
least AUDIBLE_DB (the *audible* score: hits under it are left out of the reference, and
a prediction matched to one is neither a hit nor a false one). The plain micro F1 stays
the score; the audible one says how much of what a model misses could not be heard.
"""

from __future__ import annotations

import numpy as np

N_BANDS = 24
BAND_HZ = (40.0, 16000.0)  # the top edge is 0.45 x the sample rate below 35.6 kHz
HOP_SEC = 0.005
STANDOUT_SEC = 0.03  # the window after the onset (the hit) and before it (the drums)
MIN_BINS = 3  # frequency bins a band holds at least (50 Hz each at any rate)
FLOOR_DB = -60.0  # standouts are clipped to +-60 dB (silence on either side)
AUDIBLE_DB = -5.0  # a hit under this in every band counts as masked
# Recall by standout: masked, faint, near, clear, loud.
STANDOUT_BINS_DB = (-np.inf, -10.0, -5.0, 0.0, 10.0, np.inf)
_BLOCK_FRAMES = 4096  # frames transformed at once (memory stays bounded on long files)


def band_energy(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(bands, frames) energy of float audio in 20 ms Hann frames every 5 ms; frame
    f is centred on sample f * hop. Bands: N_BANDS log-spaced over BAND_HZ, the low
    ones merged until each holds MIN_BINS bins (:func:`_wide_enough`)."""
    hop = max(1, round(HOP_SEC * sample_rate))
    n_fft = 4 * hop
    audio = np.asarray(audio, dtype=np.float32)
    n_frames = len(audio) // hop + 1
    padded = np.pad(audio, (n_fft // 2, n_fft // 2 + hop))
    window = np.hanning(n_fft).astype(np.float32)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    top = min(BAND_HZ[1], 0.45 * sample_rate)
    edges = np.geomspace(BAND_HZ[0], top, N_BANDS + 1)
    band_of_bin = np.searchsorted(edges, freqs, side="right") - 1
    bands = _wide_enough(band_of_bin)
    out = np.zeros((len(bands), n_frames), dtype=np.float64)
    for start in range(0, n_frames, _BLOCK_FRAMES):
        frames = np.arange(start, min(n_frames, start + _BLOCK_FRAMES))
        idx = frames[:, None] * hop + np.arange(n_fft)[None, :]
        power = np.abs(np.fft.rfft(padded[idx] * window, axis=1)) ** 2  # (F, bins)
        for row, cols in enumerate(bands):
            out[row, frames] = power[:, cols].sum(axis=1)
    return out


def _wide_enough(band_of_bin: np.ndarray) -> list[np.ndarray]:
    """Bin masks of the bands, each low band merged with the next until it holds
    MIN_BINS bins: an energy summed over few bins and frames swings by several dB from
    one window to the next, and the largest swing over the bands would read as a hit."""
    bands: list[np.ndarray] = []
    pending = np.zeros(band_of_bin.shape, dtype=bool)
    for band in range(N_BANDS):
        pending |= band_of_bin == band
        if pending.sum() >= MIN_BINS:
            bands.append(pending)
            pending = np.zeros(band_of_bin.shape, dtype=bool)
    if pending.any():  # a narrow top band joins the one below it
        if bands:
            bands[-1] = bands[-1] | pending
        else:
            bands.append(pending)
    return bands


def _window_sums(energy: np.ndarray, first: np.ndarray, n: int) -> np.ndarray:
    """(bands, hits) sums of frames first..first+n-1 (clipped to the recording)."""
    total = np.concatenate(
        [np.zeros((energy.shape[0], 1)), np.cumsum(energy, axis=1)], axis=1
    )
    last = energy.shape[1]
    lo = np.clip(first, 0, last)
    hi = np.clip(first + n, 0, last)
    return total[:, hi] - total[:, lo]


def standout_db(
    drums: np.ndarray,
    music: np.ndarray | None,
    sample_rate: int,
    onset_sec: np.ndarray,
) -> np.ndarray:
    """Each onset's standout (module doc), dB in [-60, 60]: ``drums`` and ``music``
    (None: drums alone) as float audio at the levels they are mixed at."""
    onset_sec = np.asarray(onset_sec, dtype=np.float64)
    if onset_sec.size == 0:
        return np.zeros(0)
    n = max(1, round(STANDOUT_SEC / HOP_SEC))
    centre = np.rint(onset_sec / HOP_SEC).astype(np.int64)
    kit = band_energy(drums, sample_rate)
    # frames after: centred on the onset and on; before: the n frames whose 20 ms
    # windows end at the onset at the latest (the last centred 10 ms before it). A
    # longer window before steadies the estimate in a wash but takes in the hit
    # before a close one (in GMD's grooves, hits 30-60 ms apart are common)
    after = _window_sums(kit, centre, n)
    before = _window_sums(kit, centre - 1 - n, n)
    background = before.copy()
    if music is not None:
        background += _window_sums(band_energy(music, sample_rate), centre, n)
    own = np.maximum(after - before, 0.0)
    ratio = np.full(own.shape, FLOOR_DB)  # a band the hit adds nothing to
    adds = own > 0
    # nothing else sounding in a band (digital silence) is the top of the scale
    ratio[adds] = 10.0 * np.log10(own[adds] / np.maximum(background[adds], 1e-30))
    return np.clip(ratio.max(axis=0), FLOOR_DB, -FLOOR_DB)


def standout_bin_names() -> list[str]:
    """Names of the STANDOUT_BINS_DB ranges: "<-10", "-10..-5", ..., ">=10"."""
    edges = STANDOUT_BINS_DB
    names = []
    for lo, hi in zip(edges, edges[1:]):
        if np.isinf(lo):
            names.append(f"<{hi:g}")
        elif np.isinf(hi):
            names.append(f">={lo:g}")
        else:
            names.append(f"{lo:g}..{hi:g}")
    return names
