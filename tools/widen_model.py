"""Grow a trained model into a wider preset that starts out computing the same thing.

    python tools/widen_model.py --out wide.pt                       # the shipped model
    python tools/widen_model.py --checkpoint run/best.pt --preset medium --out wide.pt
    python -m drumtx train --set train.init_from=wide.pt ...        # then fine-tune it

drumtx/widen.py does the work (Net2Net); this checks the widened network against the
original on random input and writes a checkpoint `train.init_from` can start from (the
original's config and thresholds, model.preset changed; no step, no best score).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from drumtx.checkpoint import (
    SHIPPED_MODELS_DIR,
    load_checkpoint,
    model_config,
    save_checkpoint,
)
from drumtx.config import load_config
from drumtx.drums import get_vocab
from drumtx.errors import DrumtxError
from drumtx.model import PRESETS, build_model, count_parameters
from drumtx.widen import widen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=SHIPPED_MODELS_DIR / "default.pt",
        help="the trained model to widen (default: the shipped one)",
    )
    parser.add_argument("--preset", default="medium", choices=list(PRESETS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--noise",
        type=float,
        default=0.01,
        help="noise on the copied units' incoming weights, relative to each layer's "
        "weight spread: lets the copies learn apart under Adam (0: exact copy)",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def widen_checkpoint(args: argparse.Namespace) -> dict:
    """The widened checkpoint's state; raises DrumtxError/ValueError on bad input."""
    state = load_checkpoint(args.checkpoint)
    config = state["config"]
    cfg = model_config(load_config(None, []), state)
    narrow = build_model(cfg, get_vocab(state["vocab"]).n_classes)
    narrow.load_state_dict(state["model"])
    narrow.eval()
    wide = widen(narrow, args.preset, noise=args.noise, seed=args.seed).eval()
    feats = torch.randn(
        2, 400, narrow.n_mels, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        before = torch.sigmoid(narrow(feats)[0])
        after = torch.sigmoid(wide(feats)[0])
    drift = float((before - after).abs().max())
    print(
        f"{args.checkpoint}: {config['model']['preset']} "
        f"({count_parameters(narrow) / 1e6:.2f} M) -> {args.preset} "
        f"({count_parameters(wide) / 1e6:.2f} M parameters); onset probabilities "
        f"move by at most {drift:.4f} on random input (noise {args.noise})"
    )
    config = {**config, "model": {**config["model"], "preset": args.preset}}
    keep = {
        k: v for k, v in state.items() if k in ("vocab", "thresholds", "drumtx_version")
    }
    return {
        **keep,
        "config": config,
        "model": wide.state_dict(),
        "widened_from": str(args.checkpoint),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out.exists():
        print(f"error: {args.out} exists", file=sys.stderr)
        print("hint: choose another --out; nothing was overwritten", file=sys.stderr)
        return 2
    try:
        state = widen_checkpoint(args)
    except (DrumtxError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        hint = getattr(exc, "hint", None) or (
            "widen into a preset with the same blocks and GRU layers (small -> medium)"
        )
        print(f"hint: {hint}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.out, state)
    print(f"wrote {args.out}; fine-tune it with --set train.init_from={args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
