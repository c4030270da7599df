"""tools/gpu_check.py: its --smoke run on the CPU makes a store, runs every section and
writes the JSON a GPU session would bring back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("fixed_batch", "frontend", "train_loop", "loader", "transcribe")


def run_gpu_check(
    *argv: str, env_out: Path | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    if env_out is not None:
        env["OUT"] = str(env_out)
    return subprocess.run(
        [sys.executable, "tools/gpu_check.py", "--smoke", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_gpu_check_smoke_writes_every_section_to_out(tmp_path: Path) -> None:
    result = run_gpu_check("--device", "cpu", env_out=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout
    for title in (*SECTIONS, "throughput (audio-hours/s)"):
        assert title in result.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())  # $OUT's default
    assert report["failures"] == []
    assert {"bf16", "fp16"} <= set(report["fixed_batch"])
    assert report["fixed_batch"]["fp16"]["scale"] > 0  # the GradScaler was on
    assert report["frontend"]["device_vs_numpy"]["rel_l2"] < 1e-3
    for amp in ("bf16", "fp16"):
        loop = report["train_loop"][amp]
        assert loop["exit_codes"] == [0, 0] and loop["step"] == 4
    assert report["train_loop"]["fp16"]["scaler"]["scale"] > 0
    loader = report["loader"]["workers=0 ram"]
    assert 0.0 <= loader["data_wait_fraction"] <= 1.0
    assert loader["audio_hours_per_sec"] > 0
    assert report["transcribe"]["audio_hours_per_sec"] > 0
    rates = {name: r["audio_hours_per_sec"] for name, r in report["throughput"].items()}
    assert set(rates) == {
        f"tiny/{amp}/eager{cl}"
        for amp in ("bf16", "fp32")
        for cl in ("", "+channels_last")
    }
    assert all(rate > 0 for rate in rates.values())


def _tool():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    return gpu_check


def test_gpu_check_orders_the_telling_variants_first_and_budgets_the_rest() -> None:
    gpu_check = _tool()
    args = gpu_check.parse_args([])
    todo = gpu_check.variants(args)
    assert todo[:2] == [("base", "bf16", False, False), ("base", "bf16", True, True)]
    assert len(todo) == len(set(todo)) == 3 * 2 * 4  # presets x amps x 4 kinds
    args.t_start, args.budget_sec = 0.0, 0.0  # long past: nothing may start
    out = gpu_check.check_throughput(args, Path("/nonexistent"), None, todo)
    assert all("skipped" in r for r in out.values()) and len(out) == len(todo)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_check_smoke_on_cuda(tmp_path: Path) -> None:
    result = run_gpu_check("--device", "cuda", "--out", str(tmp_path / "gpu.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout
