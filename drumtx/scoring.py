"""Scoring a model on a processed split: activations of whole recordings (drums alone
or mixed into their backing tracks), decoded and matched against the reference hits.

Validation during training and ``evaluate`` both score here; ``transcribe`` never
imports this module, nor the metrics (mir_eval pulls in scipy.stats) it needs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drumtx.beats import BeatGrid, beat_grid
from drumtx.drums import Hit
from drumtx.harmony import Chroma, ChromaStream
from drumtx.inference import (
    LoadedModel,
    array_activations,
    class_thresholds,
    decode_hits,
)
from drumtx.levels import mix_backing
from drumtx.metrics import ONSET_WINDOW_SEC, VELOCITY_TOLERANCE, Tally
from drumtx.processed import Store, recording_audio, recording_backing, reference_hits
from drumtx.standout import standout_db
from drumtx.tempo import TempoMap, read_tempo_map

# (recording index, onset probabilities, velocities) -> (loss, frames)
RecordingLoss = Callable[[int, np.ndarray, np.ndarray], tuple[float, int]]


def store_activations(
    loaded: LoadedModel,
    store: Store,
    indices: Sequence[int],
    backing_db: float | None = None,
    tick: Callable[[], None] | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index, onset, velocity) of each recording, (T, C) each, one at a time.

    Runs the same chunked inference path as ``transcribe``, segmented as [transcribe]
    says, on whole recordings: the drums alone, or (``backing_db``) mixed with their
    backing track at that drums-to-music level.
    """
    runs = store_runs(loaded, store, indices, backing_db, tick=tick)
    for index, onset, velocity, _ in runs:
        yield index, onset, velocity


def store_runs(
    loaded: LoadedModel,
    store: Store,
    indices: Sequence[int],
    backing_db: float | None = None,
    harmony: bool = False,
    tick: Callable[[], None] | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray, Chroma | None]]:
    """store_activations, and with ``harmony`` the chroma of the same audio as it
    streams to the model (what transcribe's tracker hears; else None). ``tick`` is
    called once a recording has been heard (a progress bar's advance)."""
    for index in indices:
        audio = recording_mix(store, index, backing_db)
        stream = ChromaStream(loaded.cfg.audio.sample_rate) if harmony else None
        wrap = None if stream is None else stream.wrap
        onset, velocity = array_activations(loaded, audio, wrap)
        if tick is not None:
            tick()
        yield index, onset, velocity, None if stream is None else stream.chroma()


def recording_mix(store: Store, index: int, backing_db: float | None) -> np.ndarray:
    """A recording's drums (int16), or drums and backing at ``backing_db`` (float32)."""
    drums = recording_audio(store, index)
    music = recording_backing(store, index)
    if backing_db is None or music is None:
        return drums
    drums_f = np.asarray(drums, np.float32) / 32768.0
    mixed = mix_backing(drums_f, np.asarray(music, np.float32) / 32768.0, backing_db)
    return drums_f if mixed is None else np.clip(mixed, -1.0, 1.0)


