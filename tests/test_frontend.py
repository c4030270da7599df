from __future__ import annotations

import numpy as np
import pytest
import torch

from drumtx.config import Config
from drumtx.frontend import (
    LogMel,
    hz_to_mel,
    log_mel_numpy,
    mel_matrix,
    mel_to_hz,
    n_frames,
)

SAMPLE_RATE = 24000
HOP = 240


def test_n_frames_matches_centred_stft() -> None:
    frontend = LogMel()
    for n_samples in (1, 239, 240, 241, 1024, 24000, 24001):
        feats = frontend(torch.zeros(1, n_samples))
        assert feats.shape == (1, n_frames(n_samples, HOP), 128)
    assert n_frames(24000, HOP) == 101  # frames at 0, 240, ..., 24000


def test_mel_scale_round_trip() -> None:
    freqs_hz = np.array([0.0, 30.0, 500.0, 999.0, 1000.0, 4000.0, 12000.0])
    assert np.allclose(mel_to_hz(hz_to_mel(freqs_hz)), freqs_hz)


def test_mel_rows_non_negative_with_ordered_peaks() -> None:
    mel = mel_matrix(SAMPLE_RATE, 1024, 128, 30.0, 12000.0)
    assert mel.shape == (128, 513)
    assert (mel >= 0).all()
    assert ((mel > 0).sum(axis=1) >= 1).all()  # no empty band at the low end
    peaks = mel.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()
    assert peaks[-1] > peaks[0]


@pytest.mark.parametrize("freq_hz", [100.0, 440.0, 2500.0, 8000.0])
def test_sine_peaks_in_its_mel_band(freq_hz: float) -> None:
    t_sec = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    sine = 0.5 * np.sin(2 * np.pi * freq_hz * t_sec).astype(np.float32)
    feats = LogMel()(torch.from_numpy(sine)[None])[0]  # (T, n_mels)
    band = int(feats[20:-20].mean(dim=0).argmax())
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(30.0), hz_to_mel(12000.0), 130))
    centres_hz = edges_hz[1:-1]
    expected = int(np.argmin(np.abs(centres_hz - freq_hz)))
    assert abs(band - expected) <= 1, (band, expected)


def test_click_at_one_second_rises_at_frame_100() -> None:
    audio = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    rng = np.random.default_rng(0)
    burst = rng.uniform(-0.5, 0.5, 480) * np.exp(-np.linspace(0, 6, 480))
    audio[SAMPLE_RATE : SAMPLE_RATE + 480] = burst
    feats = LogMel()(torch.from_numpy(audio)[None])[0]  # (T, n_mels)
    energy = torch.logsumexp(feats, dim=1)  # log of the summed mel power per frame
    rise = energy[1:] - energy[:-1]
    rise_frame = int(rise.argmax()) + 1
    assert abs(rise_frame - 100) <= 1, rise_frame


def test_matches_numpy_reference() -> None:
    rng = np.random.default_rng(1)
    audio = (0.1 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32)
    audio[SAMPLE_RATE : SAMPLE_RATE + 200] += 0.8  # a loud step too
    got = LogMel()(torch.from_numpy(audio)[None])[0].numpy()
    want = log_mel_numpy(audio)
    assert got.shape == want.shape
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-4
    assert np.abs(got - want).max() < 1e-3


def test_batch_items_are_independent() -> None:
    """No normalisation across the batch or per example: a quiet item is unchanged."""
    rng = np.random.default_rng(2)
    audio = torch.from_numpy((0.01 * rng.standard_normal((2, 4800))).astype(np.float32))
    frontend = LogMel()
    both = frontend(audio)
    loud = audio.clone()
    loud[1] *= 50.0
    assert torch.equal(frontend(loud)[0], both[0])
    assert torch.allclose(frontend(audio[:1])[0], both[0], atol=1e-5)


def test_fp32_under_autocast() -> None:
    frontend = LogMel()
    audio = torch.randn(1, 4800)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = frontend(audio.bfloat16())
    assert feats.dtype == torch.float32
    assert torch.allclose(feats, frontend(audio.bfloat16().float()), atol=1e-5)


def test_from_config_and_buffers_not_saved() -> None:
    frontend = LogMel.from_config(Config())
    assert frontend.hop_length == HOP and frontend.n_mels == 128
    assert frontend.state_dict() == {}


def test_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match="batch, samples"):
        LogMel()(torch.zeros(100))
