"""Train the default model that ships with drumtx, end to end, and write its model card.

    python tools/train_default_model.py --gmd ../shared/data/gmd/groove \
        --songs ../shared/data/songs --work /data/dm [--minutes 150] [--preset small]

1. Render the GMD train and validation splits through the training kits (Hydrogen
   kits, synthesised kits, General MIDI SoundFont drum kits and virtual kits mixing
   them), three kits per performance, most of them recorded in a random studio.
2. Render the GMD test split through held-out kits only (two Hydrogen kits and the
   drum kit of a SoundFont held out whole) into a separate root.
3. Preprocess both roots, with backing tracks: the training root's from two General
   MIDI banks, drumtx's own instruments and the shared songs' parts; the held-out
   root's from the held-out SoundFont's instruments alone, so the reported numbers
   are on performances, kits *and* backing instruments the model never heard.
4. Train (time-limited); tune per-class thresholds on validation (drums alone and
   mixed); evaluate on the held-out root, drums alone and mixed at +6 and 0 dB.
5. Export the weights (no optimizer state) to drumtx/models/default.pt and the held-out
   results to drumtx/models/default.json, which `transcribe --list-models` shows.

Every step reuses what an earlier run left, so the script can be rerun after a stop
(training continues with --resume auto).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from drumtx.config import PRESETS

REPO = Path(__file__).resolve().parents[1]
SF2 = Path("/usr/share/sounds/sf2")
HELD_OUT_KITS = ["ColomboAcousticDrumkit", "The Black Pearl 1.0", "sf:sf_GMbank:0"]
HELD_OUT_SOUNDFONT = SF2 / "sf_GMbank.sf2"  # drums and instruments: never trained on
TRAIN_SOUNDFONTS = [SF2 / "TimGM6mb.sf2", SF2 / "OPL-3_FM_128M.sf2"]
TRAIN_HYDROGEN_KITS = [
    "Audiophob",
    "BJA_Pacific",
    "ElectricEmpireKit",
    "ForzeeStereo",
    "GMRockKit",
    "HardElectro1",
    "Millo-Drums_v.1",
    "Millo_MultiLayered2",
    "Millo_MultiLayered3",
    "TR808EmulationKit",
    "VariBreaks",
    "rumpf_kit_z01_h2",
]
TRAIN_SYNTH_KITS = [f"synth:{i}" for i in range(1, 9)]
# TimGM6mb's drum kits: Standard, Room, Power, Electronic, TR 808, Jazz, Brush; OPL3's.
TRAIN_SOUNDFONT_KITS = [f"sf:TimGM6mb:{p}" for p in (0, 8, 16, 24, 25, 32, 40)] + [
    "sf:OPL-3_FM_128M:0"
]
TRAIN_VIRTUAL_KITS = [f"virtual:{i}" for i in range(1, 11)]
TRAIN_KITS = (
    TRAIN_HYDROGEN_KITS + TRAIN_SYNTH_KITS + TRAIN_SOUNDFONT_KITS + TRAIN_VIRTUAL_KITS
)
RUN = "default"


def drumtx(*args: str, log: Path | None = None) -> None:
    """Run one drumtx command as a user would; stop on failure. ``log``: its output is
    appended there instead of to the terminal."""
    cmd = [sys.executable, "-m", "drumtx", *args]
    print("$", " ".join(cmd), flush=True)
    if log is None:
        subprocess.run(cmd, cwd=REPO, check=True)
        return
    with open(log, "a") as out:
        subprocess.run(cmd, cwd=REPO, check=True, stdout=out, stderr=out)


# The recipe's augmentation ([data] keys), shared by every script that trains for it.
AUGMENTATION = (
    "data.eq_prob=0.5",
    "data.reverb_prob=0.3",
    "data.noise_prob=0.3",
    "data.mix_prob=0.1",
    "data.gain_db_min=-18.0",
    "data.gain_db_max=3.0",
    "data.backing_prob=0.67",
    "data.compress_prob=0.4",
    "data.saturate_prob=0.2",
    "data.codec_prob=0.1",
    "data.rare_class_prob=0.25",
)


def rate_sets(rate: int | None) -> list[str]:
    """The preprocess option for a store at ``rate`` (None: the config's default)."""
    return ["--set", f"audio.sample_rate={rate}"] if rate else []


def train_settings(args: argparse.Namespace) -> list[str]:
    sets = [
        f"model.preset='{args.preset}'",
        f"frontend.n_mels={args.n_mels}",
        "data.crop_sec=4.0",
        "data.num_workers=1",
        "data.block_mb=4.0",
        "data.shuffle_blocks=8",
        *AUGMENTATION,
        f"train.device='{args.device}'",
        f"train.amp='{args.amp}'",
        "train.batch_size=16",
        "train.lr=2e-3",
        "train.warmup_steps=300",
        f"train.max_steps={args.max_steps}",
        "train.eval_every=1000",
        "train.log_every=50",
        "train.val_max_recordings=32",
        f"train.time_limit_min={args.minutes}",
        "train.keep_checkpoints=2",
        f"train.cpu_threads={args.cpu_threads}",
    ]
    return [x for s in sets for x in ("--set", s)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gmd", type=Path, required=True, help="GMD groove/ folder")
    parser.add_argument(
        "--songs", type=Path, help="full-band MIDI songs for backing tracks (optional)"
    )
    parser.add_argument("--work", type=Path, required=True, help="working folder")
    parser.add_argument("--minutes", type=float, default=150.0, help="training budget")
    parser.add_argument("--preset", default="small", choices=list(PRESETS))
    parser.add_argument("--n-mels", type=int, default=128, help="log-mel bands")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--amp", default="auto", choices=["auto", "bf16", "fp16", "off"]
    )
    parser.add_argument("--max-sec", type=float, default=45.0, help="crop performances")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=8000,
        help="length of the cosine schedule (the time limit may stop it earlier)",
    )
    parser.add_argument(
        "--cpu-threads",
        type=int,
        default=0,
        help="torch threads when training on CPU (1 on a busy shared machine)",
    )
    parser.add_argument(
        "--stage",
        default="all",
        choices=["data", "train", "all"],
        help="stop after the data (render + preprocess) or after training",
    )
    return parser.parse_args()


