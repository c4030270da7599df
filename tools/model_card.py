"""Markdown tables for the model card, from `drumtx evaluate --json` results.

    python tools/model_card.py NEW.json [--previous OLD.json]

Prints, per class, precision / recall / F1 of the drums alone and F1 mixed with
backing tracks at each level the results hold, and (with --previous) the same F1s of
another model on the same recordings, then micro/macro and adtof5 summaries.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def f1_row(results: dict[str, Any], code: str) -> list[str]:
    """F1 of one class: drums alone, then each mix."""
    cells = [results["classes"][code]["f1"]]
    cells += [mix["classes"][code]["f1"] for mix in results.get("mixes", {}).values()]
    return [f"{x:.3f}" for x in cells]


def class_table(new: dict[str, Any], old: dict[str, Any] | None) -> str:
    mixes = list(new.get("mixes", {}))
    head = ["class", "P", "R", "F1", *(f"F1 {m}" for m in mixes), "ref hits"]
    if old is not None:
        head += ["previous F1", *(f"previous {m}" for m in mixes)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for code, row in new["classes"].items():
        cells = [code, f"{row['precision']:.3f}", f"{row['recall']:.3f}"]
        cells += f1_row(new, code) + [str(row["n_ref"])]
        if old is not None:
            cells += f1_row(old, code)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(new: dict[str, Any], old: dict[str, Any] | None) -> str:
    conditions = ["drums only", *new.get("mixes", {})]
    lines = ["| model | score | " + " | ".join(conditions) + " |"]
    lines.append("|" + "---|" * (len(conditions) + 2))
    for name, results in (("new", new), ("previous", old)):
        if results is None:
            continue
        views = [results, *results.get("mixes", {}).values()]
        for score, pick in (
            ("micro F1", lambda r: r["micro_f1"]),
            ("macro F1", lambda r: r["macro_f1"]),
            ("adtof5 micro F1", lambda r: r["adtof5"]["micro_f1"]),
            ("velocity F1", lambda r: r["velocity_f1"]["f1"]),
        ):
            cells = [f"{pick(v):.3f}" for v in views]
            lines.append(f"| {name} | {score} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="evaluate --json of the new model")
    parser.add_argument("--previous", type=Path, help="the same of the previous model")
    args = parser.parse_args(argv)
    new = json.loads(args.results.read_text())
    old = json.loads(args.previous.read_text()) if args.previous else None
    print(class_table(new, old))
    print()
    print(summary_table(new, old))
    kits = ", ".join(f"{k} {v:.3f}" for k, v in new["per_kit"].items())
    print(f"\nmicro F1 per held-out kit (drums only): {kits}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
