from __future__ import annotations

import pytest
import torch

from drumtx.config import load_config
from drumtx.errors import ConfigError
from drumtx.model import CRNN, PRESETS, build_model, count_parameters, fold_batch_norms

N_MELS = 128
N_CLASSES = 9
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("preset", list(PRESETS))
def test_forward_shapes_and_ranges(preset: str) -> None:
    torch.manual_seed(0)
    model = CRNN(N_MELS, N_CLASSES, preset=preset).eval()
    feats = torch.randn(2, 37, N_MELS)  # (B, T, n_mels), T odd on purpose
    with torch.no_grad():
        onset_logits, velocity = model(feats)
    assert onset_logits.shape == (2, 37, N_CLASSES)
    assert velocity.shape == (2, 37, N_CLASSES)
    assert torch.isfinite(onset_logits).all()
    assert ((velocity >= 0) & (velocity <= 1)).all()


def test_preset_sizes() -> None:
    sizes = {p: count_parameters(CRNN(N_MELS, N_CLASSES, preset=p)) for p in PRESETS}
    assert 50_000 <= sizes["tiny"] <= 150_000
    assert sizes["tiny"] < sizes["small"] < sizes["medium"] < sizes["base"]
    assert 2_000_000 <= sizes["base"] <= 3_000_000


def test_time_is_never_pooled() -> None:
    """Time is never pooled: the output frame count equals the input frame count."""
    model = CRNN(N_MELS, 3, preset="tiny").eval()
    for n_frames in (1, 2, 100):
        onset_logits, _ = model(torch.randn(1, n_frames, N_MELS))
        assert onset_logits.shape[1] == n_frames


def test_build_model_from_config() -> None:
    cfg = load_config(None, ["model.preset='tiny'", "model.dropout=0.2"])
    model = build_model(cfg, n_classes=5)
    assert model.preset == "tiny" and model.n_classes == 5
    assert model.embed[-1].p == 0.2


def test_unknown_preset_and_too_few_mels_raise() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        CRNN(N_MELS, N_CLASSES, preset="huge")
    with pytest.raises(ConfigError, match="n_mels"):
        CRNN(8, N_CLASSES, preset="base")


def test_channels_last_gives_same_output() -> None:
    torch.manual_seed(0)
    model = CRNN(N_MELS, N_CLASSES, preset="tiny").eval()
    feats = torch.randn(2, 20, N_MELS)
    with torch.no_grad():
        want = model(feats)
        got = model.to(memory_format=torch.channels_last)(feats)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-5)


def test_compile_breaks_only_around_the_gru() -> None:
    """Dynamo traces the model in two graphs; the only break is the GRU call."""
    import torch._dynamo as dynamo

    dynamo.reset()
    model = CRNN(N_MELS, N_CLASSES, preset="tiny")
    explanation = dynamo.explain(model)(torch.randn(2, 16, N_MELS))
    assert explanation.graph_break_count == 1
    assert explanation.graph_count == 2
    dynamo.reset()


def test_tiny_model_overfits_one_batch() -> None:
    torch.manual_seed(0)
    n_mels = 32  # fewer bands than the default keep this test at a second or two
    model = CRNN(n_mels, 3, preset="tiny", dropout=0.0)
    onsets = (torch.rand(2, 32, 3) < 0.15).float()  # (B, T, C)
    feats = (
        torch.randn(2, 32, n_mels)
        + 2.0 * onsets.repeat_interleave(11, dim=2)[..., :n_mels]
    )  # (B, T, n_mels): each class brightens its own third of the bands
    target_velocity = torch.rand(2, 32, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        onset_logits, velocity = model(feats)
        onset_loss = torch.nn.functional.binary_cross_entropy_with_logits(
            onset_logits, onsets
        )
        velocity_loss = (
            onsets * (velocity - target_velocity) ** 2
        ).sum() / onsets.sum()
        loss = onset_loss + velocity_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_folding_batch_norms_keeps_the_outputs(preset: str) -> None:
    torch.manual_seed(0)
    model = CRNN(n_mels=64, n_classes=5, preset=preset)
    # Statistics far from the identity, as after training.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.2, 3)
            module.weight.data.uniform_(0.5, 2)
            module.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    folded = fold_batch_norms(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    feats = torch.randn(2, 50, 64)
    with torch.no_grad():
        for a, b in zip(model(feats), folded(feats)):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_cpu_precision_auto_follows_the_declared_bf16_units(monkeypatch) -> None:
    """DRUMTX_CPU_BF16 (set by `pytest --cpu-bf16=absent`) overrides the detection, so
    one machine runs the suite down both paths that `auto` can take."""
    from drumtx.model import cpu_conv_dtype

    monkeypatch.setenv("DRUMTX_CPU_BF16", "0")
    assert cpu_conv_dtype("auto") == torch.float32
    monkeypatch.setenv("DRUMTX_CPU_BF16", "1")
    assert cpu_conv_dtype("auto") == torch.bfloat16
    assert cpu_conv_dtype("fp32") == torch.float32  # an explicit choice is never moved
