"""The real-music pool: screened non-drum audio (guitar stems, game music, speech) that
training crops and held-out evaluation can hear under the drums.

tools/build_music_pool.py builds it from Debian packages; nothing of it is committed.
Each split directory (``train``, ``test``) holds

- ``music.i16``: every kept excerpt, int16 mono at ``sample_rate``, end to end;
- ``index.json``: ``{"format", "sample_rate", "split", "segments": [...]}``, one
  segment per kept run of a file: file, source, package, licence, start and length in
  the pool (samples), offset in the file (seconds), and the screen's scores.

A file goes wholly to one split, so held-out music is never heard in training.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drumtx.config import DataConfig
from drumtx.errors import DataError
from drumtx.levels import mix_backing

POOL_FORMAT = 1
AUDIO_NAME = "music.i16"
INDEX_NAME = "index.json"
SPLITS = ("train", "test")
BUILD_HINT = "python tools/build_music_pool.py --out /work/music (see README)"


@dataclass(frozen=True)
class MusicPool:
    """One split of the pool: all its audio and what each stretch of it came from."""

    split_dir: Path
    audio: np.ndarray  # (N,) int16, memory-mapped
    segments: list[dict]
    sample_rate: int

    @property
    def hours(self) -> float:
        return len(self.audio) / self.sample_rate / 3600


def split_of(key: str, test_share: float) -> str:
    """"train" or "test" for a file, from a hash of its key: the same every build."""
    return "test" if hash_unit(key) < test_share else "train"


def hash_unit(key: str) -> float:
    """A number in [0, 1) fixed by ``key``."""
    digest = hashlib.sha256(f"music-pool|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


def assign_splits(
    keys_by_source: dict[str, list[str]],
    test_share: float,
    held_out: Collection[str] = (),
    pinned: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Split every source's files by hash; a source of two or more files always keeps
    one in each split (the free file with the lowest hash goes to test, the highest to
    train), so every source is both trained on and held out.

    Two things fix a file's split whatever its hash. ``pinned`` maps a key to the split
    an earlier build gave it (tools/music_pool_splits.json): which files the screen
    keeps decides the rule above, so without it a pool screened by other weights could
    move a file across. Keys in ``held_out`` (e.g. an earlier pool's test files) are
    test, so a bigger pool never trains on what an earlier one held out. The rule then
    only places a split a source's fixed files do not already have."""
    pinned = pinned or {}
    splits: dict[str, str] = {}
    held = set(held_out)
    for keys in keys_by_source.values():
        ranked = sorted(keys, key=hash_unit)
        fixed = {k: "test" if k in held else pinned[k]
                 for k in ranked if k in held or k in pinned}  # fmt: skip
        free = [k for k in ranked if k not in fixed]
        chosen = {k: split_of(k, test_share) for k in free}
        if len(ranked) >= 2 and free:
            if "test" not in fixed.values():
                chosen[free[0]] = "test"
            if "train" not in fixed.values():
                chosen[free[-1]] = "train"
        splits.update(fixed)
        splits.update(chosen)
    return splits


class PoolWriter:
    """Appends excerpts to one split's ``music.i16`` and writes its ``index.json``."""

    def __init__(self, split_dir: Path, sample_rate: int) -> None:
        self.split_dir = Path(split_dir)
        self.split_dir.mkdir(parents=True, exist_ok=True)
        self.sample_rate = sample_rate
        self.segments: list[dict] = []
        self.n_samples = 0
        self._handle = open(self.split_dir / AUDIO_NAME, "wb")

    def add(self, audio: np.ndarray, meta: dict) -> None:
        """Append (n,) float audio in [-1, 1] with what it is (file, source, ...)."""
        pcm = np.clip(np.rint(audio * 32767.0), -32768, 32767).astype("<i2")
        self._handle.write(pcm.tobytes())
        self.segments.append({**meta, "start": self.n_samples, "length": len(pcm)})
        self.n_samples += len(pcm)

    def close(self) -> Path:
        """Finish the audio, write the index; returns the index's path."""
        self._handle.close()
        index = {
            "format": POOL_FORMAT,
            "sample_rate": self.sample_rate,
            "split": self.split_dir.name,
            "n_samples": self.n_samples,
            "segments": self.segments,
        }
        path = self.split_dir / INDEX_NAME
        path.write_text(json.dumps(index, indent=1) + "\n")
        return path


