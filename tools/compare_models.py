"""Models side by side on one evaluation set, from `drumtx evaluate --json` results.

    python tools/compare_models.py shipped=real-shipped.json arm=real-arm.json \\
        [--velocity SD HH] [--pairs HH/SD SD/HH HH<SD SD<none] [--mix "0 dB"]

Prints a markdown table, one row per model: micro F1 drums alone and in each mix the
results hold, then drums alone (or in the ``--mix`` named, e.g. "-6 dB") macro F1, each
class's F1, recall by velocity band of the ``--velocity`` classes, and confusion
counts: ``A/B`` is A fired where B was played (a false positive of A with a reference B
within 50 ms; B ``none``: nothing there) and ``A<B`` is A missed where B was predicted.
Every model must have been scored on the same recordings (the same root, split, limit
and music); the tool checks that their reference counts agree, so an arm is never
compared on other audio.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

DEFAULT_PAIRS = ["HH/SD", "SD/HH", "HH<SD", "SD<none", "SD/KD", "SD/LT", "HH/RD"]
PAIR = re.compile(r"^([A-Z]+)([/<])([A-Za-z]+)$")


def load(spec: str) -> tuple[str, dict[str, Any]]:
    """NAME=PATH (or PATH, named by its stem) -> (name, results)."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = Path(spec).stem, spec
    try:
        return name, json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(
            f"error: cannot read evaluate results {path!r}: {exc}\n"
            "hint: write them with `python -m drumtx evaluate ... --json > FILE`"
        ) from exc


def ref_counts(results: dict[str, Any]) -> dict[str, int]:
    return {code: row["n_ref"] for code, row in results["classes"].items()}


def parse_pair(pair: str) -> tuple[str, str, str]:
    """"A/B" or "A<B" -> (A, kind, B); a malformed pair exits with a hint."""
    match = PAIR.match(pair)
    if match is None:
        raise SystemExit(
            f"error: bad confusion pair {pair!r}\n"
            "hint: CLASS/CLASS (fired where the other was played) or CLASS<CLASS "
            "(missed where the other was predicted), e.g. HH/SD SD<none"
        )
    first, kind, second = match.groups()
    return first, kind, second


def confusion(results: dict[str, Any], pair: str) -> int:
    first, kind, second = parse_pair(pair)
    table = results["confusion"]["false_positives" if kind == "/" else "misses"]
    return int(table.get(first, {}).get(second, 0))


def velocity_cell(results: dict[str, Any], code: str) -> str:
    bands = results.get("recall_by_velocity", {}).get(code, {})
    return " / ".join(f"{b['recall']:.2f}" for b in bands.values()) or "-"


def table(
    models: list[tuple[str, dict[str, Any]]],
    velocity: list[str],
    pairs: list[str],
    mix: str | None = None,
) -> str:
    """The markdown table; the columns after micro F1 read ``mix``'s results (drums
    alone where None) and are headed with its name."""
    def view(results: dict[str, Any]) -> dict[str, Any]:
        return results["mixes"][mix] if mix else results

    first = models[0][1]
    mixes = list(first.get("mixes", {}))
    codes = [c for c, row in first["classes"].items() if row["n_ref"] > 0]
    at = f" ({mix})" if mix else ""
    head = ["model", "micro F1 " + " / ".join(["alone", *mixes]), f"macro F1{at}"]
    head += [f"{c} F1{at}" for c in codes]
    for code in velocity:
        bands = " / ".join(view(first).get("recall_by_velocity", {}).get(code, {}))
        head.append(f"{code} recall by velocity ({bands}){at}")
    head += [f"{p}{at}" for p in pairs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in models:
        micro = [r["micro_f1"], *(r["mixes"][m]["micro_f1"] for m in mixes)]
        at_mix = view(r)
        cells = [name, " / ".join(f"{x:.3f}" for x in micro)]
        cells += [f"{at_mix['macro_f1']:.3f}"]
        cells += [f"{at_mix['classes'][c]['f1']:.3f}" for c in codes]
        cells += [velocity_cell(at_mix, c) for c in velocity]
        cells += [str(confusion(at_mix, p)) for p in pairs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "results", nargs="+", metavar="NAME=JSON",
        help="evaluate --json output of each model, all on one set",
    )  # fmt: skip
    parser.add_argument(
        "--velocity", nargs="*", default=["SD", "HH"], metavar="CODE",
        help="classes whose recall by velocity band is shown",
    )  # fmt: skip
    parser.add_argument(
        "--pairs", nargs="*", default=DEFAULT_PAIRS, metavar="PAIR",
        help="confusion counts shown (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--mix", metavar="NAME",
        help='read the per-class, velocity and confusion columns in this mix of the '
        'results (e.g. "0 dB", "-6 dB") instead of the drums alone',
    )  # fmt: skip
    args = parser.parse_args(argv)
    models = [load(spec) for spec in args.results]
    base_name, base = models[0]
    for name, results in models[1:]:
        same_mixes = results.get("mixes", {}).keys() == base.get("mixes", {}).keys()
        if ref_counts(results) != ref_counts(base) or not same_mixes:
            print(
                f"error: {name} was scored on other recordings than {base_name} "
                "(their reference hits or mixes differ)\n"
                "hint: evaluate every model on the same --data-root, --split, "
                "--limit and --music-dir",
                file=sys.stderr,
            )
            return 2
    if args.mix is not None and args.mix not in base.get("mixes", {}):
        mixes = ", ".join(repr(m) for m in base.get("mixes", {})) or "none"
        print(f"error: no mix {args.mix!r} in these results (they hold: {mixes})\n"
              "hint: evaluate with --backing-db (and --music-dir) to score that "
              "drums-to-music level", file=sys.stderr)  # fmt: skip
        return 2
    codes = set(base["classes"])
    unknown = [c for c in args.velocity if c not in codes]
    for first, _, second in map(parse_pair, args.pairs):
        unknown += [c for c in (first, second) if c not in codes | {"none"}]
    if unknown:
        print(f"error: no class {', '.join(unknown)} in these results\n"
              f"hint: one of {' '.join(base['classes'])}", file=sys.stderr)  # fmt: skip
        return 2
    print(table(models, args.velocity, args.pairs, args.mix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
