"""Chunked inference: audio -> per-frame onset and velocity activations,
in bounded memory.

One path serves validation during training, ``evaluate`` and ``transcribe``, so the
numbers a run reports are the numbers a user gets. An input too quiet or too loud is
first turned into the levels the network trained at (``transcribe.min_input_db`` and
``max_input_db``, :func:`input_gain_db`): its accuracy falls off either side of them
(README, *Input level*). Audio is resampled in chunks and cut
into fixed-length segments with ``overlap`` seconds of context on each side; the context
is cropped away, so memory does not grow with the file's length and a hit near a segment
border decodes as in a whole-file pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drumtx.amp import amp_dtype, autocast, dtype_name
from drumtx.audio import audio_info, read_samples, resample
from drumtx.checkpoint import load_checkpoint, model_config
from drumtx.config import Config, buzz_pairs, exclusive_pairs, repeat_codes
from drumtx.decode import Buzz, Repeat, pick_onsets
from drumtx.drums import Hit, Vocab, get_vocab
from drumtx.errors import CheckpointError, ConfigError
from drumtx.frontend import LogMel, n_frames
from drumtx.levels import SILENT_DB, active_level_db
from drumtx.model import (
    CastConvs,
    build_model,
    cpu_conv_dtype,
    fold_batch_norms,
    for_cpu_inference,
)


@dataclass
class LoadedModel:
    """A model ready for inference, with the config that shaped it."""

    model: torch.nn.Module
    frontend: LogMel
    cfg: Config  # model-shaping tables from the checkpoint, the rest from the caller
    vocab: Vocab
    thresholds: dict[str, float]  # tuned per-class thresholds stored with the model
    source: str  # where the weights came from, for the start line
    device: torch.device
    amp: str = "auto"  # train.amp's choice (drumtx.amp); validation passes the run's
    # where evaluate --tune-thresholds tuned ``thresholds`` (split, data, recordings,
    # levels, objective); None: not recorded (untuned, or tuned before it was)
    thresholds_tuned_on: dict[str, Any] | None = None


def resolve_device(name: str) -> torch.device:
    """``auto`` = CUDA when available; an explicit ``cuda`` without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device 'cuda' was asked for but CUDA is not available",
            hint="use -d cpu (or -d auto)",
        )
    return torch.device(name)


def load_model(path: Path, cfg: Config, device: torch.device) -> LoadedModel:
    """Build the network a checkpoint describes; its shape never comes from the TOML."""
    state = load_checkpoint(path, map_location="cpu")
    model_cfg = model_config(cfg, state)
    vocab = get_vocab(state["vocab"])
    model = build_model(model_cfg, vocab.n_classes)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: weights do not fit the network its config describes "
            f"({str(exc).splitlines()[0]})",
            hint="the file may come from another drumtx version; retrain or re-export",
        ) from None
    if device.type == "cpu":
        conv_dtype = cpu_conv_dtype(cfg.transcribe.cpu_precision)
        model = for_cpu_inference(model.eval(), conv_dtype)
    else:
        model = fold_batch_norms(model.eval()).to(device)
    frontend = LogMel.from_config(model_cfg).to(device)
    thresholds = {str(k): float(v) for k, v in state.get("thresholds", {}).items()}
    return LoadedModel(
        model, frontend, model_cfg, vocab, thresholds, str(path), device,
        thresholds_tuned_on=state.get("thresholds_tuned_on"),
    )  # fmt: skip


def precision_of(loaded: LoadedModel) -> str:
    """What the model computes in: "fp32", "bf16 convolutions, fp32 recurrence" (a
    CPU with bf16 units, transcribe.cpu_precision) or CUDA's autocast."""
    convs = getattr(loaded.model, "convs", None)
    if loaded.device.type == "cuda":
        return "bf16/fp16 autocast"
    if isinstance(convs, CastConvs) and convs.dtype != torch.float32:
        return f"{dtype_name(convs.dtype)} convolutions, fp32 recurrence"
    return "fp32"


