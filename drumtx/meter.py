"""The words of musical time: meters, quantize grids and tempo limits.

One home for what ``config``, ``cli``, ``tempo``, ``beats`` and ``transcribe`` all
name. Plain Python (no numpy), so the config and the command line validate with it
before anything heavy is imported. ``drumtx.tempo.TempoMap`` does the arithmetic.

A beat in a tempo map is a quarter note (MIDI's unit). The beats a listener counts
(the "counted beats") are quarters in 4/4 and 3/4 but dotted quarters in compound
meters (6/8, 9/8, 12/8): a 6/8 bar is two counted beats of three eighths each.
"""

from __future__ import annotations

# What --tempo, transcribe.tempo and a written tempo map may hold, BPM (quarters).
TEMPO_LIMITS_BPM = (20.0, 400.0)
# Where the beat tracker looks for the counted beat, BPM.
SEARCH_BPM = (40.0, 250.0)

# Meters the tracker chooses between (auto) and --meter may force.
METERS = ("4/4", "3/4", "6/8", "12/8")
METER_CHOICES = ("auto", *METERS)

# Quantize grids: step in quarter notes; T marks triplets.
GRIDS = {"1/4": 1.0, "1/8": 0.5, "1/8T": 1 / 3, "1/16": 0.25, "1/16T": 1 / 6,
         "1/32": 0.125}  # fmt: skip
QUANTIZE_CHOICES = ("off", *(name for name in GRIDS if name != "1/4"))


def parse_meter(text: str) -> tuple[int, int]:
    """``"6/8"`` (or E-GMD's ``"6-8"``) -> (6, 8)."""
    parts = text.strip().replace("-", "/").split("/")
    try:
        numerator, denominator = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"meter {text!r} is not N/D, e.g. 4/4 or 6/8") from None
    if numerator < 1 or denominator not in (1, 2, 4, 8, 16, 32):
        raise ValueError(f"meter {text!r}: expected N >= 1 over 1, 2, 4, 8, 16 or 32")
    return numerator, denominator


def is_compound(numerator: int, denominator: int) -> bool:
    """6/8, 9/8, 12/8 (and /16): counted in dotted notes of three."""
    return denominator >= 8 and numerator % 3 == 0 and numerator > 3


def counted_beats(numerator: int, denominator: int) -> tuple[int, float]:
    """(counted beats per bar, quarter notes per counted beat): 4/4 -> (4, 1.0),
    6/8 -> (2, 1.5), 12/8 -> (4, 1.5), 5/8 -> (5, 0.5)."""
    if is_compound(numerator, denominator):
        return numerator // 3, 3 * 4.0 / denominator
    return numerator, 4.0 / denominator


def bar_quarters(numerator: int, denominator: int) -> float:
    """Quarter notes in one bar: 4/4 -> 4, 6/8 -> 3."""
    return numerator * 4.0 / denominator


def grid_step(text: str) -> float:
    """``1/16`` -> 0.25: a grid's step in beats (quarter notes); T marks triplets."""
    step = {name.upper(): step for name, step in GRIDS.items()}.get(
        text.strip().upper()
    )
    if step is not None:
        return step
    raise ValueError(f"unknown grid {text!r}; expected one of {', '.join(GRIDS)}")
