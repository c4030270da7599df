"""Grow a trained CRNN: wider (Net2Net), or reading more mel bands (extend_bands).

A bigger network trained from scratch needs hours a CPU does not have; widened from a
trained one, it starts where that one ended and spends its steps on what the extra
width can learn (Chen, Goodfellow & Shlens, "Net2Net", ICLR 2016: Net2WiderNet).

Every layer keeps its units and adds copies of randomly chosen ones. A copy takes its
original's incoming weights (and BatchNorm statistics, and GRU gate rows); the layer
that reads them splits the original's outgoing weight between the original and its
copies, in random positive shares that sum to one. Each unit then carries the value it
carried before, so the wider network's outputs equal the narrow one's (to float
rounding) in eval and in train mode alike.

Equal shares would not be enough to let the copies learn apart: under Adam, units with
identical incoming weights and proportional gradients take identical steps forever.
``noise`` perturbs the copies' incoming weights (relative to each layer's weight
spread), which breaks that symmetry at the cost of a tiny change in the outputs.
Only width grows here: the presets must have the same blocks, convolutions per block
and GRU layers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from drumtx.model import CRNN, PRESETS, Preset


class Mapping:
    """Which old unit each new unit copies (``source``) and its share of the old
    unit's outgoing weight (``share``; the shares of one old unit's copies sum to 1)."""

    def __init__(self, old: int, new: int, gen: torch.Generator) -> None:
        if new < old:
            raise ValueError(f"cannot widen {old} units to {new}")
        extra = torch.randint(old, (new - old,), generator=gen)
        self.old, self.new = old, new
        self.source = torch.cat([torch.arange(old), extra])
        weight = 0.5 + torch.rand(new, generator=gen, dtype=torch.float64)
        totals = torch.zeros(old, dtype=torch.float64).index_add_(
            0, self.source, weight
        )
        self.share = (weight / totals[self.source]).float()

    @staticmethod
    def identity(n: int) -> Mapping:
        mapping = Mapping.__new__(Mapping)
        mapping.old = mapping.new = n
        mapping.source = torch.arange(n)
        mapping.share = torch.ones(n)
        return mapping

    def expanded(self, inner: int) -> Mapping:
        """The mapping of a flattened (unit, inner) axis, unit-major (channels x mel
        bins entering the embedding)."""
        mapping = Mapping.__new__(Mapping)
        mapping.old, mapping.new = self.old * inner, self.new * inner
        mapping.source = (self.source[:, None] * inner + torch.arange(inner)).flatten()
        mapping.share = self.share.repeat_interleave(inner)
        return mapping

    @staticmethod
    def concat(first: Mapping, second: Mapping) -> Mapping:
        """Two axes side by side (a BiGRU's forward and backward halves)."""
        mapping = Mapping.__new__(Mapping)
        mapping.old, mapping.new = first.old + second.old, first.new + second.new
        mapping.source = torch.cat([first.source, first.old + second.source])
        mapping.share = torch.cat([first.share, second.share])
        return mapping


def _rows(weight: Tensor, out: Mapping, gates: int = 1) -> Tensor:
    """Rows for the new units; a GRU stacks ``gates`` blocks of rows (r, z, n)."""
    blocks = weight.reshape(gates, out.old, *weight.shape[1:])
    return blocks[:, out.source].reshape(gates * out.new, *weight.shape[1:])


def _columns(weight: Tensor, inp: Mapping) -> Tensor:
    """Input columns for the new units feeding this layer, split by their shares."""
    shape = (1, -1) + (1,) * (weight.dim() - 2)
    return weight[:, inp.source] * inp.share.reshape(shape)


def _perturb(
    weight: Tensor, out: Mapping, noise: float, gen: torch.Generator, gates: int = 1
) -> Tensor:
    """``weight`` with noise on the copies' incoming rows (never the originals')."""
    if noise <= 0 or out.new == out.old:
        return weight
    scale = noise * float(weight.std())
    blocks = weight.reshape(gates, out.new, -1).clone()
    copies = blocks[:, out.old :]
    copies += scale * torch.randn(copies.shape, generator=gen)
    return blocks.reshape(weight.shape)


def _check_shapes(old: Preset, new: Preset) -> None:
    same_depth = (
        len(old.blocks) == len(new.blocks)
        and all(len(a) == len(b) for a, b in zip(old.blocks, new.blocks))
        and old.gru_layers == new.gru_layers
    )
    widths_old = [
        old.stem_channels,
        *sum(old.blocks, ()),
        old.embed_dim,
        old.gru_hidden,
    ]
    widths_new = [
        new.stem_channels,
        *sum(new.blocks, ()),
        new.embed_dim,
        new.gru_hidden,
    ]
    if not same_depth or any(b < a for a, b in zip(widths_old, widths_new)):
        raise ValueError(
            "widening needs a preset with the same blocks, convolutions per block and "
            "GRU layers, each at least as wide"
        )


@torch.no_grad()
def widen(model: CRNN, preset: str, noise: float = 0.0, seed: int = 0) -> CRNN:
    """A ``preset`` CRNN computing what ``model`` computes (exactly when noise is 0)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    _check_shapes(PRESETS[model.preset], PRESETS[preset])
    gen = torch.Generator().manual_seed(seed)
    wide = CRNN(model.n_mels, model.n_classes, preset=preset)
    wide.input_norm.load_state_dict(model.input_norm.state_dict())

    # Convolutions: each [conv, BN, ReLU] widens its outputs; the next one reads them.
    old_blocks = [m for m in model.convs if isinstance(m, nn.Sequential)]
    new_blocks = [m for m in wide.convs if isinstance(m, nn.Sequential)]
    inp = Mapping.identity(1)
    for (conv, bn, _), (wconv, wbn, _) in zip(old_blocks, new_blocks):
        out = Mapping(conv.out_channels, wconv.out_channels, gen)
        weight = _columns(_rows(conv.weight, out), inp)
        wconv.weight.copy_(_perturb(weight, out, noise, gen))
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(wbn, name).copy_(getattr(bn, name)[out.source])
        wbn.num_batches_tracked.copy_(bn.num_batches_tracked)
        inp = out

    # Embedding: its inputs are (channel, mel bin) pairs, channel-major.
    n_bins = model.embed[0].in_features // inp.old
    lin, wlin = model.embed[0], wide.embed[0]
    out = Mapping(lin.out_features, wlin.out_features, gen)
    weight = _columns(_rows(lin.weight, out), inp.expanded(n_bins))
    wlin.weight.copy_(_perturb(weight, out, noise, gen))
    wlin.bias.copy_(lin.bias[out.source])
    inp = out

    # BiGRU: per layer and direction, each new hidden unit copies one unit's gate rows;
    # the recurrent columns read the same direction's hidden state, split by shares.
    old_h, new_h = model.gru.hidden_size, wide.gru.hidden_size
    for layer in range(model.gru.num_layers):
        outs = []
        for suffix in ("", "_reverse"):
            key = f"l{layer}{suffix}"
            out = Mapping(old_h, new_h, gen)
            w_ih = _columns(_rows(getattr(model.gru, f"weight_ih_{key}"), out, 3), inp)
            w_hh = _columns(_rows(getattr(model.gru, f"weight_hh_{key}"), out, 3), out)
            getattr(wide.gru, f"weight_ih_{key}").copy_(
                _perturb(w_ih, out, noise, gen, 3)
            )
            getattr(wide.gru, f"weight_hh_{key}").copy_(
                _perturb(w_hh, out, noise, gen, 3)
            )
            for name in ("bias_ih", "bias_hh"):
                bias = getattr(model.gru, f"{name}_{key}")
                getattr(wide.gru, f"{name}_{key}").copy_(_rows(bias, out, 3))
            outs.append(out)
        inp = Mapping.concat(*outs)

    for head, whead in (
        (model.onset_head, wide.onset_head),
        (model.velocity_head, wide.velocity_head),
    ):
        whead.weight.copy_(_columns(head.weight, inp))
        whead.bias.copy_(head.bias)
    return wide


@torch.no_grad()
def extend_bands(model: CRNN, n_mels: int) -> CRNN:
    """``model`` grown to read ``n_mels`` mel bands, its own as the lowest ones.

    The convolutions slide along the mel axis, so they read the new bands with the
    weights they have; the embedding gets zero weights for the mel positions the new
    bands add, and the input normalisation copies its top band's statistics to the new
    bands (training re-estimates them). The grown model computes what the old one did
    except where a convolution near the old top band now reads new bands instead of
    zero padding (in the small preset the top two of its eight pooled mel positions,
    the old highest quarter of the bands), which fine-tuning adapts to. The frontend
    must keep the old bands exactly (drumtx.frontend.extended_f_max).
    """
    if n_mels < model.n_mels:
        raise ValueError(f"cannot shrink {model.n_mels} mel bands to {n_mels}")
    grown = CRNN(n_mels, model.n_classes, preset=model.preset)
    state = model.state_dict()
    extra = n_mels - model.n_mels
    for name in ("weight", "bias", "running_mean", "running_var"):
        old = state[f"input_norm.{name}"]
        state[f"input_norm.{name}"] = torch.cat([old, old[-1:].expand(extra)])
    channels = PRESETS[model.preset].blocks[-1][-1]
    weight = state["embed.0.weight"]  # (embed_dim, channels x mel positions)
    old_bins = weight.shape[1] // channels
    new_bins = grown.embed[0].in_features // channels
    grown_weight = weight.new_zeros(weight.shape[0], channels, new_bins)
    grown_weight[:, :, :old_bins] = weight.reshape(weight.shape[0], channels, old_bins)
    state["embed.0.weight"] = grown_weight.reshape(weight.shape[0], -1)
    grown.load_state_dict(state)
    return grown
