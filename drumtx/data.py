"""Training crops from the processed store, read the way an HDD likes.

Each DataLoader worker reads one large contiguous block of ``audio.i16`` (and the same
block of ``backing.i16`` when the store has backing tracks) at a time
(``data.block_mb``, default 8 MB: one seek, then a sequential read), cuts several
random crops out of it,
and shuffles the crops of ``data.shuffle_blocks`` blocks together before yielding them.
Crops never straddle two recordings; ``data.rare_class_prob`` of them are centred on a
hit of a class drawn uniformly, so rare instruments (toms, crash, open hi-hat) are seen
as often as common ones; ``data.speed_prob`` of them play faster or slower
(varispeed: every drum retuned, its targets moved with it). Then ``drumtx.augment``
turns each into a recording: drum bus, band (the backing track), master, codec.
Targets are per-frame rolls at the frontend's frame rate: frame t is centred at
``t * hop_length`` samples.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from drumtx.augment import AugmentConfig, Augmenter
from drumtx.config import Config, DataConfig
from drumtx.errors import DataError
from drumtx.frontend import n_frames
from drumtx.levels import scale_velocity
from drumtx.music import open_music_pool
from drumtx.processed import Store, load_store, recording_hits, recording_unsure
from drumtx.pseudo import IGNORE_TARGET, UNSURE_RADIUS_FRAMES, ignore_mask
from drumtx.resample import resample_poly

MIX_LEVEL_DB = (-6.0, 0.0)  # a second kit mixed in, relative to the first
# Varispeed rates are ``speed / SPEED_STEPS`` recorded samples per crop sample (steps
# of 1 %, a sixth of a semitone): SPEED_STEPS plays the recording as it was.
SPEED_STEPS = 100


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


@dataclass
class Crop:
    """One crop before augmentation: drums, its backing (or None), and its targets."""

    audio: np.ndarray  # (N,) float32
    music: np.ndarray | None  # (N,) float32, the same stretch of the backing track
    onset: np.ndarray  # (T, C) float32
    velocity: np.ndarray  # (T, C) float32 in [0, 1]
    mask: np.ndarray  # (T, C) float32: 1 where velocity is a target


def augment_config(cfg: DataConfig) -> AugmentConfig:
    """The [data] keys the augmentation chain reads."""
    names = [f.name for f in AugmentConfig.__dataclass_fields__.values()]
    return AugmentConfig(**{name: getattr(cfg, name) for name in names})


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
        sampler = BlockSampler(self._open(), self.spec, self.data_cfg)
        augment = Augmenter(
            augment_config(self.data_cfg),
            self.spec.sample_rate,
            self.spec.hop_length,
            open_music_pool(self.data_cfg, self.spec.sample_rate),  # real music
        )
        while True:
            buffer: list[Crop] = []
            for _ in range(self.data_cfg.shuffle_blocks):
                buffer.extend(sampler.crops_from_block(rng))
            for i in rng.permutation(len(buffer)):
                crop = buffer[i]
                if self.data_cfg.mix_prob and rng.random() < self.data_cfg.mix_prob:
                    other = buffer[int(rng.integers(len(buffer)))]
                    crop = mix_crops(crop, other, rng.uniform(*MIX_LEVEL_DB))
                audio, velocity, silenced = augment.run(
                    crop.audio, crop.music, crop.velocity, rng
                )
                onset, mask = crop.onset, crop.mask
                if silenced is not None:  # a break: nothing to hear, nothing to find
                    onset = np.where(silenced[:, None], 0.0, onset).astype(np.float32)
                    mask = mask * ~silenced[:, None]
                yield audio, onset, velocity, mask


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
        # Every hit's position in the concatenated audio, for crops centred on hits.
        hits = store.hits
        self.hit_pos = self.offsets[hits["recording"]] + hits["sample"]  # (n_hits,)

    def crops_from_block(self, rng: np.random.Generator) -> list[Crop]:
        start = int(rng.integers(0, max(1, self.total - self.block_samples + 1)))
        stop = min(self.total, start + self.block_samples)
        block = np.asarray(self.store.audio[start:stop])  # one sequential read
        music = None
        if self.store.backing is not None:  # the same stretch of the aligned track
            music = np.asarray(self.store.backing[start:stop])
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
            crop_start = self._crop_start(int(recs[j]), int(lo[j]), int(hi[j]), rng)
            speed = self._speed(hi[j] - crop_start, rng)
            crops.append(self._crop(int(recs[j]), crop_start, int(hi[j]), start,
                                    block, music, speed))  # fmt: skip
        return crops

    def _speed(self, available: int, rng: np.random.Generator) -> int:
        """A crop's varispeed rate in SPEED_STEPS (SPEED_STEPS: as recorded), drawn
        for ``data.speed_prob`` of crops; a faster one is slowed to what the block
        holds of its recording (``available`` samples), so it is never cut short."""
        cfg = self.data_cfg
        if not cfg.speed_prob or rng.random() >= cfg.speed_prob:
            return SPEED_STEPS
        semitones = rng.uniform(-cfg.speed_semitones, cfg.speed_semitones)
        speed = round(SPEED_STEPS * 2 ** (semitones / 12))
        fits = available * SPEED_STEPS // self.spec.crop_samples
        return max(SPEED_STEPS, min(speed, fits)) if speed > SPEED_STEPS else speed

    def _crop_start(self, rec: int, lo: int, hi: int, rng: np.random.Generator) -> int:
        """Uniform in the recording's part of the block, or around a rare-class hit."""
        n = self.spec.crop_samples
        latest = max(lo, hi - n)
        if rng.random() < self.data_cfg.rare_class_prob:
            inside = np.flatnonzero((self.hit_pos >= lo) & (self.hit_pos < hi))
            if len(inside):
                classes = self.store.hits["class"][inside]
                cls = rng.choice(np.unique(classes))  # each present class equally
                pos = int(
                    self.hit_pos[inside[rng.choice(np.flatnonzero(classes == cls))]]
                )
                return int(np.clip(pos - int(rng.uniform(0.1, 0.9) * n), lo, latest))
        return lo + int(rng.integers(0, latest - lo + 1))

    def _crop(
        self,
        rec: int,
        crop_start: int,
        hi: int,
        block_start: int,
        block: np.ndarray,
        music_block: np.ndarray | None,
        speed: int = SPEED_STEPS,
    ) -> Crop:
        """The crop at ``crop_start``, played at ``speed`` (SPEED_STEPS: as recorded;
        more: faster and higher), zero-padded where its recording ends."""
        n = self.spec.crop_samples
        n_read = -(-n * speed // SPEED_STEPS)  # recorded samples the crop plays
        a, b = crop_start - block_start, min(hi, crop_start + n_read) - block_start

        def play(stretch: np.ndarray) -> np.ndarray:
            x = stretch.astype(np.float32) / 32768.0
            if speed != SPEED_STEPS:
                x = resample_poly(x, SPEED_STEPS, speed)[:n]
            return np.pad(x, (0, n - len(x)))

        audio = play(block[a:b])
        music = None if music_block is None else play(music_block[a:b])
        onset, velocity, mask = self._targets(
            rec, crop_start - int(self.offsets[rec]), speed, b - a
        )
        return Crop(audio, music, onset, velocity, mask)

    def _targets(
        self, rec: int, start_in_rec: int, speed: int, n_read: int
    ) -> tuple[np.ndarray, ...]:
        """Targets of the hits among the ``n_read`` recorded samples from
        ``start_in_rec`` on, played at ``speed``."""
        spec, widen = self.spec, self.data_cfg.target_widen_frames
        n_t = n_frames(spec.crop_samples, spec.hop_length)
        hits = recording_hits(self.store, rec)
        rel = hits["sample"] - start_in_rec
        keep = (rel >= 0) & (rel < n_read)
        at = rel[keep] * (SPEED_STEPS / speed)  # crop samples
        frames = hit_frames(at, spec.hop_length, n_t)
        classes = hits["class"][keep].astype(np.int64)
        vel = hits["velocity"][keep].astype(np.float32) / 127.0
        onset, velocity, mask = make_targets(
            frames, classes, vel, n_t, spec.n_classes, widen
        )
        unsure = recording_unsure(self.store, rec)
        if len(unsure):
            rel = (unsure["sample"] - start_in_rec) * (SPEED_STEPS / speed)
            at = np.rint(rel / spec.hop_length).astype(np.int64)
            weight = ignore_mask(at, unsure["class"].astype(np.int64), n_t,
                                 spec.n_classes, UNSURE_RADIUS_FRAMES)  # fmt: skip
            onset[(weight == 0) & (onset == 0)] = IGNORE_TARGET
        return onset, velocity, mask


def hit_frames(samples: np.ndarray, hop_length: int, n_t: int) -> np.ndarray:
    """The frame each hit's onset lands in (frame t centred at t * hop_length), the
    last frame for a hit in the final partial hop."""
    return np.minimum(np.rint(samples / hop_length).astype(np.int64), n_t - 1)


def make_targets(
    frames: np.ndarray,
    classes: np.ndarray,
    hit_velocity: np.ndarray,
    n_t: int,
    n_classes: int,
    widen: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Onset roll (1 at the onset frame, 0.5 within +-widen), velocity roll, mask."""
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


def mix_crops(a: Crop, b: Crop, level_db: float) -> Crop:
    """Two kits playing at once, ``b`` at ``level_db`` relative to ``a``; the targets
    are the union, and ``b``'s velocities drop with its level. ``a``'s band plays."""
    gain = np.float32(10 ** (level_db / 20))
    b_velocity = scale_velocity(b.velocity, level_db)
    # Where both hit the same class in one frame the louder hit is the target.
    return Crop(
        audio=0.5 * (a.audio + gain * b.audio),
        music=a.music,
        onset=union_targets(a.onset, b.onset),
        velocity=np.maximum(a.velocity, b_velocity),
        mask=np.maximum(a.mask, b.mask),
    )


def union_targets(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Onset targets of two crops played together: a hit in either is a hit; where
    neither has one but either ignores the frame (IGNORE_TARGET), it stays ignored."""
    out = np.maximum(a, b)
    out[(out <= 0) & ((a == IGNORE_TARGET) | (b == IGNORE_TARGET))] = IGNORE_TARGET
    return out


# Training checks a store against the run's network: the config's, or on a resume or
# a fine-tuning run (train.init_from) the checkpoint's.
RUN_WANTS = "this run (its config; resumed or with train.init_from, its checkpoint's)"


def open_store(cfg: Config, split_dir: Path) -> Store:
    """The split's store, validated against the run's settings; in RAM if
    data.cache_in_ram."""
    store = load_store(split_dir, cfg, RUN_WANTS)
    if cfg.data.cache_in_ram:
        store = dataclasses.replace(
            store,
            audio=np.array(store.audio),  # one sequential read of the whole file
            backing=None if store.backing is None else np.array(store.backing),
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
    open_music_pool(cfg.data, spec.sample_rate)  # a bad pool fails here, not in workers
    dataset = CropDataset(spec, cfg.data, store if cfg.data.cache_in_ram else None)
    workers = loader_workers(cfg.data.num_workers)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.train.batch_size,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_defer_stop_signals,
    )


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, as torch and taskset see it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_share() -> int:
    """This process's share of the usable CPUs: torchrun's ranks on this machine
    (LOCAL_WORLD_SIZE) share them; at least 1."""
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, usable_cpus() // ranks)


def loader_workers(asked: int) -> int:
    """``data.num_workers``, at most one per CPU of this process's share: more only
    take the cores from one another and from the training step (torch warns)."""
    return min(asked, cpu_share())


WORKER_STOP_GRACE_SEC = 10  # a signalled worker keeps making batches this long


def _defer_stop_signals(worker_id: int) -> None:
    """Workers outlive SIGINT and SIGTERM sent to the whole process group (Ctrl-C,
    torchrun) by WORKER_STOP_GRACE_SEC, so the training loop finishes its step on
    batches they still make and saves; then they end, as they must when the main
    process itself terminates them (at exit, multiprocessing sends its daemonic
    workers SIGTERM and then waits for them: a worker ignoring it for good hangs a
    crashed run forever)."""
    import signal as stdlib_signal  # the module's ``signal`` is scipy's

    def stop_soon(signum: int, frame: object) -> None:
        if stdlib_signal.getitimer(stdlib_signal.ITIMER_REAL)[0] == 0:
            stdlib_signal.alarm(WORKER_STOP_GRACE_SEC)  # SIGALRM then ends the worker

    for signum in (stdlib_signal.SIGINT, stdlib_signal.SIGTERM):
        stdlib_signal.signal(signum, stop_soon)
    stdlib_signal.signal(stdlib_signal.SIGALRM, stdlib_signal.SIG_DFL)


def audio_hours(n_samples: int, sample_rate: int) -> float:
    return n_samples / sample_rate / 3600


def crop_frames(cfg: Config) -> int:
    return n_frames(
        int(round(cfg.data.crop_sec * cfg.audio.sample_rate)), cfg.hop_length
    )
