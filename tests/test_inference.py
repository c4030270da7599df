"""Chunked inference: streamed resampling, segment cutting, and hits at segment borders.

A long file is read and resampled in chunks, then cut into segments with context on
both sides; none of that may change what comes out. Each test compares the streamed,
segmented path with doing the same thing to the whole file at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from drumtx.audio import load_audio, resample
from drumtx.config import Config, load_config
from drumtx.decode import pick_onsets
from drumtx.drums import Hit, get_vocab
from drumtx.frontend import LogMel, n_frames
from drumtx.inference import (
    QUIETEST_INPUT_DB,
    LoadedModel,
    array_activations,
    array_gain_db,
    input_gain_db,
    iter_segments,
    leveled_stream,
    predict_activations,
    resampled_length,
    stream_file,
)
from drumtx.levels import SILENT_DB, active_level_db, rms_db
from drumtx.model import build_model

MODEL_RATE = 24000  # Hz, audio.sample_rate of the default config


def _write_wav(
    path: Path, duration_sec: float, sample_rate: int, channels: int = 1
) -> Path:
    """Noise plus a chirp: broadband, so a misaligned chunk shows up everywhere."""
    rng = np.random.default_rng(sample_rate)
    n = round(duration_sec * sample_rate)
    t_sec = np.arange(n) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * (200.0 + 900.0 * t_sec) * t_sec)
    audio = tone[:, None] + 0.2 * rng.standard_normal((n, channels))  # (N, channels)
    sf.write(path, audio.astype(np.float32), sample_rate, subtype="PCM_16")
    return path


def _stream(path: Path, chunk_sec: float) -> tuple[int, np.ndarray]:
    total, chunks = stream_file(path, MODEL_RATE, chunk_sec=chunk_sec)
    return total, np.concatenate(list(chunks))


# --- (a) streamed resampling ---------------------------------------------------------


@pytest.mark.parametrize("file_rate", [44100, 48000, 8000, 96000, MODEL_RATE])
@pytest.mark.parametrize("chunk_sec", [0.37, 1.013, 100.0])
def test_streamed_chunks_equal_resampling_the_whole_file(
    tmp_path: Path, file_rate: int, chunk_sec: float
):
    path = _write_wav(tmp_path / "x.wav", 2.345, file_rate, channels=2)
    whole = resample(load_audio(path), file_rate, MODEL_RATE)
    total, streamed = _stream(path, chunk_sec)
    assert total == resampled_length(sf.info(path).frames, file_rate, MODEL_RATE)
    assert total == len(whole) == len(streamed)
    assert streamed.dtype == np.float32
    np.testing.assert_allclose(streamed, whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize("n_in", [1, 7, 146, 147, 148, 2205, 44101])
def test_streamed_length_of_short_and_odd_files(tmp_path: Path, n_in: int):
    path = tmp_path / "short.wav"
    sf.write(path, np.full(n_in, 0.25, dtype=np.float32), 44100)
    whole = resample(load_audio(path), 44100, MODEL_RATE)
    total, streamed = _stream(path, 0.01)
    assert total == len(streamed) == len(whole) == resampled_length(n_in, 44100, 24000)
    np.testing.assert_allclose(streamed, whole, atol=1e-5, rtol=0)


# --- (c) segments --------------------------------------------------------------------


def _check_segments(
    audio: np.ndarray, chunk_sizes: list[int], hop: int, seg: int, ctx: int
) -> list[int]:
    """Every window holds exactly the global samples it claims; returns the firsts."""
    cuts = np.cumsum(chunk_sizes)
    chunks = np.split(audio, cuts[cuts < len(audio)])
    window = (seg + 2 * ctx) * hop
    padded = np.pad(audio, (ctx * hop, window + seg * hop))  # zeros past both ends
    firsts = []
    for first, samples in iter_segments(chunks, len(audio), hop, seg, ctx):
        assert samples.shape == (window,) and samples.dtype == np.float32
        start = first * hop  # = window start in `padded`, which is shifted by ctx*hop
        np.testing.assert_array_equal(samples, padded[start : start + window])
        firsts.append(first)
    return firsts


@settings(max_examples=60, deadline=None)
@given(
    n_samples=st.integers(1, 3000),
    hop=st.sampled_from([1, 4, 10]),
    seg=st.integers(1, 40),
    ctx=st.integers(0, 15),
    chunk=st.integers(1, 700),
)
def test_segment_cores_cover_every_frame_once(n_samples, hop, seg, ctx, chunk):
    audio = np.arange(1, n_samples + 1, dtype=np.float32)  # distinct, exact in fp32
    firsts = _check_segments(audio, [chunk] * (n_samples // chunk + 1), hop, seg, ctx)
    total = n_frames(n_samples, hop)
    cores = [f for first in firsts for f in range(first, min(first + seg, total))]
    assert cores == list(range(total))


@pytest.mark.parametrize(
    "n_samples, expected_segments",
    [
        (50, 1),  # shorter than one segment
        ((2 * 20 - 1) * 10, 2),  # n_frames exactly 2 segments
        (2 * 20 * 10, 3),  # one frame more: a third segment with a one-frame core
        (20 * 10 - 1, 1),  # n_frames exactly 1 segment
    ],
)
def test_segments_of_short_audio_and_exact_multiples(n_samples, expected_segments):
    audio = np.arange(1, n_samples + 1, dtype=np.float32)
    firsts = _check_segments(audio, [n_samples], hop=10, seg=20, ctx=5)
    assert firsts == [20 * k for k in range(expected_segments)]


@pytest.mark.parametrize("n_samples", [1, 239, 240, 241, 24000 * 2 - 240, 24000 * 2])
def test_activations_have_one_row_per_frame(n_samples: int):
    loaded = _loaded(_default_cfg(), FluxModel())
    onset, velocity = predict_activations(
        loaded,
        [np.zeros(n_samples, np.float32)],
        n_samples,
        segment_sec=2.0,
        overlap_sec=0.5,
        batch_size=3,
        gain_db=0.0,
    )
    assert onset.shape == velocity.shape == (n_frames(n_samples, 240), 9)


# --- (b) hits at segment borders -----------------------------------------------------


class FluxModel(nn.Module):
    """A stand-in network whose output at frame t depends on frames t-1 and t only.

    Onset logit = rise of the mean log-mel energy (spectral flux), one gain per class,
    so activations cannot depend on where a frame sits in its segment: any difference
    between a segmented and a whole-file pass is the stitching's fault.
    """

    def __init__(self, n_classes: int = 9) -> None:
        super().__init__()
        self.register_buffer("gain", torch.linspace(1.0, 2.0, n_classes))

    def forward(self, feats: Tensor) -> tuple[Tensor, Tensor]:
        energy = feats.mean(dim=-1)  # (B, T)
        rise = torch.relu(torch.diff(energy, dim=1, prepend=energy[:, :1]))  # (B, T)
        logits = 3.0 * (rise.unsqueeze(-1) * self.gain - 2.0)  # (B, T, C)
        velocity = torch.sigmoid(energy / 4.0).unsqueeze(-1).expand_as(logits)
        return logits, velocity


def _default_cfg() -> Config:
    return load_config(None, [])


def _loaded(cfg: Config, model: nn.Module) -> LoadedModel:
    return LoadedModel(
        model=model.eval(),
        frontend=LogMel.from_config(cfg),
        cfg=cfg,
        vocab=get_vocab("roland9"),
        thresholds={},
        source="test",
        device=torch.device("cpu"),
    )


def _hits(loaded: LoadedModel, path: Path, segment_sec: float, batch_size: int):
    """Streamed, segmented activations (onset) and hits, as ``transcribe`` runs them."""
    n_samples, chunks = stream_file(path, MODEL_RATE, chunk_sec=1.3)
    onset, velocity = predict_activations(
        loaded,
        chunks,
        n_samples,
        segment_sec=segment_sec,
        overlap_sec=0.5,
        batch_size=batch_size,
        gain_db=0.0,
    )
    return onset, _pick(loaded, onset, velocity)


def _whole_file_hits(loaded: LoadedModel, path: Path):
    """The reference: the whole file through frontend and model in one call."""
    audio = torch.from_numpy(resample(load_audio(path), 44100, MODEL_RATE))
    with torch.inference_mode():
        logits, velocity = loaded.model(loaded.frontend(audio[None]))  # (1, T, C)
    onset = torch.sigmoid(logits)[0].numpy()
    return onset, _pick(loaded, onset, velocity[0].numpy())


def _pick(loaded: LoadedModel, onset: np.ndarray, velocity: np.ndarray) -> list[Hit]:
    cfg = loaded.cfg
    thresholds = [cfg.decode.threshold] * loaded.vocab.n_classes
    return pick_onsets(onset, velocity, cfg.frontend.fps, thresholds, 0.03)


# Borders of 2 s segments fall at 2, 4, 6, ... s; one click per border, from 3 frames
# before it to 3 after (the flux peak lands a frame or two before the click itself).
BORDER_OFFSETS_SEC = (-0.03, -0.02, -0.01, 0.0, 0.01, 0.02, 0.03)
CLICKS_SEC = [2.0 * (k + 1) + d for k, d in enumerate(BORDER_OFFSETS_SEC)]


def _by_class(hits: list[Hit]) -> list[tuple[int, int, float]]:
    """(class, velocity, time) of every hit, by class and then time."""
    ordered = sorted(hits, key=lambda h: (h.cls, h.time_sec))
    return [(h.cls, h.velocity, h.time_sec) for h in ordered]


def _class_times(hits: list[Hit], cls: int) -> list[float]:
    return [h.time_sec for h in hits if h.cls == cls]


def test_hits_near_segment_borders_come_out_once_as_in_a_whole_file_pass(
    tmp_path: Path, click_wav
):
    path = click_wav(tmp_path / "clicks.wav", CLICKS_SEC, duration_sec=15.5, channels=2)
    loaded = _loaded(_default_cfg(), FluxModel())
    whole_onset, whole_hits = _whole_file_hits(loaded, path)
    seg_onset, seg_hits = _hits(loaded, path, segment_sec=2.0, batch_size=3)
    np.testing.assert_allclose(seg_onset, whole_onset, atol=1e-4, rtol=0)
    # The same hits, each class's in the same order; their sub-frame times agree to
    # float rounding (the batch's kernels differ by CPU), so hits of two classes that
    # share a frame may swap places in the time-sorted list.
    seg_by_class, whole_by_class = _by_class(seg_hits), _by_class(whole_hits)
    assert [h[:2] for h in seg_by_class] == [h[:2] for h in whole_by_class]
    assert [h[2] for h in seg_by_class] == pytest.approx(
        [h[2] for h in whole_by_class], abs=1e-6
    )
    for cls in range(loaded.vocab.n_classes):
        times = _class_times(seg_hits, cls)
        assert len(times) == len(CLICKS_SEC), (cls, times)  # once each, no duplicate
        for click, time_sec in zip(CLICKS_SEC, times):
            assert abs(time_sec - click) <= 0.03, (cls, click, time_sec)


def test_crnn_activations_match_a_whole_file_pass(tmp_path: Path):
    """A real CRNN sees its whole window through the GRU; 0.5 s of context on each side
    makes the segmented activations those of a whole-file pass, borders included.
    Without the context the frames near a border do differ (the control)."""
    cfg = load_config(None, ["model.preset='tiny'"])
    torch.manual_seed(0)
    model = build_model(cfg, 9)
    with torch.no_grad():  # random weights give flat output; spread it over (0, 1)
        model.onset_head.weight.mul_(30.0)
        model.onset_head.bias.zero_()
    loaded = _loaded(cfg, model)
    path = _write_wav(tmp_path / "noise.wav", 9.5, 44100)
    whole, whole_hits = _whole_file_hits(loaded, path)
    seg, seg_hits = _hits(loaded, path, segment_sec=2.0, batch_size=4)
    assert np.percentile(whole, 95) - np.percentile(whole, 5) > 0.5
    # Within the overlap of the file's ends the segments see zero padding as context
    # where the whole-file pass sees nothing; that is the only place they may differ.
    inner = slice(50, len(whole) - 50)
    np.testing.assert_allclose(seg[inner], whole[inner], atol=1e-4, rtol=0)
    assert len(seg_hits) > 50
    assert_same_hits(_inner(seg_hits, 0.5, 9.0), _inner(whole_hits, 0.5, 9.0))
    n_samples, chunks = stream_file(path, MODEL_RATE)
    no_context, _ = predict_activations(
        loaded, chunks, n_samples, segment_sec=2.0, overlap_sec=0.0, batch_size=4,
        gain_db=0.0,
    )  # fmt: skip
    assert np.abs(no_context[199:201] - whole[199:201]).max() > 0.01  # at a border


def _inner(hits: list[Hit], lo_sec: float, hi_sec: float) -> list[Hit]:
    return [h for h in hits if lo_sec <= h.time_sec <= hi_sec]


def assert_same_hits(
    got: list[Hit], want: list[Hit], tol_sec: float = 1e-4
) -> None:
    """Same hits as far as a listener or a MIDI file can tell: as many hits of each
    class, the n-th of a class within ``tol_sec`` of its counterpart. Exact float
    equality (or equal order of two hits at one time) would hold only on one CPU's
    numerics: a bf16 or AVX-512 kernel moves the last digits of the activations, so the
    sub-frame positions too; and a hit placed half-way between two frames may round to
    either, so hits are paired by class and time, not by their nearest frame."""

    def by_class(hits: list[Hit]) -> list[tuple[int, float]]:
        return sorted((h.cls, h.time_sec) for h in hits)

    a, b = by_class(got), by_class(want)
    assert [x[0] for x in a] == [x[0] for x in b]
    worst_sec = max((abs(x[1] - y[1]) for x, y in zip(a, b)), default=0.0)
    assert worst_sec < tol_sec, worst_sec


def test_bf16_convolutions_keep_the_shipped_models_hits(tmp_path: Path) -> None:
    """transcribe.cpu_precision = bf16 (the default where the CPU has bf16 units) runs
    the conv stack in bf16: on a rendered groove the shipped model's probabilities
    stay within 0.08 of fp32, and a hit may only come or go where fp32's peak was
    that close to a threshold it had to meet (its class's, a ``decode.buzz`` rule's
    trigger or threshold, or the repeat rule's floor or context; at most 2 such hits);
    the others are the same hits, on the same frames. (The largest moves sit where a
    probability is near 0.5, the sigmoid's steepest: on this groove 0.027 for the
    above-12-kHz model, 0.057 for the soup shipped after it, whose micro F1 on 60
    card-set recordings moves 0.9311 -> 0.9305 drums alone and 0.8939 -> 0.8940 at 0 dB
    in bf16; the model before it 0.9297 -> 0.9299 and 0.8909 -> 0.8910; 0.064 for the
    soup of 2026-12-07, where one hi-hat's flat top, 0.901 and 0.887 on two frames in
    fp32, 0.887 and 0.903 in bf16, is placed 0.1 ms apart, half-way between those
    frames.)"""
    from drumtx.checkpoint import SHIPPED_MODELS_DIR, load_checkpoint
    from drumtx.config import buzz_pairs, repeat_codes
    from drumtx.decode import pattern_period
    from drumtx.inference import class_thresholds, decode_hits, load_model
    from drumtx.make_dataset import generate_performances
    from drumtx.model import CastConvs
    from drumtx.synth import SynthKit

    shipped = load_checkpoint(SHIPPED_MODELS_DIR / "default.pt")
    rate = shipped["config"]["audio"]["sample_rate"]  # the model hears its own rate
    perf = next(iter(generate_performances(1, seed=2024)))
    kit = SynthKit(5)
    audio = kit.render(kit.playable(perf.notes), 12.0, rate, seed=3)
    results = {}
    for precision in ("fp32", "bf16"):
        cfg = load_config(None, [f"transcribe.cpu_precision={precision}"])
        loaded = load_model(SHIPPED_MODELS_DIR / "default.pt", cfg, torch.device("cpu"))
        convs = loaded.model.convs
        assert isinstance(convs, CastConvs)
        assert convs.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
        onset, velocity = predict_activations(
            loaded, [audio], len(audio), segment_sec=30.0, overlap_sec=2.0,
            batch_size=4, gain_db=0.0,
        )  # fmt: skip
        thresholds = class_thresholds(loaded)
        hits = decode_hits(loaded, onset, velocity, thresholds)
        results[precision] = onset, hits
    (p32, hits32), (p16, hits16) = results["fp32"], results["bf16"]
    drift = 0.08
    assert np.abs(p16 - p32).max() < drift
    assert len(hits32) > 20

    def unpaired(hits: list[Hit], others: list[Hit]) -> list[Hit]:
        """Hits with no hit of their class within a frame in ``others``."""
        return [h for h in hits if not any(
            o.cls == h.cls and abs(o.time_sec - h.time_sec) < 0.011 for o in others
        )]  # fmt: skip

    only = unpaired(hits16, hits32) + unpaired(hits32, hits16)
    assert len(only) <= 2, only
    codes, decode = loaded.vocab.codes, loaded.cfg.decode
    for hit in only:  # borderline in fp32: within the drift of a threshold it met
        frame = round(hit.time_sec * 100)
        near = slice(max(frame - 1, 0), frame + 2)
        peak = p32[near, hit.cls].max()
        edges = [abs(peak - thresholds[hit.cls])]
        for a, b in buzz_pairs(decode.buzz):  # a buzz rule's trigger or threshold
            if codes[hit.cls] == a:
                edges.append(abs(p32[near, codes.index(b)].max() - decode.buzz_when))
                edges.append(abs(peak - decode.buzz_threshold))
        repeating = repeat_codes(decode.repeat_classes)
        if decode.repeat_floor > 0 and codes[hit.cls] in repeating:  # floor, context
            edges.append(abs(peak - decode.repeat_floor))
            for period in {pattern_period(p32, 100), pattern_period(p16, 100)} - {None}:
                for k in (-4, -3, -2, -1, 1, 2, 3, 4):
                    at = frame + k * period
                    if 0 <= at < len(p32):
                        around = p32[max(at - 2, 0) : at + 3, hit.cls]
                        edges.append(abs(around.max() - decode.repeat_context))
        assert min(edges) < drift, (hit, peak)
    same16 = [h for h in hits16 if h not in only]
    same32 = [h for h in hits32 if h not in only]
    # Within a frame's width: sub-frame refinement may move a hit that far.
    assert_same_hits(same16, same32, tol_sec=0.011)


# --- (d) input level -----------------------------------------------------------------


def _burst_then_silence(loud_sec: float, quiet_sec: float, amplitude: float):
    t_sec = np.arange(round(loud_sec * MODEL_RATE)) / MODEL_RATE
    tone = amplitude * np.sin(2 * np.pi * 440.0 * t_sec)
    return np.concatenate([tone, np.zeros(round(quiet_sec * MODEL_RATE))]).astype(
        np.float32
    )


def test_active_level_is_the_loud_parts_level_in_any_chunking():
    """A 6-s tone at amplitude 0.5 then 4 s of silence: its active level is the tone's
    RMS (-9.03 dB), not the whole file's (-11.2 dB); chunked as a file streams, the
    same to the last digit; silence has no level."""
    audio = _burst_then_silence(6.0, 4.0, 0.5)
    whole = active_level_db([audio], MODEL_RATE)
    assert whole == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.01)
    assert rms_db(audio) < whole - 2.0
    for size in (1, 4799, 9600, 77_777):
        chunks = [audio[i : i + size] for i in range(0, len(audio), size)]
        assert active_level_db(chunks, MODEL_RATE) == pytest.approx(whole, abs=1e-9)
    assert active_level_db([np.zeros(48_000, np.float32)], MODEL_RATE) < SILENT_DB
    assert active_level_db([], MODEL_RATE) < SILENT_DB
    # a DC offset is no level: the same tone riding on 0.2 measures the same
    offset = active_level_db([audio + np.float32(0.2)], MODEL_RATE)
    assert offset == pytest.approx(whole, abs=0.01)
    assert active_level_db([np.full(48_000, 0.3, np.float32)], MODEL_RATE) < SILENT_DB


def test_input_gain_turns_only_levels_outside_the_window():
    cfg = _default_cfg()  # the shipped window: -36 to -20 dB
    assert (cfg.transcribe.min_input_db, cfg.transcribe.max_input_db) == (-36.0, -20.0)
    assert input_gain_db(cfg, -28.0) == 0.0
    assert input_gain_db(cfg, -8.0) == pytest.approx(-12.0)  # a loud master: down
    assert input_gain_db(cfg, -50.0) == pytest.approx(14.0)  # a quiet stem: up
    assert input_gain_db(cfg, -76.0) == pytest.approx(40.0)  # a take 50 dB down: up
    assert input_gain_db(cfg, QUIETEST_INPUT_DB - 1) == 0.0  # silence stays silence
    off = _window(-60.0, 0.0)
    assert input_gain_db(off, -8.0) == input_gain_db(off, -50.0) == 0.0
    assert input_gain_db(off, -76.0) == 0.0
    assert input_gain_db(_window(-30.0, -30.0), -28.0) == pytest.approx(-2.0)


def _window(low: float, high: float, *more: str) -> Config:
    window = [f"transcribe.min_input_db={low}", f"transcribe.max_input_db={high}"]
    return load_config(None, [*window, *more])


def _level_sensitive_loaded(overrides: list[str]) -> LoadedModel:
    cfg = load_config(None, ["model.preset='tiny'", *overrides])
    torch.manual_seed(0)
    model = build_model(cfg, 9)
    with torch.no_grad():  # random weights give flat output; spread it over (0, 1)
        model.onset_head.weight.mul_(30.0)
        model.onset_head.bias.zero_()
    return _loaded(cfg, model)


def test_a_quiet_and_a_loud_copy_sound_alike_to_the_model(tmp_path: Path):
    """The same audio 20 dB below the window and 15 dB above it gives the activations
    it gives at the window's edges; with every level let through (the control) this
    network's activations do move with the level, so the sameness is the gain's."""
    path = _write_wav(tmp_path / "noise.wav", 6.0, MODEL_RATE)
    audio = load_audio(path)
    level = active_level_db([audio], MODEL_RATE)
    at = {db: (audio * 10 ** ((db - level) / 20)).astype(np.float32) for db in
          (-56.0, -36.0, -20.0, -5.0)}  # fmt: skip
    windowed = _level_sensitive_loaded([])
    acts = {db: array_activations(windowed, x)[0] for db, x in at.items()}
    np.testing.assert_allclose(acts[-56.0], acts[-36.0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(acts[-5.0], acts[-20.0], atol=1e-4, rtol=0)
    assert np.abs(acts[-36.0] - acts[-20.0]).max() > 0.01  # inside: as it came
    as_is = _level_sensitive_loaded(
        ["transcribe.min_input_db=-60.0", "transcribe.max_input_db=0.0"]
    )  # every level as it came
    raw = {db: array_activations(as_is, x)[0] for db, x in at.items()}
    np.testing.assert_allclose(raw[-36.0], acts[-36.0], atol=1e-4, rtol=0)
    assert np.abs(raw[-56.0] - raw[-36.0]).max() > 0.05
    assert np.abs(raw[-5.0] - raw[-20.0]).max() > 0.05


@pytest.mark.parametrize("file_rate", [44100, MODEL_RATE])
@pytest.mark.parametrize("keep_sec", [300.0, 1.0])
def test_a_file_and_its_array_are_turned_by_the_same_gain(
    tmp_path: Path, file_rate, keep_sec, monkeypatch
):
    """transcribe measures a file as it streams it at the model's rate (a short file
    decoded once and kept, a long one decoded twice); evaluate measures the store's
    array: the same audio gets the same gain, and the model the same samples."""
    import drumtx.inference as inference

    monkeypatch.setattr(inference, "KEEP_DECODED_SEC", keep_sec)
    path = tmp_path / "loud.wav"
    audio = _burst_then_silence(3.0, 1.0, 0.9)
    sf.write(path, resample(audio, MODEL_RATE, file_rate), file_rate, subtype="FLOAT")
    cfg = _default_cfg()
    n_samples, chunks, gain_db = leveled_stream(path, cfg)
    assert gain_db == pytest.approx(-20.0 - 20 * np.log10(0.9 / np.sqrt(2)), abs=0.05)
    assert gain_db == pytest.approx(array_gain_db(cfg, audio), abs=0.05)
    streamed = np.concatenate(list(chunks))
    assert len(streamed) == n_samples == len(_stream(path, 30.0)[1])
    np.testing.assert_array_equal(streamed, _stream(path, 30.0)[1])