def recording_parts(
    store: Store, index: int, backing_db: float | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """A recording's drums and its backing scaled to ``backing_db`` drums-to-music
    (float32; None for the drums alone, or where either is silent): what
    :func:`recording_mix` sums, before its clipping."""
    drums = np.asarray(recording_audio(store, index), np.float32) / 32768.0
    backing = recording_backing(store, index)
    if backing_db is None or backing is None:
        return drums, None
    music = np.asarray(backing, np.float32) / 32768.0
    mixed = mix_backing(drums, music, backing_db)
    return drums, None if mixed is None else mixed - drums


def recording_standout(
    store: Store, index: int, backing_db: float | None, ref: Sequence[Hit]
) -> np.ndarray:
    """How far each reference hit stands out of the drums and music around it, as
    scored at ``backing_db`` (drumtx.standout)."""
    drums, music = recording_parts(store, index, backing_db)
    times = np.asarray([hit.time_sec for hit in ref], dtype=np.float64)
    return standout_db(drums, music, int(store.manifest["sample_rate"]), times)


def score_store(
    loaded: LoadedModel,
    store: Store,
    indices: Sequence[int],
    thresholds: Sequence[float] | None = None,
    backing_db: float | None = None,
    egmd_dir: Path | None = None,
    picture: bool = False,
    tick: Callable[[], None] | None = None,
    loss: RecordingLoss | None = None,
    standout: bool = False,
) -> dict[str, Any]:
    """Onset P/R/F1 per class, micro and macro, over whole recordings of a store.

    Also the adtof5 reduction, velocity-aware F1, micro F1 per kit, with ``standout``
    recall by each reference hit's standout and the audible score (drumtx.standout;
    evaluate reports them, training's validation does not need them), the thresholds
    used, and with ``picture`` an ``image``: (H, W, 3) reference vs predicted onsets
    of the first recording's first 10 s (:func:`validation_picture`, for TensorBoard).
    Validation during training and ``evaluate`` both score here.
    With ``egmd_dir`` (where the recordings' MIDI files are), ``beats``: beat and
    downbeat F-measure and tempo accuracy of the tempo map transcribe would write,
    against the MIDI's (see :func:`summarize_beats`). With ``loss`` (of a recording's
    index and activations: its loss and frame count), ``loss``: their frame-weighted
    mean.
    """
    thresholds = class_thresholds(loaded) if thresholds is None else thresholds
    tally = Tally(loaded.vocab)
    image, beats, losses = None, [], []
    fps = loaded.cfg.frontend.fps
    harmony = egmd_dir is not None
    runs = store_runs(loaded, store, indices, backing_db, harmony, tick)
    for index, onset, velocity, chroma in runs:
        ref = reference_hits(store, index)
        est = decode_hits(loaded, onset, velocity, thresholds)
        heard = recording_standout(store, index, backing_db, ref) if standout else None
        tally.add(ref, est, store.recordings[index].get("kit", "?"), heard)
        if egmd_dir is not None:
            beats.append(recording_beats(
                store, index, egmd_dir, loaded, onset, velocity, est, chroma
            ))  # fmt: skip
        if picture and image is None:
            image = validation_picture(onset, ref, est, loaded.vocab.codes, fps)
        if loss is not None:
            losses.append(loss(index, onset, velocity))
    results = tally.summary()
    if losses:
        values, frames = np.array(losses, dtype=np.float64).T
        results["loss"] = float(np.average(values, weights=np.maximum(frames, 1)))
    if egmd_dir is not None:
        results["beats"] = summarize_beats([b for b in beats if b is not None])
    results["thresholds"] = dict(zip(loaded.vocab.codes, map(float, thresholds)))
    # how hits were matched, so a JSON file says what its numbers mean
    results["onset_window_sec"] = ONSET_WINDOW_SEC
    results["velocity_tolerance"] = VELOCITY_TOLERANCE
    results["n_recordings"] = len(indices)
    if picture:
        results["image"] = image
    return results


def validation_picture(
    onset: np.ndarray,
    ref: Sequence[Hit],
    est: Sequence[Hit],
    codes: Sequence[str],
    fps: int,
) -> np.ndarray:
    """(H, W, 3) uint8: the drum-roll renderer's picture (reference beside prediction,
    activation curves, legend); without matplotlib, the plain :func:`onset_image`."""
    try:
        from drumtx.plot import validation_image

        return validation_image(onset, ref, est, codes, fps)
    except ImportError:
        return onset_image(onset, ref, fps)


def onset_image(onset: np.ndarray, ref: Sequence[Hit], fps: int, seconds: float = 10.0):
    """(H, W, 3) uint8: predicted probability in green, reference onsets in red.

    One band of 8 pixel rows per class, top to bottom in vocabulary order; one column
    per frame.
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


# --- beats, downbeats and tempo ------------------------------------------------------


def recording_beats(
    store: Store,
    index: int,
    egmd_dir: Path,
    loaded: LoadedModel,
    onset: np.ndarray,
    velocity: np.ndarray,
    hits: Sequence[Hit] | None = None,
    chroma: Chroma | None = None,
) -> dict[str, Any] | None:
    """beat_scores of one recording against its MIDI's tempo map (played to a click
    from time 0), or None when the MIDI file is not there. ``hits``: the decoded
    hits the tracker reads and ``chroma`` the harmony it hears, as in transcribe."""
    rec = store.recordings[index]
    midi_path = Path(egmd_dir) / rec.get("midi_path", "")
    if not midi_path.is_file():
        return None
    reference = read_tempo_map(midi_path)
    fps = loaded.cfg.frontend.fps
    codes = loaded.vocab.codes
    grid = beat_grid(onset, velocity, codes, fps, hits=hits, chroma=chroma)
    scores = beat_scores(reference, grid, len(onset) / fps)
    return {**scores, "beat_type": rec.get("beat_type", "")}


def reference_beats(
    tempo_map: TempoMap, duration_sec: float
) -> tuple[np.ndarray, np.ndarray]:
    """Counted beats and downbeats (bar lines) of a tempo map in [0, duration_sec]."""
    return tempo_map.beats_and_downbeats(duration_sec)


def beat_scores(
    reference: TempoMap, grid: BeatGrid, duration_sec: float
) -> dict[str, Any]:
    """Beat and downbeat F-measure (mir_eval.beat: +-70 ms, the first 5 s trimmed;
    None when no reference beat is left), tempo (median inter-beat interval of the
    quarter notes) within 4 % of the reference's, and the meters (``meter_ok``: the
    meter of the first full bar is the reference's)."""
    import mir_eval.beat  # here: its scipy.stats import is slow

    ref_beats, ref_downbeats = reference_beats(reference, duration_sec)
    scores: dict[str, Any] = {}
    pairs = (("beat_f", ref_beats, grid.beats_sec),
             ("downbeat_f", ref_downbeats, grid.downbeats_sec))  # fmt: skip
    for key, ref, est in pairs:
        ref, est = mir_eval.beat.trim_beats(ref), mir_eval.beat.trim_beats(est)
        with warnings.catch_warnings():  # an empty estimate scores 0, as it should
            warnings.simplefilter("ignore", UserWarning)
            scores[key] = float(mir_eval.beat.f_measure(ref, est)) if len(ref) else None
    ref_bpm = reference.median_bpm(duration_sec)
    est_bpm = grid.tempo_map.median_bpm(duration_sec)
    scores.update(ref_bpm=ref_bpm, est_bpm=est_bpm, rival_bpm=grid.rival_bpm)
    scores["tempo_ok"] = tempo_within(est_bpm, ref_bpm)
    scores["rival_ok"] = tempo_within(grid.rival_bpm, ref_bpm)
    ref_meter = "{}/{}".format(*reference.meter_at(reference.pickup_beats))
    scores.update(ref_meter=ref_meter, est_meter=grid.meter)
    scores["meter_ok"] = ref_meter == grid.meter
    return scores


