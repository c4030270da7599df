from __future__ import annotations

import numpy as np
import pytest
import torch

from drumtx.audio import resample
from drumtx.config import Config
from drumtx.frontend import (
    LogMel,
    extended_f_max,
    hz_to_mel,
    log_mel_numpy,
    mel_matrix,
    mel_to_hz,
    n_frames,
    power_scale,
)

SAMPLE_RATE = 24000
HOP = 240


def test_n_frames_matches_centred_stft() -> None:
    frontend = LogMel()
    for n_samples in (1, 239, 240, 241, 1024, 24000, 24001):
        feats = frontend(torch.zeros(1, n_samples))
        assert feats.shape == (1, n_frames(n_samples, HOP), 128)
    assert n_frames(24000, HOP) == 101  # frames at 0, 240, ..., 24000


def test_mel_scale_values_by_hand() -> None:
    """Slaney: 200/3 Hz per mel below 1 kHz (so 1 kHz is mel 15), then 27 mels per
    factor 6.4 in frequency (6.4 kHz is mel 15 + 27 = 42)."""
    freqs_hz = np.array([0.0, 200.0, 500.0, 1000.0, 6400.0, 6400.0 * 6.4])
    mels = np.array([0.0, 3.0, 7.5, 15.0, 42.0, 69.0])
    np.testing.assert_allclose(hz_to_mel(freqs_hz), mels, rtol=0, atol=1e-9)
    np.testing.assert_allclose(mel_to_hz(mels), freqs_hz, rtol=1e-12, atol=1e-9)


def test_linear_region_filters_by_hand() -> None:
    """2 bands over 0..1000 Hz (mel 0..15): edges at mel 0, 5, 10, 15, that is at
    0, 333.3, 666.7 and 1000 Hz. 1 Hz bins (n_fft = sample_rate = 2000)."""
    mel = mel_matrix(2000, 2000, 2, 0.0, 1000.0)  # (2, 1001), bin k is k Hz
    assert mel.shape == (2, 1001)
    nonzero = [np.flatnonzero(row) for row in mel]
    assert (nonzero[0][0], nonzero[0][-1]) == (1, 666)  # (0, 666.7) Hz
    assert (nonzero[1][0], nonzero[1][-1]) == (334, 999)  # (333.3, 1000) Hz
    assert mel.argmax(axis=1).tolist() == [333, 667]  # nearest bins to the centres
    # Triangle height 2 / (upper - lower edge) = 2 / 666.7 Hz gives unit area.
    np.testing.assert_allclose(mel.max(axis=1), [0.003, 0.003], rtol=2e-3)
    np.testing.assert_allclose(mel.sum(axis=1), [1.0, 1.0], rtol=1e-3)


def test_log_region_filters_by_hand() -> None:
    """2 bands over 1000..6400 Hz (mel 15..42): edges at mel 15, 24, 33, 42, that is
    at 1000, 1000 * 6.4 ** (1/3) = 1856.6, 1000 * 6.4 ** (2/3) = 3447.1 and 6400 Hz."""
    mel = mel_matrix(16000, 16000, 2, 1000.0, 6400.0)  # (2, 8001), bin k is k Hz
    nonzero = [np.flatnonzero(row) for row in mel]
    assert (nonzero[0][0], nonzero[0][-1]) == (1001, 3447)
    assert (nonzero[1][0], nonzero[1][-1]) == (1857, 6399)
    assert mel.argmax(axis=1).tolist() == [1857, 3447]
    heights = [2 / (3447.0955 - 1000.0), 2 / (6400.0 - 1856.6355)]
    np.testing.assert_allclose(mel.max(axis=1), heights, rtol=1e-3)
    np.testing.assert_allclose(mel.sum(axis=1), [1.0, 1.0], rtol=1e-3)


def test_mel_rows_non_negative_with_ordered_peaks() -> None:
    mel = mel_matrix(SAMPLE_RATE, 1024, 128, 30.0, 12000.0)
    assert mel.shape == (128, 513)
    assert (mel >= 0).all()
    assert ((mel > 0).sum(axis=1) >= 1).all()  # no empty band at the low end
    peaks = mel.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()
    assert peaks[-1] > peaks[0]


# Band of the nearest centre, by hand: centres at mel 0.45 + (b + 1) * 0.39297 for
# 128 bands over mel(30 Hz) = 0.45 .. mel(12 kHz) = 51.143.
SINE_BANDS = {100.0: 2, 440.0: 15, 1000.0: 36, 2500.0: 70, 8000.0: 113}


@pytest.mark.parametrize("freq_hz", sorted(SINE_BANDS))
def test_sine_peaks_in_its_mel_band(freq_hz: float) -> None:
    t_sec = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    sine = 0.5 * np.sin(2 * np.pi * freq_hz * t_sec).astype(np.float32)
    feats = LogMel()(torch.from_numpy(sine)[None])[0]  # (T, n_mels)
    band = int(feats[20:-20].mean(dim=0).argmax())
    assert abs(band - SINE_BANDS[freq_hz]) <= 1, (band, SINE_BANDS[freq_hz])


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


def test_same_sound_same_features_at_twice_the_rate() -> None:
    """Tones and noise below 12 kHz give the same log-mel at 48 kHz with a 2048-point
    window as at 24 kHz with 1024 points (power as a spectral density), so a model
    grown to hear higher bands reads its old bands as before."""
    assert power_scale(24000, 1024) == 1.0
    rng = np.random.default_rng(4)
    t = np.arange(2 * 48000) / 48000
    noise = resample(rng.standard_normal(len(t)), 48000, 24000)  # below 12 kHz
    tones = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 5000 * t)
    x48 = (tones + 0.05 * resample(noise, 24000, 48000)[: len(t)]).astype(np.float32)
    x24 = resample(x48, 48000, 24000)
    low = LogMel()(torch.from_numpy(x24)[None])[0]
    high = LogMel(48000, 2048, 480, 128, 30.0, 12000.0)(torch.from_numpy(x48)[None])[0]
    n = min(len(low), len(high))
    inner = slice(10, n - 10)  # away from the edges' zero padding
    diff = (low[inner, :120] - high[inner, :120]).abs()
    assert float(diff.median()) < 0.01 and float(diff.max()) < 0.2


def test_extended_bands_keep_the_old_ones() -> None:
    """extended_f_max continues the mel step: the first bands of the longer matrix are
    the old matrix's, and the new ones lie above its top."""
    f_max = extended_f_max(30.0, 12000.0, 128, 144)
    old = mel_matrix(48000, 2048, 128, 30.0, 12000.0)
    new = mel_matrix(48000, 2048, 144, 30.0, f_max)
    assert np.allclose(new[:128], old, rtol=1e-4, atol=1e-9)
    assert 16000.0 < f_max < 20000.0
    # The old top edge (12 kHz) is the first new band's centre: the rest start above.
    assert new[128].argmax() == round(12000 / 48000 * 2048)
    assert new[129:, : round(12000 / 48000 * 2048) + 1].max() == 0.0
    assert extended_f_max(30.0, 12000.0, 128, 128) == pytest.approx(12000.0)
    with pytest.raises(ValueError, match="cannot extend"):
        extended_f_max(30.0, 12000.0, 128, 64)
