"""Train the default model that ships with drumtx, end to end, and write its model card.

    python tools/train_default_model.py --gmd ../shared/data/gmd/groove --work /data/dm \
        [--minutes 60] [--preset small] [--device auto]

1. Render the GMD train and validation splits through the training kits (every
   Hydrogen kit but the two held out, plus synthesised kits), two kits per performance.
2. Render the GMD test split through the two held-out kits only, into a separate root,
   so the reported numbers are on kits *and* performances the model never saw.
3. Preprocess both roots; train (time-limited); tune per-class thresholds on the
   validation split; evaluate on the held-out test root.
4. Export the weights (no optimizer state) to drumtx/models/default.pt and the held-out
   results to drumtx/models/default.json, which `transcribe --list-models` shows.

Every step reuses what an earlier run left, so the script can be rerun after a stop.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HELD_OUT_KITS = ["ColomboAcousticDrumkit", "The Black Pearl 1.0"]
TRAIN_HYDROGEN_KITS = [
    "Audiophob",
    "BJA_Pacific",
    "ElectricEmpireKit",
    "ForzeeStereo",
    "HardElectro1",
    "Millo-Drums_v.1",
    "Millo_MultiLayered2",
    "Millo_MultiLayered3",
    "VariBreaks",
    "rumpf_kit_z01_h2",
]
TRAIN_SYNTH_KITS = [f"synth:{i}" for i in range(1, 9)]
RUN = "default"


def drumtx(*args: str) -> None:
    """Run one drumtx command as a user would; stop on failure."""
    cmd = [sys.executable, "-m", "drumtx", *args]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def train_settings(args: argparse.Namespace) -> list[str]:
    sets = [
        f"model.preset='{args.preset}'",
        "data.crop_sec=4.0",
        "data.num_workers=1",
        "data.block_mb=4.0",
        "data.shuffle_blocks=8",
        "data.eq_prob=0.5",
        "data.reverb_prob=0.35",
        "data.noise_prob=0.35",
        "data.mix_prob=0.1",
        "data.gain_db_min=-18.0",
        "data.gain_db_max=3.0",
        f"train.device='{args.device}'",
        "train.batch_size=16",
        "train.lr=2e-3",
        "train.warmup_steps=200",
        f"train.max_steps={args.max_steps}",
        "train.eval_every=500",
        "train.log_every=50",
        "train.val_max_recordings=40",
        f"train.time_limit_min={args.minutes}",
        "train.keep_checkpoints=2",
        f"train.cpu_threads={args.cpu_threads}",
    ]
    return [x for s in sets for x in ("--set", s)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gmd", type=Path, required=True, help="GMD groove/ folder")
    parser.add_argument("--work", type=Path, required=True, help="working folder")
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget")
    parser.add_argument("--preset", default="small", choices=["tiny", "small", "base"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--max-sec", type=float, default=45.0, help="crop performances")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=2500,
        help="length of the cosine schedule (the time limit may stop it earlier)",
    )
    parser.add_argument(
        "--cpu-threads",
        type=int,
        default=0,
        help="torch threads when training on CPU (1 on a busy shared machine)",
    )
    args = parser.parse_args()
    train_root, test_root = args.work / "train-root", args.work / "test-root"
    t0 = time.monotonic()

    drumtx(
        "make-dataset",
        str(train_root),
        "--midi-dir",
        str(args.gmd),
        "--kits",
        *TRAIN_HYDROGEN_KITS,
        *TRAIN_SYNTH_KITS,
        "--kits-per-performance",
        "2",
        "--splits",
        "train",
        "validation",
        "--max-sec",
        str(args.max_sec),
        "--seed",
        "7",
    )
    drumtx(
        "make-dataset",
        str(test_root),
        "--midi-dir",
        str(args.gmd),
        "--kits",
        *HELD_OUT_KITS,
        "--splits",
        "test",
        "--max-sec",
        "60",
        "--seed",
        "11",
    )
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
    )
    drumtx(
        "preprocess",
        "--data-root",
        str(test_root),
        "--split",
        "test",
        "--workers",
        "2",
        "--allow-skips",
    )

    best = train_root / "checkpoints" / RUN / "best.pt"
    if not best.exists():
        resume = ["--resume", "auto"]
        drumtx(
            "train",
            "--data-root",
            str(train_root),
            "--run",
            RUN,
            *resume,
            *train_settings(args),
        )
    drumtx(
        "evaluate",
        "--data-root",
        str(train_root),
        "--checkpoint",
        str(best),
        "--split",
        "validation",
        "--tune-thresholds",
        "--limit",  # half the validation split: enough hits per class, half the time
        "124",
    )
    results_path = args.work / "held-out.json"
    cmd = [sys.executable, "-m", "drumtx", "evaluate", "--data-root", str(test_root),
           "--checkpoint", str(best), "--split", "test", "--json"]  # fmt: skip
    print("$", " ".join(cmd), flush=True)
    with open(results_path, "w") as handle:
        subprocess.run(cmd, cwd=REPO, check=True, stdout=handle)
    from rich.console import Console

    from drumtx.evaluate import print_results

    print_results(json.loads(results_path.read_text()), Console())
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
        "best_f1",
        "drumtx_version",
    )
    out_dir = REPO / "drumtx" / "models"
    out_dir.mkdir(exist_ok=True)
    save_checkpoint(out_dir / "default.pt", {k: state[k] for k in keep if k in state})
    card = {
        "summary": (
            f"{state['config']['model']['preset']} CRNN, {state['step']} steps; held-out "
            f"micro F1 {results['micro_f1']:.3f} (GMD test x unseen kits)"
        ),
        "preset": state["config"]["model"]["preset"],
        "steps": state["step"],
        "training_minutes": args.minutes,
        "hardware": f"{platform.processor() or platform.machine()}, "
        f"{'CUDA' if torch.cuda.is_available() else 'CPU'} (torch {torch.__version__})",
        "train_kits": TRAIN_HYDROGEN_KITS + TRAIN_SYNTH_KITS,
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
            )
            if k in results
        },
        "pipeline_minutes": round(seconds / 60, 1),
    }
    (out_dir / "default.json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {out_dir / 'default.pt'} and {out_dir / 'default.json'}")


if __name__ == "__main__":
    raise SystemExit(main())
