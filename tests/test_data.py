"""The training loader: crops, targets, block reads, determinism, augmentation.

Stores are written directly in the DESIGN.md §3 format, with seeded random non-zero
int16 audio: a crop is found again in the store by its samples, which tells its
recording and start, and shows whether it ran past the recording's end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from drumtx.config import Config, DataConfig, load_config
from drumtx.data import (
    SPEED_STEPS,
    BlockSampler,
    Crop,
    CropDataset,
    CropSpec,
    make_loader,
    make_targets,
    mix_crops,
)
from drumtx.errors import DataError
from drumtx.frontend import n_frames
from drumtx.processed import FORMAT_VERSION, HITS_DTYPE, Store, load_store

SAMPLE_RATE = 24000
HOP = 240
N_CLASSES = 9
QUIET = dict(  # no augmentation: crops hold the store's samples exactly
    eq_prob=0.0, noise_prob=0.0, reverb_prob=0.0, gain_db_min=0.0, gain_db_max=0.0,
    compress_prob=0.0, saturate_prob=0.0, codec_prob=0.0, backing_prob=0.0,
)  # fmt: skip


def write_store(
    split_dir: Path, lengths: Sequence[int], hits: Sequence[tuple[int, int, int, int]]
) -> Path:
    """A store of ramp recordings; hits are (recording, sample, class, velocity)."""
    split_dir.mkdir(parents=True)
    values = np.random.default_rng(len(lengths)).integers(1, 32768, sum(lengths))
    values *= np.random.default_rng(1).choice([-1, 1], values.size)  # never 0
    values.astype(np.int16).tofile(split_dir / "audio.i16")  # (n_samples,)
    offsets = np.cumsum([0, *lengths])[:-1]
    recordings = [
        {
            "audio_path": f"r{r}.wav",
            "midi_path": f"r{r}.midi",
            "offset": int(o),
            "length": int(n),
            "split": "train",
            "kit": "k",
            "style": "s",
            "duration_sec": n / SAMPLE_RATE,
        }
        for r, (o, n) in enumerate(zip(offsets, lengths))
    ]
    (split_dir / "recordings.json").write_text(json.dumps(recordings))
    rows = [(r, s, c, v, 36) for r, s, c, v in sorted(hits)]
    table = np.array(rows, dtype=HITS_DTYPE)
    np.save(split_dir / "hits.npy", table)
    manifest = {
        "format_version": FORMAT_VERSION,
        "sample_rate": SAMPLE_RATE,
        "vocab": "roland9",
        "source_csv_sha256": "0" * 64,
        "n_recordings": len(lengths),
        "n_hits": len(table),
        "n_samples": int(values.size),
        "skipped": [],
    }
    (split_dir / "manifest.json").write_text(json.dumps(manifest))
    return split_dir


def regular_hits(lengths: Sequence[int], every: int = 700) -> list[tuple[int, ...]]:
    """A hit every ``every`` samples; class and velocity name the recording."""
    return [
        (r, s, r % N_CLASSES, 10 + r)
        for r, n in enumerate(lengths)
        for s in range(every // 3, n, every)
    ]


LENGTHS = [30000, 1500, 52000, 3100, 26000, 90000, 800, 39000, 2400, 61000]


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return write_store(tmp_path / "train", LENGTHS, regular_hits(LENGTHS))


def spec_for(split_dir: Path, crop_samples: int = 2400, **kw: int) -> CropSpec:
    return CropSpec(split_dir, crop_samples, HOP, N_CLASSES, SAMPLE_RATE, seed=7, **kw)


def astuple(crop: Crop) -> tuple[np.ndarray, ...]:
    """(audio, onset, velocity, mask) of a crop without backing."""
    assert crop.music is None
    return crop.audio, crop.onset, crop.velocity, crop.mask


def locate_crop(audio: np.ndarray, store: Store) -> tuple[int, int, int]:
    """(recording, start sample in it, valid samples) of an unaugmented crop."""
    values = np.rint(audio * 32768).astype(np.int64)
    zeros = np.flatnonzero(values == 0)
    valid = int(zeros[0]) if zeros.size else values.size
    assert np.all(values[valid:] == 0), "padding only after the crop's samples"
    full = np.asarray(store.audio)
    found = [
        int(p)
        for p in np.flatnonzero(full[: full.size - valid + 1] == values[0])
        if np.array_equal(full[p : p + valid], values[:valid])
    ]
    assert len(found) == 1, "a crop's samples are one run of the store"
    offsets = np.array([r["offset"] for r in store.recordings])
    rec = int(np.searchsorted(offsets, found[0], side="right")) - 1
    start = found[0] - int(offsets[rec])
    assert start + valid <= store.recordings[rec]["length"], "crop straddles two"
    return rec, start, valid


def expected_targets(
    store: Store, rec: int, start: int, valid: int, n_samples: int, widen: int = 0
) -> tuple[np.ndarray, ...]:
    """Targets from first principles: hits inside the crop at round(sample / hop)."""
    hits = store.hits[store.hits["recording"] == rec]
    rel = hits["sample"] - start
    keep = (rel >= 0) & (rel < valid)
    frames = np.array([round(x / HOP) for x in rel[keep]], dtype=np.int64)
    return make_targets(
        frames,
        hits["class"][keep].astype(np.int64),
        hits["velocity"][keep] / np.float32(127),
        n_frames(n_samples, HOP),
        N_CLASSES,
        widen,
    )


# The last case cuts crops of 60 % of a block, so many blocks end inside a recording
# with less than a crop of it left.
@pytest.mark.parametrize(
    ("block_mb", "crop_samples"), [(0.1, 2400), (0.3, 2400), (0.1, 30000)]
)
def test_crops_stay_inside_one_recording_with_its_own_targets(
    store_dir: Path, block_mb: float, crop_samples: int
) -> None:
    store = load_store(store_dir)
    spec = spec_for(store_dir, crop_samples)
    sampler = BlockSampler(store, spec, DataConfig(block_mb=block_mb, **QUIET))
    rng = np.random.default_rng(0)
    crops = [c for _ in range(40) for c in sampler.crops_from_block(rng)]
    assert len(crops) > 100
    seen = set()
    for audio, onset, velocity, mask in (astuple(c) for c in crops):
        rec, start, valid = locate_crop(audio, store)
        seen.add(rec)
        # Short only where the recording ends: never silence cut into the middle.
        assert valid == spec.crop_samples or start + valid == LENGTHS[rec]
        want = expected_targets(store, rec, start, valid, spec.crop_samples)
        for got, ref in zip((onset, velocity, mask), want):
            np.testing.assert_array_equal(got, ref)
        assert set(np.flatnonzero(onset.any(axis=0))) <= {rec % N_CLASSES}
    assert len(seen) >= 5


def test_targets_at_rounded_frames_with_velocity_and_edges(tmp_path: Path) -> None:
    n = 2400  # the recording is exactly one crop, so the crop starts at sample 0
    hits = [
        (0, 0, 0, 127),  # the crop's first sample -> frame 0
        (0, 3 * HOP + HOP // 2 - 1, 2, 64),  # just below half a hop -> frame 3
        (0, 5 * HOP + HOP // 2 + 1, 4, 1),  # just above -> frame 6
        (0, n - 1, 8, 90),  # the last sample -> the last frame
    ]
    split_dir = write_store(tmp_path / "train", [n], hits)
    store = load_store(split_dir)
    sampler = BlockSampler(store, spec_for(split_dir, n), DataConfig())
    audio, onset, velocity, mask = astuple(
        sampler.crops_from_block(np.random.default_rng(1))[0]
    )
    assert locate_crop(audio, store) == (0, 0, n)
    n_t = n_frames(n, HOP)
    assert onset.shape == velocity.shape == mask.shape == (n_t, N_CLASSES)
    want = {(0, 0): 127, (3, 2): 64, (6, 4): 1, (n_t - 1, 8): 90}
    assert {tuple(map(int, i)) for i in np.argwhere(onset)} == set(want)
    for (frame, cls), vel in want.items():
        assert onset[frame, cls] == 1.0 and mask[frame, cls] == 1.0
        assert velocity[frame, cls] == pytest.approx(vel / 127)
    assert mask.sum() == len(want) and velocity[mask == 0].sum() == 0


def test_hits_outside_the_crop_are_not_labelled(tmp_path: Path) -> None:
    n = 2400
    hits = [(0, 100, 1, 50), (0, n - 50, 1, 60), (0, n + 20, 1, 70)]
    split_dir = write_store(tmp_path / "train", [n + 2000], hits)
    store = load_store(split_dir)
    sampler = BlockSampler(store, spec_for(split_dir, n), DataConfig(**QUIET))
    rng = np.random.default_rng(3)
    for audio, onset, velocity, _ in map(astuple, sampler.crops_from_block(rng)):
        rec, start, valid = locate_crop(audio, store)
        want = expected_targets(store, rec, start, valid, n)
        np.testing.assert_array_equal(onset, want[0])
        np.testing.assert_array_equal(velocity, want[1])


def test_make_targets_widen_marks_neighbours_at_half() -> None:
    frames = np.array([0, 5, 6, 9])
    classes = np.array([0, 1, 1, 2])
    vel = np.array([0.5, 0.25, 1.0, 0.75], dtype=np.float32)
    onset, velocity, mask = make_targets(frames, classes, vel, 10, 3, widen=1)
    np.testing.assert_array_equal(onset[:, 0], [1, 0.5, 0, 0, 0, 0, 0, 0, 0, 0])
    # Neighbouring onsets of one class keep 1 at both onset frames.
    np.testing.assert_array_equal(onset[:, 1], [0, 0, 0, 0, 0.5, 1, 1, 0.5, 0, 0])
    np.testing.assert_array_equal(onset[:, 2], [0, 0, 0, 0, 0, 0, 0, 0, 0.5, 1])
    # Velocity and its mask stay on the onset frames only.
    assert mask.sum() == 4 and velocity[6, 1] == 1.0 and velocity[4, 1] == 0.0
    plain, _, _ = make_targets(frames, classes, vel, 10, 3, widen=0)
    assert set(np.unique(plain)) == {0.0, 1.0} and plain.sum() == 4


def test_widen_through_the_sampler(store_dir: Path) -> None:
    store = load_store(store_dir)
    sampler = BlockSampler(
        store, spec_for(store_dir), DataConfig(target_widen_frames=2, **QUIET)
    )
    crops = sampler.crops_from_block(np.random.default_rng(4))
    for audio, onset, _, mask in map(astuple, crops):
        rec, start, valid = locate_crop(audio, store)
        want = expected_targets(store, rec, start, valid, 2400, widen=2)
        np.testing.assert_array_equal(onset, want[0])
        assert np.all(onset[mask == 1] == 1.0)


class ReadLog:
    """Stands in for the memmap and records every index used to read it."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio
        self.keys: list[object] = []

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, key: object) -> np.ndarray:
        self.keys.append(key)
        return self.audio[key]