def make_data(args: argparse.Namespace, train_root: Path, test_root: Path) -> None:
    """Render and preprocess the training root and the held-out root."""
    gmd = ["--midi-dir", str(args.gmd)]
    drumtx(
        "make-dataset",
        str(train_root),
        *gmd,
        "--kits",
        *TRAIN_KITS,
        "--kits-per-performance",
        "3",
        "--splits",
        "train",
        "validation",
        "--max-sec",
        str(args.max_sec),
        "--seed",
        "7",
        "--studio-prob",
        "0.6",
    )
    fonts = ",".join(map(str, TRAIN_SOUNDFONTS))
    songs = f"'{args.songs.resolve()}'" if args.songs else "''"
    drumtx(
        "preprocess",
        "--data-root",
        str(train_root),
        "--split",
        "train",
        "validation",
        "--workers",
        "2",
        "--allow-skips",
        "--set",
        f"backing.soundfonts='{fonts}'",
        "--set",
        f"backing.songs_dir={songs}",
    )
    make_card_root(args.gmd, test_root)


def make_card_root(gmd: Path, test_root: Path, rate: int | None = None) -> None:
    """The model card's held-out root: GMD test (60 s) through the held-out kits, half
    in a random studio (as it tuned toms when the set was first made: training's
    studio changing must not change the yardstick), with backing tracks played only by
    the held-out SoundFont."""
    drumtx("make-dataset", str(test_root), "--midi-dir", str(gmd), "--kits",
           *HELD_OUT_KITS, "--splits", "test", "--max-sec", "60", "--seed", "11",
           "--studio-prob", "0.5", "--studio-toms", "each")  # fmt: skip
    drumtx("preprocess", "--data-root", str(test_root), "--split", "test",
           "--workers", "2", "--allow-skips",
           "--set", f"backing.soundfonts='{HELD_OUT_SOUNDFONT}'",
           "--set", "backing.own_prob=0.0", "--set", "backing.seed=11",
           *rate_sets(rate))  # fmt: skip


