"""Drum class vocabularies (which input pitches form a class, which note it writes) and
the Hit, a drum onset in one of them.

E-GMD and GMD use Roland TD-17/TD-11 pitch numbers, not General MIDI: 22 and 26 are
hi-hat edge hits and 58 is the floor tom's rim. The tables below follow DESIGN.md §3
(roland9 is Gillick et al. 2019, appendix B).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from drumtx.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Hit:
    """A drum onset in a vocabulary."""

    time_sec: float
    cls: int  # class index into Vocab.codes
    velocity: int  # 1..127
    pitch: int = -1  # original MIDI pitch where known


@dataclass(frozen=True)
class Vocab:
    """An ordered set of drum classes; class index i is ``codes[i]``."""

    name: str
    codes: tuple[str, ...]
    names: tuple[str, ...]
    pitches: tuple[tuple[int, ...], ...]  # input MIDI pitches of each class
    gm_notes: tuple[int, ...]  # General MIDI output note of each class

    @property
    def n_classes(self) -> int:
        return len(self.codes)

    def class_of_pitch(self, pitch: int) -> int | None:
        """Class index of an input pitch, or None when the vocabulary ignores it."""
        return self._pitch_table.get(pitch)

    def index(self, code: str) -> int:
        try:
            return self.codes.index(code)
        except ValueError:
            raise ConfigError(
                f"unknown drum class {code!r} for vocabulary {self.name}",
                hint=f"classes of {self.name}: {', '.join(self.codes)}",
            ) from None

    @cached_property
    def _pitch_table(self) -> dict[int, int]:
        return {p: i for i, group in enumerate(self.pitches) for p in group}


ROLAND9 = Vocab(
    name="roland9",
    codes=("KD", "SD", "HH", "OH", "LT", "MT", "HT", "CR", "RD"),
    names=(
        "kick",
        "snare",
        "closed hi-hat",
        "open hi-hat",
        "low tom",
        "mid tom",
        "high tom",
        "crash",
        "ride",
    ),
    pitches=(
        (36,),
        (38, 37, 40),
        (42, 22, 44),
        (46, 26),
        (43, 58),
        (47, 45),
        (50, 48),
        (49, 52, 55, 57),
        (51, 53, 59),
    ),
    gm_notes=(36, 38, 42, 46, 43, 47, 50, 49, 51),
)

ADTOF5 = Vocab(
    name="adtof5",
    codes=("KD", "SD", "TT", "HH", "CY"),
    names=("kick", "snare", "toms", "hi-hat", "cymbals (crash and ride)"),
    pitches=(
        (36, 35),
        (38, 37, 40),
        (41, 43, 45, 47, 48, 50, 58),
        (22, 26, 42, 44, 46, 54),
        (49, 51, 52, 53, 55, 56, 57, 59),
    ),
    gm_notes=(36, 38, 47, 42, 49),
)

BASIC3 = Vocab(
    name="basic3",
    codes=("KD", "SD", "HH"),
    names=("kick", "snare", "hi-hat"),
    pitches=((36, 35), (38, 37, 40), (42, 22, 44, 46, 26)),
    gm_notes=(36, 38, 42),
)

VOCABS = {v.name: v for v in (ROLAND9, ADTOF5, BASIC3)}

# roland9 class code -> adtof5 class code, to report any 9-class result reduced to 5.
ROLAND9_TO_ADTOF5 = {
    "KD": "KD",
    "SD": "SD",
    "HH": "HH",
    "OH": "HH",
    "LT": "TT",
    "MT": "TT",
    "HT": "TT",
    "CR": "CY",
    "RD": "CY",
}


def get_vocab(name: str) -> Vocab:
    try:
        return VOCABS[name]
    except KeyError:
        raise ConfigError(
            f"unknown drum vocabulary {name!r}",
            hint=f"choose one of {', '.join(VOCABS)}",
        ) from None


def output_notes(vocab: Vocab, drum_map: str | Path = "gm") -> tuple[int, ...]:
    """The MIDI note each class writes: General MIDI, or a TOML file ``CODE = note``.

    A map file may name only some classes; the rest keep their GM note.
    """
    if str(drum_map) == "gm":
        return vocab.gm_notes
    path = Path(drum_map)
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"drum map {path} does not exist",
            hint="use --drum-map gm, or a TOML file with lines like KD = 36",
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(
            f"drum map {path} is not a readable TOML file: {exc}", hint=_MAP_HINT
        ) from None
    except RecursionError:  # tomllib recurses once per nesting level
        raise ConfigError(
            f"drum map {path} is not a readable TOML file: nested too deeply",
            hint=_MAP_HINT,
        ) from None
    notes = list(vocab.gm_notes)
    named: dict[int, str] = {}
    for code, note in table.items():
        index = vocab.index(code.strip().upper())  # kd = 35, as --threshold kd=0.6
        if index in named:
            raise ConfigError(
                f"drum map {path} names {vocab.codes[index]} twice ({named[index]} "
                f"and {code})",
                hint="keep one line per class",
            )
        named[index] = code
        if isinstance(note, bool) or not isinstance(note, int) or not 0 <= note <= 127:
            raise ConfigError(
                f"drum map {path}: {code} = {note!r} is not a MIDI note 0-127",
                hint=f"write {code} = N with N from 0 to 127 (General MIDI's for "
                f"{code.strip().upper()}: {vocab.gm_notes[index]})",
            )
        notes[index] = note
    return tuple(notes)


_MAP_HINT = "a drum map holds one line per class to change, e.g. KD = 35 (no tables)"


def reduce_to_adtof5(code: str) -> str:
    """The adtof5 class a roland9 class code falls into."""
    return ROLAND9_TO_ADTOF5[code]