def load_music_pool(split_dir: Path, sample_rate: int | None = None) -> MusicPool:
    """Open one split of a pool, checking it against its index and the asked rate."""
    split_dir = Path(split_dir)
    index_path, audio_path = split_dir / INDEX_NAME, split_dir / AUDIO_NAME
    if not index_path.is_file() or not audio_path.is_file():
        raise DataError(
            f"{split_dir} is not a music pool split ({INDEX_NAME} or {AUDIO_NAME} "
            "missing)",
            hint=BUILD_HINT + "; data.music_dir names a split: .../music/train",
        )
    try:
        index = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{index_path} cannot be read: {exc}", hint=BUILD_HINT
        ) from None
    if index.get("format") != POOL_FORMAT:
        raise DataError(
            f"{index_path} is music pool format {index.get('format')!r}; this drumtx "
            f"reads format {POOL_FORMAT}",
            hint=BUILD_HINT,
        )
    rate = int(index["sample_rate"])
    if sample_rate is not None and rate != sample_rate:
        raise DataError(
            f"{split_dir} holds {rate} Hz audio; the config asks for {sample_rate} Hz",
            hint="python tools/build_music_pool.py --out NEW --resample-from "
            f"{split_dir.parent} --scratch SCRATCH --sample-rate {sample_rate}",
        )
    n_bytes = audio_path.stat().st_size
    if n_bytes != 2 * int(index["n_samples"]) or n_bytes == 0:
        raise DataError(
            f"{audio_path} holds {n_bytes // 2} samples; its index says "
            f"{index['n_samples']}",
            hint=BUILD_HINT,
        )
    audio = np.memmap(audio_path, dtype="<i2", mode="r")
    return MusicPool(split_dir, audio, list(index["segments"]), rate)


def open_music_pool(cfg: DataConfig, sample_rate: int) -> MusicPool | None:
    """The pool split ``data.music_dir`` names, when ``data.music_prob`` uses it."""
    if cfg.music_prob <= 0 or not cfg.music_dir:
        return None
    return load_music_pool(Path(cfg.music_dir), sample_rate)


def random_excerpt(
    pool: MusicPool, n_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_samples,) float32 from a uniformly random place in the pool (a start near
    the end wraps round to its beginning, as a file boundary would cut)."""
    start = int(rng.integers(0, len(pool.audio)))
    return _read_wrapped(pool, start, n_samples)


def fixed_excerpt(pool: MusicPool, key: str, n_samples: int) -> np.ndarray:
    """(n_samples,) float32 chosen by ``key`` (e.g. a held-out recording's name): the
    same music under the same recording on every evaluation."""
    start = int(hash_unit(key) * len(pool.audio))
    return _read_wrapped(pool, start, n_samples)


def mix_held_out(
    drums: np.ndarray, pool: MusicPool, key: str, drums_to_music_db: float
) -> np.ndarray:
    """A held-out recording's (N,) drums under the pool's music chosen by ``key``, at
    the level asked (RMS over the whole recording); the drums alone where either is
    silent. Evaluation's real-music condition: load_music_pool(.../test) once."""
    music = fixed_excerpt(pool, key, len(drums))
    mixed = mix_backing(np.asarray(drums, np.float32), music, drums_to_music_db)
    return np.asarray(drums, np.float32) if mixed is None else mixed


def _read_wrapped(pool: MusicPool, start: int, n_samples: int) -> np.ndarray:
    total = len(pool.audio)
    idx = (start + np.arange(n_samples)) % total  # (n_samples,)
    if start + n_samples <= total:  # the usual case: one contiguous read
        return np.asarray(pool.audio[start : start + n_samples], np.float32) / 32768
    return np.asarray(pool.audio[idx], dtype=np.float32) / 32768
