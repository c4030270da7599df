"""store: reading a processed split, one recording's slices, manifest checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drumtx.config import load_config
from drumtx.drums import Hit
from drumtx.errors import DataError
from drumtx.processed import (
    FORMAT_VERSION,
    HITS_DTYPE,
    load_store,
    manifest_mismatches,
    recording_audio,
    recording_hits,
    reference_hits,
    sha256_file,
    spread_indices,
)

RATE = 24000


def write_store(split_dir: Path, **manifest_changes: object) -> Path:
    """Two recordings (3 and 5 samples) with hits at known samples."""
    split_dir.mkdir(parents=True)
    np.arange(1, 9, dtype=np.int16).tofile(split_dir / "audio.i16")
    recordings = [{"offset": 0, "length": 3}, {"offset": 3, "length": 5}]
    (split_dir / "recordings.json").write_text(json.dumps(recordings))
    rows = [(0, 1, 0, 90, 36), (1, 0, 1, 60, 38), (1, 4, 2, 30, 42)]
    np.save(split_dir / "hits.npy", np.array(rows, dtype=HITS_DTYPE))
    manifest = {
        "format_version": FORMAT_VERSION,
        "sample_rate": RATE,
        "vocab": "roland9",
        "n_recordings": 2,
        "n_hits": 3,
        "n_samples": 8,
        **manifest_changes,
    }
    (split_dir / "manifest.json").write_text(json.dumps(manifest))
    return split_dir


def test_one_recording_slices(tmp_path: Path) -> None:
    store = load_store(write_store(tmp_path / "train"))
    assert recording_audio(store, 1).tolist() == [4, 5, 6, 7, 8]
    assert recording_hits(store, 1)["sample"].tolist() == [0, 4]
    assert reference_hits(store, 1) == [
        Hit(0.0, 1, 60, 38),
        Hit(4 / RATE, 2, 30, 42),
    ]
    with pytest.raises(IndexError):
        recording_hits(store, 2)


def test_a_store_for_other_settings_is_refused_with_the_key(tmp_path: Path) -> None:
    cfg = load_config(None, [])
    split_dir = write_store(tmp_path / "train", vocab="adtof5", format_version=1)
    manifest = json.loads((split_dir / "manifest.json").read_text())
    assert manifest_mismatches(manifest, cfg) == [
        ("format_version", 1, FORMAT_VERSION),
        ("vocab", "adtof5", "roland9"),
    ]
    assert manifest_mismatches(manifest, None) == [
        ("format_version", 1, FORMAT_VERSION)
    ]
    with pytest.raises(
        DataError, match="store format 1, this drumtx reads format 2"
    ) as info:
        load_store(split_dir, cfg)
    # An old store names the command that upgrades it.
    assert "python -m drumtx preprocess --split train" in (info.value.hint or "")
    ok_format = write_store(tmp_path / "test", vocab="adtof5")
    with pytest.raises(DataError, match="vocab = 'adtof5'"):
        load_store(ok_format, cfg)
    assert len(load_store(ok_format).recordings) == 2  # no config: format only


def test_spread_indices_are_even_and_deterministic() -> None:
    picked = spread_indices(45_537, 20)
    assert len(picked) == 20 and picked[0] == 0 and picked[-1] == 45_536
    assert picked == sorted(set(picked)) == spread_indices(45_537, 20)
    gaps = np.diff(picked)
    assert gaps.max() - gaps.min() <= 1
    assert spread_indices(10, 4) == [0, 3, 6, 9]
    assert spread_indices(3, 20) == [0, 1, 2]
    assert spread_indices(5, 0) == [0, 1, 2, 3, 4]  # 0 = all
    assert spread_indices(0, 20) == []


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "index.csv"
    path.write_bytes(b"abc")
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_file(path) == digest  # FIPS 180-2 test vector for "abc"