def train(args: argparse.Namespace, train_root: Path) -> Path:
    """Train (or continue training) the run; a marker file says it finished."""
    run_dir = train_root / "checkpoints" / RUN
    done = run_dir / "training-finished"
    if not done.exists():
        drumtx("train", "--data-root", str(train_root), "--run", RUN,
               "--resume", "auto", *train_settings(args))  # fmt: skip
        done.write_text("finished\n")
    return run_dir / "best.pt"


def main() -> int:
    args = parse_args()
    train_root, test_root = args.work / "train-root", args.work / "test-root"
    t0 = time.monotonic()
    make_data(args, train_root, test_root)
    if args.stage == "data":
        return 0
    best = train(args, train_root)
    if args.stage == "train":
        return 0
    drumtx("evaluate", "--data-root", str(train_root), "--checkpoint", str(best),
           "--split", "validation", "--tune-thresholds", "--limit", "64")  # fmt: skip
    results_path = args.work / "held-out.json"
    cmd = [sys.executable, "-m", "drumtx", "evaluate", "--data-root", str(test_root),
           "--checkpoint", str(best), "--split", "test", "--json"]  # fmt: skip
    print("$", " ".join(cmd), flush=True)
    with open(results_path, "w") as handle:
        subprocess.run(cmd, cwd=REPO, check=True, stdout=handle)
    from drumtx.console import make_console
    from drumtx.evaluate import print_results

    print_results(json.loads(results_path.read_text()), make_console())
    export(best, json.loads(results_path.read_text()), args, time.monotonic() - t0)
    return 0


def export(best: Path, results: dict, args: argparse.Namespace, seconds: float) -> None:
    """Weights without optimizer state, and a small JSON card beside them."""
    import torch

    from drumtx.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(best)
    keep = (
        "config",
        "vocab",
        "model",
        "thresholds",
        "step",
        "best_score",
        "best_f1",  # checkpoints before best_score
        "drumtx_version",
    )
    out_dir = REPO / "drumtx" / "models"
    out_dir.mkdir(exist_ok=True)
    save_checkpoint(out_dir / "default.pt", {k: state[k] for k in keep if k in state})
    card = {
        "summary": (
            f"{state['config']['model']['preset']} CRNN, {state['step']} steps; "
            f"held-out micro F1 {results['micro_f1']:.3f} (GMD test x unseen kits)"
        ),
        "preset": state["config"]["model"]["preset"],
        "steps": state["step"],
        "training_budget_minutes": args.minutes,  # per invocation; resumes add up
        "hardware": f"{platform.processor() or platform.machine()}, "
        f"{'CUDA' if torch.cuda.is_available() else 'CPU'} (torch {torch.__version__})",
        "train_kits": TRAIN_KITS,
        "train_soundfonts": [p.name for p in TRAIN_SOUNDFONTS],
        "held_out_soundfont": HELD_OUT_SOUNDFONT.name,
        "held_out_kits": HELD_OUT_KITS,
        "thresholds": state.get("thresholds", {}),
        "held_out": {
            k: results[k]
            for k in (
                "classes",
                "micro_f1",
                "macro_f1",
                "velocity_f1",
                "adtof5",
                "per_kit",
                "n_recordings",
                "mixes",
            )
            if k in results
        },
        "script_minutes": round(seconds / 60, 1),  # this invocation only
    }
    (out_dir / "default.json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {out_dir / 'default.pt'} and {out_dir / 'default.json'}")


if __name__ == "__main__":
    raise SystemExit(main())
