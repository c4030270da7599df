"""``drumtx demo``: the whole path on a fresh machine, with no dataset and no GPU.

make-dataset (generated grooves through synthesised kits) -> doctor -> preprocess ->
train the tiny model on the CPU for a few minutes -> evaluate on the test split ->
transcribe a held-out clip. Everything lands under one self-contained data root with the
same layout as the HDD one; rerunning reuses whatever is already there.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console

from drumtx.config import Config, config_from_dict
from drumtx.console import make_console
from drumtx.doctor import run_doctor
from drumtx.egmd import egmd_csv_path, read_egmd_csv
from drumtx.errors import DrumtxError
from drumtx.evaluate import run_evaluate
from drumtx.make_dataset import make_dataset
from drumtx.preprocess import run_preprocess
from drumtx.storage import Roots, resolve_roots
from drumtx.train import run_train
from drumtx.transcribe import TranscribeOptions, run_transcribe

DEMO_KITS = ["synth:1", "synth:2", "synth:3", "synth:4", "synth:5", "synth:6"]
DEMO_PERFORMANCES = 40  # generated grooves; each is rendered through every kit
DEMO_RUN = "demo"
DEMO_MODEL = "drumtx demo: the model it just trained"


def demo_config(cfg: Config, demo_dir: Path, minutes: float) -> Config:
    """The user's config with a self-contained data root and a CPU-sized model."""
    tables = cfg.to_dict()
    tables["storage"] = {"data_root": str(demo_dir.resolve())}
    tables["model"] = {**tables["model"], "preset": "tiny"}
    tables["data"] = {
        **tables["data"],
        "max_recordings": 0,
        "crop_sec": 4.0,
        "num_workers": 1,
        "block_mb": 2.0,
        "crops_per_block": 8,
        "shuffle_blocks": 4,
    }
    tables["train"] = {
        **tables["train"],
        "device": "cpu",
        "batch_size": 16,
        "max_steps": 100_000,
        "warmup_steps": 50,
        "lr": 3e-3,
        "eval_every": 250,
        "log_every": 25,
        "val_max_recordings": 12,
        "time_limit_min": minutes,
        "keep_checkpoints": 1,
        "cpu_threads": 1,  # the loader worker takes the other core
    }
    tables["transcribe"] = {**tables["transcribe"], "device": "cpu"}
    return config_from_dict(tables)


def run_demo(
    cfg: Config, *, demo_dir: Path, minutes: float, config_path: Path | None = None
) -> int:
    """The whole path on ``cfg`` (read from ``config_path``, for doctor's line) with
    the demo's own data root, model size and CPU settings over it."""
    console = make_console()
    t0 = time.monotonic()
    cfg = demo_config(cfg, demo_dir, minutes)
    roots = resolve_roots(cfg)
    demo_dir.mkdir(parents=True, exist_ok=True)
    _make_store(cfg, roots, demo_dir, console, config_path)

    _stage(console, 4, f"train the tiny model on the CPU (about {minutes:g} min)")
    best = roots.checkpoint_dir / DEMO_RUN / "best.pt"
    if best.exists():
        console.print(f"reusing {best} (delete {best.parent} to retrain)")
    else:
        _train(cfg, console)

    _stage(
        console, 5, "evaluate on the test split (tune thresholds on validation first)"
    )
    run_evaluate(
        cfg,
        checkpoint=best,
        split="test",
        as_json=False,
        tune_thresholds=True,
        limit=None,
        device="cpu",
        named_by=DEMO_MODEL,
    )

    _stage(console, 6, "transcribe a held-out clip (test split, never trained on)")
    clip, out = _transcribe_clip(cfg, roots, best, demo_dir)
    console.print(f"\ndemo finished in {(time.monotonic() - t0) / 60:.1f} min")
    console.print(f"  dataset:      {roots.egmd_dir}")
    console.print(f"  store:        {roots.processed_dir}")
    console.print(f"  model:        {best}")
    console.print(
        f"  logs:         {roots.log_dir / DEMO_RUN}  "
        f"(tensorboard --logdir {roots.log_dir})"
    )
    console.print(f"  transcribed:  {clip} -> {out}")
    return 0


def _make_store(
    cfg: Config,
    roots: Roots,
    demo_dir: Path,
    console: Console,
    config_path: Path | None,
) -> None:
    """Stages 1-3: a made dataset, doctor, and its processed store."""
    _stage(console, 1, "make a dataset: generated grooves through 6 synthesised kits")
    if not egmd_csv_path(roots.egmd_dir).exists():
        make_dataset(
            demo_dir,
            midi_dir=None,
            kits=DEMO_KITS,
            limit=DEMO_PERFORMANCES,
            seed=0,
            max_sec=30.0,
        )
    else:
        console.print(f"reusing {roots.egmd_dir}")

    _stage(console, 2, "doctor")
    run_doctor(
        cfg,
        config_path=config_path,
        deep=False,
        as_json=False,
        overrides=f"the demo's settings over it (tiny model, data root {demo_dir})",
    )

    _stage(console, 3, "preprocess")
    status = run_preprocess(
        cfg,
        splits=["train", "validation", "test"],
        limit=None,
        workers=2,
        allow_skips=True,
    )
    if status != 0:
        raise DrumtxError("preprocess failed in the demo", hint="see the lines above")


def _stage(console: Console, number: int, title: str) -> None:
    console.rule(f"[bold]{number}/6 {title}")


def _train(cfg: Config, console: Console) -> None:
    run_dir = resolve_roots(cfg).checkpoint_dir / DEMO_RUN
    resume = "auto" if (run_dir / "last.pt").exists() else None
    status = run_train(cfg, run_name=DEMO_RUN, resume=resume)
    if status != 0:
        raise DrumtxError(f"training stopped with exit code {status}")


def _transcribe_clip(
    cfg: Config, roots: Roots, best: Path, demo_dir: Path
) -> tuple[Path, Path]:
    """Copy the first test-split recording out and transcribe it like a user would."""
    test = [
        r for r in read_egmd_csv(egmd_csv_path(roots.egmd_dir)) if r.split == "test"
    ]
    if not test:
        raise DrumtxError("the demo dataset has no test split recording")
    out_dir = demo_dir / "transcriptions"
    out_dir.mkdir(exist_ok=True)
    clip = out_dir / Path(test[0].audio_filename).name
    shutil.copyfile(roots.egmd_dir / test[0].audio_filename, clip)
    opts = TranscribeOptions(
        inputs=(clip,),
        checkpoint=best,  # never the default (the shipped model): the demo's own
        checkpoint_from=DEMO_MODEL,
        formats="all",
        overwrite=True,
        progress=False,
    )
    if run_transcribe(cfg, opts) != 0:
        raise DrumtxError(f"transcribing {clip} failed", hint="see the lines above")
    return clip, clip.with_name(clip.stem + ".drums.mid")
