"""Training crops from the processed store, read the way an HDD likes.

Each DataLoader worker reads one large contiguous block of ``audio.i16`` at a time
(``data.block_mb``, default 8 MB: one seek, then a sequential read), cuts several random
crops out of it, and shuffles the crops of ``data.shuffle_blocks`` blocks together before
yielding them. Crops never straddle two recordings. Targets are per-frame rolls at the
frontend's frame rate: frame t is centred at ``t * hop_length`` samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import signal

from drumtx.config import Config, DataConfig
from drumtx.errors import DataError
from drumtx.frontend import n_frames
from drumtx.preprocess import Store, load_store


@dataclass(frozen=True)
class CropSpec:
    """Everything a worker needs to cut crops, picklable for worker processes."""

    split_dir: Path
    crop_samples: int
    hop_length: int
    n_classes: int
    sample_rate: int
    seed: int
    rank: int = 0
    world_size: int = 1


class CropDataset(torch.utils.data.IterableDataset):
    """An endless stream of (audio, onset, velocity, velocity_mask) crops.

    audio (N,) float32; onset, velocity and mask (T, C) float32 with T = n_frames(N).
    """

    def __init__(
        self, spec: CropSpec, data_cfg: DataConfig, store: Store | None = None
    ):
        super().__init__()
        self.spec = spec
        self.data_cfg = data_cfg
        self._store = store  # a RAM-cached store is shared with forked workers

    def _open(self) -> Store:
        if self._store is None:
            self._store = load_store(self.spec.split_dir)
        return self._store

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        info = torch.utils.data.get_worker_info()
        worker_id, n_workers = (info.id, info.num_workers) if info else (0, 1)
        # Every (rank, worker) draws its own crops; the seed carries the resume step.
        rng = np.random.default_rng(
            [self.spec.seed, self.spec.rank, worker_id, self.spec.world_size, n_workers]
        )
        store = self._open()
        sampler = BlockSampler(store, self.spec, self.data_cfg)
        augment = Augmenter(self.data_cfg, self.spec.sample_rate)
        buffer: list[tuple[np.ndarray, ...]] = []
        while True:
            for _ in range(self.data_cfg.shuffle_blocks):
                buffer.extend(sampler.crops_from_block(rng))
            order = rng.permutation(len(buffer))
            for i in order:
                audio, onset, velocity, mask = buffer[i]
                if self.data_cfg.mix_prob and rng.random() < self.data_cfg.mix_prob:
                    other = buffer[int(rng.integers(len(buffer)))]
                    audio, onset, velocity, mask = mix_crops(buffer[i], other)
                yield augment(audio, rng), onset, velocity, mask
            buffer = []


class BlockSampler:
    """Reads contiguous blocks of the store and cuts crops inside single recordings."""

    def __init__(self, store: Store, spec: CropSpec, data_cfg: DataConfig):
        self.store = store
        self.spec = spec
        self.data_cfg = data_cfg
        self.block_samples = max(
            spec.crop_samples, int(data_cfg.block_mb * 1e6) // 2
        )  # int16: 2 bytes per sample
        recs = store.recordings
        self.offsets = np.array([r["offset"] for r in recs], dtype=np.int64)
        self.lengths = np.array([r["length"] for r in recs], dtype=np.int64)
        self.total = int(self.offsets[-1] + self.lengths[-1]) if recs else 0
        if self.total == 0:  # no crop could ever be cut: fail, don't spin forever
            raise DataError(
                f"{spec.split_dir} holds no audio ({len(recs)} recordings)",
                hint="check the split's manifest.json 'skipped' list and re-run "
                "python -m drumtx preprocess",
            )
        self.hit_rec = store.hits["recording"]

    def crops_from_block(
        self, rng: np.random.Generator
    ) -> list[tuple[np.ndarray, ...]]:
        start = int(rng.integers(0, max(1, self.total - self.block_samples + 1)))
        stop = min(self.total, start + self.block_samples)
        block = np.asarray(self.store.audio[start:stop])  # one sequential read
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        last = int(np.searchsorted(self.offsets, stop, side="left"))
        recs = np.arange(max(first, 0), max(last, first + 1))
        # Weight recordings by how much of them lies inside the block.
        lo = np.maximum(self.offsets[recs], start)
        hi = np.minimum(self.offsets[recs] + self.lengths[recs], stop)
        weights = np.maximum(hi - lo, 0).astype(np.float64)
        # A recording that goes on past the block's end must leave a whole crop inside
        # it: a shorter crop would end in silence the recording does not have, while
        # its hits in the missing part stayed labelled.
        ends = self.offsets[recs] + self.lengths[recs]
        weights[(ends > stop) & (hi - lo < self.spec.crop_samples)] = 0.0
        if weights.sum() <= 0:
            return []
        crops = []
        for _ in range(self.data_cfg.crops_per_block):
            j = int(rng.choice(len(recs), p=weights / weights.sum()))
            crops.append(
                self._crop(int(recs[j]), int(lo[j]), int(hi[j]), start, block, rng)
            )
        return crops

    def _crop(
        self,
        rec: int,
        lo: int,
        hi: int,
        block_start: int,
        block: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, ...]:
        n = self.spec.crop_samples
        crop_start = lo + int(rng.integers(0, max(1, hi - lo - n + 1)))
        piece = block[crop_start - block_start : min(hi, crop_start + n) - block_start]
        audio = np.zeros(n, dtype=np.float32)
        audio[: len(piece)] = piece.astype(np.float32) / 32768.0
        onset, velocity, mask = self._targets(rec, crop_start - int(self.offsets[rec]))
        return audio, onset, velocity, mask

    def _targets(self, rec: int, start_in_rec: int) -> tuple[np.ndarray, ...]:
        spec, widen = self.spec, self.data_cfg.target_widen_frames
        n_t = n_frames(spec.crop_samples, spec.hop_length)
        lo, hi = np.searchsorted(self.hit_rec, [rec, rec + 1])
        hits = self.store.hits[lo:hi]
        rel = hits["sample"] - start_in_rec
        keep = (rel >= 0) & (rel < spec.crop_samples)
        frames = np.rint(rel[keep] / spec.hop_length).astype(np.int64)
        classes = hits["class"][keep].astype(np.int64)
        vel = hits["velocity"][keep].astype(np.float32) / 127.0
        return make_targets(frames, classes, vel, n_t, spec.n_classes, widen)


def make_targets(
    frames: np.ndarray,
    classes: np.ndarray,
    hit_velocity: np.ndarray,
    n_t: int,
    n_classes: int,
    widen: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Onset roll (1 at the onset frame, 0.5 within +-widen), velocity roll and its mask."""
    onset = np.zeros((n_t, n_classes), dtype=np.float32)
    velocity = np.zeros_like(onset)
    mask = np.zeros_like(onset)
    for offset in range(-widen, widen + 1):
        f = frames + offset
        ok = (f >= 0) & (f < n_t)
        value = 1.0 if offset == 0 else 0.5
        onset[f[ok], classes[ok]] = np.maximum(onset[f[ok], classes[ok]], value)
    ok = (frames >= 0) & (frames < n_t)
    velocity[frames[ok], classes[ok]] = hit_velocity[ok]
    mask[frames[ok], classes[ok]] = 1.0
    return onset, velocity, mask


