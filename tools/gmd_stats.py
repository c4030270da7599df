"""Per-split counts of GMD performances and drum hits, and a tally of unmapped pitches.

Usage: python tools/gmd_stats.py /path/to/gmd/groove [--vocab roland9]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from drumtx.drums import Vocab, get_vocab
from drumtx.egmd import SPLITS, GmdRecord, read_gmd_info
from drumtx.midi import notes_to_hits, read_notes


def count_split(
    gmd_dir: Path, records: list[GmdRecord], vocab: Vocab
) -> tuple[Counter[str], Counter[int]]:
    """Totals per split ("performances", "hits", "notes", "seconds") + unmapped."""
    totals: Counter[str] = Counter()
    unmapped: Counter[int] = Counter()
    class_counts: Counter[str] = Counter()
    for record in records:
        notes = read_notes(gmd_dir / record.midi_filename)
        hits = notes_to_hits(notes, vocab)
        totals["performances"] += 1
        totals["notes"] += len(notes)
        totals["hits"] += len(hits)
        totals["milliseconds"] += round(record.duration * 1000)
        class_counts.update(vocab.codes[h.cls] for h in hits)
        unmapped.update(n.pitch for n in notes if vocab.class_of_pitch(n.pitch) is None)
    totals.update({f"class:{code}": n for code, n in class_counts.items()})
    return totals, unmapped


def print_table(per_split: dict[str, Counter[str]], vocab: Vocab) -> None:
    columns = ["performances", "hours", "notes", "hits", *vocab.codes]
    print(f"{'split':<11}" + "".join(f"{c:>13}" for c in columns))
    overall: Counter[str] = sum(per_split.values(), Counter())
    for split, totals in [*per_split.items(), ("total", overall)]:
        cells = [
            str(totals["performances"]),
            f"{totals['milliseconds'] / 3.6e6:.2f}",
            str(totals["notes"]),
            str(totals["hits"]),
            *(str(totals[f"class:{code}"]) for code in vocab.codes),
        ]
        print(f"{split:<11}" + "".join(f"{c:>13}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gmd_dir", type=Path, help="the GMD 'groove' folder")
    parser.add_argument("--vocab", default="roland9")
    args = parser.parse_args(argv)
    vocab = get_vocab(args.vocab)
    records = read_gmd_info(args.gmd_dir / "info.csv")
    per_split: dict[str, Counter[str]] = {}
    unmapped: Counter[int] = Counter()
    for split in SPLITS:
        chosen = [r for r in records if r.split == split]
        per_split[split], split_unmapped = count_split(args.gmd_dir, chosen, vocab)
        unmapped.update(split_unmapped)
    print_table(per_split, vocab)
    listed = {r.midi_filename for r in records}
    extra = [
        p
        for p in args.gmd_dir.rglob("*.mid")
        if p.relative_to(args.gmd_dir).as_posix() not in listed
    ]
    print(f"MIDI files not listed in info.csv: {len(extra)}")
    tally = ", ".join(f"{p}: {n}" for p, n in sorted(unmapped.items())) or "none"
    print(f"pitches outside {vocab.name}: {tally}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
