"""Average the weights of models fine-tuned from one model (a model soup).

    python tools/average_models.py A.pt B.pt C.pt --out soup.pt       # equal shares
    python tools/average_models.py shipped.pt ft.pt --weights 2,1 --out wise.pt

Models fine-tuned from the same weights stay in one basin, so their weight-space
average is itself a model, often as good as the best of them on data none was tuned for
(Wortsman et al., "Model soups", ICML 2022; with the starting model as an ingredient,
WiSE-FT, CVPR 2022). This averages every floating-point tensor of the models' weights
(batch-norm running statistics included) in the shares ``--weights`` gives; integer
buffers, the config, vocabulary and thresholds come from the first model. Models whose
network or frontend differ are refused: their tensors do not mean the same thing. Score
the result with ``drumtx evaluate`` before trusting it, and ``evaluate
--tune-thresholds`` on validation if its thresholds should be its own.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import torch

from drumtx.checkpoint import load_checkpoint, save_checkpoint
from drumtx.errors import DrumtxError

# Config sections that decide what the weights compute; the models must agree on them.
NETWORK_SECTIONS = ("model", "audio", "frontend")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoints",
        type=Path,
        nargs="+",
        metavar="MODEL.pt",
        help="two or more drumtx checkpoints of one network",
    )
    parser.add_argument("--weights", default=None, metavar="W,W,...",
                        help="each model's share, in the order given (default: equal); "
                        "normalised to sum to 1")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


def shares(text: str | None, n: int) -> list[float]:
    """The models' normalised shares; ValueError on a wrong count or a bad share."""
    if text is None:
        return [1.0 / n] * n
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--weights {text!r} is not a list of numbers") from None
    if len(values) != n:
        raise ValueError(f"--weights gives {len(values)} shares for {n} models")
    if not all(math.isfinite(v) and v >= 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"--weights {text!r}: shares must be >= 0, not all 0")
    return [v / sum(values) for v in values]


def check_same_network(paths: list[Path], states: list[dict[str, Any]]) -> None:
    """ValueError naming the first model that differs from the first one given."""
    first = states[0]
    for path, state in zip(paths[1:], states[1:]):
        if state["vocab"] != first["vocab"]:
            raise ValueError(f"{path} has vocabulary {state['vocab']!r}, "
                             f"{paths[0]} has {first['vocab']!r}")  # fmt: skip
        for section in NETWORK_SECTIONS:
            mine, theirs = state["config"].get(section), first["config"].get(section)
            if mine != theirs:
                diff = sorted(k for k in {**mine, **theirs}
                              if mine.get(k) != theirs.get(k))  # fmt: skip
                raise ValueError(f"{path} differs from {paths[0]} in [{section}] "
                                 f"{', '.join(diff)}")  # fmt: skip
        ours, base = state["model"], first["model"]
        if ours.keys() != base.keys() or any(
            ours[k].shape != base[k].shape for k in base
        ):
            raise ValueError(f"{path}'s tensors differ from {paths[0]}'s in name "
                             "or shape")  # fmt: skip


def average(states: list[dict[str, Any]], weights: list[float]) -> dict[str, Any]:
    """The first state with every floating-point model tensor replaced by the
    weighted mean of the states' (computed in float64, stored in its own dtype)."""
    mean = {}
    for key, tensor in states[0]["model"].items():
        if tensor.is_floating_point():
            total = sum(w * s["model"][key].double() for w, s in zip(weights, states))
            mean[key] = total.to(tensor.dtype)
        else:
            mean[key] = tensor.clone()
    keep = ("config", "vocab", "thresholds", "drumtx_version")
    return {**{k: states[0][k] for k in keep if k in states[0]}, "model": mean}


def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """L2 distance between two models' floating-point tensors, all of them as one."""
    squares = [float((a[k].double() - t.double()).square().sum())
               for k, t in b.items() if t.is_floating_point()]  # fmt: skip
    return math.sqrt(sum(squares))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.out.exists():
            raise ValueError(f"{args.out} exists")
        if len(args.checkpoints) < 2:
            raise ValueError("an average needs two or more models")
        weights = shares(args.weights, len(args.checkpoints))
        states = [load_checkpoint(p) for p in args.checkpoints]
        check_same_network(args.checkpoints, states)
    except (DrumtxError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        hint = getattr(exc, "hint", None) or (
            "average models fine-tuned from one model (same network, frontend and "
            "vocabulary) into a new --out; nothing was written"
        )
        print(f"hint: {hint}", file=sys.stderr)
        return 2
    soup = average(states, weights)
    for path, weight, state in zip(args.checkpoints, weights, states):
        print(
            f"{weight:.3f} x {path}  (L2 distance to the average "
            f"{distance(soup['model'], state['model']):.4f})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    origin = {"averaged_from": [str(p) for p in args.checkpoints],
              "averaged_weights": weights}  # fmt: skip
    save_checkpoint(args.out, {**soup, **origin})
    print(f"wrote {args.out}; thresholds, config and vocabulary from "
          f"{args.checkpoints[0]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
