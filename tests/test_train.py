"""The training loop on CPU: loss falls, resume continues, crashes lose nothing, DDP."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from pipeline import tiny_config

from drumtx.checkpoint import load_checkpoint
from drumtx.errors import ConfigError, DrumtxError
from drumtx.train import lr_at, run_train

REPO = Path(__file__).resolve().parents[1]


def _scalars(log_dir: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return [e.value for e in acc.Scalars(tag)]


@pytest.fixture
def data_root(made_store: Path, tmp_path: Path) -> Path:
    """A private data root sharing the session's (read-only) processed store."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "processed_data").symlink_to(made_store / "processed_data")
    return root


def test_lr_schedule_warms_up_then_decays():
    cfg = tiny_config(
        Path("/nonexistent"), "train.max_steps=100", "train.warmup_steps=10"
    )
    lrs = [lr_at(s, cfg) for s in range(101)]
    assert lrs[0] < lrs[5] < lrs[9] == pytest.approx(cfg.train.lr)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[100] == pytest.approx(cfg.train.min_lr)


def test_tiny_model_loss_falls_and_logs(data_root: Path):
    cfg = tiny_config(
        data_root,
        "train.max_steps=40",
        "train.eval_every=40",
        "train.lr=3e-3",
        "train.warmup_steps=5",
    )
    assert run_train(cfg, run_name="t", resume=None) == 0
    losses = _scalars(data_root / "logs" / "t", "train/loss")
    assert len(losses) >= 30
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:3]) / 3
    for tag in (
        "train/lr",
        "train/grad_norm",
        "train/audio_hours_per_sec",
        "train/data_wait_fraction",
        "val/f1",
        "val/f1/KD",
    ):
        assert _scalars(data_root / "logs" / "t", tag), tag
    run_dir = data_root / "checkpoints" / "t"
    assert {"last.pt", "best.pt", "step-000040.pt"} <= {
        p.name for p in run_dir.iterdir()
    }
    best = load_checkpoint(run_dir / "best.pt")
    assert "optimizer" not in best and best["config"]["model"]["preset"] == "tiny"


def test_existing_run_needs_resume(data_root: Path):
    cfg = tiny_config(data_root, "train.max_steps=1")
    assert run_train(cfg, run_name="r", resume=None) == 0
    with pytest.raises(ConfigError, match="already has checkpoints") as info:
        run_train(cfg, run_name="r", resume=None)
    assert "--resume auto" in info.value.hint


def test_non_finite_loss_stops_with_the_step(data_root: Path, monkeypatch):
    import drumtx.train as train_module

    monkeypatch.setattr(
        train_module,
        "compute_loss",
        lambda *a, **k: torch.tensor(float("nan"), requires_grad=True),
    )
    cfg = tiny_config(data_root, "train.max_bad_steps=3", "train.max_steps=10")
    with pytest.raises(DrumtxError, match=r"not finite for 3 steps.*step 2"):
        run_train(cfg, run_name="nan", resume=None)


def _train_cmd(data_root: Path, *extra: str) -> list[str]:
    sets = []
    for item in [
        "model.preset='tiny'",
        "data.crop_sec=3.0",
        "data.num_workers=0",
        "data.block_mb=1.0",
        "data.shuffle_blocks=2",
        "train.device='cpu'",
        "train.batch_size=4",
        "train.warmup_steps=2",
        "train.log_every=1",
        "train.val_max_recordings=1",
        *extra,
    ]:
        sets += ["--set", item]
    return ["-m", "drumtx", "train", "--data-root", str(data_root), *sets]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_sigkill_after_checkpoint_then_resume_continues(data_root: Path):
    cmd = [
        sys.executable,
        *_train_cmd(data_root, "train.max_steps=1000", "train.eval_every=3"),
    ]
    proc = subprocess.Popen(
        cmd + ["--run", "k"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run_dir = data_root / "checkpoints" / "k"
    _wait_for(run_dir / "step-000003.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Whatever the moment of the kill, every checkpoint on disk loads.
    saved = {p.name: load_checkpoint(p) for p in run_dir.glob("*.pt")}
    assert "last.pt" in saved
    killed_step = saved["last.pt"]["step"]
    assert killed_step >= 3 and killed_step % 3 == 0
    resumed = subprocess.run(
        [
            sys.executable,
            *_train_cmd(
                data_root, f"train.max_steps={killed_step + 3}", "train.eval_every=3"
            ),
            "--run",
            "k",
            "--resume",
            "auto",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed from {run_dir / 'last.pt'} at step {killed_step}" in resumed.stdout
    final = load_checkpoint(run_dir / "last.pt")
    assert final["step"] == killed_step + 3
    # AdamW counts its own steps: continuity proves the optimizer state was restored.
    adam_steps = {float(s["step"]) for s in final["optimizer"]["state"].values()}
    assert adam_steps == {float(killed_step + 3)}


def test_ctrl_c_saves_and_exits_130(data_root: Path):
    cmd = [
        sys.executable,
        *_train_cmd(data_root, "train.max_steps=100000", "train.eval_every=100000"),
        "--run",
        "c",
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    _wait_for(data_root / "logs" / "c" / "config.json", proc)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    state = load_checkpoint(data_root / "checkpoints" / "c" / "last.pt")
    assert state["step"] >= 0 and "interrupted at step" in out


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_torchrun_two_cpu_ranks(data_root: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        *_train_cmd(data_root, "train.max_steps=4", "train.eval_every=2")[0:],
        "--run-name",
        "ddp",
    ]
    result = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    sums = {
        line.split()[1]: line.split()[-1]
        for line in out.splitlines()
        if line.startswith("rank ") and "first batch checksum" in line
    }
    assert set(sums) == {"0:", "1:"}, out
    assert sums["0:"] != sums["1:"]  # rank-seeded crops
    events = list((data_root / "logs" / "ddp").glob("events.out.tfevents.*"))
    assert len(events) == 1  # rank 0 alone logs
    assert load_checkpoint(data_root / "checkpoints" / "ddp" / "last.pt")["step"] == 4
    assert out.count("checkpoints: ") == 1  # rank 0 alone reports
    shutil.rmtree(data_root / "checkpoints" / "ddp")
