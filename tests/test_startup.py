"""Start-up cost: transcribing a file imports only what transcription uses.

``python -X importtime`` showed torch._dynamo (from a decorator in model.py) at about
1 s, scipy.signal at 0.6-1 s and scipy.stats (through mir_eval) at 0.85 s, each paid by
every ``drumtx transcribe`` before any audio was read. They must not come back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

HEAVY = (
    "torch._dynamo",
    "torch._inductor",
    "scipy",
    "mir_eval",
    "tensorboard",
    "torch.utils.tensorboard",
    "matplotlib",
    "sympy",
)
PROBE = """
import json, sys
from drumtx.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [m for m in %r if m in sys.modules]}))
"""


def test_transcribe_imports_no_heavy_module(tmp_path: Path) -> None:
    sr = 44100
    t = np.arange(sr * 2) / sr
    clicks = np.sin(2 * np.pi * 180 * t) * np.exp(-(t % 0.25) * 40)
    wav = tmp_path / "song.wav"
    sf.write(wav, np.stack([clicks, clicks], axis=1).astype(np.float32), sr)
    args = ["transcribe", str(wav), "--no-progress", "-f", "mid,csv,json"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    assert (tmp_path / "song.drums.mid").is_file()
    assert report["loaded"] == [], f"heavy modules on the transcribe path: {report}"


def test_importing_transcribe_imports_no_heavy_module() -> None:
    code = (
        "import sys, drumtx.transcribe, drumtx.inference, drumtx.audio; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
