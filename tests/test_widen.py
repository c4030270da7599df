"""widen: a wider CRNN grown from a trained one computes what the narrow one did."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drumtx.checkpoint import load_checkpoint, save_checkpoint
from drumtx.config import load_config
from drumtx.model import CRNN, PRESETS, Preset, build_model
from drumtx.widen import Mapping, widen
from tools import widen_model

N_MELS = 64
N_CLASSES = 9
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trained_like(preset: str, seed: int = 0) -> CRNN:
    """A CRNN whose weights and BatchNorm statistics are all far from their
    initial values, so a mistake in any copied tensor changes the outputs."""
    torch.manual_seed(seed)
    model = CRNN(N_MELS, N_CLASSES, preset=preset)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        for name, param in model.named_parameters():
            if "bias" in name and "gru" in name:
                param.uniform_(-0.3, 0.3)
    return model.eval()


def _outputs(model: CRNN, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model(feats)


def test_mapping_keeps_every_unit_and_shares_sum_to_one() -> None:
    mapping = Mapping(5, 12, torch.Generator().manual_seed(3))
    assert mapping.source[:5].tolist() == list(range(5))
    assert set(mapping.source[5:].tolist()) <= set(range(5))
    totals = torch.zeros(5).index_add_(0, mapping.source, mapping.share)
    assert torch.allclose(totals, torch.ones(5))
    assert (mapping.share > 0).all()


def test_widened_small_computes_what_small_did() -> None:
    narrow = _trained_like("small")
    wide = widen(narrow, "medium", noise=0.0, seed=1).eval()
    assert wide.preset == "medium"
    assert sum(p.numel() for p in wide.parameters()) > 2 * sum(
        p.numel() for p in narrow.parameters()
    )
    feats = torch.randn(2, 150, N_MELS)
    (onset_n, vel_n), (onset_w, vel_w) = _outputs(narrow, feats), _outputs(wide, feats)
    assert torch.allclose(onset_n, onset_w, atol=1e-4)
    assert torch.allclose(vel_n, vel_w, atol=1e-5)


def test_widened_model_trains_like_the_narrow_one_in_train_mode() -> None:
    """Batch statistics of a copied channel equal its original's, so train mode
    (BatchNorm on the batch) agrees too once dropout is off in both."""
    narrow, wide = _trained_like("small"), None
    wide = widen(narrow, "medium", seed=2)
    for model in (narrow, wide):
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    feats = torch.randn(3, 80, N_MELS)
    assert torch.allclose(narrow(feats)[0], wide(feats)[0], atol=1e-4)


def test_two_layer_gru_widens_through_both_directions(monkeypatch) -> None:
    monkeypatch.setitem(PRESETS, "two", Preset(8, ((12,), (16,)), 24, 20, 2))
    monkeypatch.setitem(PRESETS, "two_wide", Preset(12, ((20,), (24,)), 40, 32, 2))
    narrow = _trained_like("two")
    wide = widen(narrow, "two_wide", seed=4).eval()
    assert wide.gru.hidden_size == 32 and wide.gru.num_layers == 2
    feats = torch.randn(2, 60, N_MELS)
    assert torch.allclose(
        _outputs(narrow, feats)[0], _outputs(wide, feats)[0], atol=1e-4
    )


def test_noise_moves_only_the_copies_and_only_a_little() -> None:
    narrow = _trained_like("small")
    exact = widen(narrow, "medium", noise=0.0, seed=5)
    noisy = widen(narrow, "medium", noise=0.01, seed=5)
    old = narrow.convs[1][0].out_channels
    conv_exact, conv_noisy = exact.convs[1][0].weight, noisy.convs[1][0].weight
    assert torch.equal(conv_exact[:old], conv_noisy[:old])  # originals untouched
    assert not torch.equal(conv_exact[old:], conv_noisy[old:])  # copies moved
    feats = torch.randn(1, 100, N_MELS)
    p_exact = torch.sigmoid(_outputs(exact.eval(), feats)[0])
    p_noisy = torch.sigmoid(_outputs(noisy.eval(), feats)[0])
    assert 0 < float((p_exact - p_noisy).abs().max()) < 0.1


@pytest.mark.parametrize(("source", "target"), [("medium", "small"), ("tiny", "small")])
def test_only_same_depth_and_wider_presets(source: str, target: str) -> None:
    with pytest.raises(ValueError, match="same blocks"):
        widen(CRNN(N_MELS, N_CLASSES, preset=source), target)


def test_widen_model_tool_writes_a_checkpoint_training_can_start_from(
    tmp_path, capsys
) -> None:
    cfg = load_config(None, ["model.preset='small'", f"frontend.n_mels={N_MELS}"])
    narrow = _trained_like("small")
    source = tmp_path / "small.pt"
    save_checkpoint(
        source,
        {
            "config": cfg.to_dict(),
            "model": narrow.state_dict(),
            "vocab": "roland9",
            "thresholds": {"SD": 0.6},
            "step": 1000,
            "best_score": 0.9,
        },
    )
    out = tmp_path / "wide.pt"
    args = ["--checkpoint", str(source), "--out", str(out), "--noise", "0"]
    assert widen_model.main(args) == 0
    state = load_checkpoint(out)
    assert state["config"]["model"]["preset"] == "medium"
    assert state["thresholds"] == {"SD": 0.6}
    assert "step" not in state and "best_score" not in state
    wide_cfg = load_config(None, ["model.preset='medium'", f"frontend.n_mels={N_MELS}"])
    wide = build_model(wide_cfg, N_CLASSES)
    wide.load_state_dict(state["model"])
    feats = torch.randn(1, 50, N_MELS)
    assert torch.allclose(
        _outputs(narrow, feats)[0], _outputs(wide.eval(), feats)[0], atol=1e-4
    )
    assert "medium" in capsys.readouterr().out

    # A second run refuses to overwrite; a narrower preset is refused with a hint.
    before = out.read_bytes()
    assert widen_model.main(args) == 2
    assert out.read_bytes() == before
    assert (
        widen_model.main(
            [
                "--checkpoint",
                str(source),
                "--out",
                str(tmp_path / "t.pt"),
                "--preset",
                "tiny",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "error:" in err and "hint:" in err and not (tmp_path / "t.pt").exists()


def test_extended_bands_leave_all_but_the_top_pooled_position_as_they_were() -> None:
    """The convolutions read the new bands with their own weights; the pooled mel
    positions below the old top ones (whose convolutions now read new bands, not zero
    padding: two in the small preset) carry what they did, and the embedding ignores
    the new positions until training gives them weight."""
    from drumtx.widen import extend_bands

    narrow = _trained_like("small")
    grown = extend_bands(narrow, N_MELS + 16).eval()
    feats = torch.randn(2, 40, N_MELS + 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        old = narrow.convs(narrow.input_norm(feats[..., :N_MELS].transpose(1, 2))
                           .transpose(1, 2).unsqueeze(1))  # fmt: skip
        new = grown.convs(grown.input_norm(feats.transpose(1, 2))
                          .transpose(1, 2).unsqueeze(1))  # fmt: skip
    n_old = old.shape[-1]
    assert new.shape[-1] == n_old + 1
    assert torch.allclose(old[..., :-2], new[..., : n_old - 2], atol=1e-5)
    assert not torch.allclose(old[..., -2:], new[..., n_old - 2 : n_old], atol=1e-3)
    channels = PRESETS["small"].blocks[-1][-1]
    weight = grown.embed[0].weight.reshape(-1, channels, n_old + 1)
    assert torch.equal(weight[:, :, :n_old].reshape(weight.shape[0], -1),
                       narrow.embed[0].weight)  # fmt: skip
    assert not weight[:, :, n_old:].any()
    norm = grown.input_norm
    assert torch.equal(norm.running_mean[:N_MELS], narrow.input_norm.running_mean)
    assert torch.equal(norm.running_mean[N_MELS:],
                       narrow.input_norm.running_mean[-1].expand(16))  # fmt: skip
    with pytest.raises(ValueError, match="shrink"):
        extend_bands(narrow, N_MELS - 16)


def test_widen_model_tool_grows_bands_at_a_higher_rate(tmp_path, capsys) -> None:
    """--bands N --sample-rate R writes a checkpoint whose frontend keeps the old
    bands (same window duration, f_max continuing the mel step) and whose network
    takes N bands; bands past the new Nyquist are refused with a hint."""
    from drumtx.frontend import mel_matrix

    cfg = load_config(None, ["model.preset='small'", f"frontend.n_mels={N_MELS}",
                             "frontend.f_max_hz=8000.0"])  # fmt: skip
    source = tmp_path / "small.pt"
    save_checkpoint(source, {"config": cfg.to_dict(), "vocab": "roland9",
                             "model": _trained_like("small").state_dict(),
                             "thresholds": {"SD": 0.6}})  # fmt: skip
    out = tmp_path / "high.pt"
    args = ["--checkpoint", str(source), "--out", str(out), "--bands", str(N_MELS + 16),
            "--sample-rate", "48000"]  # fmt: skip
    assert widen_model.main(args) == 0
    assert "audio.sample_rate=48000 frontend.n_fft=2048" in capsys.readouterr().out
    state = load_checkpoint(out)
    audio, fe = state["config"]["audio"], state["config"]["frontend"]
    shape = (audio["sample_rate"], fe["n_fft"], fe["n_mels"])
    assert shape == (48000, 2048, N_MELS + 16)
    assert state["config"]["model"]["preset"] == "small"
    old = mel_matrix(24000, 1024, N_MELS, 30.0, 8000.0)
    new = mel_matrix(48000, 2048, N_MELS + 16, 30.0, fe["f_max_hz"])
    assert np.allclose(new[:N_MELS, :513], old, rtol=1e-4, atol=1e-9)
    assert fe["f_max_hz"] > 8000.0
    grown_cfg = load_config(None, ["model.preset='small'",
                                   f"frontend.n_mels={N_MELS + 16}"])  # fmt: skip
    build_model(grown_cfg, N_CLASSES).load_state_dict(state["model"])

    too_high = tmp_path / "too-high.pt"
    args = ["--checkpoint", str(source), "--out", str(too_high), "--bands", "256"]
    assert widen_model.main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Nyquist" in err and "hint:" in err
    assert not too_high.exists()
