"""Scoring a model on a processed split: activations of whole recordings (drums alone
or mixed into their backing tracks), decoded and matched against the reference hits.

Validation during training and ``evaluate`` both score here; ``transcribe`` never
imports this module, nor the metrics (mir_eval pulls in scipy.stats) it needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from drumtx.drums import Hit
from drumtx.inference import (
    LoadedModel,
    array_chunks,
    class_thresholds,
    decode_hits,
    predict_activations,
    segment_options,
)
from drumtx.levels import mix_backing
from drumtx.metrics import Tally
from drumtx.store import Store, recording_audio, recording_backing, reference_hits


def store_activations(
    loaded: LoadedModel,
    store: Store,
    indices: Sequence[int],
    backing_db: float | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index, onset, velocity) of each recording, (T, C) each, one at a time.

    Runs the same chunked inference path as ``transcribe``, segmented as [transcribe]
    says, on whole recordings: the drums alone, or (``backing_db``) mixed with their
    backing track at that drums-to-music level.
    """
    for index in indices:
        audio = recording_mix(store, index, backing_db)
        onset, velocity = predict_activations(
            loaded, array_chunks(audio), len(audio), **segment_options(loaded.cfg)
        )
        yield index, onset, velocity


def recording_mix(store: Store, index: int, backing_db: float | None) -> np.ndarray:
    """A recording's drums (int16), or drums and backing at ``backing_db`` (float32)."""
    drums = recording_audio(store, index)
    music = recording_backing(store, index)
    if backing_db is None or music is None:
        return drums
    drums_f = np.asarray(drums, np.float32) / 32768.0
    mixed = mix_backing(drums_f, np.asarray(music, np.float32) / 32768.0, backing_db)
    return drums_f if mixed is None else np.clip(mixed, -1.0, 1.0)


def score_store(
    loaded: LoadedModel,
    store: Store,
    indices: Sequence[int],
    thresholds: Sequence[float] | None = None,
    backing_db: float | None = None,
) -> dict[str, Any]:
    """Onset P/R/F1 per class, micro and macro, over whole recordings of a store.

    Also the adtof5 reduction, velocity-aware F1, micro F1 per kit, the thresholds
    used, and ``image``: (H, W, 3) reference vs predicted onsets of the first
    recording's first 10 s. Validation during training and ``evaluate`` both score here.
    """
    thresholds = class_thresholds(loaded) if thresholds is None else thresholds
    tally = Tally(loaded.vocab)
    image = None
    for index, onset, velocity in store_activations(loaded, store, indices, backing_db):
        ref = reference_hits(store, index)
        est = decode_hits(loaded, onset, velocity, thresholds)
        tally.add(ref, est, store.recordings[index].get("kit", "?"))
        if image is None:
            image = onset_image(onset, ref, loaded.cfg.frontend.fps)
    results = tally.summary()
    results["thresholds"] = dict(zip(loaded.vocab.codes, map(float, thresholds)))
    results["n_recordings"] = len(indices)
    results["image"] = image
    return results


def onset_image(onset: np.ndarray, ref: Sequence[Hit], fps: int, seconds: float = 10.0):
    """(H, W, 3) uint8: predicted probability in green, reference onsets in red.

    One band of 8 pixel rows per class, top to bottom in vocabulary order; one column per
    frame.
    """
    n_t = min(len(onset), int(seconds * fps))
    n_classes = onset.shape[1]
    image = np.zeros((n_classes * 8, n_t, 3), dtype=np.uint8)
    for c in range(n_classes):
        image[c * 8 : c * 8 + 7, :, 1] = (onset[:n_t, c] * 255).astype(np.uint8)
    for hit in ref:
        t = int(round(hit.time_sec * fps))
        if t < n_t:
            image[hit.cls * 8 : hit.cls * 8 + 7, t, 0] = 255
    return image
