"""Shared fixtures: synthetic data in tmp_path, nothing downloaded. Keep them generic.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

# Written out here, not imported from drumtx.egmd, so the reader is tested against it.
EGMD_HEADER = [
    "drummer",
    "session",
    "id",
    "style",
    "bpm",
    "beat_type",
    "time_signature",
    "duration",
    "split",
    "midi_filename",
    "audio_filename",
    "kit_name",
]
EGMD_SAMPLE_RATE = 44100  # E-GMD audio: 44.1 kHz 16-bit mono WAV


def write_click_wav(
    path: Path,
    onsets_sec: Sequence[float],
    duration_sec: float = 1.0,
    sample_rate: int = EGMD_SAMPLE_RATE,
    channels: int = 1,
    subtype: str = "PCM_16",
) -> Path:
    """A WAV of short decaying noise bursts starting at onsets_sec."""
    rng = np.random.default_rng(0)
    audio = np.zeros(round(duration_sec * sample_rate), dtype=np.float32)  # (N,)
    burst = rng.uniform(-0.5, 0.5, int(0.02 * sample_rate)).astype(np.float32)
    burst *= np.exp(-np.linspace(0.0, 6.0, burst.size, dtype=np.float32))
    for onset_sec in onsets_sec:
        start = round(onset_sec * sample_rate)
        chunk = audio[start : start + burst.size]
        chunk += burst[: chunk.size]
    frames = np.repeat(audio[:, None], channels, axis=1)  # (N, channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, frames, sample_rate, subtype=subtype)
    return path


def write_drum_midi(
    path: Path, notes: Sequence[tuple[float, int, int]], bpm: float = 120.0
) -> Path:
    """A type-1 MIDI file with (time_sec, pitch, velocity) notes on channel index 9."""
    ticks_per_beat = 480
    ticks_per_sec = ticks_per_beat * bpm / 60.0
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))])
    events = []
    for time_sec, pitch, velocity in notes:
        on = round(time_sec * ticks_per_sec)
        events.append(
            (on, mido.Message("note_on", channel=9, note=pitch, velocity=velocity))
        )
        events.append((on + 24, mido.Message("note_off", channel=9, note=pitch)))
    now = 0
    for tick, message in sorted(events, key=lambda e: e[0]):
        track.append(message.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(path)
    return path


def make_egmd_root(
    data_root: Path, splits: Sequence[str] = ("train", "validation", "test")
) -> Path:
    """An E-GMD-shaped tree under data_root/e-gmd-v1.0.0: one 1 s recording per split.

    Each recording has a kick at 0.1 s, a snare at 0.5 s and a closed hi-hat at 0.1 s
    and 0.5 s (E-GMD pitches 36, 38, 42). Returns the E-GMD dir.
    """
    egmd_dir = data_root / "e-gmd-v1.0.0"
    notes = [(0.1, 36, 100), (0.1, 42, 80), (0.5, 38, 110), (0.5, 42, 70)]
    rows = []
    for n, split in enumerate(splits, start=1):
        stem = f"drummer1/session1/{n}_rock_120_beat_4-4_{n}"
        write_click_wav(egmd_dir / f"{stem}.wav", [0.1, 0.5])
        write_drum_midi(egmd_dir / f"{stem}.midi", notes)
        rows.append(
            {
                "drummer": "drummer1",
                "session": "drummer1/session1",
                "id": f"drummer1/session1/{n}",
                "style": "rock",
                "bpm": 120,
                "beat_type": "beat",
                "time_signature": "4-4",
                "duration": 1.0,
                "split": split,
                "midi_filename": f"{stem}.midi",
                "audio_filename": f"{stem}.wav",
                "kit_name": "Acoustic Kit",
            }
        )
    csv_path = egmd_dir / "e-gmd-v1.0.0.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=EGMD_HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return egmd_dir


@pytest.fixture
def egmd_data_root(tmp_path: Path) -> Path:
    """A data root holding a tiny E-GMD (3 recordings) plus empty
    checkpoints/ and logs/.
    """
    data_root = tmp_path / "data"
    make_egmd_root(data_root)
    (data_root / "checkpoints").mkdir()
    (data_root / "logs").mkdir()
    return data_root


@pytest.fixture
def click_wav() -> Callable[..., Path]:
    """write_click_wav(path, onsets_sec, duration_sec, sample_rate, channels, subtype).
    """
    return write_click_wav


@pytest.fixture
def config_for() -> Callable[..., object]:
    """config_for(data_root, *overrides) -> Config with storage.data_root set."""
    from drumtx.config import load_config

    def build(data_root: Path, *overrides: str):
        return load_config(None, [f"storage.data_root='{data_root}'", *overrides])

    return build


@pytest.fixture(autouse=True)
def _no_data_root_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DRUMTX_DATA_ROOT in the developer's shell must not leak into tests."""
    monkeypatch.delenv("DRUMTX_DATA_ROOT", raising=False)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny ops run fastest on one thread, and 2 OpenMP threads stall on a busy CPU."""
    from drumtx.threads import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def made_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with a made dataset (generated grooves, 4 synth kits) preprocessed.

    Session-scoped and read-only by convention: tests that write copy what they need.
    """
    from pipeline import build_store

    data_root = tmp_path_factory.mktemp("made")
    build_store(data_root)
    return data_root