def class_thresholds(
    loaded: LoadedModel, overrides: dict[str, float] | None = None
) -> list[float]:
    """Per-class thresholds:
    config default < decode.class_thresholds < tuned < overrides.
    """
    decode = loaded.cfg.decode
    table = {code: decode.threshold for code in loaded.vocab.codes}
    table.update({k: float(v) for k, v in decode.class_thresholds.items()})
    table.update(loaded.thresholds)
    table.update(overrides or {})
    for code in table:
        loaded.vocab.index(code)  # raises on a code the vocabulary lacks
    return [table[code] for code in loaded.vocab.codes]


# --- audio in chunks -----------------------------------------------------------------


def resampled_length(n_in: int, from_hz: int, to_hz: int) -> int:
    g = math.gcd(from_hz, to_hz)
    up, down = to_hz // g, from_hz // g
    return -(-n_in * up // down)  # ceil, as resample_poly


def stream_file(
    path: Path, sample_rate: int, chunk_sec: float = 30.0
) -> tuple[int, Iterator[np.ndarray]]:
    """(output length, chunks) of a file's mono audio resampled to ``sample_rate``.

    Each chunk is resampled with a margin of real neighbouring samples on both sides
    (zeros past the file's ends, as resample_poly pads), so the chunks join seamlessly.
    """
    info = audio_info(path)
    g = math.gcd(info.sample_rate, sample_rate)
    up, down = sample_rate // g, info.sample_rate // g
    step_in = max(1, round(chunk_sec * info.sample_rate / down)) * down
    margin_in = max(1, math.ceil(0.05 * info.sample_rate / down)) * down
    total_out = resampled_length(info.n_samples, info.sample_rate, sample_rate)

    def chunks() -> Iterator[np.ndarray]:
        for start in range(0, info.n_samples, step_in):
            lo, hi = start - margin_in, start + step_in + margin_in
            block = read_samples(path, max(lo, 0), min(hi, info.n_samples) - max(lo, 0))
            block = np.pad(block, (max(0, -lo), max(0, hi - info.n_samples)))
            out = resample(block, info.sample_rate, sample_rate)
            first = margin_in * up // down
            n_out = min(step_in * up // down, total_out - start * up // down)
            yield out[first : first + n_out]

    return total_out, chunks()


def leveled_stream(path: Path, cfg: Config) -> tuple[int, Iterator[np.ndarray], float]:
    """(output length, chunks, gain_db): stream_file's chunks of a file and the gain
    that brings it into the model's levels (:func:`input_gain_db`).

    The level needs the whole file before the model hears any of it: a file up to
    KEEP_DECODED_SEC long is decoded once and its chunks kept for the model's pass (29
    MB at 24 kHz), a longer one is decoded twice, so memory stays flat.
    """
    rate, t = cfg.audio.sample_rate, cfg.transcribe
    n_samples, chunks = stream_file(path, rate)
    if t.min_input_db <= SILENT_DB and t.max_input_db >= 0.0:  # every level as it is
        return n_samples, chunks, 0.0
    if n_samples <= KEEP_DECODED_SEC * rate:
        kept = list(chunks)
        return n_samples, iter(kept), input_gain_db(cfg, active_level_db(kept, rate))
    level_db = active_level_db(chunks, rate)
    return n_samples, stream_file(path, rate)[1], input_gain_db(cfg, level_db)


def array_chunks(
    audio: np.ndarray, chunk_samples: int = 1 << 20
) -> Iterator[np.ndarray]:
    """Chunks of an in-memory (or memory-mapped) array, as float32 in [-1, 1]."""
    scale = 1 / 32768 if audio.dtype == np.int16 else 1.0
    for start in range(0, len(audio), chunk_samples):
        yield np.asarray(audio[start : start + chunk_samples], dtype=np.float32) * scale


# --- segments -> activations ----------------------------------------------------------


def iter_segments(
    chunks: Iterable[np.ndarray],
    n_samples: int,
    hop: int,
    seg_frames: int,
    ctx_frames: int,
) -> Iterator[tuple[int, np.ndarray]]:
    """(first global frame, samples) of each segment; segment k's core is frames
    [k*seg, (k+1)*seg), its window adds ``ctx_frames`` on each side
    (zeros past the ends).
    """
    window = (seg_frames + 2 * ctx_frames) * hop
    buffer = np.zeros(ctx_frames * hop, dtype=np.float32)
    buffer_start = -ctx_frames * hop  # global sample index of buffer[0]
    chunk_iter = iter(chunks)
    exhausted = False
    for k in range(math.ceil(n_frames(n_samples, hop) / seg_frames)):
        start = (k * seg_frames - ctx_frames) * hop
        while not exhausted and buffer_start + len(buffer) < start + window:
            chunk = next(chunk_iter, None)
            if chunk is None:
                exhausted = True
            else:
                buffer = np.concatenate([buffer, chunk.astype(np.float32, copy=False)])
        segment = buffer[start - buffer_start : start - buffer_start + window]
        yield k * seg_frames, np.pad(segment, (0, window - len(segment)))
        next_start = start + seg_frames * hop
        buffer = buffer[next_start - buffer_start :]
        buffer_start = next_start


KEEP_DECODED_SEC = 300.0  # leveled_stream keeps a file this short decoded in memory
# Inputs whose active level is below this are silence (a 16-bit file's dither sits near
# -96 dBFS) and are not turned up. Quiet drums above it are: a take 50 dB down (-76
# dBFS) lost a fifth of its hits and every open hi-hat when it was heard as it was,
# while hiss and hum turned up to the window draw 0-3 hits in 30 s.
QUIETEST_INPUT_DB = -90.0


def input_gain_db(cfg: Config, level_db: float) -> float:
    """The gain that brings an input whose active level is ``level_db`` into
    [transcribe.min_input_db, max_input_db]: 0 inside, or for a silent input."""
    t = cfg.transcribe
    if level_db < QUIETEST_INPUT_DB:
        return 0.0
    # min_input_db at its lowest (-60) turns nothing up: -60 and 0 let every level by
    low = -np.inf if t.min_input_db <= SILENT_DB else t.min_input_db
    return float(np.clip(level_db, low, t.max_input_db) - level_db)


def array_gain_db(cfg: Config, audio: np.ndarray) -> float:
    """input_gain_db of an in-memory recording at the model's sample rate."""
    level_db = active_level_db(array_chunks(audio), cfg.audio.sample_rate)
    return input_gain_db(cfg, level_db)


def predict_activations(
    loaded: LoadedModel,
    chunks: Iterable[np.ndarray],
    n_samples: int,
    *,
    segment_sec: float,
    overlap_sec: float,
    batch_size: int,
    gain_db: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Onset probabilities and velocities, each (T, C) float32, T = n_frames(n_samples),
    of the audio turned up by ``gain_db`` (:func:`input_gain_db`: every caller says
    which level the network hears, so none forgets it).
    """
    cfg = loaded.cfg
    hop, fps = cfg.hop_length, cfg.frontend.fps
    seg_frames = max(1, round(segment_sec * fps))
    ctx_frames = round(overlap_sec * fps)
    total = n_frames(n_samples, hop)
    onset = np.zeros((total, loaded.vocab.n_classes), dtype=np.float32)
    velocity = np.zeros_like(onset)
    gain = np.float32(10 ** (gain_db / 20))
    batch: list[tuple[int, np.ndarray]] = []
    segments = iter_segments(chunks, n_samples, hop, seg_frames, ctx_frames)
    for item in segments:
        batch.append(item)
        if len(batch) == batch_size:
            _run_batch(loaded, batch, ctx_frames, seg_frames, onset, velocity, gain)
            batch = []
    if batch:
        _run_batch(loaded, batch, ctx_frames, seg_frames, onset, velocity, gain)
    return onset, velocity


def _run_batch(
    loaded: LoadedModel,
    batch: Sequence[tuple[int, np.ndarray]],
    ctx_frames: int,
    seg_frames: int,
    onset: np.ndarray,
    velocity: np.ndarray,
    gain: np.float32,
) -> None:
    samples = np.stack([samples for _, samples in batch])  # (B, N)
    if gain != 1:
        samples *= gain
    audio = torch.from_numpy(samples).to(loaded.device, non_blocking=True)
    dtype = amp_dtype(loaded.amp, loaded.device)
    with torch.inference_mode(), autocast(loaded.device, dtype):
        feats = loaded.frontend(audio)  # (B, T_seg, n_mels), fp32 inside
        logits, vel = loaded.model(feats)  # (B, T_seg, C) each
        prob = torch.sigmoid(logits.float()).cpu().numpy()  # CPU-GPU sync
        vel = vel.float().cpu().numpy()
    for (first, _), p, v in zip(batch, prob, vel):
        n = min(seg_frames, len(onset) - first)
        onset[first : first + n] = p[ctx_frames : ctx_frames + n]
        velocity[first : first + n] = v[ctx_frames : ctx_frames + n]


def array_activations(
    loaded: LoadedModel,
    audio: np.ndarray,
    wrap: Callable[[Iterator[np.ndarray]], Iterator[np.ndarray]] | None = None,
    **segmenting: float | int,
) -> tuple[np.ndarray, np.ndarray]:
    """predict_activations of an in-memory recording at the model's rate (float, or
    int16 from the store), brought to the input level as transcribe brings a file and
    segmented as [transcribe] says (``segmenting`` overrides); ``wrap`` sees the chunks
    on their way to the model (a ChromaStream's)."""
    chunks = array_chunks(audio)
    options = {**segment_options(loaded.cfg), **segmenting}
    return predict_activations(
        loaded,
        chunks if wrap is None else wrap(chunks),
        len(audio),
        gain_db=array_gain_db(loaded.cfg, audio),
        **options,  # type: ignore[arg-type]
    )


def segment_options(cfg: Config) -> dict[str, float | int]:
    """[transcribe] segmenting, so validation and evaluate score what transcribe does.
    """
    t = cfg.transcribe
    return {
        "segment_sec": t.segment_sec,
        "overlap_sec": t.overlap_sec,
        "batch_size": t.batch_size,
    }


def transcribe_array(
    loaded: LoadedModel,
    audio: np.ndarray,
    thresholds: Sequence[float],
    *,
    segment_sec: float = 30.0,
    overlap_sec: float = 2.0,
    batch_size: int = 4,
) -> list[Hit]:
    """Hits of audio already at the model's sample rate
    (float, or int16 from the store).
    """
    onset, velocity = array_activations(
        loaded,
        audio,
        segment_sec=segment_sec,
        overlap_sec=overlap_sec,
        batch_size=batch_size,
    )
    return decode_hits(loaded, onset, velocity, thresholds)


def decode_hits(
    loaded: LoadedModel,
    onset: np.ndarray,
    velocity: np.ndarray,
    thresholds: Sequence[float],
) -> list[Hit]:
    """Hits from (T, C) activations with the model's frame rate, minimum gap,
    exclusive class pairs, buzz rules (those of its classes) and repeat rule."""
    decode, codes = loaded.cfg.decode, loaded.vocab.codes
    pairs = [(codes.index(a), codes.index(b))
             for a, b in exclusive_pairs(decode.exclusive)
             if a in codes and b in codes]  # fmt: skip
    when, need = decode.buzz_when, decode.buzz_threshold
    buzz = [Buzz(codes.index(a), codes.index(b), when, need)
            for a, b in buzz_pairs(decode.buzz)
            if a in codes and b in codes]  # fmt: skip
    repeating = frozenset(codes.index(c) for c in repeat_codes(decode.repeat_classes)
                          if c in codes)  # fmt: skip
    repeat = (Repeat(decode.repeat_floor, decode.repeat_context, repeating)
              if decode.repeat_floor > 0 and repeating else None)  # fmt: skip
    return pick_onsets(onset, velocity, loaded.cfg.frontend.fps, thresholds,
                       decode.min_gap_sec, exclusive=pairs, buzz=buzz,
                       repeat=repeat)  # fmt: skip
