"""Mixed precision: the one place that turns ``train.amp`` into a dtype and a context.

Training, validation, ``evaluate`` and ``transcribe`` all run the model through
:func:`autocast` with the dtype :func:`amp_dtype` picks, so a run reports numbers
computed the way its weights were trained. ``auto`` means bf16 (or fp16 where the GPU
lacks bf16) on CUDA and full precision on the CPU; an explicit ``bf16`` or ``fp16`` runs
on either device through the same code. The frontend always runs in fp32 (see
:class:`drumtx.frontend.LogMel`). Separately, ``evaluate`` and ``transcribe`` on a CPU
keep the convolutions' weights in bf16 where the CPU has bf16 units
(``transcribe.cpu_precision``, :func:`drumtx.model.for_cpu_inference`).
"""

from __future__ import annotations

import contextlib

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``mode`` (auto | bf16 | fp16 | off) asks for; None = fp32."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DTYPES[mode]


def autocast(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``; a no-op context for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def make_scaler(
    device: torch.device, dtype: torch.dtype | None
) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for fp16: bf16 and fp32 have fp32's exponent range."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def dtype_name(dtype: torch.dtype | None) -> str:
    """``bf16``, ``fp16`` or ``fp32``, for tables and logs."""
    names = {v: k for k, v in DTYPES.items()}
    return names.get(dtype, "fp32")
