"""The GPU training path on the CPU: bf16 and fp16 autocast, the GradScaler, compile.

Everything here runs the same code a CUDA run does (drumtx.amp, drumtx.train_step);
only the device differs. The end-to-end runs train a few steps of the tiny model on the
session's made store, then resume.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from pipeline import tiny_config

from drumtx.amp import amp_dtype, autocast, make_scaler
from drumtx.checkpoint import load_checkpoint
from drumtx.config import load_config
from drumtx.frontend import n_frames
from drumtx.inference import load_model, transcribe_array
from drumtx.model import CRNN
from drumtx.processed import load_store, recording_audio
from drumtx.storage import resolve_roots
from drumtx.train import run_train
from drumtx.train_step import (
    accumulate_gradients,
    apply_gradients,
    build_parts,
    optimizer_step,
)

CPU = torch.device("cpu")
N_CLASSES = 9
STEPS = 12  # enough for the tiny model's loss to fall clearly
INF_AT_STEP = 1  # the fp16 run's step whose gradients are made infinite


def _losses(log_dir: Path) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return [e.value for e in acc.Scalars("train/loss")]


def _adam_steps(state: dict) -> set[float]:
    return {float(s["step"]) for s in state["optimizer"]["state"].values()}


def _root(made_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("amp")
    (root / "processed_data").symlink_to(made_store / "processed_data")
    return root


def _amp_config(root: Path, amp: str, max_steps: int, *extra: str):
    return tiny_config(
        root,
        f"train.amp='{amp}'",
        f"train.max_steps={max_steps}",
        f"train.eval_every={STEPS}",
        "train.lr=3e-3",
        "train.warmup_steps=2",
        "train.batch_size=4",
        "train.val_max_recordings=1",
        *extra,
    )


class ForwardSpy:
    """Records, for every CRNN forward: training mode, autocast dtype, output dtype."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[bool, torch.dtype | None, torch.dtype]] = []
        real = CRNN.forward

        def forward(model, feats):
            out = real(model, feats)
            enabled = torch.is_autocast_enabled("cpu")
            dtype = torch.get_autocast_dtype("cpu") if enabled else None
            self.calls.append((model.training, dtype, out[0].dtype))
            return out

        monkeypatch.setattr(CRNN, "forward", forward)

    def autocast_dtypes(self, training: bool) -> set[torch.dtype | None]:
        return {dtype for mode, dtype, _ in self.calls if mode == training}


class InfGrad(torch.autograd.Function):
    """Identity forward; backward turns the gradient into +inf (an fp16 overflow)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, math.inf)


def _inject_inf_grad(monkeypatch: pytest.MonkeyPatch, at_call: int) -> None:
    import drumtx.train_step as train_step

    real, calls = train_step.compute_loss, []

    def loss(logits, *args):
        calls.append(1)
        if len(calls) == at_call:
            logits = InfGrad.apply(logits)
        return real(logits, *args)

    monkeypatch.setattr(train_step, "compute_loss", loss)


def _record_scaler_at_first_unscale(monkeypatch: pytest.MonkeyPatch) -> list:
    """The GradScaler's (scale, growth tracker) when the first step after a resume
    starts."""
    seen: list[tuple[float, int]] = []
    real = torch.amp.GradScaler.unscale_

    def unscale_(scaler, optimizer):
        if not seen and scaler.is_enabled():
            seen.append((scaler.get_scale(), int(scaler._get_growth_tracker())))
        return real(scaler, optimizer)

    monkeypatch.setattr(torch.amp.GradScaler, "unscale_", unscale_)
    return seen


def _train_then_resume(
    root: Path, amp: str, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> dict:
    """STEPS steps, then a resume for 3 more; what each stage saved and saw."""
    spy = ForwardSpy(monkeypatch)
    first = _amp_config(root, amp, STEPS, *extra)
    assert run_train(first, run_name=amp, resume=None) == 0
    run_dir = root / "checkpoints" / amp
    saved = load_checkpoint(run_dir / "last.pt")
    monkeypatch.undo()  # no injected faults or spies in the resumed run
    seen = _record_scaler_at_first_unscale(monkeypatch)
    longer = _amp_config(root, amp, STEPS + 3, *extra)
    assert run_train(longer, run_name=amp, resume="auto") == 0
    monkeypatch.undo()
    return {
        "config": first,
        "spy": spy,
        "losses": _losses(root / "logs" / amp),
        "saved": saved,
        "scaler_after_resume": seen,
        "final": load_checkpoint(run_dir / "last.pt"),
        "best": run_dir / "best.pt",
    }


@pytest.fixture(scope="module")
def bf16_run(made_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _train_then_resume(
            _root(made_store, tmp_path_factory), "bf16", monkeypatch
        )


@pytest.fixture(scope="module")
def fp16_run(made_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """fp16 with an infinite gradient at step INF_AT_STEP and max_bad_steps=1."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _inject_inf_grad(monkeypatch, at_call=INF_AT_STEP + 1)
        return _train_then_resume(
            _root(made_store, tmp_path_factory),
            "fp16",
            monkeypatch,
            "train.max_bad_steps=1",
            "data.crop_sec=1.0",  # fp16 convolutions are slow on the CPU
            "train.batch_size=2",
        )


