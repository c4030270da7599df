"""drumtx's numpy resampler computes what scipy.signal.resample_poly computes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly as scipy_resample_poly

from drumtx.resample import lowpass, resample_poly

RATES = [44100, 48000, 22050, 32000, 16000, 11025, 8000, 88200, 96000, 44056]


@pytest.mark.parametrize("from_hz", RATES)
@pytest.mark.parametrize("n", [1, 7, 1000, 44101])
def test_matches_scipy_resample_poly(from_hz: int, n: int) -> None:
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    g = np.gcd(24000, from_hz)
    want = scipy_resample_poly(x.astype(np.float64), 24000 // g, from_hz // g)
    got = resample_poly(x, 24000, from_hz)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=5e-6)


def test_filter_is_scipys_firwin() -> None:
    from scipy.signal import firwin

    for up, down in [(80, 147), (1, 2), (3, 1), (160, 147)]:
        want = firwin(20 * max(up, down) + 1, 1 / max(up, down), window=("kaiser", 5.0))
        np.testing.assert_allclose(lowpass(up, down), want * up, rtol=1e-9, atol=1e-12)


def test_same_rate_is_a_copy_and_a_sine_keeps_its_frequency() -> None:
    x = np.arange(10, dtype=np.float32)
    same = resample_poly(x, 5, 5)
    np.testing.assert_array_equal(same, x)
    assert same is not x
    t = np.arange(44100) / 44100
    y = resample_poly(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 24000, 44100)
    spectrum = np.abs(np.fft.rfft(y[2000:-2000]))
    peak_hz = np.argmax(spectrum) * 24000 / len(y[2000:-2000])
    assert peak_hz == pytest.approx(1000, abs=2)
