"""Audio decoding, downmix, resampling and the errors for unusable files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from drumtx.audio import (
    AUDIO_EXTENSIONS,
    audio_info,
    libsndfile_info,
    load_audio,
    read_samples,
    resample,
    to_int16,
)
from drumtx.errors import AudioError

RATE_HZ = 16_000


def sine(freq_hz: float, sample_rate: int, sec: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sample_rate * sec)) / sample_rate
    return (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def peak_hz(x: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sample_rate / len(x))


@pytest.mark.parametrize(
    ("suffix", "subtype", "atol"),
    [(".wav", "PCM_16", 1e-4), (".flac", "PCM_16", 1e-4), (".ogg", "VORBIS", 0.05)],
)
def test_decode_formats(tmp_path: Path, suffix: str, subtype: str, atol: float) -> None:
    x = sine(440.0, RATE_HZ, 0.5)
    path = tmp_path / f"s{suffix}"
    sf.write(path, x, RATE_HZ, subtype=subtype)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(x)) <= 2048  # ogg may pad the last packet
    n = min(len(x), len(y))
    assert np.abs(y[:n] - x[:n]).max() < atol
    assert suffix in AUDIO_EXTENSIONS


def test_stereo_downmix_is_channel_mean(tmp_path: Path) -> None:
    left = sine(300.0, RATE_HZ, 0.2)
    right = np.full_like(left, 0.25)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, right], axis=1), RATE_HZ, subtype="FLOAT")
    y = load_audio(path)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)
    info = audio_info(path)
    assert (info.channels, info.sample_rate, info.n_samples) == (2, RATE_HZ, len(left))
    assert info.format == "WAV" and info.duration_sec == pytest.approx(0.2)


def test_resample_length_and_frequency() -> None:
    x = sine(1000.0, 44_100, 1.0)
    y = resample(x, 44_100, 24_000)
    assert y.dtype == np.float32
    assert len(y) == 24_000
    assert peak_hz(y, 24_000) == pytest.approx(1000.0, abs=2.0)
    assert np.abs(y).max() == pytest.approx(0.5, abs=0.02)
    assert len(resample(x[:1001], 44_100, 24_000)) == int(
        np.ceil(1001 * 24_000 / 44_100)
    )
    same = resample(x, 44_100, 44_100)
    assert same is not x and np.array_equal(same, x)


def test_load_with_sample_rate(tmp_path: Path) -> None:
    path = tmp_path / "s.wav"
    sf.write(path, sine(500.0, 22_050, 0.5), 22_050)
    y = load_audio(path, sample_rate=RATE_HZ)
    assert len(y) == RATE_HZ // 2
    assert peak_hz(y, RATE_HZ) == pytest.approx(500.0, abs=3.0)


def test_read_frames_window(tmp_path: Path) -> None:
    x = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    path = tmp_path / "ramp.wav"
    sf.write(path, np.stack([x, x], axis=1), RATE_HZ, subtype="FLOAT")
    np.testing.assert_array_equal(read_samples(path, 100, 50), x[100:150])
    assert len(read_samples(path, 980, 50)) == 20  # the file ends first
    assert len(read_samples(path, 5000, 10)) == 0


def test_nan_in_float_wav_becomes_zero(tmp_path: Path) -> None:
    x = sine(200.0, RATE_HZ, 0.1)
    x[10], x[20], x[30] = np.nan, np.inf, -np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, x, RATE_HZ, subtype="FLOAT")
    y = load_audio(path)
    assert np.isfinite(y).all()
    assert y[10] == y[20] == y[30] == 0.0
    assert y[11] == x[11]


def test_to_int16() -> None:
    x = np.array([0.0, 1.0, -1.0, 2.0, -3.0, 0.5, np.nan], dtype=np.float32)
    y = to_int16(x)
    assert y.dtype == np.int16
    assert y.tolist() == [0, 32767, -32768, 32767, -32768, 16384, 0]
    every = np.arange(-32768, 32768, dtype=np.int16)
    np.testing.assert_array_equal(to_int16(every / np.float32(32768)), every)


def _corrupt_wav(path: Path) -> None:
    sf.write(path, sine(100.0, RATE_HZ, 0.1), RATE_HZ)
    data = bytearray(path.read_bytes())
    data[8:12] = b"JUNK"  # break the RIFF/WAVE signature
    path.write_bytes(bytes(data[:60]))


@pytest.mark.parametrize(
    ("make", "message", "hint"),
    [
        (_corrupt_wav, "cannot decode", "ffmpeg"),
        (
            lambda p: p.write_text("this is text, not audio\n" * 20),
            "cannot decode",
            "ffmpeg",
        ),
        (lambda p: p.write_bytes(b""), "empty", "holds no sound"),
        (lambda p: None, "does not exist", None),
        (
            lambda p: sf.write(p, np.zeros(0, np.float32), RATE_HZ),
            "no audio samples",
            "holds no sound",  # a well-formed WAV: converting it would not help
        ),
    ],
    ids=["corrupt", "text", "empty", "missing", "zero-frames"],
)
def test_bad_files_raise_audio_error(tmp_path: Path, make, message, hint) -> None:
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as err:
        load_audio(path)
    assert "bad.wav" in err.value.message
    if hint is not None:
        assert hint in err.value.hint
    with pytest.raises(AudioError, match="bad.wav"):
        audio_info(path)


def test_libsndfile_info() -> None:
    info = libsndfile_info()
    assert isinstance(info["libsndfile_version"], str) and info["libsndfile_version"]
    assert info["mp3"] == ("MP3" in sf.available_formats())
