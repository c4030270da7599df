"""The processed store (DESIGN.md §3): its format, and reading it. (``drumtx.storage``
is another thing: where the roots are and writing files safely.)

One folder per split holds ``audio.i16`` (every recording's int16 samples, one after
another), ``recordings.json`` (one entry per recording: offset and length into the
audio, source paths, kit, ...), ``hits.npy`` (HITS_DTYPE, sorted by recording then
sample) and ``manifest.json``, written last: a folder without it is an incomplete
store. Format 2 added aligned tracks: ``backing.i16`` holds, at the same offsets as
``audio.i16``, a non-drum accompaniment for each recording (the manifest's ``tracks``
names it; a store without one still trains, on drums alone). Hits of velocity
UNSURE_VELOCITY are a pseudo-labelled recording's unsure peaks (drumtx.pseudo): they
are split off into ``Store.unsure`` on loading, so every reader of ``Store.hits`` sees
labels only, and training leaves their neighbourhood out of the loss. The train split's
recordings are in a fixed shuffled order (manifest ``order``). ``preprocess`` writes
stores; the loader, evaluate, inference and doctor read them here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drumtx.config import Config
from drumtx.drums import Hit
from drumtx.errors import DataError

FORMAT_VERSION = 2  # 1: audio and hits; 2: + aligned tracks (backing.i16)
HITS_DTYPE = np.dtype(
    [
        ("recording", "<i4"),
        ("sample", "<i8"),
        ("class", "<i2"),
        ("velocity", "<i2"),
        ("pitch", "<i2"),
    ]
)
UNSURE_VELOCITY = -1  # a hit of this velocity marks a teacher's unsure peak
PSEUDO_KIT_PREFIX = "pseudo:"  # kit of a pseudo-labelled real song (no backing track)
AUDIO_FILE, HITS_FILE, RECORDINGS_FILE = "audio.i16", "hits.npy", "recordings.json"
MANIFEST_FILE = "manifest.json"
BACKING_FILE = "backing.i16"  # an aligned track: same offsets and lengths as audio.i16
STORE_FILES = (AUDIO_FILE, HITS_FILE, RECORDINGS_FILE, MANIFEST_FILE)
PREPROCESS_HINT = "python -m drumtx preprocess"
# The manifest's "order" of recordings: "shuffled" for the train split (the loader's
# contiguous block reads then span unrelated recordings), "csv" (E-GMD's drummer and
# session order) for the other splits and for train stores that predate the key.
ORDER_SHUFFLED, ORDER_CSV = "shuffled", "csv"
_HASH_CHUNK_BYTES = 16 << 20


@dataclass
class Store:
    """A processed split, opened for reading; ``audio`` is memory-mapped."""

    audio: np.ndarray  # (n_samples,) int16, np.memmap unless cached in RAM
    recordings: list[dict[str, Any]]
    hits: np.ndarray  # (n_hits,) HITS_DTYPE, sorted by recording then sample
    manifest: dict[str, Any]
    backing: np.ndarray | None = None  # (n_samples,) int16 aligned with audio, or None
    unsure: np.ndarray | None = None  # HITS_DTYPE: teacher's unsure peaks, or None


def load_store(
    split_dir: Path, cfg: Config | None = None, wanted_by: str = "the config"
) -> Store:
    """Open a complete store; refuse an incomplete one or one for another config.

    ``wanted_by`` says whose settings ``cfg`` holds (a model's, for evaluate)."""
    split_dir = Path(split_dir)
    manifest = read_manifest(split_dir)
    if manifest is None:
        rebuild = f"{PREPROCESS_HINT} --split {split_dir.name}"
        if not split_dir.exists():
            raise DataError(
                f"no {split_dir.name} split in {split_dir.parent}: preprocess has "
                "not built it",
                hint=rebuild,
            )
        raise DataError(
            f"{split_dir} is an incomplete store (manifest.json missing: its "
            "preprocess did not finish)",
            hint=f"{rebuild} (it goes on from the parts already written)",
        )
    _check_manifest(split_dir, manifest, cfg, wanted_by)
    recordings = read_json(split_dir / RECORDINGS_FILE)
    hits = _read_hits(split_dir / HITS_FILE)
    audio_data = _map_audio(split_dir / AUDIO_FILE, int(manifest["n_samples"]))
    backing = None
    if "backing" in manifest.get("tracks", ()):
        backing = _map_audio(split_dir / BACKING_FILE, int(manifest["n_samples"]))
    if len(recordings) != manifest["n_recordings"] or len(hits) != manifest["n_hits"]:
        raise DataError(
            f"{split_dir}: recordings.json or hits.npy disagrees with manifest.json",
            hint=f"delete {split_dir} and run {PREPROCESS_HINT}",
        )
    is_unsure = hits["velocity"] == UNSURE_VELOCITY
    unsure = hits[is_unsure] if is_unsure.any() else None
    return Store(audio_data, recordings, hits[~is_unsure], manifest, backing, unsure)


# --- one recording of a store ---------------------------------------------------------


def recording_hits(store: Store, index: int) -> np.ndarray:
    """The hits of recording ``index`` (a view of ``store.hits``, sorted by sample)."""
    if not 0 <= index < len(store.recordings):
        raise IndexError(f"recording {index} outside 0..{len(store.recordings) - 1}")
    lo, hi = np.searchsorted(store.hits["recording"], [index, index + 1])
    return store.hits[lo:hi]


def recording_unsure(store: Store, index: int) -> np.ndarray:
    """The unsure peaks of recording ``index`` (HITS_DTYPE; empty for most)."""
    if store.unsure is None:
        return np.zeros(0, dtype=HITS_DTYPE)
    lo, hi = np.searchsorted(store.unsure["recording"], [index, index + 1])
    return store.unsure[lo:hi]


def recording_audio(store: Store, index: int) -> np.ndarray:
    """The int16 samples of recording ``index`` (a view into ``store.audio``)."""
    rec = store.recordings[index]
    return store.audio[rec["offset"] : rec["offset"] + rec["length"]]


def recording_backing(store: Store, index: int) -> np.ndarray | None:
    """The backing track of recording ``index`` (int16 view), or None if not stored."""
    if store.backing is None:
        return None
    rec = store.recordings[index]
    return store.backing[rec["offset"] : rec["offset"] + rec["length"]]


def reference_hits(store: Store, index: int) -> list[Hit]:
    """The hits of recording ``index`` as Hits, in seconds from its start."""
    rate = store.manifest["sample_rate"]
    return [
        Hit(
            float(h["sample"]) / rate,
            int(h["class"]),
            int(h["velocity"]),
            int(h["pitch"]),
        )
        for h in recording_hits(store, index)
    ]


def spread_indices(n: int, limit: int) -> list[int]:
    """Up to ``limit`` of ``range(n)`` spread evenly, first and last included (0 = all).

    The same every time, so a subset of recordings (kits, drummers) is comparable
    between runs.
    """
    if limit <= 0 or n <= limit:
        return list(range(n))
    return sorted({int(i) for i in np.linspace(0, n - 1, limit)})


# --- the manifest ---------------------------------------------------------------------


def read_manifest(split_dir: Path) -> dict[str, Any] | None:
    """The split's manifest, or None when there is none (an incomplete store)."""
    path = Path(split_dir) / MANIFEST_FILE
    if not path.is_file():
        return None
    manifest = read_json(path)
    if not isinstance(manifest, dict):
        raise DataError(f"{path} is not a JSON object", hint=PREPROCESS_HINT)
    return manifest


def manifest_mismatches(
    manifest: dict[str, Any], cfg: Config | None
) -> list[tuple[str, Any, Any]]:
    """(key, found, wanted) of each manifest value this drumtx or cfg cannot use."""
    wanted: dict[str, Any] = {"format_version": FORMAT_VERSION}
    if cfg is not None:
        wanted.update(sample_rate=cfg.audio.sample_rate, vocab=cfg.data.vocab)
    return [
        (key, manifest.get(key), value)
        for key, value in wanted.items()
        if manifest.get(key) != value
    ]


def _check_manifest(
    split_dir: Path, manifest: dict[str, Any], cfg: Config | None, wanted_by: str
) -> None:
    mismatches = manifest_mismatches(manifest, cfg)
    if not mismatches:
        return
    key, found, wanted = mismatches[0]
    setting = {"sample_rate": "audio.sample_rate", "vocab": "data.vocab"}.get(key, key)
    hint = (
        f"rebuild it for that: {PREPROCESS_HINT} --set {setting}={wanted!r} (it "
        "replaces this store, which other runs may need; a second --data-root "
        "keeps both)"
    )
    if key == "format_version":
        split = split_dir.name
        raise DataError(
            f"{split_dir}: store format {found!r}, this drumtx reads format {wanted}",
            hint=f"upgrade it (the raw recordings are read again and backing tracks "
            f"are rendered): {PREPROCESS_HINT} --split {split}",
        )
    raise DataError(
        f"{split_dir} was built with {key} = {found!r}, {wanted_by} asks for "
        f"{wanted!r}",
        hint=hint,
    )


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (the manifest's source_csv_sha256)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# --- the files ------------------------------------------------------------------------


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} is missing", hint=PREPROCESS_HINT) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}", hint=PREPROCESS_HINT) from None


def _read_hits(path: Path) -> np.ndarray:
    try:
        hits = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path} is missing", hint=PREPROCESS_HINT) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}", hint=PREPROCESS_HINT) from None
    if hits.dtype != HITS_DTYPE or hits.ndim != 1:
        raise DataError(
            f"{path} holds {hits.dtype} {hits.shape}, expected {HITS_DTYPE} (N,)",
            hint=PREPROCESS_HINT,
        )
    return hits


def _map_audio(path: Path, n_samples: int) -> np.ndarray:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"{path} is missing", hint=PREPROCESS_HINT) from None
    if size != 2 * n_samples:
        raise DataError(
            f"{path} is {size} bytes, the manifest says {2 * n_samples}",
            hint=f"delete {path.parent} and run {PREPROCESS_HINT}",
        )
    if n_samples == 0:  # mmap refuses an empty file
        return np.zeros(0, dtype=np.int16)
    return np.memmap(path, dtype=np.int16, mode="r", shape=(n_samples,))