def _held_out_loss(cfg, weights: dict | None) -> float:
    """fp32 loss of the seeded initial model (None) or of ``weights`` on 16 fixed crops
    of the train split: a steadier yardstick than a few noisy training batches."""
    from drumtx.data import make_loader
    from drumtx.train_step import compute_loss

    cfg = replace(cfg, train=replace(cfg.train, batch_size=16, amp="off"))
    parts = build_parts(cfg, CPU, N_CLASSES)
    if weights is not None:
        parts.model.load_state_dict(weights)
    split = resolve_roots(cfg).processed_dir / "train"
    loader = make_loader(
        cfg, split, N_CLASSES, seed=999, rank=0, world_size=1, pin_memory=False
    )
    audio, onset, velocity, mask = next(iter(loader))
    torch.manual_seed(0)  # the same dropout masks for every model scored
    with torch.no_grad():
        logits, vel = parts.model(parts.frontend(audio))  # (B, T, C) each
        loss = compute_loss(logits, vel, onset, velocity, mask, parts.pos_weight, cfg)
    return float(loss)


def _assert_loss_falls(run: dict) -> None:
    losses = run["losses"]
    assert len(losses) >= run["saved"]["step"] and all(map(math.isfinite, losses))
    before = _held_out_loss(run["config"], None)
    after = _held_out_loss(run["config"], run["saved"]["model"])
    assert after < 0.8 * before, (before, after)


# --- the dtype choice -----------------------------------------------------------------