def hint_text(entry: dict[str, Any]) -> str:
    """The octave hint of a summarize_beats entry: ``rescued/wrong, noise``, e.g.
    ``3/13, 0.032`` (3 of the 13 wrong tempi hinted right; 3.2 % of the right ones
    given a needless hint)."""
    wrong = entry["n_tempo_wrong"]
    rescued = round((entry["rival_rescued"] or 0.0) * wrong)
    noise = entry["rival_noise"]
    return f"{rescued}/{wrong}, " + ("-" if noise is None else f"{noise:.3f}")


def tempo_within(bpm: float | None, ref_bpm: float, tolerance: float = 0.04) -> bool:
    """Whether ``bpm`` is within ``tolerance`` (4 %) of a nonzero reference."""
    return bool(bpm and ref_bpm and abs(bpm / ref_bpm - 1.0) <= tolerance)


def summarize_beats(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per beat type ("beat", "fill"; "all" without types): recordings, tempo and
    meter accuracy (shares), median and mean beat and downbeat F over the scorable
    ones, and the octave hint (BeatGrid.rival_bpm): ``rival_rescued``, the share of
    the recordings with the tempo wrong whose hint is right, and ``rival_noise``, the
    share of those with the tempo right that get a hint."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row.get("beat_type") or "all", []).append(row)
    summary = {}
    for name, group in sorted(groups.items()):
        entry: dict[str, Any] = {"n_recordings": len(group)}
        entry["tempo_accuracy"] = float(np.mean([r["tempo_ok"] for r in group]))
        entry["meter_accuracy"] = float(np.mean([r["meter_ok"] for r in group]))
        wrong = [r for r in group if not r["tempo_ok"]]
        right = [r for r in group if r["tempo_ok"]]
        entry["n_tempo_wrong"] = len(wrong)
        entry["rival_rescued"] = (
            float(np.mean([bool(r.get("rival_ok")) for r in wrong])) if wrong else None
        )
        entry["rival_noise"] = (
            float(np.mean([r.get("rival_bpm") is not None for r in right]))
            if right
            else None
        )
        for key in ("beat_f", "downbeat_f"):
            values = [r[key] for r in group if r[key] is not None]
            entry[f"n_{key}"] = len(values)
            entry[f"{key}_median"] = float(np.median(values)) if values else None
            entry[f"{key}_mean"] = float(np.mean(values)) if values else None
        summary[name] = entry
    return summary