@pytest.fixture(scope="session")
def trained_tiny(made_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a tiny model trained briefly on the made store (synth kits 1-4)."""
    from pipeline import TRAINED_CROP_SEC, TRAINED_STEPS, tiny_config

    from drumtx.train import run_train

    root = tmp_path_factory.mktemp("trained")
    (root / "processed_data").symlink_to(made_store / "processed_data")
    cfg = tiny_config(
        root,
        f"train.max_steps={TRAINED_STEPS}",
        f"train.eval_every={TRAINED_STEPS}",
        f"data.crop_sec={TRAINED_CROP_SEC}",
        "train.log_every=50",
        "train.lr=4e-3",
        "train.warmup_steps=20",
        "data.eq_prob=0.0",
        "data.reverb_prob=0.0",
        "data.noise_prob=0.0",
    )
    assert run_train(cfg, run_name="tiny", resume=None) == 0
    return root / "checkpoints" / "tiny" / "best.pt"


def save_random_model(path: Path, overrides: Sequence[str] = ()) -> Path:
    """A tiny model with random weights, its config ``overrides`` applied, at ``path``.
    """
    import torch

    from drumtx.checkpoint import save_checkpoint
    from drumtx.config import load_config
    from drumtx.model import build_model

    cfg = load_config(None, ["model.preset='tiny'", *overrides])
    torch.manual_seed(0)
    model = build_model(cfg, 9)
    save_checkpoint(
        path, {"config": cfg.to_dict(), "vocab": "roland9", "model": model.state_dict()}
    )
    return path


@pytest.fixture(scope="session")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reserved tiny model with random weights: shapes and plumbing, not accuracy."""
    return save_random_model(tmp_path_factory.mktemp("model") / "random.pt")


@pytest.fixture(scope="session")
def random_model_48k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """random_model at audio.sample_rate = 48000 (as tools/widen_model.py
    --sample-rate 48000 makes them): whoever feeds it audio must feed it 48 kHz."""
    path = tmp_path_factory.mktemp("model") / "random-48k.pt"
    return save_random_model(path, ["audio.sample_rate=48000"])


# --- which CPU path the suite takes --------------------------------------------------
# transcribe.cpu_precision = "auto" runs the conv stack in bf16 where the CPU has bf16
# units (AMX or AVX512-BF16) and in fp32 elsewhere. `pytest --cpu-bf16=absent` runs
# every test as on a CPU without them (subprocesses included, through the environment).


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cpu-bf16",
        choices=("detect", "absent", "present"),
        default="detect",
        help="what transcribe.cpu_precision=auto assumes of this CPU's bf16 units "
        "(default: detect them; 'absent' simulates a CPU without bf16 units)",
    )


def pytest_configure(config: pytest.Config) -> None:
    import os

    choice = config.getoption("--cpu-bf16")
    if choice != "detect":
        os.environ["DRUMTX_CPU_BF16"] = "1" if choice == "present" else "0"
    _share_the_cores(os.environ.get("PYTEST_XDIST_WORKER_COUNT"))


def _share_the_cores(workers: str | None) -> None:
    """Under `pytest -n N`, each worker gets its share of the cores, not all of them.

    N processes each running torch's pool on every core stall one another at every
    parallel region (each waits for a thread another process has descheduled: README,
    *On a busy CPU*). Subprocesses the tests start inherit the cap through
    OMP_NUM_THREADS; tests that set a thread count themselves still do.
    """
    import os

    if not workers:
        return
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    threads = max(1, (cores or os.cpu_count() or 1) // int(workers))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def pytest_report_header(config: pytest.Config) -> str:
    from drumtx.model import native_bf16_cpu

    path = "bf16 convolutions" if native_bf16_cpu() else "fp32 convolutions"
    how = config.getoption("--cpu-bf16")
    return f"drumtx CPU inference path (cpu_precision=auto): {path} (--cpu-bf16={how})"