def test_amp_modes_pick_dtypes_and_auto_stays_off_on_cpu():
    assert amp_dtype("auto", CPU) is None
    assert amp_dtype("off", CPU) is None
    assert amp_dtype("bf16", CPU) == torch.bfloat16
    assert amp_dtype("fp16", CPU) == torch.float16
    assert make_scaler(CPU, torch.float16).is_enabled()
    assert not make_scaler(CPU, torch.bfloat16).is_enabled()
    with autocast(CPU, torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
    with autocast(CPU, None):
        assert not torch.is_autocast_enabled("cpu")


# --- bf16 and fp16 end to end ---------------------------------------------------------


def test_bf16_trains_validates_and_resumes_in_bf16(bf16_run: dict):
    _assert_loss_falls(bf16_run)
    spy = bf16_run["spy"]
    assert spy.autocast_dtypes(training=True) == {torch.bfloat16}
    # Validation honours train.amp: the eval-mode forwards ran under bf16 too.
    assert spy.autocast_dtypes(training=False) == {torch.bfloat16}
    assert bf16_run["saved"]["scaler"] == {}  # bf16 needs no loss scaling
    assert _adam_steps(bf16_run["final"]) == {float(STEPS + 3)}


def test_fp16_skips_an_overflowed_step_without_calling_it_bad(fp16_run: dict):
    _assert_loss_falls(fp16_run)
    saved = fp16_run["saved"]
    scale = saved["scaler"]["scale"]
    # The injected step (and any natural overflow) halved the scale and was skipped by
    # the scaler; with max_bad_steps=1 a skip counted as bad would have stopped the run.
    n_skipped = round(math.log2(65536.0 / scale))
    assert n_skipped >= 1
    assert saved["step"] == STEPS
    assert _adam_steps(saved) == {float(STEPS - n_skipped)}


def test_fp16_resume_restores_the_scale_and_growth_tracker(fp16_run: dict):
    saved = fp16_run["saved"]["scaler"]
    assert saved["_growth_tracker"] > 0 and saved["scale"] < 65536.0
    assert fp16_run["scaler_after_resume"] == [
        (saved["scale"], saved["_growth_tracker"])
    ]
    final = fp16_run["final"]
    assert final["step"] == STEPS + 3
    assert final["scaler"]["_growth_tracker"] == saved["_growth_tracker"] + 3


def test_a_checkpoint_trained_under_amp_transcribes_in_fp32(
    fp16_run: dict, made_store: Path, monkeypatch
):
    # The saved weights are fp32 masters; only transcribe.cpu_precision may put the
    # convolutions (never the GRU or heads) in bf16.
    root = f"storage.data_root='{made_store}'"
    cfg = load_config(None, [root, "transcribe.cpu_precision=bf16"])
    loaded = load_model(fp16_run["best"], cfg, CPU)
    outside_convs = {
        p.dtype for name, p in loaded.model.named_parameters() if "convs" not in name
    }
    assert outside_convs == {torch.float32}
    cfg = load_config(None, [root, "transcribe.cpu_precision=fp32"])
    loaded = load_model(fp16_run["best"], cfg, CPU)
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}
    store = load_store(made_store / "processed_data" / "test")
    spy = ForwardSpy(monkeypatch)
    audio = recording_audio(store, 0)
    transcribe_array(loaded, audio, [0.5] * N_CLASSES)
    assert spy.calls and {(dtype, out) for _, dtype, out in spy.calls} == {
        (None, torch.float32)
    }


# --- the optimizer step ---------------------------------------------------------------


def _parts(amp: str, *extra: str):
    torch.set_num_threads(1)  # as train.cpu_threads=1 in the runs: steadier when shared
    cfg = load_config(
        None,
        [
            "model.preset='tiny'",
            "model.dropout=0.0",
            "train.device='cpu'",
            f"train.amp='{amp}'",
            *extra,
        ],
    )
    return build_parts(cfg, CPU, N_CLASSES)


def _batch(cfg, batch: int, onsets_per_crop: int = 4, seed: int = 0):
    """Noise crops whose targets have the same number of onsets in every crop, so each
    micro-batch's velocity loss is normalised by the same onset count."""
    gen = torch.Generator().manual_seed(seed)
    n_samples = cfg.audio.sample_rate // 2  # 0.5 s
    n_t = n_frames(n_samples, cfg.hop_length)
    audio = 0.1 * torch.randn(batch, n_samples, generator=gen)  # (B, N)
    onset = torch.zeros(batch, n_t, N_CLASSES)  # (B, T, C)
    for b in range(batch):
        cells = torch.randperm(n_t * N_CLASSES, generator=gen)[:onsets_per_crop]
        onset[b].view(-1)[cells] = 1.0
    velocity = onset * torch.rand(onset.shape, generator=gen)
    return audio, onset, velocity, onset.clone()


def _weights(parts) -> list[torch.Tensor]:
    return [p.detach().clone() for p in parts.model.parameters()]


def _flat_grad(parts) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in parts.model.parameters()])


@pytest.mark.parametrize("amp,rel_tol", [("off", 1e-5), ("bf16", 3e-2), ("fp16", 3e-2)])
def test_four_micro_steps_give_the_gradient_of_one_4x_batch(amp: str, rel_tol: float):
    # BatchNorm in training mode normalises by batch statistics, so no accumulation can
    # equal a bigger batch there; in eval mode every crop is independent and it must.
    # A missing 1/accum_steps would be off by 300 %, a lost micro-step by 25 % or more.
    parts = _parts(amp)
    parts.model.eval()
    big = _batch(parts.cfg, 8)
    whole_loss = accumulate_gradients(parts, lambda: big, accum_steps=1)
    whole = _flat_grad(parts)
    parts.optimizer.zero_grad(set_to_none=True)
    micro = iter(zip(*(t.split(2) for t in big)))
    loss = accumulate_gradients(parts, lambda: next(micro), accum_steps=4)
    assert torch.allclose(loss, whole_loss, rtol=rel_tol)
    assert (_flat_grad(parts) - whole).norm() / whole.norm() < rel_tol