def mix_crops(
    a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, ...]:
    """Sum two crops (two kits playing at once); targets are the union."""
    audio = 0.5 * (a[0] + b[0])
    onset = np.maximum(a[1], b[1])
    velocity = np.maximum(a[2], b[2])
    mask = np.maximum(a[3], b[3])
    return audio, onset, velocity, mask


class Augmenter:
    """Waveform augmentation toward real recordings: gain, EQ, noise, room reverb.

    Reverb keeps the direct sound at lag 0, so onsets do not move.
    """

    def __init__(self, cfg: DataConfig, sample_rate: int):
        self.cfg = cfg
        self.sample_rate = sample_rate

    def __call__(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cfg = self.cfg
        if rng.random() < cfg.eq_prob:
            audio = self.random_eq(audio, rng)
        if rng.random() < cfg.reverb_prob:
            audio = self.room_reverb(audio, rng)
        if rng.random() < cfg.noise_prob:
            audio = self.coloured_noise(audio, rng)
        gain_db = rng.uniform(cfg.gain_db_min, cfg.gain_db_max)
        audio = audio * np.float32(10 ** (gain_db / 20))
        return np.clip(audio, -1.0, 1.0).astype(np.float32)

    def random_eq(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        nyquist = self.sample_rate / 2
        low_hz = rng.uniform(60, 400)
        high_hz = min(rng.uniform(2000, 10000), nyquist * 0.9)
        b_lo, a_lo = signal.butter(1, low_hz / nyquist, btype="low")
        b_hi, a_hi = signal.butter(1, high_hz / nyquist, btype="high")
        low = signal.lfilter(b_lo, a_lo, audio)
        high = signal.lfilter(b_hi, a_hi, audio)
        # Shelf gains of -9..+9 dB on the low and high bands.
        g_lo, g_hi = 10 ** (rng.uniform(-9, 9, size=2) / 20) - 1
        return (audio + g_lo * low + g_hi * high).astype(np.float32)

    def room_reverb(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        rt60_sec = rng.uniform(0.15, 1.2)
        n_ir = int(rt60_sec * self.sample_rate)
        t = np.arange(n_ir) / self.sample_rate
        tail = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60_sec)
        # Darker tails for longer rooms: air and walls absorb highs.
        b, a = signal.butter(
            1,
            min(rng.uniform(2000, 8000), 0.45 * self.sample_rate)
            / (self.sample_rate / 2),
        )
        tail = signal.lfilter(b, a, tail)
        pre_delay = int(rng.uniform(0.005, 0.03) * self.sample_rate)
        ir = np.zeros(n_ir + pre_delay)
        ir[pre_delay:] = tail / (np.sqrt(np.sum(tail**2)) + 1e-9)
        wet_db = rng.uniform(-18, -3)
        ir *= 10 ** (wet_db / 20)
        ir[0] = 1.0  # the direct sound, at lag 0
        wet = signal.fftconvolve(audio, ir)[: len(audio)]
        return (wet / max(1.0, np.abs(wet).max())).astype(np.float32)

    def coloured_noise(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        white = rng.standard_normal(len(audio))
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(len(audio), 1 / self.sample_rate)
        exponent = rng.uniform(-1.0, 0.5)  # -1 = pink-ish .. +0.5 = bright hiss
        spectrum *= np.maximum(freqs, 20.0) ** (exponent / 2)
        noise = np.fft.irfft(spectrum, n=len(audio))
        rms_signal = np.sqrt(np.mean(audio**2)) + 1e-6
        snr_db = rng.uniform(20, 50)
        noise *= (
            rms_signal / (np.sqrt(np.mean(noise**2)) + 1e-12) * 10 ** (-snr_db / 20)
        )
        return (audio + noise).astype(np.float32)


def open_store(cfg: Config, split_dir: Path) -> Store:
    """The split's store, validated against the config; in RAM if data.cache_in_ram."""
    store = load_store(split_dir, cfg)
    if cfg.data.cache_in_ram:
        store = Store(
            audio=np.array(store.audio),  # one sequential read of the whole file
            recordings=store.recordings,
            hits=store.hits,
            manifest=store.manifest,
        )
    return store


def make_loader(
    cfg: Config,
    split_dir: Path,
    n_classes: int,
    *,
    seed: int,
    rank: int,
    world_size: int,
    pin_memory: bool,
) -> torch.utils.data.DataLoader:
    spec = CropSpec(
        split_dir=split_dir,
        crop_samples=int(round(cfg.data.crop_sec * cfg.audio.sample_rate)),
        hop_length=cfg.hop_length,
        n_classes=n_classes,
        sample_rate=cfg.audio.sample_rate,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )
    store = open_store(cfg, split_dir)
    dataset = CropDataset(spec, cfg.data, store if cfg.data.cache_in_ram else None)
    workers = cfg.data.num_workers
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.train.batch_size,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


def audio_hours(n_samples: int, sample_rate: int) -> float:
    return n_samples / sample_rate / 3600


def crop_frames(cfg: Config) -> int:
    return n_frames(
        int(round(cfg.data.crop_sec * cfg.audio.sample_rate)), cfg.hop_length
    )
