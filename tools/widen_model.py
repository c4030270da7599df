"""Grow a trained model, wider or hearing higher bands, computing at first what it did.

    python tools/widen_model.py --out wide.pt                       # the shipped model
    python tools/widen_model.py --checkpoint run/best.pt --preset medium --out wide.pt
    python tools/widen_model.py --bands 144 --sample-rate 48000 --out high.pt
    python -m drumtx train --set train.init_from=wide.pt ...        # then fine-tune it

drumtx/widen.py does the work: ``--preset`` widens it (Net2Net); ``--bands N`` continues
its mel bands upwards to N at ``--sample-rate`` (24 kHz audio ends at 12 kHz, where
hi-hats and cymbals part from snares), the window kept at the same duration so the old
bands stay what they were (drumtx.frontend.power_scale). This checks the grown network
against the original on random input and writes a checkpoint `train.init_from` can
start from (the original's config and thresholds with the new preset or frontend; no
step, no best score); train it with the checkpoint's audio.sample_rate, frontend.n_fft,
frontend.n_mels and frontend.f_max_hz, which this prints.
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
from drumtx.frontend import extended_f_max
from drumtx.model import PRESETS, build_model, count_parameters
from drumtx.widen import extend_bands, widen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=SHIPPED_MODELS_DIR / "default.pt",
        help="the trained model to widen (default: the shipped one)",
    )
    parser.add_argument("--preset", default=None, choices=list(PRESETS),
                        help="widen into this preset (default: medium, unless "
                        "--bands is given)")
    parser.add_argument("--bands", type=int, default=None, metavar="N",
                        help="continue the mel bands upwards to N in all (a multiple "
                        "of 16 for the CRNN's pooling)")
    parser.add_argument("--sample-rate", type=int, default=None,
                        help="the grown model's audio.sample_rate (default: the "
                        "original's); the STFT keeps its duration")
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


def grown_frontend(config: dict, bands: int, rate: int | None) -> tuple[dict, dict]:
    """The (audio, frontend) config sections of a model grown to ``bands`` at
    ``rate``; ValueError where the bands would pass the new Nyquist."""
    audio, fe = config["audio"], config["frontend"]
    old_rate = int(audio["sample_rate"])
    rate = rate or old_rate
    n_fft = int(fe["n_fft"]) * rate / old_rate
    if n_fft != int(n_fft):
        raise ValueError(f"a {fe['n_fft']}-point window at {old_rate} Hz has no "
                         f"whole-sample length at {rate} Hz")  # fmt: skip
    f_max = extended_f_max(fe["f_min_hz"], fe["f_max_hz"], fe["n_mels"], bands)
    if f_max > rate / 2:
        raise ValueError(f"{bands} bands reach {f_max:.0f} Hz, above the Nyquist "
                         f"frequency of {rate} Hz audio; pass a higher --sample-rate")
    frontend = {**fe, "n_mels": bands, "n_fft": int(n_fft), "f_max_hz": f_max}
    return {**audio, "sample_rate": rate}, frontend


def grow(args: argparse.Namespace, narrow: torch.nn.Module, config: dict):
    """(grown model, its config); widening after the bands where both are asked."""
    grown, config = narrow, dict(config)
    if args.bands is not None:
        config["audio"], config["frontend"] = grown_frontend(
            config, args.bands, args.sample_rate
        )
        grown = extend_bands(grown, args.bands)
    if args.preset is not None:
        grown = widen(grown, args.preset, noise=args.noise, seed=args.seed)
        config["model"] = {**config["model"], "preset": args.preset}
    return grown.eval(), config


def widen_checkpoint(args: argparse.Namespace) -> dict:
    """The grown checkpoint's state; raises DrumtxError/ValueError on bad input."""
    if args.preset is None and args.bands is None:
        args.preset = "medium"
    state = load_checkpoint(args.checkpoint)
    cfg = model_config(load_config(None, []), state)
    narrow = build_model(cfg, get_vocab(state["vocab"]).n_classes)
    narrow.load_state_dict(state["model"])
    narrow.eval()
    wide, config = grow(args, narrow, state["config"])
    feats = torch.randn(
        2, 400, wide.n_mels, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        before = torch.sigmoid(narrow(feats[..., : narrow.n_mels])[0])
        after = torch.sigmoid(wide(feats)[0])
    drift = float((before - after).abs().max())
    print(
        f"{args.checkpoint}: {state['config']['model']['preset']}, "
        f"{narrow.n_mels} bands ({count_parameters(narrow) / 1e6:.2f} M) -> "
        f"{config['model']['preset']}, {wide.n_mels} bands "
        f"({count_parameters(wide) / 1e6:.2f} M parameters); onset probabilities "
        f"move by at most {drift:.4f} on random input"
        + (f" (noise {args.noise})" if args.preset else "")
    )
    fe = config["frontend"]
    print(f"train it with audio.sample_rate={config['audio']['sample_rate']} "
          f"frontend.n_fft={fe['n_fft']} frontend.n_mels={fe['n_mels']} "
          f"frontend.f_max_hz={fe['f_max_hz']!r}")  # fmt: skip
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
