"""CRNN: log-mel frames -> per-class onset logits and velocities, one per frame.

Layout (shapes for the default 128 mel bands):

    (B, T, 128) --BatchNorm over mel bins (learned input normalisation)-->
    (B, 1, T, 128) --stem: 3x3 conv, stride 2 along mel only--> (B, c0, T, 64)
    --blocks: [3x3 conv, BN, ReLU] x n, then max-pool 2 along mel--> (B, ck, T, M')
    --flatten channels x mel, linear--> (B, T, d) --BiGRU--> (B, T, 2h)
    --heads--> onset logits (B, T, C), velocity sigmoid (B, T, C)

Time is never strided or pooled, so the output keeps the frontend's frame rate (100 fps)
and frame t still means time t / fps. No loss and no I/O live here.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from drumtx.config import Config
from drumtx.errors import ConfigError
from drumtx.threads import bidirectional_gru, splits_directions

ONSET_PRIOR = 0.02  # initial onset probability: onsets fill about 1-2 % of frames


@dataclass(frozen=True)
class Preset:
    """The shape of one CRNN size."""

    stem_channels: int
    blocks: tuple[
        tuple[int, ...], ...
    ]  # conv output channels per block; pool after each
    embed_dim: int  # width of the per-frame vector entering the GRU
    gru_hidden: int  # per direction
    gru_layers: int


PRESETS = {
    # CPU demo and tests: 0.07 M parameters (128 mel bands, 9 classes).
    "tiny": Preset(8, ((16,), (32,)), 64, 48, 1),
    # The shipped CPU model: 0.42 M parameters; a 10-minute file takes 4.5 s on 2
    # cores (README, CPU speed).
    "small": Preset(16, ((32,), (48, 48), (64,)), 192, 128, 1),
    # small widened 1.5x (drumtx/widen.py grows a trained small model into it).
    "medium": Preset(24, ((48,), (72, 72), (96,)), 256, 192, 1),
    # GPU training: 2.7 M parameters.
    "base": Preset(32, ((64, 64), (96, 96), (128, 128)), 256, 256, 2),
}


def _conv_bn_relu(c_in: int, c_out: int, stride: tuple[int, int] = (1, 1)) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class CRNN(nn.Module):
    """(B, T, n_mels) log-mel -> onset logits and velocity in [0, 1], each (B, T, C)."""

    def __init__(
        self, n_mels: int, n_classes: int, preset: str = "base", dropout: float = 0.1
    ) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(
                f"unknown preset {preset!r}; choose one of {list(PRESETS)}"
            )
        shape = PRESETS[preset]
        self.preset = preset
        self.n_mels = n_mels
        self.n_classes = n_classes
        self.input_norm = nn.BatchNorm1d(n_mels)
        self.convs = self._build_convs(shape)
        n_bins = self._mel_bins_after_convs(n_mels, len(shape.blocks))
        self.embed = nn.Sequential(
            nn.Linear(shape.blocks[-1][-1] * n_bins, shape.embed_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.gru = nn.GRU(
            shape.embed_dim,
            shape.gru_hidden,
            num_layers=shape.gru_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if shape.gru_layers > 1 else 0.0,
        )
        self.head_dropout = nn.Dropout(dropout)
        self.onset_head = nn.Linear(2 * shape.gru_hidden, n_classes)
        self.velocity_head = nn.Linear(2 * shape.gru_hidden, n_classes)
        prior = torch.tensor(ONSET_PRIOR)
        nn.init.constant_(self.onset_head.bias, float(torch.logit(prior)))

    @staticmethod
    def _build_convs(shape: Preset) -> nn.Sequential:
        layers: list[nn.Module] = [_conv_bn_relu(1, shape.stem_channels, stride=(1, 2))]
        c_in = shape.stem_channels
        for block in shape.blocks:
            for c_out in block:
                layers.append(_conv_bn_relu(c_in, c_out))
                c_in = c_out
            layers.append(nn.MaxPool2d(kernel_size=(1, 2)))  # mel only, never time
        return nn.Sequential(*layers)

    @staticmethod
    def _mel_bins_after_convs(n_mels: int, n_blocks: int) -> int:
        n_bins = (n_mels + 1) // 2  # the stem's stride-2 conv with padding 1
        for _ in range(n_blocks):
            n_bins //= 2
        if n_bins < 1:
            raise ConfigError(
                f"frontend.n_mels = {n_mels} is too few for a model that halves the "
                f"mel axis {n_blocks + 1} times",
                hint="use at least 64 mel bands, or a smaller model.preset",
            )
        return n_bins

    def _recur(self, x: Tensor) -> Tensor:
        if splits_directions(self.gru, x):  # CPU inference: see drumtx/threads.py
            return bidirectional_gru(self.gru, x)
        return self.gru(x)[0]

    def compiled(self) -> nn.Module:
        """torch.compile the CRNN, leaving the GRU eager.

        Dynamo cannot trace nn.GRU (it would unroll every time step), so the compiled
        model is two graphs, convolutions and heads, with the cuDNN/oneDNN GRU run
        between. Wrapping happens here, not with a decorator at import: importing
        torch._dynamo costs about a second, which every ``transcribe`` would pay.
        """
        self._recur = torch.compiler.disable(self._recur)  # type: ignore[method-assign]
        return torch.compile(self)

    def forward(self, feats: Tensor) -> tuple[Tensor, Tensor]:
        batch, n_frames, _ = feats.shape
        x = self.input_norm(feats.transpose(1, 2))  # (B, n_mels, T)
        x = x.transpose(1, 2).unsqueeze(1)  # (B, 1, T, n_mels)
        x = self.convs(x)  # (B, ch, T, M')
        x = x.permute(0, 2, 1, 3).reshape(batch, n_frames, -1)  # (B, T, ch * M')
        x = self.embed(x)  # (B, T, embed_dim)
        x = self._recur(x)  # (B, T, 2 * gru_hidden)
        x = self.head_dropout(x)
        onset_logits = self.onset_head(x)  # (B, T, C)
        velocity = torch.sigmoid(self.velocity_head(x))  # (B, T, C)
        return onset_logits, velocity


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One convolution doing what ``bn(conv(x))`` does with frozen statistics."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        bias=True,
    )
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.weight.data = conv.weight.detach() * scale.detach()[:, None, None, None]
    fused.bias.data = (bn.bias + (bias - bn.running_mean) * scale).detach()
    return fused


@torch.no_grad()
def fold_batch_norms(model: CRNN) -> CRNN:
    """An inference copy of ``model`` with each BatchNorm folded into its convolution.

    Same outputs (to float rounding) in eval mode, but the conv stack no longer
    streams every activation through a separate normalisation pass: 1.6x faster on a
    2-core CPU. For inference only: the copy's weights are not a training checkpoint.
    """
    folded = copy.deepcopy(model).eval()
    blocks = []
    for block in folded.convs:
        if isinstance(block, nn.Sequential) and isinstance(block[1], nn.BatchNorm2d):
            conv, bn, *rest = block
            block = nn.Sequential(_folded(conv, bn), *rest)
        blocks.append(block)
    folded.convs = nn.Sequential(*blocks)
    return folded


class CastConvs(nn.Module):
    """A conv stack run channels_last in ``dtype``, handing fp32 back to the GRU.

    On a CPU with bf16 units (AMX or AVX512-BF16), bf16 convolutions run 3x faster
    than fp32 while the GRU, whose small per-step matmuls do not gain, stays fp32.
    channels_last alone makes fp32 convolutions 1.7x faster through oneDNN.
    """

    def __init__(self, convs: nn.Sequential, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype
        self.convs = convs.to(dtype=dtype, memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        return self.convs(x).float()


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 in hardware (else it is emulated, and slower).

    ``DRUMTX_CPU_BF16=0`` (or ``1``) overrides the detection, read at each call: the
    test suite runs as on a CPU without bf16 units with ``pytest --cpu-bf16=absent``.
    """
    declared = os.environ.get("DRUMTX_CPU_BF16", "").strip()
    if declared in ("0", "1"):
        return declared == "1"
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def cpu_conv_dtype(precision: str) -> torch.dtype:
    """transcribe.cpu_precision (auto | fp32 | bf16) as the conv stack's dtype."""
    if precision == "auto":
        return torch.bfloat16 if native_bf16_cpu() else torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float32


def for_cpu_inference(model: CRNN, conv_dtype: torch.dtype) -> CRNN:
    """An inference copy of ``model`` for the CPU: BatchNorm folded, convs channels_last
    in ``conv_dtype``. Under bf16 the shipped model's onset probabilities move by at
    most a few hundredths, so only a peak that close to its threshold can come or go
    (tests/test_inference.py: one of 90 hits on a rendered groove)."""
    fast = fold_batch_norms(model)
    fast.convs = CastConvs(fast.convs, conv_dtype)  # type: ignore[assignment]
    return fast


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(cfg: Config, n_classes: int) -> CRNN:
    """The CRNN ``cfg`` describes (frontend.n_mels, model.preset, model.dropout)."""
    return CRNN(
        n_mels=cfg.frontend.n_mels,
        n_classes=n_classes,
        preset=cfg.model.preset,
        dropout=cfg.model.dropout,
    )
