"""Markdown tables for the model card, from `drumtx evaluate --json` results.

    python tools/model_card.py NEW.json [--previous OLD.json]

Prints, per class, precision / recall / F1 of the drums alone and F1 mixed with
backing tracks at each level the results hold, and (with --previous) the same F1s of
another model on the same recordings, then micro/macro, adtof5, velocity and (where the
results have it) audible micro F1 summaries, then
where the errors sit in each condition: false positives by the reference class there
and misses by the class predicted there ("new (previous)" with --previous).
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
        scores = [
            ("micro F1", lambda r: r["micro_f1"]),
            ("macro F1", lambda r: r["macro_f1"]),
            ("adtof5 micro F1", lambda r: r["adtof5"]["micro_f1"]),
            ("velocity F1", lambda r: r["velocity_f1"]["f1"]),
        ]
        if all("audible" in v for v in views):  # results from before it have none
            scores.append(("audible micro F1", lambda r: r["audible"]["micro_f1"]))
        for score, pick in scores:
            cells = [f"{pick(v):.3f}" for v in views]
            lines.append(f"| {name} | {score} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


CONFUSIONS = {
    "false_positives": ("false positives", "predicted \\ reference there"),
    "misses": ("misses", "missed \\ predicted there"),
}


def confusion_table(new: dict[str, Any], old: dict[str, Any] | None, kind: str) -> str:
    """One evaluate confusion table (``kind``: false_positives or misses) as markdown:
    counts, "new (previous)" where the previous results have the table too, blank
    where both are 0; the last column is the row's total."""
    rows = new["confusion"][kind]
    previous = (old or {}).get("confusion", {}).get(kind)
    columns = list(next(iter(rows.values())))
    lines = ["| " + " | ".join([CONFUSIONS[kind][1], *columns, "all"]) + " |"]
    lines.append("|" + "---|" * (len(columns) + 2))
    for code, row in rows.items():
        old_row = previous.get(code) if previous else None
        values = [*row.values(), sum(row.values())]
        cells = [str(n) if n else "" for n in values]
        if old_row is not None:
            before = [*(old_row.get(c, 0) for c in columns), sum(old_row.values())]
            cells = [f"{n} ({m})" if n or m else "" for n, m in zip(values, before)]
        lines.append("| " + " | ".join([code, *cells]) + " |")
    return "\n".join(lines)


def confusion_tables(new: dict[str, Any], old: dict[str, Any] | None) -> str:
    """Both confusion tables of the drums alone and of each mix, each with a heading."""
    old_views = {"drums only": old, **(old or {}).get("mixes", {})}
    parts = []
    for name, view in {"drums only": new, **new.get("mixes", {})}.items():
        if "confusion" not in view:
            continue
        for kind, (title, _) in CONFUSIONS.items():
            previous = old_views.get(name)
            heading = f"{title}, {name}"
            if previous and "confusion" in previous:
                heading += ": new (previous)"
            parts.append(f"{heading}\n\n{confusion_table(view, previous, kind)}")
    return "\n\n".join(parts)


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
    confusions = confusion_tables(new, old)
    if confusions:
        print(f"\n{confusions}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
