"""Where the harmony changes: chord changes as evidence for the bar lines.

In a band the chords change on bar lines far more often than inside a bar; drums
alone do not say which of a rock groove's beats 1 and 3 is the one, the band does.
This module gives ``drumtx.beats`` that evidence from the audio itself:

1. ``ChromaStream`` rides along with the audio chunks on their way to the model (the
   file is read once) and keeps a pitch-class profile (chroma) of each ``HOP_SEC``
   step: the magnitude spectrum of a ``WINDOW_SEC`` Hann window, median over three
   steps (a drum hit is shorter than that, a held chord is not), its
   spectral peaks between ``FMIN_HZ`` and ``FMAX_HZ`` within 20 dB of the step's
   loudest summed by pitch class.
2. ``bar_change`` averages the chroma over each beat and measures, at every beat,
   how far (cosine distance) the harmony of the half bar from there lies from the
   half bar before; the mean change on the beats of each bar phase is the evidence
   that bars start there, used only where one phase clearly stands out.

Drums alone rarely make one phase stand out; where they do, the weight this evidence
gets (``beats.HARMONY_WEIGHT``) was chosen with drum tracks in the tuning set, so that
they keep their bar lines. It adds about 0.5 s to transcribing a 10-minute file.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from drumtx.threads import one_torch_thread

WINDOW_SEC, HOP_SEC = 0.34, 0.1  # about 8192 and 2400 samples at 24 kHz
FMIN_HZ, FMAX_HZ = 60.0, 2000.0  # bass to the top of most accompaniment
PEAK_FLOOR = 0.1  # spectral peaks under this x the step's loudest bin are left out
PROFILE_BLOCK = 256  # steps worked on at a time
# bar_change: the harmony of CHANGE_SPAN_BARS of a bar after a beat against as much
# before it; the evidence counts only where the best phase's mean change exceeds the
# runner-up's by MIN_MARGIN standard deviations of the change (drums alone and
# harmony that moves on every beat rarely do; tools/bench_songs.py --split fit)
CHANGE_SPAN_BARS = 0.5
MIN_MARGIN = 0.3
# ... and only in audio whose pitch content holds: the median cosine similarity of
# the chroma STEADY_LAG steps apart at least MIN_STEADINESS (a band's notes last; a
# drum kit's pitch comes and goes with its hits: on the songs' fit share, three in
# four drum tracks alone fall below 0.6, and 19 in 20 full mixes lie above it)
STEADY_LAG = 2
MIN_STEADINESS = 0.6


@dataclass(frozen=True)
class Chroma:
    """(steps, 12) pitch-class profile; step i is centred at ``times_sec[i]``."""

    times_sec: np.ndarray
    values: np.ndarray

    @functools.cached_property
    def steadiness(self) -> float:
        """Median cosine similarity of the chroma (less its mean over pitch classes)
        STEADY_LAG steps apart: near 1 where notes are held, low for drums."""
        v = self.values - self.values.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(v, axis=1)
        a, b = slice(None, -STEADY_LAG), slice(STEADY_LAG, None)
        both = (norms[a] > 0) & (norms[b] > 0)
        if not both.any():
            return 0.0
        dots = np.sum(v[a] * v[b], axis=1)[both]
        return float(np.median(dots / (norms[a] * norms[b])[both]))


class ChromaStream:
    """Chroma of audio that passes through in chunks (``wrap``), at ``sample_rate``.

    ``chroma()`` after the chunks are consumed; a file shorter than one window has
    none (zero steps)."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.n_fft = int(2 ** round(np.log2(WINDOW_SEC * sample_rate)))
        self.hop = max(1, round(HOP_SEC * sample_rate))
        self.window = np.hanning(self.n_fft).astype(np.float32)
        freqs = np.fft.rfftfreq(self.n_fft, 1.0 / sample_rate)
        self.bins = np.flatnonzero((freqs >= FMIN_HZ) & (freqs <= FMAX_HZ))
        pitch = 12.0 * np.log2(freqs[self.bins] / 440.0) + 69.0
        self.pitch_class = np.round(pitch).astype(np.int64) % 12
        self._pending = np.zeros(0, dtype=np.float32)
        self._spectra: list[np.ndarray] = []

    def wrap(self, chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The same chunks, unchanged; their spectra are kept on the way."""
        for chunk in chunks:
            self.feed(np.asarray(chunk, dtype=np.float32))
            yield chunk

    def feed(self, chunk: np.ndarray) -> None:
        """Keep the spectra of every whole window the audio so far completes."""
        buf = np.concatenate([self._pending, chunk])
        n = 0 if len(buf) < self.n_fft else 1 + (len(buf) - self.n_fft) // self.hop
        if n:
            frames = buf[: (n - 1) * self.hop + self.n_fft]
            self._spectra.append(magnitudes(frames, self.window, self.hop, self.bins))
        self._pending = buf[n * self.hop :]

    def chroma(self) -> Chroma:
        """Chroma of everything consumed so far."""
        if not self._spectra:
            return Chroma(np.zeros(0), np.zeros((0, 12)))
        mag = np.concatenate(self._spectra)
        return profile(mag, self.pitch_class, self.hop, self.n_fft, self.sample_rate)


def magnitudes(
    audio: np.ndarray, window: np.ndarray, hop: int, bins: np.ndarray
) -> np.ndarray:
    """(steps, len(bins)) float32 magnitude spectra of the whole windows of ``audio``,
    ``hop`` apart.

    torch's FFT on one thread: about 0.15 s for 10 minutes. With more, it starts a
    pool of FFT threads that outlives the call, and a process forked after that (the
    worker pools of preprocess and make-dataset) can hang in its first big malloc."""
    import torch  # here: drumtx.beats (which reads Chroma) needs no torch

    with one_torch_thread():
        spectrum = torch.stft(
            torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
            len(window),
            hop,
            window=torch.from_numpy(window),
            center=False,
            return_complex=True,
        )[bins[0] : bins[-1] + 1]
        return spectrum.abs().T.numpy()


def profile(
    mag: np.ndarray, pitch_class: np.ndarray, hop: int, n_fft: int, sample_rate: int
) -> Chroma:
    """Chroma of (steps, bins) magnitudes whose bins have these pitch classes."""
    one_hot = np.eye(12, dtype=np.float32)[pitch_class]  # (bins, 12)
    values = np.zeros((len(mag), 12))
    for lo in range(0, len(mag), PROFILE_BLOCK):  # blocks that stay in the cache
        hi = min(len(mag), lo + PROFILE_BLOCK)
        block = mag[max(lo - 1, 0) : hi + 1]
        if len(mag) >= 3:  # the median of each step and its two neighbours
            prev = np.concatenate([block[:1], block[:-1]])
            nxt = np.concatenate([block[1:], block[-1:]])
            low, high = np.minimum(prev, block), np.maximum(prev, block)
            block = np.maximum(low, np.minimum(high, nxt))
        block = block[lo - max(lo - 1, 0) :][: hi - lo]
        peak = np.zeros(block.shape, dtype=bool)
        peak[:, 1:-1] = (block[:, 1:-1] > block[:, :-2]) & (
            block[:, 1:-1] >= block[:, 2:]
        )
        peak &= block > PEAK_FLOOR * block.max(axis=1, keepdims=True)
        values[lo:hi] = np.where(peak, block, 0.0) @ one_hot
    times = (np.arange(len(mag)) * hop + n_fft / 2) / sample_rate
    return Chroma(times, values)


def chroma_of(audio: np.ndarray, sample_rate: int) -> Chroma:
    """Chroma of an in-memory mono signal (as ChromaStream of it in one chunk)."""
    stream = ChromaStream(sample_rate)
    stream.feed(np.asarray(audio, dtype=np.float32))
    return stream.chroma()


def beat_chroma(chroma: Chroma, beats_sec: np.ndarray) -> np.ndarray:
    """(len(beats) - 1, 12) mean chroma of the steps centred in each beat (the
    nearest step where none is)."""
    i = np.searchsorted(chroma.times_sec, beats_sec)
    sums = np.concatenate([np.zeros((1, 12)), np.cumsum(chroma.values, axis=0)])
    lo, hi = i[:-1], np.maximum(i[1:], i[:-1] + 1)
    lo = np.clip(lo, 0, len(chroma.values) - 1)
    hi = np.clip(hi, lo + 1, len(chroma.values))
    return (sums[hi] - sums[lo]) / (hi - lo)[:, None]


def bar_change(
    chroma: Chroma | None, beats_sec: np.ndarray, per_bar: int
) -> np.ndarray:
    """(per_bar,) evidence that bars start on each bar phase (phase p: on beats p,
    p + per_bar, ...): the mean harmonic change on its beats, less the mean over
    phases, in standard deviations of the change. Zeros where there is no chroma,
    too few beats, pitch content that does not hold (MIN_STEADINESS), or a best phase
    that does not stand out by MIN_MARGIN.

    The change at beat b is the cosine distance between the chroma (less its mean
    over pitch classes) of the span of CHANGE_SPAN_BARS of a bar from b and of the
    span before b."""
    out = np.zeros(per_bar)
    span = max(1, round(CHANGE_SPAN_BARS * per_bar))
    if chroma is None or len(chroma.values) <= STEADY_LAG or per_bar < 2:
        return out
    if len(beats_sec) < 2 * per_bar + 1 or chroma.steadiness < MIN_STEADINESS:
        return out
    per_beat = beat_chroma(chroma, beats_sec)
    per_beat = per_beat - per_beat.mean(axis=1, keepdims=True)
    sums = np.concatenate([np.zeros((1, 12)), np.cumsum(per_beat, axis=0)])
    b = np.arange(span, len(per_beat) - span + 1)
    after, before = sums[b + span] - sums[b], sums[b] - sums[b - span]
    norms = np.linalg.norm(after, axis=1) * np.linalg.norm(before, axis=1)
    change = np.full(len(per_beat), np.nan)
    valid = norms > 0
    change[b[valid]] = 1.0 - np.sum(after * before, axis=1)[valid] / norms[valid]
    spread = float(np.nanstd(change)) if np.any(~np.isnan(change)) else 0.0
    if spread <= 0:
        return out
    for p in range(per_bar):
        values = change[p::per_bar]
        values = values[~np.isnan(values)]
        if not len(values):
            return out
        out[p] = float(values.mean())
    out = (out - out.mean()) / spread
    top = np.sort(out)
    if top[-1] - top[-2] < MIN_MARGIN:
        return np.zeros(per_bar)
    return out