@pytest.mark.parametrize("block_mb", [0.1, 0.3, 100.0])
def test_each_block_is_one_contiguous_read(store_dir: Path, block_mb: float) -> None:
    store = load_store(store_dir)
    log = ReadLog(store.audio)
    store.audio = log  # type: ignore[assignment]
    data_cfg = DataConfig(
        block_mb=block_mb, crops_per_block=3, shuffle_blocks=2, **QUIET
    )
    crops = CropDataset(spec_for(store_dir), data_cfg, store)
    stream = iter(crops)
    for _ in range(30):
        next(stream)
    total = sum(LENGTHS)
    want = min(total, int(block_mb * 1e6) // 2)  # int16: 2 bytes per sample
    assert len(log.keys) == 10  # 30 crops / 3 per block
    for key in log.keys:
        assert isinstance(key, slice) and key.step is None
        assert key.stop - key.start == want and 0 <= key.start and key.stop <= total


def test_empty_store_is_refused_not_looped_forever(tmp_path: Path) -> None:
    split_dir = write_store(tmp_path / "train", [], [])
    with pytest.raises(DataError, match="no audio"):
        BlockSampler(load_store(split_dir), spec_for(split_dir), DataConfig())


def first_crops(dataset: CropDataset, n: int) -> list[tuple[np.ndarray, ...]]:
    stream = iter(dataset)
    return [next(stream) for _ in range(n)]


def same_crops(a: Sequence[tuple], b: Sequence[tuple]) -> bool:
    return all(np.array_equal(x, y) for ca, cb in zip(a, b) for x, y in zip(ca, cb))


def test_same_seed_same_crops_other_rank_or_seed_other_crops(store_dir: Path) -> None:
    data_cfg = DataConfig(mix_prob=0.5, eq_prob=0.5, reverb_prob=0.5, noise_prob=0.5)

    def crops(spec: CropSpec) -> list[tuple[np.ndarray, ...]]:
        return first_crops(CropDataset(spec, data_cfg), 12)

    base = crops(spec_for(store_dir))
    assert same_crops(base, crops(spec_for(store_dir)))
    rank0 = crops(spec_for(store_dir, rank=0, world_size=2))
    rank1 = crops(spec_for(store_dir, rank=1, world_size=2))
    assert not any(np.array_equal(a[0], b[0]) for a, b in zip(rank0, rank1))
    reseeded = crops(replace(spec_for(store_dir), seed=8))
    assert not any(np.array_equal(a[0], b[0]) for a, b in zip(base, reseeded))


def loader_config(data_root: Path, *overrides: str) -> Config:
    return load_config(
        None,
        [
            f"storage.data_root='{data_root}'",
            "data.crop_sec=0.5",
            "data.block_mb=0.1",
            "data.crops_per_block=4",
            "data.shuffle_blocks=2",
            "train.batch_size=4",
            *overrides,
        ],
    )


def loader_batches(
    cfg: Config, split_dir: Path, n: int, rank: int = 0
) -> list[list[torch.Tensor]]:
    loader = make_loader(
        cfg, split_dir, N_CLASSES, seed=5, rank=rank, world_size=2, pin_memory=False
    )
    stream = iter(loader)
    return [next(stream) for _ in range(n)]


def test_two_workers_draw_different_crops_reproducibly(tmp_path: Path) -> None:
    split_dir = write_store(tmp_path / "train", LENGTHS, regular_hits(LENGTHS))
    cfg = loader_config(tmp_path, "data.num_workers=2", "data.mix_prob=0.3")
    first = loader_batches(cfg, split_dir, 4)
    second = loader_batches(cfg, split_dir, 4)
    for a, b in zip(first, second):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    # Batches alternate between the two workers: 0 and 1 come from different ones.
    assert not torch.equal(first[0][0], first[1][0])
    other_rank = loader_batches(cfg, split_dir, 2, rank=1)
    assert not torch.equal(first[0][0], other_rank[0][0])


def test_cache_in_ram_gives_the_memmap_crops(store_dir: Path, tmp_path: Path) -> None:
    mapped = loader_batches(loader_config(tmp_path, "data.num_workers=0"), store_dir, 3)
    cached = loader_batches(
        loader_config(tmp_path, "data.num_workers=0", "data.cache_in_ram=true"),
        store_dir,
        3,
    )
    for a, b in zip(mapped, cached):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_mix_crops_unions_targets_and_lowers_the_quieter_kit() -> None:
    n_t = 5
    a_on = np.zeros((n_t, 3), np.float32)
    b_on = np.zeros((n_t, 3), np.float32)
    a_on[1, 0], b_on[3, 2], b_on[1, 0] = 1, 1, 0.5
    a = Crop(np.full(8, 0.4, np.float32), None, a_on, a_on * 0.3, a_on.copy())
    b_mask = (b_on == 1).astype(np.float32)
    b = Crop(np.full(8, -0.2, np.float32), None, b_on, b_on * 0.9, b_mask)
    same = mix_crops(a, b, 0.0)
    np.testing.assert_allclose(same.audio, 0.1)
    np.testing.assert_array_equal(same.onset, np.maximum(a_on, b_on))
    assert same.mask[1, 0] == 1 and same.mask[3, 2] == 1 and same.mask.sum() == 2
    assert same.velocity[1, 0] == pytest.approx(0.45)  # the louder of the two
    assert same.velocity[3, 2] == pytest.approx(0.9)
    quieter = mix_crops(a, b, -6.0)  # b 6 dB down: audio and velocities follow
    np.testing.assert_allclose(quieter.audio, 0.5 * (0.4 - 0.2 * 10 ** (-6 / 20)))
    assert quieter.velocity[3, 2] == pytest.approx(0.9 * 10 ** (-6 / 40))
    np.testing.assert_array_equal(quieter.onset, same.onset)


def test_rare_class_crops_find_the_rare_class(tmp_path: Path) -> None:
    # One long recording: a common class every 700 samples, class 5 only 3 times.
    length = 400_000
    hits = [(0, s, 0, 60) for s in range(350, length, 700)]
    hits += [(0, s, 5, 60) for s in (50_000, 200_000, 350_000)]
    split_dir = write_store(tmp_path / "train", [length], hits)
    store = load_store(split_dir)

    def share_with_rare(prob: float) -> float:
        cfg = DataConfig(crops_per_block=8, block_mb=1.0, rare_class_prob=prob, **QUIET)
        sampler = BlockSampler(store, spec_for(split_dir), cfg)
        rng = np.random.default_rng(0)
        crops = [c for _ in range(40) for c in sampler.crops_from_block(rng)]
        return float(np.mean([c.onset[:, 5].any() for c in crops]))

    uniform, balanced = share_with_rare(0.0), share_with_rare(1.0)
    assert uniform < 0.1  # 3 hits in 400k samples: rarely inside a 2400-sample crop
    assert balanced > 0.35  # about half the crops are centred on class 5 (2 classes)


def test_varispeed_crops_move_their_targets_with_the_hits(tmp_path: Path) -> None:
    """Crops played faster or slower: each hit is heard where its target says (within
    half a frame), hit spacings stretch within +-2 semitones, and a sped-up crop is
    slowed rather than cut short where its block ends inside the recording."""
    length, every, n = 200_000, 701, 4800
    hits = [(0, s, (s // every) % 3, 90) for s in range(350, length, every)]
    split_dir = write_store(tmp_path / "train", [length], hits)
    impulses = np.zeros(length, np.int16)
    impulses[[s for _, s, _, _ in hits]] = 20000  # a click at every hit, else silence
    impulses.tofile(split_dir / "audio.i16")
    store = load_store(split_dir)
    cfg = DataConfig(block_mb=0.1, speed_prob=1.0, speed_semitones=2.0, **QUIET)
    sampler = BlockSampler(store, spec_for(split_dir, n), cfg)
    rng = np.random.default_rng(0)
    crops = [c for _ in range(30) for c in sampler.crops_from_block(rng)]
    assert len(crops) > 100
    spacings = []
    for crop in crops:
        clicks = np.flatnonzero(
            (np.abs(crop.audio) > 0.25)
            & (np.abs(crop.audio) > np.abs(np.roll(crop.audio, 1)))
            & (np.abs(crop.audio) >= np.abs(np.roll(crop.audio, -1)))
        )  # each click's peak sample (the first of two equal ones)
        frames, classes = np.nonzero(crop.onset == 1.0)
        # Every labelled hit is heard in its frame, and every click is labelled.
        assert len(frames) == len(clicks) >= 5
        assert np.all(np.abs(clicks - frames * HOP) <= HOP / 2 + 1)
        assert set(classes) <= {0, 1, 2}
        assert crop.mask.sum() == len(frames)
        spacings.append(np.median(np.diff(clicks)) / every)
        # Played through to its last sample: the last click lies within a spacing
        # of the end (a crop cut short would fall silent before it).
        assert clicks[-1] >= n - 1.2 * every
    spacings = np.array(spacings)
    lo, hi = 2 ** (-2 / 12), 2 ** (2 / 12)
    assert lo - 0.01 < spacings.min() and spacings.max() < hi + 0.01
    assert spacings.min() < 0.93 and spacings.max() > 1.07  # it did move both ways
    # A faster crop than the block holds (n + 200 samples of its recording) is slowed
    # to fit; slower ones need no more than a crop.
    tight = [sampler._speed(n + 200, rng) for _ in range(200)]
    assert max(tight) == (n + 200) * SPEED_STEPS // n and min(tight) < SPEED_STEPS
    assert max(sampler._speed(n - 10, rng) for _ in range(50)) <= SPEED_STEPS


def test_zero_semitones_plays_every_crop_as_recorded(store_dir: Path) -> None:
    store = load_store(store_dir)
    cfg = DataConfig(block_mb=0.1, speed_prob=1.0, speed_semitones=0.0, **QUIET)
    sampler = BlockSampler(store, spec_for(store_dir), cfg)
    rng = np.random.default_rng(0)
    for crop in [c for _ in range(5) for c in sampler.crops_from_block(rng)]:
        rec, start, valid = locate_crop(crop.audio, store)
        want = expected_targets(store, rec, start, valid, 2400)
        np.testing.assert_array_equal(crop.onset, want[0])


CRASHING_LOADER = """
import sys
from pathlib import Path
import drumtx.augment
from drumtx.config import load_config
from drumtx.data import make_loader

calls = 0
def broken(self, drums, music, velocity, rng):
    global calls
    calls += 1
    if calls > 3:
        raise RuntimeError("augmentation bug")
    return drums, velocity, None
drumtx.augment.Augmenter.run = broken
cfg = load_config(None, ["data.num_workers=1", "data.crop_sec=0.5", "data.block_mb=0.1",
                         "train.batch_size=1"])
loader = make_loader(cfg, Path(sys.argv[1]), 9, seed=0, rank=0, world_size=1,
                     pin_memory=False)
batches = iter(loader)
for _ in range(10):
    next(batches)  # raises once the worker's augmentation breaks
"""


def test_a_crashing_loader_worker_does_not_hang_the_process(store_dir: Path) -> None:
    # The traceback keeps the DataLoader iterator alive, so at exit multiprocessing
    # terminates its daemonic worker with SIGTERM, then joins it. A worker that
    # ignored SIGTERM for good (to finish a step after Ctrl-C) hung the run forever.
    import subprocess
    import sys

    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_LOADER, str(store_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "augmentation bug" in done.stderr
    assert time.monotonic() - start < 60


def test_loader_workers_never_outnumber_the_cpus_the_process_may_use(monkeypatch):
    import os

    import drumtx.data as data

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert [data.loader_workers(n) for n in (0, 1, 2, 4, 16)] == [0, 1, 2, 2, 2]
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two torchrun ranks share them
    assert [data.loader_workers(n) for n in (0, 1, 4)] == [0, 1, 1]
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS and Windows have none
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert data.loader_workers(4) == 3