def test_an_inf_gradient_under_fp16_is_skipped_not_bad():
    parts = _parts("fp16")
    batch = _batch(parts.cfg, 2)
    before = _weights(parts)
    handles = [
        p.register_hook(lambda g: g * math.inf) for p in parts.model.parameters()
    ]
    result = optimizer_step(parts, lambda: batch, lr=1e-3)
    assert not result.bad and not result.applied
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(parts)))
    assert parts.scaler.get_scale() == 32768.0
    for handle in handles:
        handle.remove()
    result = optimizer_step(parts, lambda: batch, lr=1e-3)
    assert not result.bad and result.applied
    assert not all(torch.equal(a, b) for a, b in zip(before, _weights(parts)))


def test_gradients_that_overflow_at_any_scale_are_bad_under_fp16():
    parts = _parts("fp16")
    batch = _batch(parts.cfg, 2)
    parts.scaler.load_state_dict({**parts.scaler.state_dict(), "scale": 0.5})
    for p in parts.model.parameters():
        p.register_hook(lambda g: g * math.inf)
    assert optimizer_step(parts, lambda: batch, lr=1e-3).bad


def test_a_nan_loss_in_fp32_is_bad_and_moves_nothing():
    parts = _parts("off")
    audio, onset, velocity, mask = _batch(parts.cfg, 2)
    before = _weights(parts)
    loss = accumulate_gradients(
        parts, lambda: (audio * math.nan, onset, velocity, mask), accum_steps=1
    )
    result = apply_gradients(parts, loss)
    assert result.bad and not result.applied
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(parts)))


# --- torch.compile --------------------------------------------------------------------


COMPILE_STEPS = 8


@pytest.mark.slow
def test_compile_with_channels_last_matches_eager_then_trains_and_resumes(
    made_store: Path, tmp_path: Path
):
    # The shapes and settings of the run below, so inductor's cache serves it (the
    # compile itself is most of this test's minute).
    overrides = ("train.compile=true", "train.channels_last=true", "model.dropout=0.0")
    root = tmp_path / "root"
    root.mkdir()
    (root / "processed_data").symlink_to(made_store / "processed_data")
    cfg = _amp_config(root, "off", COMPILE_STEPS, *overrides)
    torch.set_num_threads(cfg.train.cpu_threads)  # part of inductor's cache key
    parts = build_parts(cfg, CPU, N_CLASSES)
    n_samples = int(cfg.data.crop_sec * cfg.audio.sample_rate)
    gen = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(cfg.train.batch_size, n_samples, generator=gen)
    feats = parts.frontend(audio)  # (B, T, n_mels)
    outputs, grads = [], []
    for net in (parts.model, parts.model.compiled()):
        logits, velocity = net(feats)  # (B, T, C) each
        (logits.mean() + velocity.mean()).backward()
        outputs.append((logits.detach(), velocity.detach()))
        grads.append(_flat_grad(parts))
        parts.optimizer.zero_grad(set_to_none=True)
    for eager, compiled in zip(*outputs):
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    assert (grads[1] - grads[0]).norm() / grads[0].norm() < 1e-4

    assert run_train(cfg, run_name="c", resume=None) == 0
    saved = load_checkpoint(root / "checkpoints" / "c" / "last.pt")
    losses = _losses(root / "logs" / "c")
    _assert_loss_falls({"config": cfg, "losses": losses, "saved": saved})
    assert not any(k.startswith("_orig_mod") for k in saved["model"])  # plain weights
    longer = _amp_config(root, "off", COMPILE_STEPS + 1, *overrides)
    assert run_train(longer, run_name="c", resume="auto") == 0
    final = load_checkpoint(root / "checkpoints" / "c" / "last.pt")
    assert _adam_steps(final) == {float(COMPILE_STEPS + 1)}
