"""Builders for end-to-end tests: a made dataset, its processed store, a trained model.

Kept out of conftest.py because they are slow-ish (seconds to a minute) and only the
pipeline tests use them, through session-scoped fixtures defined there.
"""

from __future__ import annotations

from pathlib import Path

from drumtx.config import Config, load_config

TEST_KITS = ["synth:1", "synth:2", "synth:3", "synth:4"]
# Enough for the tiny model to reach about 0.9 micro F1 on held-out synth kits in about
# 100 s of the suite's time: the held-out test's pooled F1 after 400 steps on 2-s crops
# was 0.890 / 0.880 / 0.868 (train.seed default / 1 / 2; 98 s of training on one thread
# of this 2-core CPU). 500 steps on 3-s crops gave 0.895 at the default seed and took
# 185 s; 300 steps on 2-s crops at twice the learning rate fell to 0.859.
TRAINED_STEPS = 400
TRAINED_CROP_SEC = 2.0


def tiny_config(data_root: Path, *overrides: str) -> Config:
    """A CPU-sized config: the tiny model, short crops, frequent evaluation."""
    return load_config(
        None,
        [
            f"storage.data_root='{data_root}'",
            "model.preset='tiny'",
            "data.crop_sec=3.0",
            "data.num_workers=0",
            "data.block_mb=1.0",
            "data.shuffle_blocks=2",
            "train.device='cpu'",
            "train.cpu_threads=1",  # robust to other load; 2 threads stall when shared
            "train.batch_size=8",
            "train.max_steps=6",
            "train.warmup_steps=2",
            "train.eval_every=3",
            "train.log_every=1",
            "train.val_max_recordings=2",
            *overrides,
        ],
    )


def build_store(
    data_root: Path, n_performances: int = 12, max_sec: float = 16.0
) -> None:
    """make-dataset (generated grooves x synth kits) then preprocess, all splits."""
    from drumtx.make_dataset import make_dataset
    from drumtx.preprocess import run_preprocess

    make_dataset(
        data_root,
        midi_dir=None,
        kits=TEST_KITS,
        limit=n_performances,
        seed=0,
        max_sec=max_sec,
    )
    cfg = tiny_config(data_root)
    status = run_preprocess(
        cfg,
        splits=["train", "validation", "test"],
        limit=None,
        workers=2,
        allow_skips=False,
    )
    assert status == 0
