"""Audio -> log-mel features: ``torch.stft`` and a mel matrix built in numpy.

One framing convention for the whole project: frame t is centred at ``t * hop_length``
samples (a centred STFT), so a recording of N samples has ``N // hop_length + 1`` frames
and frame t belongs to time ``t / fps``. Targets, decoding and tests all use
:func:`n_frames`.

The signal is zero-padded by ``n_fft // 2`` at both ends (not reflected): a recording
really is preceded by silence, and a mirrored copy of an onset at t = 0 would look like
a second hit.

No normalisation happens here, neither across the batch nor per example: transcription
cuts long files into segments and every segment must see the same features for the same
sound. The model normalises its input with learned statistics instead.

The same sound gives the same log-mel at any sample rate and window length of the same
duration: the STFT power is scaled as a spectral density (:func:`power_scale`), in
units where the 24 kHz, 1024-point frontend of the first models is 1. A model grown to
hear higher bands at a higher rate (drumtx/widen.py, :func:`extended_f_max`) then sees
its old bands as it did before.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from drumtx.config import Config

LOG_EPS = 1e-6  # floor of the mel power before the log; below 16-bit dither level
REF_RATE, REF_FFT = 24000, 1024  # the frontend whose power scale is 1
_LOG_STEP = np.log(6.4) / 27.0  # Slaney: 27 mel steps per factor 6.4 above 1 kHz


def n_frames(n_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT of ``n_samples``; frame t is centred at t * hop."""
    if n_samples < 0 or hop_length <= 0:
        raise ValueError(f"bad n_samples={n_samples} or hop_length={hop_length}")
    return n_samples // hop_length + 1


def hz_to_mel(freq_hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    freq_hz = np.asarray(freq_hz, dtype=np.float64)
    linear = freq_hz / (200.0 / 3.0)
    log_part = 15.0 + np.log(np.maximum(freq_hz, 1e-10) / 1000.0) / _LOG_STEP
    return np.where(freq_hz >= 1000.0, log_part, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(
        mel >= 15.0, 1000.0 * np.exp((mel - 15.0) * _LOG_STEP), mel * 200 / 3
    )


def mel_matrix(
    sample_rate: int, n_fft: int, n_mels: int, f_min_hz: float, f_max_hz: float
) -> np.ndarray:
    """Triangular mel filters, (n_mels, n_fft // 2 + 1) float32, unit area in Hz.

    Band m rises from centre m-1 to centre m and falls to centre m+1 (centres equally
    spaced in mel). Unit area keeps a broad high band from outweighing a narrow low one.
    """
    if not 0.0 <= f_min_hz < f_max_hz <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min_hz < f_max_hz <= {sample_rate / 2}")
    bin_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)  # (F,)
    edges_hz = mel_to_hz(
        np.linspace(hz_to_mel(f_min_hz), hz_to_mel(f_max_hz), n_mels + 2)
    )
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz[None, :] - lower) / (centre - lower)  # (n_mels, F)
    falling = (upper - bin_hz[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= 2.0 / (upper - lower)
    return weights.astype(np.float32)


def power_scale(sample_rate: int, n_fft: int) -> float:
    """Factor that makes STFT power a spectral density independent of rate and window.

    A tone's bin power grows with the window's length squared, noise's with the rate
    times the window's energy; at a fixed window duration both grow as
    ``sample_rate * n_fft``. Divided by that (relative to 24 kHz x 1024 points), a
    48 kHz, 2048-point frontend gives a 24 kHz one's values below 12 kHz.
    """
    return REF_RATE * REF_FFT / (sample_rate * n_fft)


def extended_f_max(
    f_min_hz: float, f_max_hz: float, n_mels: int, n_total: int
) -> float:
    """The top edge that makes ``n_total`` mel bands whose first ``n_mels`` are exactly
    the bands of (f_min_hz, f_max_hz, n_mels): the same mel step, continued upwards."""
    if n_total < n_mels:
        raise ValueError(f"cannot extend {n_mels} mel bands to {n_total}")
    low, high = hz_to_mel(f_min_hz), hz_to_mel(f_max_hz)
    step = (high - low) / (n_mels + 1)
    return float(mel_to_hz(low + step * (n_total + 1)))


def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann window (what ``torch.hann_window`` returns by default), float64."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)


class LogMel(nn.Module):
    """(B, N) audio -> (B, T, n_mels) fp32 log-mel power; T = n_frames(N, hop)."""

    def __init__(
        self,
        sample_rate: int = 24000,
        n_fft: int = 1024,
        hop_length: int = 240,
        n_mels: int = 128,
        f_min_hz: float = 30.0,
        f_max_hz: float = 12000.0,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        window = torch.from_numpy(hann_window(n_fft).astype(np.float32))
        mel = torch.from_numpy(
            mel_matrix(sample_rate, n_fft, n_mels, f_min_hz, f_max_hz)
            * np.float32(power_scale(sample_rate, n_fft))
        )
        # Derived from the config, so not saved: checkpoints stay small and never stale.
        self.register_buffer("window", window, persistent=False)
        self.register_buffer(
            "mel_t", mel.T.contiguous(), persistent=False
        )  # (F, n_mels)

    @classmethod
    def from_config(cls, cfg: Config) -> LogMel:
        fe = cfg.frontend
        return cls(
            sample_rate=cfg.audio.sample_rate,
            n_fft=fe.n_fft,
            hop_length=cfg.hop_length,
            n_mels=fe.n_mels,
            f_min_hz=fe.f_min_hz,
            f_max_hz=fe.f_max_hz,
        )

    def forward(self, audio: Tensor) -> Tensor:
        if audio.ndim != 2:
            raise ValueError(
                f"LogMel expects (batch, samples), got {tuple(audio.shape)}"
            )
        # fp32 with autocast off: half-precision FFTs need power-of-two sizes on CUDA,
        # and the log of a half-precision power loses the quiet bands.
        with torch.autocast(device_type=audio.device.type, enabled=False):
            audio = nn.functional.pad(audio.float(), (self.n_fft // 2, self.n_fft // 2))
            spec = torch.stft(
                audio,
                self.n_fft,
                self.hop_length,
                window=self.window,
                center=False,  # padded above with zeros instead of reflection
                return_complex=True,
            )  # (B, F, T)
            power = spec.real.square() + spec.imag.square()
            mel = torch.matmul(power.transpose(1, 2), self.mel_t)  # (B, T, n_mels)
            return torch.log(mel + LOG_EPS)

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, "
            f"hop_length={self.hop_length}, n_mels={self.n_mels}"
        )


def log_mel_numpy(
    audio: np.ndarray,
    sample_rate: int = 24000,
    n_fft: int = 1024,
    hop_length: int = 240,
    n_mels: int = 128,
    f_min_hz: float = 30.0,
    f_max_hz: float = 12000.0,
) -> np.ndarray:
    """Float64 numpy reference of :class:`LogMel`, one signal: (N,) -> (T, n_mels)."""
    audio = np.asarray(audio, dtype=np.float64)
    padded = np.pad(audio, n_fft // 2)
    count = n_frames(audio.shape[0], hop_length)
    starts = np.arange(count) * hop_length
    frames = padded[starts[:, None] + np.arange(n_fft)[None, :]]  # (T, n_fft)
    spec = np.fft.rfft(frames * hann_window(n_fft), axis=1)  # (T, F)
    power = spec.real**2 + spec.imag**2
    mel = mel_matrix(sample_rate, n_fft, n_mels, f_min_hz, f_max_hz).astype(np.float64)
    return np.log(power_scale(sample_rate, n_fft) * (power @ mel.T) + LOG_EPS)
